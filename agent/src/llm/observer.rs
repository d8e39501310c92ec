//! Reads an OpenAI-compatible response as it arrives: a server-sent event
//! stream of completion chunks, or one JSON body. Notes when each chunk
//! carrying content came, the token counts, and whether the response kept
//! to the protocol.
//!
//! Our definitions (they follow vLLM's `bench serve`):
//! - TTFT ends at the first chunk that carries content (text, or a delta
//!   with `content` or `reasoning_content`); a role-only chunk does not count.
//! - ITL is every gap between consecutive content chunks (a chunk with
//!   several tokens is one gap); per-token ITL spreads it over the tokens.
//! - Output tokens come from the server's `usage` when it sends one
//!   (`stream_options.include_usage`), else from counting content chunks.

use super::sse::SseParser;
use crate::engine::http1::BodyObserver;
use serde::Deserialize;
use std::borrow::Cow;
use std::time::Duration;
use tokio::time::Instant;

/// Largest non-streamed JSON body kept for parsing.
const MAX_JSON_BODY: usize = 8 << 20;

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    usage: Option<Usage>,
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    message: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Clone, Copy, Debug)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl Chunk<'_> {
    fn has_content(&self) -> bool {
        let some = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|t| !t.is_empty());
        self.choices.iter().any(|c| {
            some(&c.text)
                || c.delta
                    .as_ref()
                    .is_some_and(|d| some(&d.content) || some(&d.reasoning_content))
                || c.message
                    .as_ref()
                    .is_some_and(|d| some(&d.content) || some(&d.reasoning_content))
        })
    }
}

/// How a response broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmFault {
    /// Not JSON where JSON was due, an error event, an endless line.
    Malformed,
    /// The stream ended (or the connection closed) before `[DONE]`.
    Truncated,
}

/// What the stream showed, once it is over.
#[derive(Debug, Default)]
struct StreamState {
    first: Option<Instant>,
    last: Option<Instant>,
    gaps: Vec<Duration>,
    chunks: u32,
    usage: Option<Usage>,
    done: bool,
    malformed: bool,
}

impl StreamState {
    fn on_event(&mut self, data: &[u8], now: Instant) {
        if self.done {
            return;
        }
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        match serde_json::from_slice::<Chunk<'_>>(data) {
            Ok(chunk) if chunk.error.is_some() => self.malformed = true,
            Ok(chunk) => {
                if chunk.has_content() {
                    self.chunks += 1;
                    if let Some(last) = self.last {
                        self.gaps.push(now.saturating_duration_since(last));
                    } else {
                        self.first = Some(now);
                    }
                    self.last = Some(now);
                }
                if chunk.usage.is_some() {
                    self.usage = chunk.usage;
                }
            }
            Err(_) => self.malformed = true,
        }
    }
}

/// One connection's reader of OpenAI responses, reused request after
/// request (its buffers keep their capacity).
#[derive(Debug, Default)]
pub struct LlmObserver {
    sse: SseParser,
    state: StreamState,
    event_stream: bool,
    status: u16,
    /// A JSON (not streamed) answer's body.
    body: Vec<u8>,
    body_too_large: bool,
}

/// A finished request's measurements, borrowed from the observer.
pub struct Finished<'a> {
    pub metrics: super::figures::RequestMetrics<'a>,
}

impl LlmObserver {
    /// Before each request.
    pub fn reset(&mut self) {
        self.sse.reset();
        self.state.first = None;
        self.state.last = None;
        self.state.gaps.clear();
        self.state.chunks = 0;
        self.state.usage = None;
        self.state.done = false;
        self.state.malformed = false;
        self.event_stream = false;
        self.status = 0;
        self.body.clear();
        self.body_too_large = false;
    }

    /// Whether the response was an event stream (a broken connection then
    /// truncated it).
    pub fn is_stream(&self) -> bool {
        self.event_stream
    }

    /// After a complete 2xx response: its measurements, or how it broke the
    /// protocol. `origin` is where latency counts from; `end` when the
    /// response completed.
    pub fn finish(&mut self, origin: Instant, end: Instant) -> Result<Finished<'_>, LlmFault> {
        let e2e = end.saturating_duration_since(origin);
        if self.event_stream {
            if self.state.malformed {
                return Err(LlmFault::Malformed);
            }
            if !self.state.done {
                return Err(LlmFault::Truncated);
            }
            let usage = self.state.usage;
            let completion = usage.and_then(|u| u.completion_tokens);
            let output_tokens = completion.or(Some(u64::from(self.state.chunks)));
            let ttft = self
                .state
                .first
                .map_or(e2e, |first| first.saturating_duration_since(origin));
            return Ok(Finished {
                metrics: super::figures::RequestMetrics {
                    ttft,
                    e2e,
                    gaps: &self.state.gaps,
                    chunks: self.state.chunks,
                    output_tokens,
                    input_tokens: usage.and_then(|u| u.prompt_tokens),
                    from_usage: completion.is_some(),
                    streamed: true,
                },
            });
        }
        if self.body_too_large {
            return Err(LlmFault::Malformed);
        }
        let chunk: Chunk<'_> =
            serde_json::from_slice(&self.body).map_err(|_| LlmFault::Malformed)?;
        if chunk.error.is_some() {
            return Err(LlmFault::Malformed);
        }
        let completion = chunk.usage.and_then(|u| u.completion_tokens);
        Ok(Finished {
            metrics: super::figures::RequestMetrics {
                ttft: e2e,
                e2e,
                gaps: &[],
                chunks: 0,
                output_tokens: completion,
                input_tokens: chunk.usage.and_then(|u| u.prompt_tokens),
                from_usage: completion.is_some(),
                streamed: false,
            },
        })
    }
}

