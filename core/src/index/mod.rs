//! Derived indexes. SQLite holds everything needed to rebuild them.

pub(crate) mod vector;

pub use vector::{Quantization, VectorIndexOptions};
