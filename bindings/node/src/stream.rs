//! Streamed calls ([`wire::call_text_streaming`]): the core call runs on a thread of its own
//! and hands each piece of text to a channel; JavaScript pulls the pieces one at a time with
//! `next()` (a task waiting on the channel off the JavaScript thread), then takes the result
//! with `result()`. `cancel()` makes the core's callback refuse the next piece, which stops
//! the call (`Cancelled`, nothing stored); so does collecting the stream unread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};

use agent_mem::wire;
use agent_mem::{Error, ErrorCode, Memory};
use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;

use crate::{closed, guarded, reject, Failure};

/// What the call's thread sends: a piece of text, then its outcome (the result's JSON text).
enum Event {
    Piece(String),
    End(Result<String, Failure>),
}

/// The outcome once the end was read; shared by the stream and its `next` tasks.
type Outcome = Arc<Mutex<Option<Result<String, Failure>>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A streamed call under way: its pieces (`next`), then its result (`result`).
#[napi]
pub struct NativeStream {
    events: Arc<Mutex<Receiver<Event>>>,
    outcome: Outcome,
    cancelled: Arc<AtomicBool>,
}

/// Starts operation `op` with the JSON text of its request on a thread of its own (`None`:
/// the store is closed, and the stream ends at once with that error).
pub(crate) fn start(memory: Option<Arc<Memory>>, op: String, request: String) -> NativeStream {
    let (sender, receiver) = channel();
    let cancelled = Arc::new(AtomicBool::new(false));
    let stream = NativeStream {
        events: Arc::new(Mutex::new(receiver)),
        outcome: Arc::default(),
        cancelled: Arc::clone(&cancelled),
    };
    let Some(memory) = memory else {
        let _ = sender.send(Event::End(Err(closed().into())));
        return stream;
    };
    let failed = sender.clone();
    let spawned = std::thread::Builder::new()
        .name("agent_mem-stream".into())
        .spawn(move || {
            let outcome = guarded(|| {
                // A piece refused (cancelled, or the stream collected unread) stops the call.
                wire::call_text_streaming(&memory, &op, &request, &mut |piece| {
                    !cancelled.load(Ordering::SeqCst)
                        && sender.send(Event::Piece(piece.to_owned())).is_ok()
                })
            });
            let _ = sender.send(Event::End(outcome));
        });
    if let Err(e) = spawned {
        let error = Error::internal(format!("cannot start the stream's thread: {e}"));
        let _ = failed.send(Event::End(Err(error.into())));
    }
    stream
}

#[napi]
impl NativeStream {
    /// The next piece of text, or `null` once the call has ended (then `result()` holds its
    /// outcome). Waits on libuv's thread pool.
    #[napi]
    pub fn next(&self) -> AsyncTask<NextPiece> {
        AsyncTask::new(NextPiece {
            events: Arc::clone(&self.events),
            outcome: Arc::clone(&self.outcome),
        })
    }

    /// The result's JSON text once `next()` gave `null`; throws the call's error (`code`
    /// `"AM_…"`, `"AM_CANCELLED"` after `cancel`), or `AM_INVALID_INPUT` before the end.
    #[napi]
    pub fn result(&self, env: Env) -> napi::Result<String> {
        match lock(&self.outcome).clone() {
            Some(Ok(text)) => Ok(text),
            Some(Err(failure)) => Err(reject(env, failure)),
            None => Err(reject(
                env,
                Error::new(
                    ErrorCode::InvalidInput,
                    "the stream has not ended: read it until next() gives null",
                )
                .into(),
            )),
        }
    }

    /// Stops the call at its next piece: it then ends with `AM_CANCELLED` and stores nothing
    /// (unless the model had already answered in full).
    #[napi]
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

/// Waits for the next event of a stream, on libuv's thread pool.
pub struct NextPiece {
    events: Arc<Mutex<Receiver<Event>>>,
    outcome: Outcome,
}

impl Task for NextPiece {
    type Output = Option<String>;
    type JsValue = Option<String>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let received = lock(&self.events).recv();
        Ok(match received {
            Ok(Event::Piece(piece)) => Some(piece),
            Ok(Event::End(outcome)) => {
                *lock(&self.outcome) = Some(outcome);
                None
            }
            // The end was read already: the thread is gone.
            Err(_) => {
                lock(&self.outcome).get_or_insert_with(|| {
                    Err(Error::internal("the stream ended without an outcome").into())
                });
                None
            }
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}
