//! A small blocking JSON-over-HTTP client shared by the chat clients and the remote embedder,
//! and the table of model providers both configure from ([`provider`]).
//!
//! Every call is bounded: each phase of an attempt (connecting, sending the request, waiting
//! for the answer, reading its body) may take at most the configured timeout, and a failed
//! attempt is retried at most
//! `max_retries` times, only when retrying can help:
//!
//! - HTTP 429, 500, 502, 503, 504 and 529 (Anthropic's "overloaded"), and connections that
//!   were refused, reset or closed before an answer;
//! - never a timeout: a timed-out attempt fails at once, so that the timeout the user
//!   configured bounds the call (retrying a slow model would multiply the wait);
//! - never another 4xx: a refused key or a bad request does not get better by asking again.
//!
//! Between attempts it waits `500 ms × 2^n` (capped at 8 s, with a little jitter so that
//! threads hitting a rate limit together do not come back together), or what the server's
//! `Retry-After` (seconds or an HTTP date) or `retry-after-ms` header asks, capped at 60 s.
//!
//! Errors name the provider, the HTTP status and the provider's own message; the API key is
//! never part of an error or of `Debug` output (and is cut out of an error body that echoes
//! it).

pub(crate) mod provider;
pub(crate) mod stream;

pub(crate) use stream::Streamed;

use std::fmt;
use std::io;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};

/// Statuses worth another attempt.
const RETRY_STATUSES: [u16; 6] = [429, 500, 502, 503, 504, 529];

/// The largest response body read (embedding batches of large vectors are the big ones).
const MAX_BODY_BYTES: u64 = 128 << 20;

/// How much of a body that cannot be understood goes into an error message.
const BODY_EXCERPT_CHARS: usize = 300;

/// How much of a provider's message goes into an error message.
const MESSAGE_CHARS: usize = 1000;

/// Timing and retry settings of an [`HttpClient`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HttpOptions {
    /// The longest wait for each phase of an attempt: connecting, sending, the answer, its body.
    pub timeout: Duration,
    /// How many times a failed attempt is tried again (so at most `max_retries + 1`
    /// requests).
    pub max_retries: u32,
    /// The first wait between attempts; doubled after each.
    pub backoff_base: Duration,
    /// The longest computed wait between attempts.
    pub backoff_cap: Duration,
    /// The longest wait a server's `Retry-After` may impose.
    pub retry_after_cap: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(60),
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(8),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

/// A secret (an API key) whose `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a key.
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The key itself, for a request header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A blocking client that POSTs JSON and returns the JSON answer, with timeouts and retries.
#[derive(Clone)]
pub(crate) struct HttpClient {
    provider: String,
    code: ErrorCode,
    options: HttpOptions,
    agent: ureq::Agent,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("provider", &self.provider)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed, and whether another may succeed.
struct Failure {
    message: String,
    retry: bool,
    /// The wait the server asked for, if it did.
    retry_after: Option<Duration>,
    source: Option<ureq::Error>,
}

impl HttpClient {
    /// A client whose errors name `provider` and carry `code`.
    pub(crate) fn new(provider: impl Into<String>, code: ErrorCode, options: HttpOptions) -> Self {
        HttpClient {
            provider: provider.into(),
            code,
            agent: build_agent(&options),
            options,
        }
    }

    /// The provider named in errors.
    pub(crate) fn provider(&self) -> &str {
        &self.provider
    }

    /// The same client with other settings.
    fn with_options(mut self, options: HttpOptions) -> Self {
        if options.timeout != self.options.timeout {
            self.agent = build_agent(&options);
        }
        self.options = options;
        self
    }

    /// The same client with another timeout per phase of an attempt.
    pub(crate) fn with_timeout(self, timeout: Duration) -> Self {
        let options = HttpOptions {
            timeout,
            ..self.options
        };
        self.with_options(options)
    }

    /// The same client with another number of retries.
    pub(crate) fn with_max_retries(self, max_retries: u32) -> Self {
        let options = HttpOptions {
            max_retries,
            ..self.options
        };
        self.with_options(options)
    }

