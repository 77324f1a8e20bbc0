//! The async bridge: a core call runs on a Rust worker thread and resolves an asyncio
//! future through `loop.call_soon_threadsafe`.
//!
//! `spawn` is called on the event loop's thread: it creates a future on the running loop,
//! queues the call and returns the future at once. A worker runs the call with the GIL
//! released, then attaches only to convert the result and hand it to the loop. So many
//! awaits are in flight at the same time, the loop never blocks, and no Python thread pool
//! is involved.
//!
//! Workers: `AGENTMEM_PY_THREADS` threads if set, else the number of CPUs but at least four
//! (a call that waits on SQLite's lock should not hold back a search). They are shared by
//! every store of the process and started on the first async call.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::errors::to_pyerr;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Turns a call's value into a Python object (run attached, on the worker).
pub type Convert<T> = fn(Python<'_>, T) -> PyResult<Py<PyAny>>;

const MAX_THREADS: usize = 64;

/// The worker pool of this process. After `fork()` the child has none of the parent's
/// threads, so a pool belongs to the process id that started it.
struct Pool {
    pid: u32,
    sender: Sender<Job>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn start_workers() -> Sender<Job> {
    let n = std::env::var("AGENTMEM_PY_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .max(4)
        })
        .min(MAX_THREADS);
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let spawned = thread::Builder::new()
            .name(format!("agent-mem-py-{i}"))
            .spawn(move || loop {
                // The lock is held only while waiting for the next job, not while running it.
                let job = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(poisoned) => poisoned.into_inner().recv(),
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
        // Fewer workers than asked is still a working pool; none makes `submit` fail.
        drop(spawned);
    }
    tx
}

/// Queues a job on this process's pool (started on first use).
fn submit(job: Job) -> Result<(), Job> {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if pool.as_ref().is_none_or(|p| p.pid != pid) {
        *pool = Some(Pool {
            pid,
            sender: start_workers(),
        });
    }
    match pool.as_ref() {
        Some(p) => p.sender.send(job).map_err(|e| e.0),
        None => Err(job),
    }
}

/// Calls in flight, and whether the interpreter is shutting down: a worker must not touch
/// Python once finalisation has begun, so an `atexit` hook ([`shutdown`]) refuses new calls
/// and waits for the running ones to hand over their results first.
struct Flight {
    pid: u32,
    running: usize,
    closed: bool,
}

static FLIGHT: Mutex<Flight> = Mutex::new(Flight {
    pid: 0,
    running: 0,
    closed: false,
});
static LANDED: Condvar = Condvar::new();

/// The flight record of this process (a child after `fork()` starts from nothing: the
/// parent's calls are not running here).
fn flight() -> std::sync::MutexGuard<'static, Flight> {
    let mut state = FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if state.pid != pid {
        *state = Flight {
            pid,
            running: 0,
            closed: false,
        };
    }
    state
}

/// Registered with `atexit` by the module: no new async calls, and the running ones finish
/// (their core call and their hand-over to the loop) before the interpreter is finalised.
#[pyfunction]
pub fn shutdown(py: Python<'_>) {
    py.detach(|| {
        let mut state = flight();
        state.closed = true;
        while state.running > 0 {
            state = LANDED.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    });
}

/// `_resolve(future, ok, value)`, scheduled on the loop: settles the future unless it was
/// cancelled meanwhile (the core call itself cannot be interrupted).
#[pyfunction]
fn resolve(future: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        future.call_method1("set_result", (value,))?;
    } else {
        future.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

fn resolver(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    RESOLVE.get_or_try_init(py, || {
        Ok(wrap_pyfunction!(resolve, py)?.into_any().unbind())
    })
}

/// Runs `call` on a worker and returns an asyncio future (of the running loop) that it
/// resolves with `convert(result)` or the matching `AgentMemError`. Must be called from a
/// coroutine (a running event loop), else `RuntimeError`.
pub fn spawn<T: Send + 'static>(
    py: Python<'_>,
    call: impl FnOnce() -> agent_mem::Result<T> + Send + 'static,
    convert: Convert<T>,
) -> PyResult<Py<PyAny>> {
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    let resolve = resolver(py)?.clone_ref(py);
    let (event_loop_ref, future_ref) = (event_loop.unbind(), future.clone().unbind());
    {
        let mut state = flight();
        if state.closed {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "agent_mem: the interpreter is shutting down",
            ));
        }
        state.running += 1;
    }
    let job: Job = Box::new(move || {
        // A panic (a bug in the core) must still settle the future and land the flight.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|_| {
                Err(agent_mem::Error::internal(
                    "agent_mem panicked (a bug; the panic message is on stderr)",
                ))
            });
        // After the interpreter has begun to shut down there is no one left to tell.
        let _ = Python::try_attach(|py| {
            let (ok, value) = match outcome.map_err(|e| to_pyerr(py, &e)) {
                Ok(v) => match convert(py, v) {
                    Ok(obj) => (true, obj),
                    Err(e) => (false, e.into_value(py).into_any()),
                },
                Err(e) => (false, e.into_value(py).into_any()),
            };
            // Fails only when the loop was closed meanwhile: nobody awaits the result then.
            let _ = event_loop_ref
                .bind(py)
                .call_method1("call_soon_threadsafe", (resolve, future_ref, ok, value));
        });
        land();
    });
    if submit(job).is_err() {
        land();
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "agent_mem: no worker thread could be started",
        ));
    }
    Ok(future.unbind())
}

fn land() {
    flight().running -= 1;
    LANDED.notify_all();
}
