//! An OpenAI-compatible completions mock: `POST /v1/completions` and
//! `POST /v1/chat/completions`, streamed as server-sent events when the
//! request says `"stream": true`, else one JSON body.
//!
//! Timing is exact and configurable ([`LlmConfig`]): the first content token
//! arrives `ttft` after the request (plus the region's delay), then one token
//! every `token_interval`. A chat stream starts with a role-only chunk at
//! once, as vLLM's does, so a client that takes it for the first token is
//! caught. The number of tokens is the request's `max_tokens` (or
//! `max_completion_tokens`), else the configured default. `usage` comes in a
//! last chunk when `stream_options.include_usage` is true.
//!
//! Faults for tests, chosen with a query parameter: `?fault=malformed` sends a
//! chunk that is not JSON halfway; `?fault=cut` drops the connection halfway.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// How the mock model behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmConfig {
    /// From the request to the first content token.
    pub ttft: Duration,
    /// Between content tokens.
    pub token_interval: Duration,
    /// Tokens when the request names no `max_tokens`.
    pub default_tokens: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(100),
            token_interval: Duration::from_millis(10),
            default_tokens: 32,
        }
    }
}

/// Most tokens one request may ask for (a guard, not a model limit).
const MAX_TOKENS: u32 = 8192;

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LlmRequest {
    pub chat: bool,
    pub stream: bool,
    pub include_usage: bool,
    pub tokens: u32,
    pub prompt_tokens: u32,
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Malformed,
    Cut,
}

impl Fault {
    pub(crate) fn from_query(value: Option<&str>) -> Option<Self> {
        match value {
            Some("malformed") => Some(Fault::Malformed),
            Some("cut") => Some(Fault::Cut),
            _ => None,
        }
    }
}

/// Reads the request body; `None` when it is not a JSON object.
pub(crate) fn parse_request(
    chat: bool,
    body: &[u8],
    config: &LlmConfig,
    fault: Option<Fault>,
) -> Option<LlmRequest> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let tokens = object
        .get("max_tokens")
        .or_else(|| object.get("max_completion_tokens"))
        .and_then(serde_json::Value::as_u64)
        .map_or(config.default_tokens, |n| {
            n.min(u64::from(MAX_TOKENS)) as u32
        })
        .max(1);
    // Prompt tokens, roughly: words of the prompt (or of the messages).
    let words = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.split_whitespace().count());
    let prompt_tokens = if chat {
        object
            .get("messages")
            .and_then(serde_json::Value::as_array)
            .map_or(0, |m| {
                m.iter().map(|m| m.get("content").map_or(0, words)).sum()
            })
    } else {
        object.get("prompt").map_or(0, words)
    };
    Some(LlmRequest {
        chat,
        stream: object
            .get("stream")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        include_usage: object
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        tokens,
        prompt_tokens: prompt_tokens as u32,
        fault,
    })
}

fn usage(r: &LlmRequest) -> serde_json::Value {
    serde_json::json!({
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.tokens,
        "total_tokens": r.prompt_tokens + r.tokens,
    })
}

/// The whole answer as one JSON body (non-streaming).
pub(crate) fn full_response(r: &LlmRequest) -> Bytes {
    let text: String = (1..=r.tokens).map(|i| format!(" tok{i}")).collect();
    let body = if r.chat {
        serde_json::json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "model": "mock",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
            "usage": usage(r),
        })
    } else {
        serde_json::json!({
            "id": "cmpl-mock", "object": "text_completion", "model": "mock",
            "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
            "usage": usage(r),
        })
    };
    Bytes::from(body.to_string())
}

/// How long a non-streaming answer takes: the first token, then the rest.
pub(crate) fn full_duration(r: &LlmRequest, config: &LlmConfig) -> Duration {
    config.ttft + config.token_interval * r.tokens.saturating_sub(1)
}

fn event(json: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

fn content_chunk(r: &LlmRequest, i: u32) -> Bytes {
    let text = format!(" tok{i}");
    if r.chat {
        event(&serde_json::json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": "mock",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}],
        }))
    } else {
        event(&serde_json::json!({
            "id": "cmpl-mock", "object": "text_completion", "model": "mock",
            "choices": [{"index": 0, "text": text, "finish_reason": null}],
        }))
    }
}

