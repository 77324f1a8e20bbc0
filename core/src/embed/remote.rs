//! An embedder behind an OpenAI-compatible `POST {base_url}/embeddings` endpoint (OpenAI,
//! Zhipu, Ollama, vLLM, LM Studio, llama.cpp, LiteLLM…).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::Embedder;
use crate::error::{Error, ErrorCode, Result};
use crate::http::provider::{resolve, Endpoint, Purpose};
use crate::http::{display_url, join_url, HttpClient, HttpOptions, Secret};

/// Most texts sent in one request (OpenAI takes 2048, Zhipu 64); larger batches are split.
const DEFAULT_BATCH: usize = 64;

/// The largest dimension accepted in a configuration.
const MAX_DIMENSIONS: usize = 65_536;

/// Embeddings from a remote OpenAI-compatible API.
///
/// The vector length is known up front when [`Self::with_dimensions`] was configured (models
/// such as `text-embedding-3-*` shorten their vectors on request); otherwise it is learned
/// from the first answer, and every later answer must have the same length.
///
/// ```no_run
/// use agent_mem::embed::{Embedder, OpenAiEmbedder};
///
/// # fn main() -> agent_mem::Result<()> {
/// let embedder = OpenAiEmbedder::new("https://api.openai.com/v1", "text-embedding-3-small")
///     .api_key(std::env::var("OPENAI_API_KEY").unwrap_or_default())
///     .with_dimensions(512);
/// let vectors = embedder.embed(&["hello", "world"])?;
/// assert_eq!(vectors[0].len(), 512);
/// # Ok(()) }
/// ```
pub struct OpenAiEmbedder {
    http: HttpClient,
    base_url: String,
    url: String,
    model: String,
    model_id: String,
    api_key: Option<Secret>,
    requested: Option<usize>,
    /// The length of the vectors seen so far (0: none seen yet).
    learned: AtomicUsize,
    batch: usize,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry credentials in its user info; the key is shown as set or not.
        f.debug_struct("OpenAiEmbedder")
            .field("model_id", &self.model_id)
            .field("base_url", &display_url(&self.base_url))
            .field("api_key", &self.api_key)
            .field("dimensions", &self.dimensions())
            .field("batch", &self.batch)
            .field("http", &self.http)
            .finish()
    }
}

impl Clone for OpenAiEmbedder {
    fn clone(&self) -> Self {
        OpenAiEmbedder {
            http: self.http.clone(),
            base_url: self.base_url.clone(),
            url: self.url.clone(),
            model: self.model.clone(),
            model_id: self.model_id.clone(),
            api_key: self.api_key.clone(),
            requested: self.requested,
            learned: AtomicUsize::new(self.learned.load(Ordering::Relaxed)),
            batch: self.batch,
        }
    }
}

