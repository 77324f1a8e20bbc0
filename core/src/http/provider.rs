//! The model providers shared by the chat clients ([`crate::llm`]) and the remote embedder
//! ([`crate::embed::RemoteEmbedderConfig`]): the [`Provider`] table (names, key and base URL
//! variables, defaults) and the resolution of an endpoint's settings against it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{display_url, HttpOptions};
use crate::error::{Error, Result};

/// Anthropic's API (its own protocol; the others' defaults are in the table below).
pub(crate) const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// A model provider. All but [`Provider::Anthropic`] speak the OpenAI API.
///
/// | provider | name | key variable | base URL variable | default base URL | default chat model |
/// | --- | --- | --- | --- | --- | --- |
/// | OpenAI | `openai` | `OPENAI_API_KEY` | `OPENAI_BASE_URL` | `https://api.openai.com/v1` | `gpt-4.1-nano` |
/// | Anthropic | `anthropic` | `ANTHROPIC_API_KEY` | `ANTHROPIC_BASE_URL` | `https://api.anthropic.com` | `claude-haiku-4-5` |
/// | DeepSeek | `deepseek` | `DEEPSEEK_API_KEY` | `DEEPSEEK_BASE_URL` | `https://api.deepseek.com/v1` | `deepseek-chat` |
/// | Zhipu (GLM) | `zhipu`, `zhipuai`, `glm` | `ZHIPUAI_API_KEY` | `ZHIPUAI_BASE_URL` | `https://open.bigmodel.cn/api/paas/v4` | `glm-4-flash` |
/// | Moonshot (Kimi) | `moonshot` | `MOONSHOT_API_KEY` | `MOONSHOT_BASE_URL` | `https://api.moonshot.cn/v1` | `moonshot-v1-8k` |
/// | Ollama | `ollama` | none | `OLLAMA_HOST` | `http://localhost:11434/v1` | required |
/// | any OpenAI-compatible server | `openai_compatible`, `vllm`, `lmstudio`, `llamacpp`, `litellm` | `AGENTMEM_LLM_API_KEY` (optional) | `AGENTMEM_LLM_BASE_URL` | required | required |
///
/// For embeddings ([`crate::embed::RemoteEmbedderConfig`]) an OpenAI-compatible server
/// reads `AGENTMEM_EMBEDDER_API_KEY` and `AGENTMEM_EMBEDDER_BASE_URL` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// OpenAI.
    OpenAi,
    /// Anthropic (the Messages API).
    Anthropic,
    /// DeepSeek.
    DeepSeek,
    /// Zhipu AI (GLM models, BigModel platform).
    Zhipu,
    /// Moonshot AI (Kimi).
    Moonshot,
    /// A local Ollama server (its OpenAI-compatible `/v1` API).
    Ollama,
    /// Any server with the OpenAI API: vLLM, LM Studio, llama.cpp server, LiteLLM…
    OpenAiCompatible,
}

/// What a configuration is for: the variables of a generic server differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Chat,
    Embeddings,
}

