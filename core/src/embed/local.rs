//! The local sentence embedder: a BERT-family model (all-MiniLM-L6-v2 by default) run
//! in-process on the CPU by Candle.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::bert::{BertEncoder, Config};
use super::locate::{locate_model, missing_files};
use super::model::{DEFAULT_MODEL_NAME, REQUIRED_FILES};
use super::Embedder;
use crate::error::{Error, ErrorCode, Result};

/// The maximum sequence length used when the model directory does not say.
const DEFAULT_MAX_SEQ_LENGTH: usize = 256;
/// At most this many texts go through the model at once.
const MAX_CHUNK_TEXTS: usize = 64;
/// At most this many (padded) tokens go through the model at once, which bounds memory:
/// 16 texts of 256 tokens, or 64 short ones.
const MAX_CHUNK_TOKENS: usize = 4096;

/// The size of the official `model.safetensors` of all-MiniLM-L6-v2.
const DEFAULT_MODEL_SIZE: u64 = 90_868_376;
/// CRC-32 of the official file's first bytes (header and the first 64 KiB of tensor data).
const DEFAULT_MODEL_CRC: u32 = 0x6116_efda;
/// How much tensor data (after the header) the fingerprint covers.
const FINGERPRINT_DATA_BYTES: u64 = 64 * 1024;

/// A sentence embedder running a BERT-family model (by default
/// [`sentence-transformers/all-MiniLM-L6-v2`](DEFAULT_MODEL_NAME)) locally with Candle.
///
/// Texts are tokenized (with special tokens, truncated at the model's `max_seq_length`,
/// 256 for all-MiniLM-L6-v2), run through the model in length-sorted batches (each text
/// attends only to its own tokens, so nothing is padded; the chunks of a large batch run on
/// all cores), mean-pooled over the text's tokens and L2-normalised, exactly like
/// sentence-transformers does.
///
/// [`LocalEmbedder::from_dir`] only reads the small `config.json`; the weights and the
/// tokenizer are loaded on the first call to [`Embedder::embed`] (or [`LocalEmbedder::load`]).
/// The embedder is `Send + Sync` and can be shared between threads.
pub struct LocalEmbedder {
    dir: PathBuf,
    model_id: String,
    dimensions: usize,
    max_seq_length: usize,
    config: Config,
    loaded: OnceLock<std::result::Result<Loaded, LoadError>>,
}

/// The model and tokenizer, once loaded.
struct Loaded {
    encoder: BertEncoder,
    tokenizer: Tokenizer,
}

/// Why loading failed (kept so every later call reports the same error).
#[derive(Clone)]
struct LoadError {
    code: ErrorCode,
    message: String,
}

// The model is shared between threads: make sure the compiler agrees it can be.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Loaded>();
    assert_send_sync::<LocalEmbedder>();
};

impl fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("dir", &self.dir)
            .field("model_id", &self.model_id)
            .field("dimensions", &self.dimensions)
            .field("max_seq_length", &self.max_seq_length)
            .field("loaded", &matches!(self.loaded.get(), Some(Ok(_))))
            .finish()
    }
}

impl LocalEmbedder {
    /// An embedder for the default model, found by [`locate_model(None)`](locate_model).
    ///
    /// # Errors
    ///
    /// [`ErrorCode::ModelUnavailable`] when the model cannot be found, or its `config.json`
    /// cannot be read.
    pub fn new_default() -> Result<Self> {
        let location = locate_model(None)?;
        Self::from_dir(&location.dir)
    }

