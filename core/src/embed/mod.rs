//! Turning text into vectors: the [`Embedder`] trait, the local Candle model, a remote
//! OpenAI-compatible embedder and a deterministic hashing embedder for tests.

mod bert;
#[cfg(feature = "download")]
pub mod download;
mod hashing;
mod local;
mod locate;
mod model;
mod remote;

pub use hashing::HashingEmbedder;
pub use local::LocalEmbedder;
pub use locate::locate_model;
pub use model::{
    ModelLocation, DEFAULT_MODEL_DIMENSIONS, DEFAULT_MODEL_NAME, DEFAULT_MODEL_PACKAGE,
};
pub use remote::{OpenAiEmbedder, RemoteEmbedderConfig};

use crate::error::Result;

/// Something that turns texts into fixed-size vectors.
///
/// Implementations must be deterministic for a given model: the store caches embeddings by
/// `(model_id, content hash)` and never embeds the same text twice.
pub trait Embedder: Send + Sync {
    /// A stable identifier of the model (recorded in the store; a store refuses an embedder
    /// with another id or dimension).
    fn model_id(&self) -> &str;

    /// The length of every vector this embedder returns.
    fn dimensions(&self) -> usize;

    /// Embeds a batch of texts; the output has one vector per input, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}
