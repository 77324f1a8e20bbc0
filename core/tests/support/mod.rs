//! Helpers shared by the integration tests (`mod support;`).
#![allow(dead_code)]

pub mod fake_llm;
#[cfg(feature = "postgres")]
pub mod pg;