/// The events of a streamed answer, each due at a time.
pub(crate) struct LlmStream {
    events: VecDeque<(Instant, Result<Bytes, std::io::Error>)>,
    sleep: Pin<Box<Sleep>>,
    /// Called once the last event is out (the answer is then served).
    on_done: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl LlmStream {
    /// `start`: when the request arrived (plus any region delay).
    pub(crate) fn new(r: &LlmRequest, config: &LlmConfig, start: Instant) -> Self {
        let mut events = VecDeque::with_capacity(r.tokens as usize + 3);
        if r.chat {
            // vLLM sends the role at once, before any content.
            events.push_back((
                start,
                Ok(event(&serde_json::json!({
                    "id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": "mock",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}],
                }))),
            ));
        }
        let half = r.tokens / 2;
        for i in 1..=r.tokens {
            let due = start + config.ttft + config.token_interval * (i - 1);
            if i == half + 1 {
                match r.fault {
                    Some(Fault::Malformed) => {
                        events
                            .push_back((due, Ok(Bytes::from_static(b"data: {\"choices\": [\n\n"))));
                    }
                    Some(Fault::Cut) => {
                        events.push_back((
                            due,
                            Err(std::io::Error::other("mock stream cut halfway")),
                        ));
                        break;
                    }
                    None => {}
                }
            }
            events.push_back((due, Ok(content_chunk(r, i))));
        }
        let end = start + full_duration(r, config);
        if r.include_usage {
            events.push_back((
                end,
                Ok(event(&serde_json::json!({
                    "id": "mock", "object": "chunk", "model": "mock", "choices": [], "usage": usage(r),
                }))),
            ));
        }
        events.push_back((end, Ok(Bytes::from_static(b"data: [DONE]\n\n"))));
        Self {
            events,
            sleep: Box::pin(tokio::time::sleep_until(start)),
            on_done: None,
        }
    }

    /// Runs `f` when the whole answer has been handed out.
    pub(crate) fn on_done(mut self, f: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_done = Some(Box::new(f));
        self
    }
}

impl Body for LlmStream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let Some(&(due, _)) = self.events.front() else {
            return Poll::Ready(None);
        };
        if Instant::now() < due {
            self.sleep.as_mut().reset(due);
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        match self.events.pop_front() {
            Some((_, Ok(bytes))) => {
                if self.events.is_empty() {
                    if let Some(done) = self.on_done.take() {
                        done();
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Some((_, Err(e))) => {
                // Nothing may follow an error: the connection is dropped.
                self.events.clear();
                Poll::Ready(Some(Err(e)))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_request_asks() {
        let c = LlmConfig::default();
        let r = parse_request(
            false,
            br#"{"prompt": "one two three", "max_tokens": 5, "stream": true, "stream_options": {"include_usage": true}}"#,
            &c,
            None,
        )
        .expect("json");
        assert_eq!(
            (r.tokens, r.prompt_tokens, r.stream, r.include_usage),
            (5, 3, true, true)
        );
        let r = parse_request(
            true,
            br#"{"messages": [{"role": "user", "content": "hi there"}]}"#,
            &c,
            None,
        )
        .expect("json");
        assert_eq!((r.tokens, r.prompt_tokens, r.stream), (32, 2, false));
        assert!(parse_request(false, b"not json", &c, None).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn streams_tokens_on_time() {
        use http_body_util::BodyExt;
        let c = LlmConfig {
            ttft: Duration::from_millis(200),
            token_interval: Duration::from_millis(20),
            default_tokens: 3,
        };
        let r = parse_request(
            true,
            br#"{"stream": true, "stream_options": {"include_usage": true}}"#,
            &c,
            None,
        )
        .expect("json");
        let start = Instant::now();
        let mut body = LlmStream::new(&r, &c, start);
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.expect("no error").into_data().expect("data");
            seen.push((start.elapsed(), String::from_utf8_lossy(&data).into_owned()));
        }
        let times: Vec<u128> = seen.iter().map(|(t, _)| t.as_millis()).collect();
        // Role at once, tokens at 200, 220, 240 ms, then usage and [DONE].
        assert_eq!(times, [0, 200, 220, 240, 240, 240]);
        assert!(seen[0].1.contains("\"role\":\"assistant\""));
        assert!(seen[1].1.contains(" tok1"));
        assert!(seen[4].1.contains("\"completion_tokens\":3"));
        assert_eq!(seen[5].1, "data: [DONE]\n\n");
    }

    #[tokio::test(start_paused = true)]
    async fn faults_break_the_stream_halfway() {
        use http_body_util::BodyExt;
        let c = LlmConfig::default();
        let r = parse_request(
            false,
            br#"{"stream": true, "max_tokens": 4}"#,
            &c,
            Some(Fault::Cut),
        )
        .expect("json");
        let mut body = LlmStream::new(&r, &c, Instant::now());
        let mut frames = 0;
        let error = loop {
            match body.frame().await {
                Some(Ok(_)) => frames += 1,
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        assert_eq!(frames, 2);
        assert!(error.is_some());
        let r = parse_request(
            false,
            br#"{"stream": true, "max_tokens": 4}"#,
            &c,
            Some(Fault::Malformed),
        )
        .expect("json");
        let mut body = LlmStream::new(&r, &c, Instant::now());
        let mut texts = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            texts.push(String::from_utf8_lossy(&frame.into_data().expect("data")).into_owned());
        }
        assert_eq!(texts[2], "data: {\"choices\": [\n\n");
        assert_eq!(texts.last().map(String::as_str), Some("data: [DONE]\n\n"));
    }
}
