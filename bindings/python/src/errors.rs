//! Core errors → the Python exception classes of `agent_mem.exceptions`.
//!
//! The classes live in Python (plain, picklable classes with `.code`); this module only
//! hands the code, the message and the cause chain to `agent_mem.exceptions._from_native`,
//! which picks the class and chains the causes as `__cause__`.

use agent_mem::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

static FROM_NATIVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The Python exception for a core error.
pub fn to_pyerr(py: Python<'_>, err: &Error) -> PyErr {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let made = FROM_NATIVE
        .get_or_try_init(py, || {
            py.import("agent_mem.exceptions")?
                .getattr("_from_native")
                .map(Bound::unbind)
        })
        .and_then(|make| {
            make.bind(py)
                .call1((err.code().as_u32(), err.message(), causes))
        });
    match made {
        Ok(exc) => PyErr::from_value(exc),
        // Only if the package is broken: keep the code and message visible all the same.
        Err(import_error) => {
            let e = PyRuntimeError::new_err(err.to_string());
            e.set_cause(py, Some(import_error));
            e
        }
    }
}

/// A core result as a Python result.
pub fn check<T>(py: Python<'_>, result: agent_mem::Result<T>) -> PyResult<T> {
    result.map_err(|e| to_pyerr(py, &e))
}