impl OpenAiEmbedder {
    /// An embedder of `model` at `base_url` (the part before `/embeddings`, such as
    /// `https://api.openai.com/v1`), without a key, named `openai` in its model id and
    /// errors, with a 60 s timeout, 3 retries and at most 64 texts per request.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_string();
        let model = model.into();
        OpenAiEmbedder {
            http: HttpClient::new("openai", ErrorCode::Embedding, HttpOptions::default()),
            url: join_url(&base_url, "embeddings"),
            model_id: format!("openai:{model}"),
            base_url,
            model,
            api_key: None,
            requested: None,
            learned: AtomicUsize::new(0),
            batch: DEFAULT_BATCH,
        }
    }

    /// Names the provider in the model id (`"zhipu:embedding-3"`) and in errors.
    pub fn provider(mut self, name: &str) -> Self {
        self.http = self.http.with_provider(name);
        self.refresh_id();
        self
    }

    /// Sends `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
    }

    /// Asks the model for vectors of `n` dimensions (the `dimensions` parameter, which only
    /// some models support); the model id then ends in `@n`. `0` asks for the model's own
    /// length.
    pub fn with_dimensions(mut self, n: usize) -> Self {
        self.requested = (n > 0).then_some(n);
        self.refresh_id();
        self
    }

    /// The longest wait for each phase of an attempt (connecting, sending, the answer, reading
    /// it). A timed-out attempt is not retried.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http = self.http.with_timeout(timeout);
        self
    }

    /// How many times a rate-limited (429), overloaded (5xx) or refused connection attempt
    /// is tried again.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.http = self.http.with_max_retries(retries);
        self
    }

    /// The first wait between attempts (doubled after each, capped at 8 s; default 500 ms).
    pub fn retry_backoff(mut self, base: Duration) -> Self {
        self.http = self.http.with_backoff(base);
        self
    }

    /// The most texts sent in one request (at least 1; default 64).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// The model asked.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn refresh_id(&mut self) {
        self.model_id = match self.requested {
            Some(n) => format!("{}:{}@{n}", self.http.provider(), self.model),
            None => format!("{}:{}", self.http.provider(), self.model),
        };
    }

    fn error(&self, message: impl fmt::Display) -> Error {
        self.http.error(message)
    }

    /// Embeds one request's worth of texts.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut body = json!({
            "model": self.model,
            "input": texts,
            "encoding_format": "float",
        });
        if let Some(n) = self.requested {
            body["dimensions"] = json!(n);
        }
        let authorization = self
            .api_key
            .as_ref()
            .map(|key| format!("Bearer {}", key.expose()));
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let response = self
            .http
            .post_json(&self.url, &headers, self.api_key.as_ref(), &body)?;
        let vectors = self.parse(&response, texts.len())?;
        self.check_dimensions(&vectors)?;
        Ok(vectors)
    }

    /// The vectors of `data[]`, put in input order by their `index`.
    fn parse(&self, response: &Value, expected: usize) -> Result<Vec<Vec<f32>>> {
        let Some(data) = response.get("data").and_then(Value::as_array) else {
            return Err(self.error("the answer has no data[] list"));
        };
        if data.len() != expected {
            return Err(self.error(format!(
                "the answer has {} vectors for {expected} texts",
                data.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
        for (position, item) in data.iter().enumerate() {
            let index = match item.get("index") {
                None => position,
                Some(value) => value
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|i| *i < expected)
                    .ok_or_else(|| {
                        self.error(format!("data[{position}] has a bad index {value}"))
                    })?,
            };
            let Some(numbers) = item.get("embedding").and_then(Value::as_array) else {
                return Err(self.error(format!(
                    "data[{position}].embedding is not a list of numbers"
                )));
            };
            let mut vector = Vec::with_capacity(numbers.len());
            for number in numbers {
                let value = number.as_f64().map(|v| v as f32).filter(|v| v.is_finite());
                match value {
                    Some(v) => vector.push(v),
                    None => {
                        return Err(self.error(format!(
                            "data[{position}].embedding holds {number}, not a finite number"
                        )))
                    }
                }
            }
            if vector.is_empty() {
                return Err(self.error(format!("data[{position}].embedding is empty")));
            }
            if slots[index].replace(vector).is_some() {
                return Err(self.error(format!("index {index} appears twice in data[]")));
            }
        }
        // Every slot is filled: `expected` distinct indexes below `expected`.
        Ok(slots.into_iter().flatten().collect())
    }

    /// Checks that every vector has the configured or learned length, learning it from the
    /// first answer.
    fn check_dimensions(&self, vectors: &[Vec<f32>]) -> Result<()> {
        let Some(first) = vectors.first() else {
            return Ok(());
        };
        if let Some(bad) = vectors.iter().position(|v| v.len() != first.len()) {
            return Err(self.error(format!(
                "the answer mixes vector lengths ({} and {})",
                first.len(),
                vectors[bad].len()
            )));
        }
        let expected = match self.requested {
            Some(n) => n,
            None => match self.learned.compare_exchange(
                0,
                first.len(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => first.len(),
                Err(known) => known,
            },
        };
        if first.len() != expected {
            return Err(self.error(format!(
                "the model returned {}-dimensional vectors, expected {expected}",
                first.len()
            )));
        }
        Ok(())
    }
}

impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The configured dimension; else the length learned from the first answer; else **0,
    /// meaning "not known yet"** (no text was embedded so far). Callers that need the
    /// dimension before embedding anything should embed a probe text first.
    fn dimensions(&self) -> usize {
        self.requested
            .unwrap_or_else(|| self.learned.load(Ordering::Acquire))
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch) {
            vectors.extend(self.embed_batch(chunk)?);
        }
        Ok(vectors)
    }
}

/// How to reach a remote embedding model (the `embedder` section of a configuration).
///
/// Uses the [`crate::llm::Provider`] table (same key and base URL variables; an
/// `openai_compatible` server reads `AGENTMEM_EMBEDDER_API_KEY` and
/// `AGENTMEM_EMBEDDER_BASE_URL`). Default models: `text-embedding-3-small` (OpenAI) and
/// `embedding-3` (Zhipu); other providers need `model`. Anthropic and DeepSeek have no
/// embeddings API. Unknown fields are refused.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEmbedderConfig {
    /// A provider name or alias (`"openai"`, `"zhipu"`, `"ollama"`, `"vllm"`…).
    pub provider: String,
    /// The model; defaults to the provider's embedding model.
    pub model: Option<String>,
    /// The API key; defaults to the provider's key variable. Never shown by `Debug`.
    pub api_key: Option<String>,
    /// The base URL (`http://` or `https://`); defaults to the provider's variable, then its
    /// default.
    pub base_url: Option<String>,
    /// Vector length to ask for (only models that support shortening); default: the
    /// model's own.
    pub dimensions: Option<usize>,
    /// The longest wait for each phase of an attempt (connecting, sending, the answer,
    /// reading it), in milliseconds (1 to 600000; default 60000).
    pub timeout_ms: Option<u64>,
    /// Retries of rate-limited or failed attempts (0 to 10; default 3).
    pub max_retries: Option<u32>,
}

