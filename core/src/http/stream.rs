//! Server-sent events, the way chat models stream their answers: a reader that hands out
//! whole events as they arrive, however the bytes were cut on the way (in the middle of a
//! UTF-8 character or of a JSON document).

use std::io::Read;

use serde_json::Value;

use super::HttpClient;
use crate::error::Result;

/// How much is read from the connection at a time.
const READ_SIZE: usize = 8 * 1024;

/// The largest single event accepted (a model's delta is a few bytes; a runaway server is
/// stopped here rather than filling memory).
const MAX_EVENT_BYTES: usize = 4 << 20;

/// What a streaming request got back.
pub(crate) enum Streamed {
    /// A server that ignored the request to stream answered with one JSON document.
    Json(Value),
    /// The events of a `text/event-stream` answer.
    Events(Events),
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// Its `event:` field, if it had one (Anthropic names every event; OpenAI none).
    pub(crate) name: Option<String>,
    /// Its `data:` lines, joined by newlines.
    pub(crate) data: String,
}

/// The events of a streamed answer, read as they arrive. Dropping it closes the connection.
pub(crate) struct Events {
    reader: Box<dyn Read + Send>,
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` begins.
    start: usize,
    client: HttpClient,
    ended: bool,
}

impl Events {
    pub(crate) fn new(reader: Box<dyn Read + Send>, client: HttpClient) -> Events {
        Events {
            reader,
            buffer: Vec::with_capacity(READ_SIZE),
            start: 0,
            client,
            ended: false,
        }
    }

    /// The next event, or `None` when the server closed the stream. A read failure (a cut
    /// connection, a timeout) and bytes that are not UTF-8 are errors of the client's code.
    pub(crate) fn next_event(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(event) = self.parse_one()? {
                return Ok(Some(event));
            }
            if self.ended {
                return self.last_event();
            }
            self.fill()?;
        }
    }

    /// Reads more bytes; marks the end of the stream.
    fn fill(&mut self) -> Result<()> {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(self.client.error(format!(
                "a streamed event is larger than {MAX_EVENT_BYTES} bytes"
            )));
        }
        let mut chunk = [0u8; READ_SIZE];
        let read = loop {
            match self.reader.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(self
                        .client
                        .error(format!("the streamed answer was cut: {e}"))
                        .with_source(e))
                }
            }
        };
        if read == 0 {
            self.ended = true;
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }

    /// The next complete event in the buffer (one that a blank line ended).
    fn parse_one(&mut self) -> Result<Option<Event>> {
        let mut event = Fields::default();
        let mut cursor = self.start;
        while let Some(offset) = self.buffer[cursor..].iter().position(|b| *b == b'\n') {
            let line_end = cursor + offset;
            let line = trim_cr(&self.buffer[cursor..line_end]);
            cursor = line_end + 1;
            if line.is_empty() {
                if event.is_empty() {
                    // Blank lines between events, or an event of comments only.
                    self.start = cursor;
                    continue;
                }
                self.start = cursor;
                return Ok(Some(event.finish()));
            }
            event.take_line(line, &self.client)?;
        }
        Ok(None)
    }

    /// At the end of the stream: what is left, if the server did not end it with a blank
    /// line.
    fn last_event(&mut self) -> Result<Option<Event>> {
        let rest = std::mem::take(&mut self.buffer);
        let rest = &rest[self.start..];
        self.start = 0;
        let mut event = Fields::default();
        for line in rest.split(|b| *b == b'\n') {
            let line = trim_cr(line);
            if !line.is_empty() {
                event.take_line(line, &self.client)?;
            }
        }
        if event.is_empty() {
            Ok(None)
        } else {
            Ok(Some(event.finish()))
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The fields of an event being read.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    data: Option<String>,
}

impl Fields {
    fn is_empty(&self) -> bool {
        self.name.is_none() && self.data.is_none()
    }

    fn take_line(&mut self, line: &[u8], client: &HttpClient) -> Result<()> {
        if line.starts_with(b":") {
            return Ok(()); // a comment (keep-alive)
        }
        let line = std::str::from_utf8(line)
            .map_err(|e| client.error(format!("the streamed answer is not UTF-8: {e}")))?;
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {} // id, retry, and fields the standard says to ignore
        }
        Ok(())
    }

    fn finish(self) -> Event {
        Event {
            name: self.name,
            data: self.data.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::http::HttpOptions;

    /// A reader that hands out its bytes a few at a time.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.bytes.len() - self.at);
            out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn events(text: &str, step: usize) -> Result<Vec<Event>> {
        let client = HttpClient::new("t", ErrorCode::Llm, HttpOptions::default());
        let reader = Trickle {
            bytes: text.as_bytes().to_vec(),
            at: 0,
            step,
        };
        let mut events = Events::new(Box::new(reader), client);
        let mut all = Vec::new();
        while let Some(event) = events.next_event()? {
            all.push(event);
        }
        Ok(all)
    }

    #[test]
    fn events_survive_any_cut() {
        let text = "event: a\ndata: {\"t\":\"héllo 世界\"}\n\n: keep-alive\n\n\
                    data: one\r\ndata: two\r\n\r\ndata: [DONE]";
        for step in 1..12 {
            let all = events(text, step).unwrap();
            assert_eq!(all.len(), 3, "step {step}");
            assert_eq!(all[0].name.as_deref(), Some("a"));
            assert_eq!(all[0].data, "{\"t\":\"héllo 世界\"}");
            assert_eq!(all[1].data, "one\ntwo");
            assert_eq!(all[2].data, "[DONE]");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error() {
        let client = HttpClient::new("t", ErrorCode::Llm, HttpOptions::default());
        let reader = Trickle {
            bytes: b"data: \xff\n\n".to_vec(),
            at: 0,
            step: 4,
        };
        let err = Events::new(Box::new(reader), client)
            .next_event()
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Llm);
        assert!(err.message().contains("UTF-8"), "{err}");
    }
}
