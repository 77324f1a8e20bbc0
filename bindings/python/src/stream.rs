//! Streamed calls ([`wire::call_streaming`]): the core call runs on a thread of its own and
//! hands each piece of text to a channel; Python pulls the pieces one at a time, blocking
//! (`__next__`, waiting with the GIL released) or awaiting (`next_async`, a worker of the
//! async bridge waiting on the channel), then reads the result (`result`).
//!
//! `cancel()` makes the core's callback refuse the next piece, which stops the call
//! (`Cancelled`, nothing stored); `close()` also waits for the thread to end, so that none
//! is left running, and so does dropping the stream unread. The thread itself never touches
//! Python: waiting for it with the GIL released cannot deadlock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use agent_mem::wire;
use agent_mem::{Error, Memory};
use pyo3::prelude::*;
use pyo3::types::PyString;
use serde_json::Value;

use crate::bridge;
use crate::convert;
use crate::errors::to_pyerr;

/// How long a blocking `__next__` waits before it looks for a signal (Ctrl-C) to handle.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// What the call's thread sends: a piece of text, then its outcome.
enum Event {
    Piece(String),
    End(agent_mem::Result<Value>),
}

/// What a reader took from the channel: a piece, the end (its outcome is then kept), or
/// nothing more (another reader took the end, or the stream was closed).
enum Received {
    Piece(String),
    End,
    Gone,
}

/// The call's outcome once its end was taken from the channel: shared, so that it is read
/// (and converted, with the GIL) after the lock is released.
type Outcome = Arc<agent_mem::Result<Value>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The state a stream shares with the workers awaiting its pieces. It holds no Python
/// object, and its locks are only taken for Rust work: none is held while Python runs.
struct Shared {
    events: Mutex<Receiver<Event>>,
    cancelled: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    outcome: Mutex<Option<Outcome>>,
}

impl Shared {
    fn settled(&self) -> bool {
        lock(&self.outcome).is_some()
    }

    fn outcome(&self) -> Option<Outcome> {
        lock(&self.outcome).clone()
    }

    /// Keeps the outcome (the first one: there is only one).
    fn end(&self, outcome: agent_mem::Result<Value>) {
        lock(&self.outcome).get_or_insert_with(|| Arc::new(outcome));
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Waits for the call's thread to end (call without the GIL).
    fn join(&self) {
        let handle = lock(&self.thread).take();
        if let Some(handle) = handle {
            // The thread catches the core's panics: it cannot fail but by a bug here.
            let _ = handle.join();
        }
    }

    /// The next event, waiting at most `timeout` (`None`: the timeout passed). The end is
    /// kept, and joins the thread, which is then ending. Call without the GIL.
    fn receive(&self, timeout: Option<Duration>) -> Option<Received> {
        let events = lock(&self.events);
        let event = match timeout {
            Some(timeout) => match events.recv_timeout(timeout) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => None,
            },
            None => events.recv().ok(),
        };
        drop(events);
        Some(match event {
            Some(Event::Piece(piece)) => Received::Piece(piece),
            Some(Event::End(outcome)) => {
                self.end(outcome);
                self.join();
                Received::End
            }
            None => {
                self.join();
                Received::Gone
            }
        })
    }

    /// Cancels the call, waits for its thread to end and drops the pieces not read, keeping
    /// the end if no reader took it. Call without the GIL.
    fn stop(&self) {
        self.cancel();
        self.join();
        let events = lock(&self.events);
        while let Ok(event) = events.try_recv() {
            if let Event::End(outcome) = event {
                self.end(outcome);
            }
        }
    }

    /// What a reader hands Python for what it received: a piece, `None` at the end or the
    /// call's error.
    fn hand_over(&self, py: Python<'_>, received: Received) -> PyResult<Option<String>> {
        match received {
            Received::Piece(piece) => Ok(Some(piece)),
            Received::Gone => Ok(None),
            Received::End => match self.outcome().as_deref() {
                Some(Err(e)) => Err(to_pyerr(py, e)),
                Some(Ok(_)) | None => Ok(None),
            },
        }
    }
}

/// A streamed call under way: iterate it for the pieces of text (or await `next_async()`),
/// then read `result`.
#[pyclass(frozen, module = "agent_mem._native")]
pub struct NativeStream {
    shared: Arc<Shared>,
}