impl fmt::Debug for RemoteEmbedderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteEmbedderConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("dimensions", &self.dimensions)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl RemoteEmbedderConfig {
    /// A configuration of `provider` with everything else left to defaults.
    pub fn new(provider: impl Into<String>) -> Self {
        RemoteEmbedderConfig {
            provider: provider.into(),
            ..RemoteEmbedderConfig::default()
        }
    }

    /// Checks the configuration, fills the gaps from the process environment, and builds
    /// the embedder. Makes no network call.
    ///
    /// # Errors
    /// [`ErrorCode::InvalidInput`] naming the field (`embedder.api_key`…) when the
    /// configuration cannot work.
    pub fn build(&self) -> Result<OpenAiEmbedder> {
        self.build_with_env(&|name| std::env::var(name).ok())
    }

    /// [`Self::build`] with the environment read through `env`.
    pub fn build_with_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<OpenAiEmbedder> {
        let target = resolve(
            "embedder",
            Purpose::Embeddings,
            &Endpoint {
                provider: &self.provider,
                model: self.model.as_deref(),
                api_key: self.api_key.as_deref(),
                base_url: self.base_url.as_deref(),
                timeout_ms: self.timeout_ms,
                max_retries: self.max_retries,
            },
            env,
        )?;
        let mut embedder = OpenAiEmbedder::new(&target.base_url, &target.model)
            .provider(target.provider.as_str())
            .timeout(target.options.timeout)
            .max_retries(target.options.max_retries);
        if let Some(key) = target.api_key {
            embedder = embedder.api_key(key);
        }
        match self.dimensions {
            None => {}
            Some(n) if (1..=MAX_DIMENSIONS).contains(&n) => embedder = embedder.with_dimensions(n),
            Some(n) => {
                return Err(Error::invalid(format!(
                    "embedder.dimensions must be between 1 and {MAX_DIMENSIONS} (got {n})"
                )))
            }
        }
        Ok(embedder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_orders_by_index_and_rejects_duplicates() {
        let e = OpenAiEmbedder::new("http://h/v1", "m");
        let response = json!({"data": [
            {"index": 1, "embedding": [0.0, 1.0]},
            {"index": 0, "embedding": [1.0, 0.0]},
        ]});
        assert_eq!(
            e.parse(&response, 2).unwrap(),
            vec![vec![1.0, 0.0], vec![0.0, 1.0]]
        );
        let twice = json!({"data": [
            {"index": 0, "embedding": [0.0]}, {"index": 0, "embedding": [1.0]}]});
        assert!(e.parse(&twice, 2).is_err());
        let out_of_range = json!({"data": [{"index": 5, "embedding": [0.0]}]});
        assert!(e.parse(&out_of_range, 1).is_err());
        let base64 = json!({"data": [{"index": 0, "embedding": "AAAA"}]});
        assert!(e.parse(&base64, 1).is_err());
        let huge = json!({"data": [{"index": 0, "embedding": [1e300]}]});
        assert!(e.parse(&huge, 1).is_err());
    }

    #[test]
    fn model_id_names_provider_and_dimensions() {
        let e = OpenAiEmbedder::new("http://h/v1", "m").provider("zhipu");
        assert_eq!(e.model_id(), "zhipu:m");
        assert_eq!(e.dimensions(), 0);
        let e = e.with_dimensions(256);
        assert_eq!(e.model_id(), "zhipu:m@256");
        assert_eq!(e.dimensions(), 256);
    }
}