    /// An embedder for the model in `dir`, which must hold `config.json`, `tokenizer.json`
    /// and `model.safetensors` (a sentence-transformers `sentence_bert_config.json` is used
    /// for the maximum sequence length when present).
    ///
    /// Only the configuration is read now; weights and tokenizer load on first use.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::ModelUnavailable`] when a required file is missing or `config.json` is
    /// not a valid BERT configuration.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let missing = missing_files(dir);
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorCode::ModelUnavailable,
                format!(
                    "{} is not a usable model directory: it lacks {} (it must hold {})",
                    dir.display(),
                    missing.join(", "),
                    REQUIRED_FILES.join(", ")
                ),
            ));
        }
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            Error::new(
                ErrorCode::ModelUnavailable,
                format!("cannot read {}: {e}", config_path.display()),
            )
            .with_source(e)
        })?;
        let config: Config = serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorCode::ModelUnavailable,
                format!(
                    "{} is not a BERT model configuration: {e}",
                    config_path.display()
                ),
            )
            .with_source(e)
        })?;
        if config.hidden_size == 0 {
            return Err(Error::new(
                ErrorCode::ModelUnavailable,
                format!("{} declares hidden_size 0", config_path.display()),
            ));
        }
        let max_seq_length = read_max_seq_length(dir)
            .unwrap_or(DEFAULT_MAX_SEQ_LENGTH)
            .clamp(2, config.max_position_embeddings.max(2));
        Ok(LocalEmbedder {
            dir: dir.to_path_buf(),
            model_id: derive_model_id(dir),
            dimensions: config.hidden_size,
            max_seq_length,
            config,
            loaded: OnceLock::new(),
        })
    }

    /// The same embedder reporting another model id (for a model whose id cannot be
    /// derived from its directory).
    pub fn with_model_id(mut self, id: impl Into<String>) -> Self {
        self.model_id = id.into();
        self
    }

    /// The directory the model is read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The maximum number of tokens (special tokens included) of one text; longer texts
    /// are truncated.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Loads the weights and the tokenizer now instead of on the first
    /// [`embed`](Embedder::embed).
    ///
    /// # Errors
    ///
    /// [`ErrorCode::ModelUnavailable`] when the files cannot be read or do not form a
    /// model; the same error is returned by every later call.
    pub fn load(&self) -> Result<()> {
        self.loaded().map(|_| ())
    }

    fn loaded(&self) -> Result<&Loaded> {
        match self.loaded.get_or_init(|| self.load_files()) {
            Ok(loaded) => Ok(loaded),
            Err(e) => Err(Error::new(e.code, e.message.clone())),
        }
    }

    fn load_files(&self) -> std::result::Result<Loaded, LoadError> {
        let unavailable = |message: String| LoadError {
            code: ErrorCode::ModelUnavailable,
            message,
        };
        let tokenizer_path = self.dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            unavailable(format!(
                "cannot load tokenizer {}: {e}",
                tokenizer_path.display()
            ))
        })?;
        // The shipped tokenizer pads everything to 128 tokens and truncates at 128: we pad
        // ourselves (to the longest text of each batch) and truncate at max_seq_length.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: self.max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| unavailable(format!("cannot configure tokenizer truncation: {e}")))?;

        let weights_path = self.dir.join("model.safetensors");
        let bytes = std::fs::read(&weights_path)
            .map_err(|e| unavailable(format!("cannot read {}: {e}", weights_path.display())))?;
        let encoder = BertEncoder::load(&bytes, &self.config).map_err(|e| {
            unavailable(format!(
                "cannot load a BERT model from {}: {e}",
                weights_path.display()
            ))
        })?;
        Ok(Loaded { encoder, tokenizer })
    }
}

impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let loaded = self.loaded()?;
        // One text (a query) skips the batch machinery and its thread pool.
        let encodings: Vec<Encoding> = match texts {
            [text] => loaded.tokenizer.encode(*text, true).map(|e| vec![e]),
            _ => loaded.tokenizer.encode_batch(texts.to_vec(), true),
        }
        .map_err(|e| {
            Error::new(ErrorCode::Embedding, format!("tokenization failed: {e}")).with_source(e)
        })?;

        // Sort by length so each chunk holds texts of similar length, then restore order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        // A batch is cut into at least as many chunks as there are cores, run side by side.
        let workers = worker_threads().min(texts.len());
        let max_texts = MAX_CHUNK_TEXTS.min(texts.len().div_ceil(workers));
        let mut chunks: Vec<&[usize]> = Vec::new();
        let mut rest = order.as_slice();
        while !rest.is_empty() {
            let size = chunk_len(rest, max_texts, |i| encodings[i].get_ids().len());
            let (chunk, tail) = rest.split_at(size);
            chunks.push(chunk);
            rest = tail;
        }
        let run = |chunk: &[usize]| {
            let ids: Vec<&[u32]> = chunk.iter().map(|&i| encodings[i].get_ids()).collect();
            loaded.encoder.embed(&ids)
        };
        let results: Vec<candle_core::Result<Vec<Vec<f32>>>> = if workers <= 1 {
            chunks.iter().map(|c| run(c)).collect()
        } else {
            // Each worker takes the next chunk until none is left, and hands back what it did.
            let next = AtomicUsize::new(0);
            let work = || {
                let mut mine = Vec::new();
                loop {
                    let at = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(at) else {
                        return mine;
                    };
                    mine.push((at, run(chunk)));
                }
            };
            let mut done: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            });
            done.sort_by_key(|(at, _)| *at);
            done.into_iter().map(|(_, r)| r).collect()
        };
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for (chunk, result) in chunks.iter().zip(results) {
            let vectors = result.map_err(|e| {
                Error::new(
                    ErrorCode::Embedding,
                    format!("the model failed to embed a batch: {e}"),
                )
                .with_source(e)
            })?;
            for (&i, vector) in chunk.iter().zip(vectors) {
                out[i] = vector;
            }
        }
        if let Some(bad) = out.iter().find(|v| v.len() != self.dimensions) {
            return Err(Error::new(
                ErrorCode::Embedding,
                format!(
                    "the model returned {} dimensions, config.json declares {}",
                    bad.len(),
                    self.dimensions
                ),
            ));
        }
        Ok(out)
    }
}