impl BodyObserver for LlmObserver {
    fn head(&mut self, status: u16, event_stream: bool) {
        self.status = status;
        self.event_stream = event_stream;
    }

    fn body(&mut self, bytes: &[u8]) {
        if self.event_stream {
            // Everything read at once arrived at once.
            let now = Instant::now();
            let Self { sse, state, .. } = self;
            if sse.feed(bytes, |data| state.on_event(data, now)).is_err() {
                state.malformed = true;
            }
        } else if self.body.len() + bytes.len() <= MAX_JSON_BODY {
            self.body.extend_from_slice(bytes);
        } else {
            self.body_too_large = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_chunk(content: &str) -> String {
        format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}}}}]}}\n\n"
        )
    }

    #[tokio::test(start_paused = true)]
    async fn measures_a_stream_from_its_first_content_chunk() {
        let origin = Instant::now();
        let mut o = LlmObserver::default();
        o.reset();
        o.head(200, true);
        // The role-only chunk does not end TTFT.
        o.body(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n");
        tokio::time::advance(Duration::from_millis(200)).await;
        o.body(chat_chunk("Hel").as_bytes());
        tokio::time::advance(Duration::from_millis(20)).await;
        // One read carrying two chunks: one arrival time, a zero gap.
        let two = format!("{}{}", chat_chunk("lo"), chat_chunk(" you"));
        o.body(two.as_bytes());
        tokio::time::advance(Duration::from_millis(5)).await;
        o.body(b"data: [DONE]\n\n");
        let end = Instant::now();
        let f = o.finish(origin, end).expect("complete");
        let m = f.metrics;
        assert_eq!(m.ttft, Duration::from_millis(200));
        assert_eq!(m.e2e, Duration::from_millis(225));
        assert_eq!(m.gaps, [Duration::from_millis(20), Duration::ZERO]);
        // No usage: the content chunks are counted.
        assert_eq!(
            (m.output_tokens, m.from_usage, m.chunks),
            (Some(3), false, 3)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn prefers_the_servers_usage() {
        let origin = Instant::now();
        let mut o = LlmObserver::default();
        o.head(200, true);
        o.body(b"data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":9}}\n\ndata: [DONE]\n\n");
        let f = o.finish(origin, Instant::now()).expect("complete");
        assert_eq!(
            (
                f.metrics.output_tokens,
                f.metrics.input_tokens,
                f.metrics.from_usage
            ),
            (Some(9), Some(4), true)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn broken_streams_are_faults() {
        let origin = Instant::now();
        let mut o = LlmObserver::default();
        o.head(200, true);
        o.body(chat_chunk("a").as_bytes());
        assert_eq!(
            o.finish(origin, Instant::now()).err(),
            Some(LlmFault::Truncated)
        );
        o.reset();
        o.head(200, true);
        o.body(b"data: {\"choices\": [\n\ndata: [DONE]\n\n");
        assert_eq!(
            o.finish(origin, Instant::now()).err(),
            Some(LlmFault::Malformed)
        );
        o.reset();
        o.head(200, true);
        o.body(b"data: {\"error\": {\"message\": \"overloaded\"}}\n\ndata: [DONE]\n\n");
        assert_eq!(
            o.finish(origin, Instant::now()).err(),
            Some(LlmFault::Malformed)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reads_a_json_answer() {
        let origin = Instant::now();
        let mut o = LlmObserver::default();
        o.head(200, false);
        o.body(b"{\"choices\":[{\"message\":{\"content\":\"hi\"}}],");
        o.body(b"\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}");
        tokio::time::advance(Duration::from_millis(50)).await;
        let f = o.finish(origin, Instant::now()).expect("complete");
        assert_eq!(f.metrics.ttft, Duration::from_millis(50));
        assert_eq!(
            (f.metrics.output_tokens, f.metrics.streamed),
            (Some(2), false)
        );
        o.reset();
        o.head(200, false);
        o.body(b"<html>oops</html>");
        assert_eq!(
            o.finish(origin, Instant::now()).err(),
            Some(LlmFault::Malformed)
        );
    }
}
