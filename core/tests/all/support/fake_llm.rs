//! A real HTTP/1.1 server on 127.0.0.1 that plays an LLM provider in tests: it records every
//! request and answers with scripted (FIFO) or computed replies.
//!
//! Std only. One thread accepts connections and one thread serves each connection; every
//! answer carries `Connection: close`, so each request arrives on its own connection.
//!
//! Answers can also be streamed as server-sent events, the way the providers stream
//! (`"stream": true`): [`Reply::openai_stream`], [`Reply::anthropic_stream`] and their
//! `_error` forms, delivered in pieces of any size ([`Reply::split`]), slowly
//! ([`Reply::chunk_delay`]) or cut off part way ([`Reply::cut_after`]).
//!
//! Not every user calls every helper: include it as `mod support;` (whose `mod.rs` allows
//! dead code) or, from a bench, as `#[allow(dead_code)] #[path = "…/fake_llm.rs"] mod fake_llm;`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET`…
    pub method: String,
    /// The request target (`/v1/chat/completions`).
    pub path: String,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; a body that is not JSON is kept as a JSON string, an empty
    /// one is `null`.
    pub body: Value,
}

impl Recorded {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request asked for a streamed answer (`"stream": true` in its body).
    pub fn streamed(&self) -> bool {
        self.body["stream"] == Value::Bool(true)
    }
}

/// An answer to send.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (`Content-Type: application/json` is sent unless given here).
    pub headers: Vec<(String, String)>,
    /// The body, as sent.
    pub body: String,
    /// How long to wait before answering.
    pub delay: Duration,
    /// `Some` for a streamed reply: the body is written in these pieces, each one flushed on
    /// its own, without `Content-Length`, and the connection is closed after the last one.
    /// (`body` still holds the whole text, for the record.)
    pub pieces: Option<Vec<Vec<u8>>>,
    /// How long to wait between two pieces of a streamed reply.
    pub chunk_delay: Duration,
    /// For a streamed reply: close the connection after this many pieces, whatever remains.
    pub cut_after: Option<usize>,
}

