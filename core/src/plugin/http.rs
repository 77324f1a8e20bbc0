//! A plugin's HTTP requests (the network capability): extism's `http_request` and
//! `http_status_code` (import module `extism:host/env`) replaced by ours.
//!
//! extism's `http_request` checks the first URL against `allowed_hosts` and then lets its HTTP
//! client follow up to ten redirects to any host, so a plugin allowed one host could reach any
//! other (`localhost`, a cloud metadata address) through a redirect. This one follows each
//! redirect itself and only to an allowed host; a redirect elsewhere fails the call. The
//! status code is kept for the call (extism's `http_status_code` reads a field only its own
//! request sets). Everything else behaves as extism's: method, headers, body, the call's
//! remaining time as the timeout, the response size limit.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::Duration;

use extism::{CurrentPlugin, Function, UserData, Val, ValType, PTR};
use serde::Deserialize;
use url::Url;

use super::host::context;
use super::Capability;

/// The import module of extism's own functions, which ours replace (the linker lets a
/// plugin's functions shadow extism's).
const EXTISM_ENV: &str = "extism:host/env";
/// Redirects followed, as extism's client did.
const MAX_REDIRECTS: usize = 10;
/// extism's response size limit when the manifest sets none.
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 50 << 20;

/// The request a guest passes (extism's `HttpRequest`).
#[derive(Deserialize)]
struct HttpRequest {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    method: Option<String>,
}

/// `http_request` and `http_status_code`, in extism's import module.
pub(crate) fn functions() -> Vec<Function> {
    vec![
        Function::new(
            "http_request",
            [PTR, PTR],
            [PTR],
            UserData::new(()),
            http_request,
        )
        .with_namespace(EXTISM_ENV),
        Function::new(
            "http_status_code",
            [],
            [ValType::I32],
            UserData::new(()),
            http_status_code,
        )
        .with_namespace(EXTISM_ENV),
    ]
}

fn fail(message: impl Into<String>) -> extism::Error {
    extism::Error::msg(message.into())
}

/// True when `url`'s host is one of the plugin's allowed hosts (patterns as extism reads them:
/// globs, or plain names).
fn allowed(url: &Url, hosts: &[String]) -> bool {
    let host = url.host_str().unwrap_or_default();
    hosts
        .iter()
        .any(|pattern| match glob::Pattern::new(pattern) {
            Ok(p) => p.matches(host),
            Err(_) => pattern == host,
        })
}

fn http_request(
    plugin: &mut CurrentPlugin,
    inputs: &[Val],
    outputs: &mut [Val],
    _: UserData<()>,
) -> Result<(), extism::Error> {
    let ctx = context()?;
    ctx.http_status.store(0, Ordering::Relaxed);
    let handle = plugin
        .memory_from_val(&inputs[0])
        .ok_or_else(|| fail("http_request: invalid request handle"))?;
    let request: HttpRequest = serde_json::from_slice(plugin.memory_bytes(handle)?)?;
    plugin.memory_free(handle)?;
    let mut body = match inputs[1].i64().unwrap_or(0) {
        0 => None,
        _ => {
            let handle = plugin
                .memory_from_val(&inputs[1])
                .ok_or_else(|| fail("http_request: invalid body handle"))?;
            let bytes = plugin.memory_bytes(handle)?.to_vec();
            plugin.memory_free(handle)?;
            Some(bytes)
        }
    };
    // Without the capability extism had no allowed hosts either: every request is refused.
    let hosts: &[String] = if ctx.plugin.manifest.grants(Capability::Network) {
        &ctx.plugin.manifest.allowed_hosts
    } else {
        &[]
    };
    let mut url = Url::parse(&request.url).map_err(|e| fail(format!("Invalid URL: {e:?}")))?;
    if !allowed(&url, hosts) {
        return Err(fail(format!(
            "HTTP request to {} is not allowed",
            request.url
        )));
    }
    let mut method = request
        .method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let mut headers = request.headers;
    let mut hops = 0;
    let response = loop {
        let response = send(plugin, &method, &url, &headers, body.as_deref())?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok());
        let (Some(location), 301 | 302 | 303 | 307 | 308) = (location, status) else {
            break response;
        };
        hops += 1;
        if hops > MAX_REDIRECTS {
            return Err(fail(format!(
                "HTTP request to {} was redirected more than {MAX_REDIRECTS} times",
                request.url
            )));
        }
        let next = url
            .join(location)
            .map_err(|e| fail(format!("HTTP redirect from {url} to an invalid URL: {e}")))?;
        if !allowed(&next, hosts) {
            return Err(fail(format!(
                "HTTP redirect from {url} to {next} is not allowed (its host is not among \
                 allowed_hosts)"
            )));
        }
        // What browsers and extism's client do: 303 (and 301/302 after a POST) become a GET
        // without a body; credentials never go to another host.
        if status == 303 || (matches!(status, 301 | 302) && method == "POST") {
            method = "GET".into();
            body = None;
        }
        if next.host_str() != url.host_str() {
            headers.retain(|k, _| {
                !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("cookie")
            });
        }
        url = next;
    };
    ctx.http_status
        .store(response.status().as_u16(), Ordering::Relaxed);
    let max = plugin
        .manifest()
        .memory
        .max_http_response_bytes
        .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
    let mut buf = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(max + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(fail(format!(
            "HTTP response exceeds the configured maximum number of bytes: {max}"
        )));
    }
    let memory = plugin.memory_new(&buf)?;
    outputs[0] = plugin.memory_to_val(memory);
    Ok(())
}

/// One request, redirects not followed, within the call's remaining time.
fn send(
    plugin: &CurrentPlugin,
    method: &str,
    url: &Url,
    headers: &BTreeMap<String, String>,
    body: Option<&[u8]>,
) -> Result<ureq::http::Response<ureq::Body>, extism::Error> {
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(url.as_str());
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let timeout: Option<Duration> = plugin.time_remaining();
    let agent = ureq::agent();
    let result = match body {
        Some(bytes) => {
            let request = agent
                .configure_request(builder.body(bytes)?)
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(timeout)
                .build();
            agent.run(request)
        }
        None => {
            let request = agent
                .configure_request(builder.body(())?)
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(timeout)
                .build();
            agent.run(request)
        }
    };
    result.map_err(|e| {
        // The call's time ran out: the same error as any other interrupted call.
        if matches!(e, ureq::Error::Timeout(_))
            && plugin.time_remaining().is_some_and(|d| d.is_zero())
        {
            return fail("timeout");
        }
        fail(e.to_string())
    })
}

fn http_status_code(
    _: &mut CurrentPlugin,
    _: &[Val],
    outputs: &mut [Val],
    _: UserData<()>,
) -> Result<(), extism::Error> {
    let status = context()?.http_status.load(Ordering::Relaxed);
    outputs[0] = Val::I32(i32::from(status));
    Ok(())
}
