//! Configuring a chat model: [`LlmConfig`], over the [`Provider`] table.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::{AnthropicChat, Llm, OpenAiChat};
use crate::error::{Error, Result};
use crate::http::provider::{resolve, Endpoint, Provider, Purpose};

/// How to reach a chat model, as found in a configuration file or dict (the `llm` section).
///
/// Only `provider` is required; the rest comes from the environment and the [`Provider`]
/// table. Values given here win over the environment. Unknown fields are refused.
///
/// ```
/// use agent_mem::llm::LlmConfig;
///
/// let config: LlmConfig = serde_json::from_str(
///     r#"{"provider": "ollama", "model": "llama3.2", "timeout_ms": 30000}"#,
/// ).unwrap();
/// let llm = config.build().unwrap(); // no network call yet
/// assert_eq!(llm.label(), "ollama:llama3.2");
/// ```
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// A [`Provider`] name or alias (`"openai"`, `"anthropic"`, `"ollama"`, `"vllm"`…).
    pub provider: String,
    /// The model; defaults to the provider's (see [`Provider`]).
    pub model: Option<String>,
    /// The API key; defaults to the provider's key variable. Never shown by `Debug`.
    pub api_key: Option<String>,
    /// The base URL (`http://` or `https://`); defaults to the provider's base URL variable,
    /// then its default.
    pub base_url: Option<String>,
    /// The longest wait for each phase of an attempt (connecting, sending, the answer,
    /// reading it), in milliseconds (1 to 600000; default 60000).
    pub timeout_ms: Option<u64>,
    /// Retries of rate-limited or failed attempts (0 to 10; default 3).
    pub max_retries: Option<u32>,
    /// Sampling temperature (0 to 2, Anthropic 0 to 1; default 0).
    pub temperature: Option<f32>,
    /// Longest answer in tokens (default: the server's; Anthropic 1024).
    pub max_tokens: Option<u32>,
    /// Whether JSON requests ask for `response_format: json_object` (OpenAI API only;
    /// default true).
    pub json_mode: Option<bool>,
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_retries", &self.max_retries)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("json_mode", &self.json_mode)
            .finish()
    }
}

impl LlmConfig {
    /// A configuration of `provider` with everything else left to defaults.
    pub fn new(provider: impl Into<String>) -> Self {
        LlmConfig {
            provider: provider.into(),
            ..LlmConfig::default()
        }
    }

    /// Checks the configuration, fills the gaps from the process environment, and builds
    /// the client. Makes no network call.
    ///
    /// # Errors
    /// [`crate::ErrorCode::InvalidInput`] naming the field (`llm.api_key`, `llm.base_url`…)
    /// when the configuration cannot work.
    pub fn build(&self) -> Result<Arc<dyn Llm>> {
        self.build_with_env(&|name| std::env::var(name).ok())
    }

    /// [`Self::build`] with the environment read through `env` (for tests and hosts that
    /// keep their own settings).
    pub fn build_with_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn Llm>> {
        let target = resolve(
            "llm",
            Purpose::Chat,
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
        let max_temperature = if target.provider == Provider::Anthropic {
            1.0
        } else {
            2.0
        };
        let temperature = self.temperature.unwrap_or(0.0);
        if !(0.0..=max_temperature).contains(&temperature) {
            return Err(Error::invalid(format!(
                "llm.temperature must be between 0 and {max_temperature} for {} (got \
                 {temperature})",
                target.provider
            )));
        }
        if self.max_tokens == Some(0) {
            return Err(Error::invalid("llm.max_tokens must be at least 1"));
        }
        let timeout = target.options.timeout;
        let retries = target.options.max_retries;
        if target.provider == Provider::Anthropic {
            let mut chat = AnthropicChat::new(&target.base_url, &target.model)
                .timeout(timeout)
                .max_retries(retries)
                .temperature(temperature);
            if let Some(key) = target.api_key {
                chat = chat.api_key(key);
            }
            if let Some(max_tokens) = self.max_tokens {
                chat = chat.max_tokens(max_tokens);
            }
            return Ok(Arc::new(chat));
        }
        let mut chat = OpenAiChat::new(&target.base_url, &target.model)
            .provider(target.provider.as_str())
            .timeout(timeout)
            .max_retries(retries)
            .temperature(temperature)
            .json_mode(self.json_mode.unwrap_or(true));
        if let Some(key) = target.api_key {
            chat = chat.api_key(key);
        }
        if let Some(max_tokens) = self.max_tokens {
            chat = chat.max_tokens(max_tokens);
        }
        Ok(Arc::new(chat))
    }
}
