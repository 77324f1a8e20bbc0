//! Helpers shared by the integration tests (`crate::support`).
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

pub mod fake_llm;
#[cfg(feature = "postgres")]
pub mod pg;
#[cfg(feature = "plugins")]
pub mod wat;

/// Environment variables are process-global and the tests of this one binary run on parallel
/// threads: every test that reads or writes the variables `locate_model` looks at, in any
/// module, holds this lock.
static ENV_LOCK: Mutex<()> = Mutex::new(());

pub fn env_lock() -> MutexGuard<'static, ()> {
    ENV_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The name libtest gives `test` of the module `module` (a `module_path!()`): the path
/// without the crate, as `--exact` wants it when a test runs this binary again as a child.
pub fn test_name(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{test}"),
        None => test.to_owned(),
    }
}
