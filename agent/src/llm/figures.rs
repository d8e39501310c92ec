//! Model-serving figures of one interval: TTFT, inter-token latency, time
//! per output token and per-request token throughput, each its own HDR
//! histogram (merged across agents exactly like latency), plus token counts.

use crate::recorder::micros;
use hdrhistogram::Histogram;
use stampede_proto::histogram::{RecordClamped, new_latency_histogram};
use std::time::Duration;

/// What one finished request measured.
#[derive(Debug, Clone, Copy)]
pub struct RequestMetrics<'a> {
    /// To the first chunk that carried content (streamed), or to the whole
    /// answer (not streamed: the first token arrives with the last).
    pub ttft: Duration,
    /// End to end.
    pub e2e: Duration,
    /// Every gap between content chunks.
    pub gaps: &'a [Duration],
    /// Content chunks received (0 when not streamed).
    pub chunks: u32,
    /// Output tokens, `None` when neither `usage` nor chunks tell.
    pub output_tokens: Option<u64>,
    pub input_tokens: Option<u64>,
    /// The token count is the server's `usage` (else chunks were counted).
    pub from_usage: bool,
    pub streamed: bool,
}

/// Per-request limits of the goodput SLO (unset ones always hold).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GoodputSlo {
    pub ttft: Option<Duration>,
    pub tpot: Option<Duration>,
    pub e2e: Option<Duration>,
}

impl GoodputSlo {
    pub fn is_set(&self) -> bool {
        self.ttft.is_some() || self.tpot.is_some() || self.e2e.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct LlmFigures {
    /// Time to first token, µs.
    pub ttft: Histogram<u64>,
    /// Each gap between content chunks, µs.
    pub itl: Histogram<u64>,
    /// Each gap divided by the tokens per chunk (from `usage`), µs.
    pub itl_per_token: Histogram<u64>,
    /// Time per output token after the first: (e2e − TTFT) / (tokens − 1), µs.
    pub tpot: Histogram<u64>,
    /// Output tokens per second of each request (whole tokens/s).
    pub tokens_per_second: Histogram<u64>,
    pub output_tokens: u64,
    pub input_tokens: u64,
    /// Requests whose token count came from the server's `usage`.
    pub usage_counted: u64,
    /// Requests whose token count came from counting content chunks.
    pub chunk_counted: u64,
    /// Successful requests with no token count at all.
    pub uncounted: u64,
    pub streamed: u64,
    /// Successful requests that met every goodput limit.
    pub good: u64,
    /// Responses that broke the protocol (bad JSON in an event, an error
    /// event); counted as failures (`other`) too.
    pub malformed: u64,
    /// Streams that ended before `[DONE]`; counted as failures too.
    pub truncated: u64,
}

impl Default for LlmFigures {
    fn default() -> Self {
        Self {
            ttft: new_latency_histogram(),
            itl: new_latency_histogram(),
            itl_per_token: new_latency_histogram(),
            tpot: new_latency_histogram(),
            tokens_per_second: new_latency_histogram(),
            output_tokens: 0,
            input_tokens: 0,
            usage_counted: 0,
            chunk_counted: 0,
            uncounted: 0,
            streamed: 0,
            good: 0,
            malformed: 0,
            truncated: 0,
        }
    }
}

impl LlmFigures {
    /// Records a successful request; returns whether it met the SLO.
    pub fn record(&mut self, m: &RequestMetrics<'_>, slo: &GoodputSlo) -> bool {
        self.ttft.record_clamped(micros(m.ttft));
        if m.streamed {
            self.streamed += 1;
        }
        for gap in m.gaps {
            self.itl.record_clamped(micros(*gap));
        }
        let mut tpot = None;
        match m.output_tokens {
            Some(tokens) => {
                self.output_tokens += tokens;
                if m.from_usage {
                    self.usage_counted += 1;
                } else {
                    self.chunk_counted += 1;
                }
                if m.streamed && tokens > 1 {
                    let t =
                        m.e2e.saturating_sub(m.ttft) / (tokens - 1).min(u64::from(u32::MAX)) as u32;
                    self.tpot.record_clamped(micros(t));
                    tpot = Some(t);
                }
                if m.chunks > 0 && tokens > 0 {
                    // A chunk may carry several tokens: spread its gap over them.
                    let per_chunk = tokens as f64 / f64::from(m.chunks);
                    for gap in m.gaps {
                        self.itl_per_token
                            .record_clamped(micros(gap.div_f64(per_chunk.max(1e-9))));
                    }
                }
                let seconds = m.e2e.as_secs_f64();
                if seconds > 0.0 {
                    self.tokens_per_second
                        .record_clamped((tokens as f64 / seconds).round().max(1.0) as u64);
                }
            }
            None => self.uncounted += 1,
        }
        if let Some(input) = m.input_tokens {
            self.input_tokens += input;
        }
        let good = slo.ttft.is_none_or(|l| m.ttft <= l)
            && slo.e2e.is_none_or(|l| m.e2e <= l)
            && slo.tpot.is_none_or(|l| tpot.is_some_and(|t| t <= l));
        if good {
            self.good += 1;
        }
        good
    }

    /// Adds another interval's (or worker's) figures (exact: counts added).
    pub fn merge(&mut self, other: &LlmFigures) {
        let _ = self.ttft.add(&other.ttft);
        let _ = self.itl.add(&other.itl);
        let _ = self.itl_per_token.add(&other.itl_per_token);
        let _ = self.tpot.add(&other.tpot);
        let _ = self.tokens_per_second.add(&other.tokens_per_second);
        self.output_tokens += other.output_tokens;
        self.input_tokens += other.input_tokens;
        self.usage_counted += other.usage_counted;
        self.chunk_counted += other.chunk_counted;
        self.uncounted += other.uncounted;
        self.streamed += other.streamed;
        self.good += other.good;
        self.malformed += other.malformed;
        self.truncated += other.truncated;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_tpot_per_token_itl_and_goodput() {
        let ms = Duration::from_millis;
        let gaps = [ms(20), ms(20), ms(20), ms(20)];
        // Five content chunks, 10 tokens by usage: two tokens per chunk.
        let m = RequestMetrics {
            ttft: ms(200),
            e2e: ms(290),
            gaps: &gaps,
            chunks: 5,
            output_tokens: Some(10),
            input_tokens: Some(7),
            from_usage: true,
            streamed: true,
        };
        let mut f = LlmFigures::default();
        let slo = GoodputSlo {
            ttft: Some(ms(250)),
            tpot: Some(ms(10)),
            e2e: None,
        };
        assert!(f.record(&m, &slo));
        // TPOT = 90 ms / 9 = 10 ms.
        assert_eq!(
            f.tpot.value_at_quantile(0.5),
            f.tpot.highest_equivalent(10_000)
        );
        assert_eq!(f.itl.len(), 4);
        assert_eq!(
            f.itl_per_token.max(),
            f.itl_per_token.highest_equivalent(10_000)
        );
        // 10 tokens in 0.29 s.
        assert_eq!(f.tokens_per_second.max(), 34);
        assert_eq!(
            (f.output_tokens, f.input_tokens, f.usage_counted, f.good),
            (10, 7, 1, 1)
        );
        let strict = GoodputSlo {
            ttft: Some(ms(199)),
            ..slo
        };
        assert!(!f.record(&m, &strict));
        let mut total = LlmFigures::default();
        total.merge(&f);
        total.merge(&f);
        assert_eq!(
            (total.good, total.output_tokens, total.ttft.len()),
            (2, 40, 4)
        );
    }
}
