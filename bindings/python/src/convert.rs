//! Python objects ↔ `serde_json::Value`: the only translation the module does.
//!
//! Requests go to the core as JSON values, so every language hands the core the same thing
//! and the core alone decides what is valid. What cannot be JSON at all (NaN, a non-string
//! key, a set, a cycle) is refused here with the core's `InvalidInput`, naming where it is.

use agent_mem::Error;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Deeper nesting than this is refused (it also stops self-containing lists).
const MAX_DEPTH: usize = 128;

/// Converts a Python object (None, bool, int, float, str, list, tuple, dict with str keys)
/// to JSON; `what` names the argument in errors (`"vector"`). An empty `what` is a request
/// object: its keys then name themselves (`metadata.colour`, not `request.metadata.colour`).
pub fn to_json(obj: &Bound<'_, PyAny>, what: &str) -> Result<Value, Error> {
    convert(obj, what, 0)
}

fn convert(obj: &Bound<'_, PyAny>, at: &str, depth: usize) -> Result<Value, Error> {
    let path = if at.is_empty() { "request" } else { at };
    if depth > MAX_DEPTH {
        return Err(Error::invalid(format!(
            "{path}: nested deeper than {MAX_DEPTH} levels (or contains itself)"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is an int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(Error::invalid(format!(
            "{path}: the integer {} does not fit in 64 bits",
            obj.str().map(|s| s.to_string()).unwrap_or_default()
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let x = f.value();
        return Number::from_f64(x).map(Value::Number).ok_or_else(|| {
            Error::invalid(format!(
                "{path}: {x} is not a JSON number (NaN and infinity are refused)"
            ))
        });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s
            .to_cow()
            .map(|s| Value::String(s.into_owned()))
            .map_err(|_| {
                Error::invalid(format!(
                    "{path}: the string holds a lone surrogate and is not valid Unicode"
                ))
            });
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::with_capacity(dict.len());
        for (key, value) in dict.iter() {
            let Ok(key) = key.cast::<PyString>() else {
                return Err(Error::invalid(format!(
                    "{path}: keys must be strings, got {}",
                    type_name(&key)
                )));
            };
            let key = key
                .to_cow()
                .map_err(|_| Error::invalid(format!("{path}: a key holds a lone surrogate")))?;
            let child = if at.is_empty() {
                key.to_string()
            } else {
                format!("{at}.{key}")
            };
            map.insert(key.into_owned(), convert(&value, &child, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return sequence(list.iter(), list.len(), path, depth);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return sequence(tuple.iter(), tuple.len(), path, depth);
    }
    Err(Error::invalid(format!(
        "{path}: a {} cannot be stored as JSON (use None, bool, int, float, str, list or dict)",
        type_name(obj)
    )))
}

fn sequence<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    path: &str,
    depth: usize,
) -> Result<Value, Error> {
    let mut out = Vec::with_capacity(len);
    for (i, item) in items.enumerate() {
        out.push(convert(&item, &format!("{path}[{i}]"), depth + 1)?);
    }
    Ok(Value::Array(out))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

/// Converts JSON to plain Python objects: dict, list, str, int, float, bool and None.
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}