/// How many threads embed the chunks of a batch: the cores available (read once).
fn worker_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How many of the texts at the start of `sorted` (indices sorted by increasing token count
/// `len`) go into the next chunk: at least one, at most `max_texts` (itself at most
/// [`MAX_CHUNK_TEXTS`]), and no more than [`MAX_CHUNK_TOKENS`] once padded to the longest.
fn chunk_len(sorted: &[usize], max_texts: usize, len: impl Fn(usize) -> usize) -> usize {
    let mut size = 1;
    while size < sorted.len().min(max_texts).min(MAX_CHUNK_TEXTS)
        && (size + 1) * len(sorted[size]) <= MAX_CHUNK_TOKENS
    {
        size += 1;
    }
    size
}

/// `max_seq_length` from a sentence-transformers `sentence_bert_config.json`, if present.
fn read_max_seq_length(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("sentence_bert_config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value
        .get("max_seq_length")?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
}

/// A stable id for the model in `dir`.
///
/// In order: [`DEFAULT_MODEL_NAME`] when the weights are the official all-MiniLM-L6-v2 file
/// (checked by size and a checksum of the first bytes, so it does not depend on where the
/// files live); `org/name` for a Hugging Face cache snapshot of `models--org--name`; the
/// name a sentence-transformers `README.md` loads (`SentenceTransformer('org/name')`); else
/// `local:<directory name>`.
fn derive_model_id(dir: &Path) -> String {
    if is_default_model(&dir.join("model.safetensors")) {
        return DEFAULT_MODEL_NAME.to_string();
    }
    if let Some(id) = hf_cache_id(dir) {
        return id;
    }
    if let Some(id) = readme_id(dir) {
        return id;
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".to_string());
    format!("local:{name}")
}

/// Whether `path` is the official all-MiniLM-L6-v2 `model.safetensors`.
fn is_default_model(path: &Path) -> bool {
    let check = || -> std::io::Result<bool> {
        let mut file = File::open(path)?;
        if file.metadata()?.len() != DEFAULT_MODEL_SIZE {
            return Ok(false);
        }
        let mut len = [0u8; 8];
        file.read_exact(&mut len)?;
        let header_len = u64::from_le_bytes(len);
        if header_len > DEFAULT_MODEL_SIZE {
            return Ok(false);
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&len);
        let mut rest = Vec::new();
        file.take(header_len + FINGERPRINT_DATA_BYTES)
            .read_to_end(&mut rest)?;
        hasher.update(&rest);
        Ok(hasher.finalize() == DEFAULT_MODEL_CRC)
    };
    check().unwrap_or(false)
}

/// `org/name` when `dir` is `.../models--org--name/snapshots/<rev>`.
fn hf_cache_id(dir: &Path) -> Option<String> {
    let snapshots = dir.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let repo = snapshots.parent()?.file_name()?.to_str()?;
    let name = repo.strip_prefix("models--")?;
    let mut parts = name.splitn(2, "--");
    let org = parts.next().filter(|s| !s.is_empty())?;
    match parts.next() {
        Some(model) if !model.is_empty() => Some(format!("{org}/{model}")),
        _ => Some(org.to_string()),
    }
}

/// The model name a sentence-transformers model card loads: `SentenceTransformer('x')`.
fn readme_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("README.md")).ok()?;
    let pos = text.find("SentenceTransformer(")?;
    let rest = &text[pos + "SentenceTransformer(".len()..];
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &rest[1..];
    let id = &rest[..rest.find(quote)?];
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    valid.then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_limits() {
        let short: Vec<usize> = (0..100).collect();
        let all = usize::MAX;
        assert_eq!(chunk_len(&short, all, |_| 10), MAX_CHUNK_TEXTS);
        assert_eq!(chunk_len(&short, 50, |_| 10), 50);
        assert_eq!(chunk_len(&short, all, |_| 256), MAX_CHUNK_TOKENS / 256);
        assert_eq!(chunk_len(&short, all, |_| 10_000), 1);
        assert_eq!(chunk_len(&short[..3], all, |_| 10), 3);
        // Lengths grow: the chunk stops before the text that would overflow the budget.
        assert_eq!(
            chunk_len(&short, all, |i| if i < 10 { 8 } else { 1000 }),
            10
        );
    }

    #[test]
    fn hf_cache_ids() {
        let dir = Path::new("/x/hub/models--BAAI--bge-small-en-v1.5/snapshots/abc");
        assert_eq!(hf_cache_id(dir).as_deref(), Some("BAAI/bge-small-en-v1.5"));
        assert_eq!(hf_cache_id(Path::new("/x/model")), None);
    }

    #[test]
    fn missing_dir_is_model_unavailable() {
        let err = LocalEmbedder::from_dir(Path::new("/no/such/model")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ModelUnavailable);
        assert!(err.message().contains("/no/such/model"));
    }
}