/// Starts operation `op` with its request on a thread of its own.
pub(crate) fn start(
    memory: Arc<Memory>,
    op: String,
    request: Value,
) -> agent_mem::Result<NativeStream> {
    let (sender, receiver) = mpsc::channel();
    let cancelled = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&cancelled);
    let thread = thread::Builder::new()
        .name("agent-mem-stream".into())
        .spawn(move || {
            let run = || {
                if stop.load(Ordering::SeqCst) {
                    return Err(Error::cancelled("the stream was closed before it started"));
                }
                // A piece refused (cancelled, or the stream dropped) stops the call.
                wire::call_streaming(&memory, &op, request, &mut |piece| {
                    !stop.load(Ordering::SeqCst)
                        && sender.send(Event::Piece(piece.to_owned())).is_ok()
                })
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                .unwrap_or_else(|panic| Err(Error::from_panic(panic.as_ref())));
            // Released before the end is told: the store may be closed as soon as it is read.
            drop(memory);
            let _ = sender.send(Event::End(outcome));
        })
        .map_err(|e| Error::internal(format!("cannot start the stream's thread: {e}")))?;
    Ok(NativeStream {
        shared: Arc::new(Shared {
            events: Mutex::new(receiver),
            cancelled,
            thread: Mutex::new(Some(thread)),
            outcome: Mutex::new(None),
        }),
    })
}

fn piece_to_py(py: Python<'_>, piece: Option<String>) -> Py<PyAny> {
    match piece {
        Some(piece) => PyString::new(py, &piece).into_any().unbind(),
        None => py.None(),
    }
}

#[pymethods]
impl NativeStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next piece of text, waiting for it with the GIL released; `StopIteration` at the
    /// end (then `result` holds the result); the call's error is raised here (and kept for
    /// `result`). A signal (Ctrl-C) while waiting cancels the call and is raised.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        loop {
            if self.shared.settled() {
                return Ok(None);
            }
            let shared = Arc::clone(&self.shared);
            match py.detach(move || shared.receive(Some(SIGNAL_POLL))) {
                Some(received) => return self.shared.hand_over(py, received),
                None => {
                    if let Err(interrupted) = py.check_signals() {
                        self.shared.cancel();
                        return Err(interrupted);
                    }
                }
            }
        }
    }

    /// A future of the next piece of text, or of None at the end; it fails with the call's
    /// error. A worker of the async bridge waits for the piece.
    fn next_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let shared = Arc::clone(&self.shared);
        bridge::spawn(
            py,
            move || {
                let received = if shared.settled() {
                    Received::Gone
                } else {
                    shared.receive(None).unwrap_or(Received::Gone)
                };
                Ok((shared, received))
            },
            |py, (shared, received)| Ok(piece_to_py(py, shared.hand_over(py, received)?)),
        )
    }

    /// The call's result once the stream has ended (a new dict at each read); its error if
    /// it failed (`CancelledError` once cancelled); `InvalidInputError` while it runs.
    #[getter]
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.shared.outcome().as_deref() {
            Some(Ok(value)) => Ok(convert::to_py(py, value)?.unbind()),
            Some(Err(e)) => Err(to_pyerr(py, e)),
            None => Err(to_pyerr(
                py,
                &Error::invalid("the stream has not ended: read it to its end first"),
            )),
        }
    }

    /// Whether the stream has ended (its result or its error is known).
    #[getter]
    fn done(&self) -> bool {
        self.shared.settled()
    }

    /// Stops the call at its next piece of text, without waiting: it then ends with
    /// `CancelledError` and stores nothing (unless the model had already answered in full).
    fn cancel(&self) {
        self.shared.cancel();
    }

    /// Cancels the call and waits (with the GIL released) for its thread to end; the pieces
    /// not read are dropped, and the stream is over. Idempotent; never raises the call's
    /// error (`result` holds it).
    fn close(&self, py: Python<'_>) {
        let shared = Arc::clone(&self.shared);
        py.detach(move || shared.stop());
    }

    /// `close` on a worker: a future of None.
    fn close_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let shared = Arc::clone(&self.shared);
        let stop = move || {
            shared.stop();
            Ok(())
        };
        bridge::spawn(py, stop, |py, ()| Ok(py.None()))
    }

    fn __repr__(&self) -> String {
        let state = if self.shared.settled() {
            "ended"
        } else {
            "running"
        };
        format!("<agent_mem._native.NativeStream ({state})>")
    }
}

impl Drop for NativeStream {
    /// A stream dropped before its end cancels the call and waits for its thread, with the
    /// GIL released meanwhile.
    fn drop(&mut self) {
        self.shared.cancel();
        let shared = &self.shared;
        // Not attached (the interpreter is gone): there is no GIL to release.
        if Python::try_attach(|py| py.detach(|| shared.join())).is_none() {
            shared.join();
        }
    }
}