    /// The same client with another first wait between attempts.
    pub(crate) fn with_backoff(self, backoff_base: Duration) -> Self {
        let options = HttpOptions {
            backoff_base,
            ..self.options
        };
        self.with_options(options)
    }

    /// The same client naming another provider in its errors.
    pub(crate) fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// An error of this client's code, naming its provider.
    pub(crate) fn error(&self, message: impl fmt::Display) -> Error {
        Error::new(self.code, format!("{}: {message}", self.provider))
    }

    /// POSTs `body` as JSON to `url` with `headers` (`content-type` is added) and returns
    /// the parsed JSON answer of a 2xx response. `secret`, when given, is cut out of any
    /// error message.
    pub(crate) fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        secret: Option<&Secret>,
        body: &Value,
    ) -> Result<Value> {
        let payload = self.encode(body)?;
        self.with_retries(secret, || {
            let response = self.send(url, headers, &payload, "application/json")?;
            self.read_json(url, response)
        })
    }

    /// Like [`Self::post_json`], for an answer that may come as server-sent events: a 2xx
    /// `text/event-stream` answer is returned as a reader of its events, any other 2xx
    /// answer (a server that ignored `stream: true`) as its parsed JSON. Failures before the
    /// answer starts are retried like [`Self::post_json`]'s; the stream itself is not.
    pub(crate) fn post_stream(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        secret: Option<&Secret>,
        body: &Value,
    ) -> Result<Streamed> {
        let payload = self.encode(body)?;
        self.with_retries(secret, || {
            let response = self.send(url, headers, &payload, "text/event-stream")?;
            let is_stream = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
            if is_stream {
                let reader = response
                    .into_body()
                    .into_with_config()
                    .limit(MAX_BODY_BYTES)
                    .reader();
                Ok(Streamed::Events(stream::Events::new(
                    Box::new(reader),
                    self.clone(),
                )))
            } else {
                self.read_json(url, response).map(Streamed::Json)
            }
        })
    }