impl Reply {
    /// A 200 `chat.completion` whose first choice says `content`.
    pub fn openai_chat(content: &str) -> Reply {
        Reply::json(
            200,
            json!({
                "id": "chatcmpl-fake123",
                "object": "chat.completion",
                "created": 1_700_000_000u64,
                "model": "gpt-4.1-nano-2025-04-14",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop",
                }],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
                "system_fingerprint": "fp_fake",
            }),
        )
    }

    /// A 200 Messages API answer of one text block.
    pub fn anthropic_message(text: &str) -> Reply {
        Reply::json(
            200,
            json!({
                "id": "msg_01FakeFakeFakeFake",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5-20251001",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": 20, "output_tokens": 5},
            }),
        )
    }

    /// A 200 embeddings answer with one entry per vector, indexed in order.
    pub fn openai_embeddings(vectors: &[Vec<f32>]) -> Reply {
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
            .collect();
        Reply::json(
            200,
            json!({
                "object": "list",
                "data": data,
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            }),
        )
    }

    /// An OpenAI error: `{"error": {"message", "type", "param": null, "code": null}}`.
    pub fn openai_error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        )
    }

    /// An Anthropic error: `{"type": "error", "error": {"type", "message"}}`.
    pub fn anthropic_error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"type": "error", "error": {"type": kind, "message": message}}),
        )
    }

    /// A 200 Chat Completions stream (`"stream": true`): a first chunk with the role, one
    /// `chat.completion.chunk` per text delta, a last one with `"finish_reason": "stop"`,
    /// then `data: [DONE]`. One piece per event.
    pub fn openai_stream(deltas: &[&str]) -> Reply {
        let mut events = openai_deltas(deltas);
        events.push(openai_event("{}", "\"stop\""));
        events.push("data: [DONE]\n\n".to_string());
        Reply::stream(events)
    }

    /// A Chat Completions stream that fails part way: the chunks of `deltas_before`, then an
    /// error event (`data: {"error": {"message", "type": "server_error", …}}`) and the end of
    /// the connection, without a finish reason or `[DONE]`.
    pub fn openai_stream_error(deltas_before: &[&str], message: &str) -> Reply {
        let mut events = openai_deltas(deltas_before);
        events.push(format!(
            r#"data: {{"error":{{"message":{},"type":"server_error","param":null,"code":null}}}}"#,
            json_string(message)
        ) + "\n\n");
        Reply::stream(events)
    }

    /// A 200 Messages stream (`"stream": true`): `message_start`, `content_block_start`,
    /// `ping`, one `content_block_delta` per text delta, `content_block_stop`,
    /// `message_delta` (`"stop_reason": "end_turn"`) and `message_stop`. One piece per event.
    pub fn anthropic_stream(deltas: &[&str]) -> Reply {
        let mut events = anthropic_deltas(deltas);
        events.push(sse(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ));
        events.push(sse(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}"#,
        ));
        events.push(sse("message_stop", r#"{"type":"message_stop"}"#));
        Reply::stream(events)
    }

    /// A Messages stream that fails part way: the events of `deltas_before`, then
    /// `event: error` (`{"type": "error", "error": {"type": "overloaded_error", "message"}}`)
    /// and the end of the connection, without `message_stop`.
    pub fn anthropic_stream_error(deltas_before: &[&str], message: &str) -> Reply {
        let mut events = anthropic_deltas(deltas_before);
        events.push(sse(
            "error",
            &format!(
                r#"{{"type":"error","error":{{"type":"overloaded_error","message":{}}}}}"#,
                json_string(message)
            ),
        ));
        Reply::stream(events)
    }

    /// What an OpenAI-compatible provider answers `request` with `text`: a stream of
    /// deltas of about four characters when the request asked for one
    /// ([`Recorded::streamed`]), a [`Reply::openai_chat`] otherwise.
    pub fn openai_answer(request: &Recorded, text: &str) -> Reply {
        if request.streamed() {
            let deltas = text_deltas(text);
            let deltas: Vec<&str> = deltas.iter().map(String::as_str).collect();
            Reply::openai_stream(&deltas)
        } else {
            Reply::openai_chat(text)
        }
    }

    /// What Anthropic answers `request` with `text`: a stream of deltas of about four
    /// characters when the request asked for one ([`Recorded::streamed`]), a
    /// [`Reply::anthropic_message`] otherwise.
    pub fn anthropic_answer(request: &Recorded, text: &str) -> Reply {
        if request.streamed() {
            let deltas = text_deltas(text);
            let deltas: Vec<&str> = deltas.iter().map(String::as_str).collect();
            Reply::anthropic_stream(&deltas)
        } else {
            Reply::anthropic_message(text)
        }
    }

    /// Any status and body, sent as they are.
    pub fn raw(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
            pieces: None,
            chunk_delay: Duration::ZERO,
            cut_after: None,
        }
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same reply, sent after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// The same reply written in pieces of `n_bytes` bytes (the last one may be shorter),
    /// each flushed on its own: the boundaries fall anywhere, in the middle of an event, of
    /// its JSON or of a UTF-8 character. A reply that was not streamed becomes one: its body
    /// is cut the same way, sent without `Content-Length` and ended by closing the connection.
    pub fn split(mut self, n_bytes: usize) -> Reply {
        assert!(n_bytes > 0, "split: pieces of at least one byte");
        let all = self.streamed_pieces().concat();
        self.pieces = Some(all.chunks(n_bytes).map(<[u8]>::to_vec).collect());
        self
    }

    /// The same reply with a wait of `delay` between two pieces (a slow stream); the wait
    /// ends early when the server is dropped. A reply that was not streamed becomes one (its
    /// body is one piece).
    pub fn chunk_delay(mut self, delay: Duration) -> Reply {
        self.streamed_pieces();
        self.chunk_delay = delay;
        self
    }

    /// The same reply, but the connection is closed after `n_pieces` pieces, whatever
    /// remains (a stream cut off part way: no `[DONE]`, no `message_stop`). A reply that was
    /// not streamed becomes one (its body is one piece).
    pub fn cut_after(mut self, n_pieces: usize) -> Reply {
        self.streamed_pieces();
        self.cut_after = Some(n_pieces);
        self
    }

    /// The pieces of the reply, made of the whole body if it was not streamed yet.
    fn streamed_pieces(&mut self) -> &mut Vec<Vec<u8>> {
        let body = &self.body;
        self.pieces
            .get_or_insert_with(|| vec![body.as_bytes().to_vec()])
    }

    fn json(status: u16, body: Value) -> Reply {
        Reply::raw(status, &body.to_string())
    }

    /// A 200 `text/event-stream` reply, one piece per event.
    fn stream(events: Vec<String>) -> Reply {
        let mut reply = Reply::raw(200, &events.concat())
            .with_header("Content-Type", "text/event-stream")
            .with_header("Cache-Control", "no-cache");
        reply.pieces = Some(events.into_iter().map(String::into_bytes).collect());
        reply
    }
}

/// `text` as a JSON string, quotes included.
fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