impl Provider {
    /// Every provider, in the order of the table above.
    pub const ALL: [Provider; 7] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::DeepSeek,
        Provider::Zhipu,
        Provider::Moonshot,
        Provider::Ollama,
        Provider::OpenAiCompatible,
    ];

    /// The canonical name (`"openai"`, `"openai_compatible"`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::DeepSeek => "deepseek",
            Provider::Zhipu => "zhipu",
            Provider::Moonshot => "moonshot",
            Provider::Ollama => "ollama",
            Provider::OpenAiCompatible => "openai_compatible",
        }
    }

    /// The environment variable holding the API key of a chat model, if the provider reads
    /// one.
    pub fn api_key_env(self) -> Option<&'static str> {
        self.key_env(Purpose::Chat)
    }

    /// The environment variable holding the base URL of a chat model.
    pub fn base_url_env(self) -> &'static str {
        self.url_env(Purpose::Chat)
    }

    /// The base URL used when neither the options nor the environment give one.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("https://api.openai.com/v1"),
            Provider::Anthropic => Some(ANTHROPIC_BASE_URL),
            Provider::DeepSeek => Some("https://api.deepseek.com/v1"),
            Provider::Zhipu => Some("https://open.bigmodel.cn/api/paas/v4"),
            Provider::Moonshot => Some("https://api.moonshot.cn/v1"),
            Provider::Ollama => Some("http://localhost:11434/v1"),
            Provider::OpenAiCompatible => None,
        }
    }

    /// The chat model used when none is configured.
    pub fn default_chat_model(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("gpt-4.1-nano"),
            Provider::Anthropic => Some("claude-haiku-4-5"),
            Provider::DeepSeek => Some("deepseek-chat"),
            Provider::Zhipu => Some("glm-4-flash"),
            Provider::Moonshot => Some("moonshot-v1-8k"),
            Provider::Ollama | Provider::OpenAiCompatible => None,
        }
    }

    /// The embedding model used when none is configured.
    pub fn default_embedding_model(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("text-embedding-3-small"),
            Provider::Zhipu => Some("embedding-3"),
            _ => None,
        }
    }

    /// Whether the provider offers an embeddings API (Anthropic and DeepSeek do not).
    pub fn has_embeddings(self) -> bool {
        !matches!(self, Provider::Anthropic | Provider::DeepSeek)
    }

    /// Whether a call without an API key is refused before it is made (hosted services).
    pub fn requires_api_key(self) -> bool {
        !matches!(self, Provider::Ollama | Provider::OpenAiCompatible)
    }

    pub(crate) fn key_env(self, purpose: Purpose) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("OPENAI_API_KEY"),
            Provider::Anthropic => Some("ANTHROPIC_API_KEY"),
            Provider::DeepSeek => Some("DEEPSEEK_API_KEY"),
            Provider::Zhipu => Some("ZHIPUAI_API_KEY"),
            Provider::Moonshot => Some("MOONSHOT_API_KEY"),
            Provider::Ollama => None,
            Provider::OpenAiCompatible => Some(match purpose {
                Purpose::Chat => "AGENTMEM_LLM_API_KEY",
                Purpose::Embeddings => "AGENTMEM_EMBEDDER_API_KEY",
            }),
        }
    }

    pub(crate) fn url_env(self, purpose: Purpose) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI_BASE_URL",
            Provider::Anthropic => "ANTHROPIC_BASE_URL",
            Provider::DeepSeek => "DEEPSEEK_BASE_URL",
            Provider::Zhipu => "ZHIPUAI_BASE_URL",
            Provider::Moonshot => "MOONSHOT_BASE_URL",
            Provider::Ollama => "OLLAMA_HOST",
            Provider::OpenAiCompatible => match purpose {
                Purpose::Chat => "AGENTMEM_LLM_BASE_URL",
                Purpose::Embeddings => "AGENTMEM_EMBEDDER_BASE_URL",
            },
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = Error;

    /// Parses a provider name or alias, ignoring case (`"OpenAI"`, `"glm"`, `"vllm"`,
    /// `"openai-compatible"`).
    fn from_str(name: &str) -> Result<Self> {
        let normal = name.trim().to_ascii_lowercase().replace('-', "_");
        Ok(match normal.as_str() {
            "openai" => Provider::OpenAi,
            "anthropic" => Provider::Anthropic,
            "deepseek" => Provider::DeepSeek,
            "zhipu" | "zhipuai" | "glm" => Provider::Zhipu,
            "moonshot" => Provider::Moonshot,
            "ollama" => Provider::Ollama,
            "openai_compatible" | "vllm" | "lmstudio" | "llamacpp" | "litellm" => {
                Provider::OpenAiCompatible
            }
            _ => {
                return Err(Error::invalid(format!(
                    "provider {name:?} is not known; use one of: openai, anthropic, deepseek, \
                     zhipu, moonshot, ollama, openai_compatible (aliases: zhipuai, glm, vllm, \
                     lmstudio, llamacpp, litellm)"
                )))
            }
        })
    }
}

/// The options shared by chat and embedding configurations.
pub(crate) struct Endpoint<'a> {
    pub provider: &'a str,
    pub model: Option<&'a str>,
    pub api_key: Option<&'a str>,
    pub base_url: Option<&'a str>,
    pub timeout_ms: Option<u64>,
    pub max_retries: Option<u32>,
}

/// A checked endpoint with every gap filled.
pub(crate) struct Target {
    pub provider: Provider,
    pub model: String,
    pub api_key: Option<String>,
    pub base_url: String,
    pub options: HttpOptions,
}

/// The longest timeout accepted: ten minutes.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// The most retries accepted.
const MAX_RETRIES: u32 = 10;