    fn encode(&self, body: &Value) -> Result<String> {
        serde_json::to_string(body)
            .map_err(|e| self.error(format!("cannot encode the request: {e}")))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent.
    fn with_retries<T>(
        &self,
        secret: Option<&Secret>,
        mut attempt: impl FnMut() -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        let mut tries: u32 = 0;
        loop {
            let failure = match attempt() {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let exhausted = tries >= self.options.max_retries;
            if !failure.retry || exhausted {
                let message = if failure.retry && tries > 0 {
                    format!("gave up after {} attempts: {}", tries + 1, failure.message)
                } else {
                    failure.message
                };
                let message = redact(&message, secret);
                let mut error = self.error(message);
                if let Some(source) = failure.source {
                    // ureq's messages hold no header, so no key can leak through the cause.
                    error = error.with_source(source);
                }
                return Err(error);
            }
            let wait = failure
                .retry_after
                .map(|d| d.min(self.options.retry_after_cap))
                .unwrap_or_else(|| self.backoff(tries));
            std::thread::sleep(wait);
            tries += 1;
        }
    }

    /// The wait before retry number `attempt + 1`: exponential, capped, minus up to 25 %
    /// jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        let wait = self
            .options
            .backoff_base
            .saturating_mul(factor)
            .min(self.options.backoff_cap);
        let jitter = f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0 * 0.25;
        wait.mul_f64(1.0 - jitter)
    }

    /// Sends one request; a 2xx answer is returned unread, any other status is a failure
    /// carrying the provider's reason.
    fn send(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        payload: &str,
        accept: &str,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, Failure> {
        let mut request = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .header("accept", accept);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send(payload)
            .map_err(|e| self.transport_failure(url, e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = self.read_text(url, response)?;
        let mut message = format!("HTTP {status}{}", describe_error_body(&text));
        if let (true, Some(location)) = ((300..400).contains(&status), location) {
            // Redirects are not followed: a POST turned into a GET would lose its body.
            message.push_str(&format!(
                " (redirected to {}; set the base URL to the final address)",
                display_url(&location)
            ));
        }
        Err(Failure {
            message,
            retry: RETRY_STATUSES.contains(&status),
            retry_after,
            source: None,
        })
    }

    fn read_text(
        &self,
        url: &str,
        response: ureq::http::Response<ureq::Body>,
    ) -> std::result::Result<String, Failure> {
        response
            .into_body()
            .into_with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|e| self.transport_failure(url, e))
    }

    /// The JSON of a 2xx answer.
    fn read_json(
        &self,
        url: &str,
        response: ureq::http::Response<ureq::Body>,
    ) -> std::result::Result<Value, Failure> {
        let status = response.status().as_u16();
        let text = self.read_text(url, response)?;
        serde_json::from_str(&text).map_err(|e| Failure {
            message: format!(
                "HTTP {status} with an answer that is not JSON ({e}): {}",
                excerpt(&text, BODY_EXCERPT_CHARS)
            ),
            retry: false,
            retry_after: None,
            source: None,
        })
    }

    fn transport_failure(&self, url: &str, error: ureq::Error) -> Failure {
        let url = display_url(url);
        let (message, retry) = match &error {
            ureq::Error::Timeout(_) => (
                format!(
                    "timed out after {:.1} s (POST {url})",
                    self.options.timeout.as_secs_f64()
                ),
                false,
            ),
            ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => (
                format!(
                    "timed out after {:.1} s (POST {url})",
                    self.options.timeout.as_secs_f64()
                ),
                false,
            ),
            ureq::Error::ConnectionFailed => (format!("cannot connect to {url}"), true),
            ureq::Error::Io(e) if retryable_io(e.kind()) => {
                (format!("connection to {url} failed: {e}"), true)
            }
            ureq::Error::HostNotFound => (format!("host not found: {url}"), false),
            ureq::Error::BodyExceedsLimit(limit) => (
                format!("the answer from {url} is larger than {limit} bytes"),
                false,
            ),
            other => (format!("request to {url} failed: {other}"), false),
        };
        Failure {
            message,
            retry,
            retry_after: None,
            source: Some(error),
        }
    }
}

fn build_agent(options: &HttpOptions) -> ureq::Agent {
    let timeout = Some(options.timeout);
    // Each phase has the timeout rather than one global budget: with a global budget ureq
    // resolves the host on a new thread for every request (to be able to abandon it), which
    // costs milliseconds per call on a busy machine. The wait for the model's answer, the
    // phase that matters, is bounded the same either way.
    ureq::Agent::config_builder()
        .timeout_connect(timeout)
        .timeout_send_request(timeout)
        .timeout_send_body(timeout)
        .timeout_recv_response(timeout)
        .timeout_recv_body(timeout)
        // Error statuses are read like any answer: their bodies carry the provider's reason.
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("agent_mem/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn retryable_io(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// The wait a response asks for: `retry-after-ms` (OpenAI), else `Retry-After` in seconds
/// or as an HTTP date.
fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64((ms / 1000.0).min(3600.0)));
        }
    }
    parse_retry_after(get("retry-after")?)
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date (a date in the past means
/// "now").
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// `": message"` or `" (type): message"` from an error body, whatever its shape.
fn describe_error_body(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return " (empty body)".to_string();
    }
    let Ok(json) = serde_json::from_str::<Value>(trimmed) else {
        return format!(": {}", excerpt(trimmed, BODY_EXCERPT_CHARS));
    };
    let (kind, message) = error_parts(&json);
    match (kind, message) {
        (Some(kind), Some(message)) => format!(
            " ({}): {}",
            excerpt(&kind, 100),
            excerpt(&message, MESSAGE_CHARS)
        ),
        (None, Some(message)) => format!(": {}", excerpt(&message, MESSAGE_CHARS)),
        (Some(kind), None) => format!(" ({})", excerpt(&kind, 100)),
        (None, None) => format!(": {}", excerpt(trimmed, BODY_EXCERPT_CHARS)),
    }
}

/// The error type and message of the shapes providers use: `{"error": {"message", "type"}}`
/// (OpenAI, Anthropic, and `code` instead of `type` for Zhipu), `{"error": "text"}` (Ollama),
/// `{"message": ...}`, `{"detail": ...}` (FastAPI servers such as vLLM).
fn error_parts(json: &Value) -> (Option<String>, Option<String>) {
    fn text(value: Option<&Value>) -> Option<String> {
        match value? {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
    match json.get("error") {
        Some(Value::Object(error)) => {
            let kind = text(error.get("type")).or_else(|| text(error.get("code")));
            (kind, text(error.get("message")))
        }
        Some(other @ Value::String(_)) => (None, text(Some(other))),
        _ => {
            let message = text(json.get("message")).or_else(|| text(json.get("detail")));
            let kind = json
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| *t != "error")
                .map(str::to_string);
            (kind, message)
        }
    }
}

/// At most `max` characters of `text`, on one line, marked when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    // Error bodies are often HTML pages from a proxy: one line reads better in a log.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// `text` with every occurrence of the secret replaced.
fn redact(text: &str, secret: Option<&Secret>) -> String {
    match secret {
        // A very short "key" would blank out ordinary words; real keys are long.
        Some(secret) if secret.expose().len() >= 4 => text.replace(secret.expose(), "[redacted]"),
        _ => text.to_string(),
    }
}

/// A URL fit for an error message: without user info or query (either could hold a
/// credential).
pub(crate) fn display_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// `base` and `path` joined by exactly one slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_urls_with_one_slash() {
        assert_eq!(join_url("http://h/v1/", "/chat"), "http://h/v1/chat");
        assert_eq!(join_url("http://h/v1", "chat"), "http://h/v1/chat");
    }

    #[test]
    fn hides_credentials_in_urls() {
        assert_eq!(
            display_url("https://user:pw@host:1/v1/x?key=abc"),
            "https://host:1/v1/x"
        );
        assert_eq!(display_url("http://host"), "http://host");
    }

    #[test]
    fn parses_retry_after() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = parse_retry_after(&later).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
    }