/// `text` in deltas of (up to) four characters.
fn text_deltas(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

/// One Chat Completions stream event: a `chat.completion.chunk` with this `delta` and
/// `finish_reason` (both JSON).
fn openai_event(delta: &str, finish_reason: &str) -> String {
    format!(
        r#"data: {{"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4.1-nano-2025-04-14","system_fingerprint":"fp_fake","choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish_reason}}}]}}"#
    ) + "\n\n"
}

/// The start of a Chat Completions stream: the role, then one chunk per delta.
fn openai_deltas(deltas: &[&str]) -> Vec<String> {
    let mut events = vec![openai_event(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    )];
    for delta in deltas {
        let delta = format!(r#"{{"content":{}}}"#, json_string(delta));
        events.push(openai_event(&delta, "null"));
    }
    events
}

/// One named server-sent event.
fn sse(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The start of a Messages stream: `message_start`, `content_block_start`, `ping`, then one
/// `content_block_delta` per delta.
fn anthropic_deltas(deltas: &[&str]) -> Vec<String> {
    let mut events = vec![
        sse(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_01FakeFakeFakeFake","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":1}}}"#,
        ),
        sse(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        sse("ping", r#"{"type":"ping"}"#),
    ];
    for delta in deltas {
        let data = format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
            json_string(delta)
        );
        events.push(sse("content_block_delta", &data));
    }
    events
}

type Handler = Box<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Shared {
    queue: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    handler: Option<Handler>,
    stop: AtomicBool,
}

/// A fake provider listening on `127.0.0.1:<random port>`; it stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeLlm {
    /// A server answering with the replies given to [`FakeLlm::push`], in order.
    pub fn start() -> FakeLlm {
        FakeLlm::spawn(None)
    }

    /// A server answering every request with `f(request)`.
    pub fn with_handler(f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeLlm {
        FakeLlm::spawn(Some(Box::new(f)))
    }

    fn spawn(handler: Option<Handler>) -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            handler,
            stop: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("fake-llm-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accepting.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let serving = Arc::clone(&accepting);
                    let _ = std::thread::Builder::new()
                        .name("fake-llm-conn".into())
                        .spawn(move || serve(stream, &serving));
                }
            })
            .expect("spawn the fake server");
        FakeLlm {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL of an OpenAI-compatible client.
    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// Queues a reply (used by servers made with [`FakeLlm::start`]).
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.queue).push_back(reply);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Scripted replies not used yet.
    pub fn pending(&self) -> usize {
        lock(&self.shared.queue).len()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor, blocked in accept(), so it sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Serves one connection: one request, one answer, close.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    lock(&shared.requests).push(request.clone());
    let reply = match &shared.handler {
        Some(handler) => handler(&request),
        None => lock(&shared.queue).pop_front().unwrap_or_else(|| {
            Reply::openai_error(
                500,
                "server_error",
                &format!(
                    "fake server: no scripted reply for {} {}",
                    request.method, request.path
                ),
            )
        }),
    };
    pause(&shared.stop, reply.delay);
    let _ = write_reply(stream, &reply, &shared.stop);
}

/// Sleeps for `delay`, in small steps so a dropped server (`stop` set) does not keep threads
/// around for long.
fn pause(stop: &AtomicBool, delay: Duration) {
    let until = Instant::now() + delay;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Recorded> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(reader)?
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).ok()?;
        body
    };
    let text = String::from_utf8_lossy(&body);
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
    };
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line).ok()?;
        let size_text = size_line.trim().split(';').next()?;
        let size = usize::from_str_radix(size_text, 16).ok()?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
                    return Some(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).ok()?;
    }
}

fn write_reply(mut stream: TcpStream, reply: &Reply, stop: &AtomicBool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    let has = |name: &str| {
        reply
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !has("content-type") {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let Some(pieces) = &reply.pieces else {
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            reply.body.len()
        ));
        stream.write_all(head.as_bytes())?;
        stream.write_all(reply.body.as_bytes())?;
        stream.flush()?;
        let _ = stream.shutdown(std::net::Shutdown::Write);
        return Ok(());
    };
    // A stream: no length, the end of the connection ends the body. Every piece leaves at
    // once, in its own segment, so the client reads it on its own.
    let _ = stream.set_nodelay(true);
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    stream.flush()?;
    for (i, piece) in pieces.iter().enumerate() {
        if reply.cut_after.is_some_and(|n| i >= n) {
            // Cut off: the rest is never sent.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        if i > 0 {
            pause(stop, reply.chunk_delay);
        }
        stream.write_all(piece)?;
        stream.flush()?;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}