/// Checks `endpoint` and fills its gaps from `env` and the provider table. Errors name the
/// fields as `{section}.{field}`.
pub(crate) fn resolve(
    section: &str,
    purpose: Purpose,
    endpoint: &Endpoint<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target> {
    let provider: Provider = endpoint
        .provider
        .parse()
        .map_err(|e: Error| Error::invalid(format!("{section}.{}", e.message())))?;
    if purpose == Purpose::Embeddings && !provider.has_embeddings() {
        return Err(Error::invalid(format!(
            "{section}.provider {provider} has no embeddings API; use openai, zhipu, \
             ollama or openai_compatible"
        )));
    }
    // An empty string in a file or the environment means "not set".
    let given = |value: Option<&str>| {
        value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let from_env = |name: &str| given(env(name).as_deref());

    let default_model = match purpose {
        Purpose::Chat => provider.default_chat_model(),
        Purpose::Embeddings => provider.default_embedding_model(),
    };
    let model = match endpoint.model {
        Some(model) if model.trim().is_empty() => {
            return Err(Error::invalid(format!("{section}.model must not be empty")))
        }
        Some(model) => model.trim().to_string(),
        None => default_model.map(str::to_string).ok_or_else(|| {
            Error::invalid(format!(
                "{section}.model is required for provider {provider}"
            ))
        })?,
    };

    let key_env = provider.key_env(purpose);
    let api_key = given(endpoint.api_key).or_else(|| key_env.and_then(from_env));
    match (&api_key, key_env) {
        (None, Some(var)) if provider.requires_api_key() => {
            return Err(Error::invalid(format!(
                "{section}.api_key is not set and neither is {var}"
            )))
        }
        (Some(key), _) if !key.bytes().all(|b| b.is_ascii_graphic()) => {
            // Never echo the key: it may be a real one with a stray character.
            return Err(Error::invalid(format!(
                "{section}.api_key contains characters that cannot be sent in an HTTP header"
            )));
        }
        _ => {}
    }

    let url_env = provider.url_env(purpose);
    let base_url = match given(endpoint.base_url) {
        // Ollama's own clients take `http://host:11434`; its OpenAI API is under `/v1`.
        Some(url) if provider == Provider::Ollama => {
            ollama_base(&url, &format!("{section}.base_url"))?
        }
        Some(url) => check_url(&url, &format!("{section}.base_url"))?,
        None => match from_env(url_env) {
            Some(url) if provider == Provider::Ollama => ollama_base(&url, url_env)?,
            Some(url) => check_url(&url, url_env)?,
            None => provider
                .default_base_url()
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "{section}.base_url is required for provider {provider} (or set \
                         {url_env})"
                    ))
                })?,
        },
    };

    let defaults = HttpOptions::default();
    let timeout = match endpoint.timeout_ms {
        None => defaults.timeout,
        Some(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(Error::invalid(format!(
                "{section}.timeout_ms must be between 1 and {MAX_TIMEOUT_MS} (got {ms})"
            )))
        }
    };
    let max_retries = match endpoint.max_retries {
        None => defaults.max_retries,
        Some(n) if n <= MAX_RETRIES => n,
        Some(n) => {
            return Err(Error::invalid(format!(
                "{section}.max_retries must be at most {MAX_RETRIES} (got {n})"
            )))
        }
    };
    Ok(Target {
        provider,
        model,
        api_key,
        base_url,
        options: HttpOptions {
            timeout,
            max_retries,
            ..defaults
        },
    })
}

/// `url` without trailing slashes, if it is an http(s) URL with a host.
fn check_url(url: &str, field: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(' ') => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(Error::invalid(format!(
            "{field} must be an http:// or https:// URL (got {:?})",
            display_url(url)
        ))),
    }
}

/// The OpenAI-compatible base of an `OLLAMA_HOST` value, which Ollama lets be a bare host
/// (`0.0.0.0`, `127.0.0.1:11434`) or a URL; `/v1` is added when it has no path.
fn ollama_base(host: &str, field: &str) -> Result<String> {
    let url = if host.contains("://") {
        host.to_string()
    } else {
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        if has_port {
            format!("http://{host}")
        } else {
            format!("http://{}:11434", host.trim_end_matches('/'))
        }
    };
    let url = check_url(&url, field)?;
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    Ok(if after_scheme.contains('/') {
        url
    } else {
        format!("{url}/v1")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_ollama_base_url_gets_the_openai_path() {
        let target = |base_url| {
            resolve(
                "llm",
                Purpose::Chat,
                &Endpoint {
                    provider: "ollama",
                    model: Some("qwen2.5"),
                    api_key: None,
                    base_url: Some(base_url),
                    timeout_ms: None,
                    max_retries: None,
                },
                &|_| None,
            )
            .unwrap()
            .base_url
        };
        assert_eq!(target("http://gpu-box:11434"), "http://gpu-box:11434/v1");
        assert_eq!(target("gpu-box"), "http://gpu-box:11434/v1");
        assert_eq!(target("http://proxy/ollama/v1"), "http://proxy/ollama/v1");
    }

    #[test]
    fn ollama_hosts_become_base_urls() {
        let base = |h| ollama_base(h, "OLLAMA_HOST").unwrap();
        assert_eq!(base("0.0.0.0"), "http://0.0.0.0:11434/v1");
        assert_eq!(base("127.0.0.1:8080"), "http://127.0.0.1:8080/v1");
        assert_eq!(base("http://gpu-box:11434/"), "http://gpu-box:11434/v1");
        assert_eq!(base("https://proxy/ollama/v1"), "https://proxy/ollama/v1");
    }

    #[test]
    fn urls_must_be_http() {
        assert!(check_url("ftp://x", "f").is_err());
        assert!(check_url("http://", "f").is_err());
        assert!(check_url("localhost:8000", "f").is_err());
        assert_eq!(check_url("https://x/v1/", "f").unwrap(), "https://x/v1");
    }

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(provider.as_str().parse::<Provider>().unwrap(), provider);
        }
        assert_eq!("GLM".parse::<Provider>().unwrap(), Provider::Zhipu);
        assert_eq!(
            "openai-compatible".parse::<Provider>().unwrap(),
            Provider::OpenAiCompatible
        );
    }
}