    #[test]
    fn describes_every_error_shape() {
        assert_eq!(
            describe_error_body(
                r#"{"error":{"message":"Bad key","type":"invalid_request_error"}}"#
            ),
            " (invalid_request_error): Bad key"
        );
        assert_eq!(
            describe_error_body(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            " (overloaded_error): Overloaded"
        );
        assert_eq!(
            describe_error_body(r#"{"error":{"code":"1211","message":"模型不存在"}}"#),
            " (1211): 模型不存在"
        );
        assert_eq!(
            describe_error_body(r#"{"error":"model 'x' not found"}"#),
            ": model 'x' not found"
        );
        assert_eq!(describe_error_body(r#"{"message":"nope"}"#), ": nope");
        assert_eq!(
            describe_error_body(r#"{"detail":[{"loc":["body"]}]}"#),
            r#": [{"loc":["body"]}]"#
        );
        assert_eq!(describe_error_body(""), " (empty body)");
        let long = "x".repeat(1000);
        assert_eq!(
            describe_error_body(&long).chars().count(),
            2 + BODY_EXCERPT_CHARS + 1
        );
        assert_eq!(
            describe_error_body("<html>bad gateway</html>"),
            ": <html>bad gateway</html>"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let client = HttpClient::new("t", ErrorCode::Llm, HttpOptions::default());
        let first = client.backoff(0);
        assert!(first <= Duration::from_millis(500) && first >= Duration::from_millis(375));
        let third = client.backoff(2);
        assert!(third <= Duration::from_secs(2) && third >= Duration::from_millis(1500));
        assert!(client.backoff(30) <= Duration::from_secs(8));
    }

    #[test]
    fn secrets_are_redacted() {
        let secret = Secret::new("sk-secret-XYZ");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(
            redact("key sk-secret-XYZ is wrong", Some(&secret)),
            "key [redacted] is wrong"
        );
    }
}
