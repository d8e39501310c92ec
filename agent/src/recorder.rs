//! Where latencies are recorded.
//!
//! Each worker thread owns one [`IntervalRecorder`] for the interval in
//! progress; its connection tasks record into it without locks (they all run
//! on that worker's single-threaded runtime). At each interval boundary the
//! worker swaps the recorder for a fresh one and ships the full one to the
//! agent's aggregator, which adds the workers' recorders together.

use crate::llm::LlmFigures;
use crate::phases::PhaseFigures;
use hdrhistogram::Histogram;
use stampede_proto::histogram::{
    HIGHEST_MICROS, LOWEST_MICROS, RecordClamped, new_latency_histogram,
};
use std::time::Duration;

/// Status codes are 100..=599 (the client refuses others as malformed).
const STATUS_SLOTS: usize = 600;

/// gRPC status codes are 0 (OK) ..= 16 (UNAUTHENTICATED); anything else a
/// server sends is counted as 2 (UNKNOWN), as gRPC itself does.
pub const GRPC_CODES: usize = 17;

/// Why a request did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The TCP connection could not be established.
    Connect,
    /// The TLS handshake with the target failed (untrusted certificate,
    /// no common protocol, HTTP/2 not chosen by ALPN, ...).
    Tls,
    /// No complete response within the request timeout.
    Timeout,
    /// The target answered 400..=499.
    Status4xx,
    /// The target answered 500..=599.
    Status5xx,
    /// I/O error, malformed or truncated response, anything else.
    Other,
}

/// Requests by outcome. Every completed request lands in exactly one field;
/// `interrupted` counts requests cut off by the end of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub success: u64,
    pub connect_error: u64,
    pub tls_error: u64,
    pub timeout: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub other_error: u64,
    pub interrupted: u64,
}

impl OutcomeCounts {
    /// Completed requests: successes plus failures (not interrupted ones).
    pub fn completed(&self) -> u64 {
        self.success + self.failed()
    }

    pub fn failed(&self) -> u64 {
        self.connect_error
            + self.tls_error
            + self.timeout
            + self.status_4xx
            + self.status_5xx
            + self.other_error
    }

    pub fn add(&mut self, other: &OutcomeCounts) {
        self.success += other.success;
        self.connect_error += other.connect_error;
        self.tls_error += other.tls_error;
        self.timeout += other.timeout;
        self.status_4xx += other.status_4xx;
        self.status_5xx += other.status_5xx;
        self.other_error += other.other_error;
        self.interrupted += other.interrupted;
    }

    fn count_failure(&mut self, class: FailureClass) {
        match class {
            FailureClass::Connect => self.connect_error += 1,
            FailureClass::Tls => self.tls_error += 1,
            FailureClass::Timeout => self.timeout += 1,
            FailureClass::Status4xx => self.status_4xx += 1,
            FailureClass::Status5xx => self.status_5xx += 1,
            FailureClass::Other => self.other_error += 1,
        }
    }
}

/// Everything recorded during one interval (by one worker, or merged).
#[derive(Debug, Clone)]
pub struct IntervalRecorder {
    /// Latency of successful requests, µs.
    pub latency: Histogram<u64>,
    /// Latency of failed requests, µs (kept apart so errors do not flatter or
    /// spoil the success percentiles).
    pub errors: Histogram<u64>,
    /// Open model: how far each request left from its intended time (late,
    /// or up to half a pacer slot early). Large values mean the generator,
    /// not the target, was the bottleneck.
    pub schedule_lag: Histogram<u64>,
    pub outcomes: OutcomeCounts,
    /// Responses per status code, indexed by code.
    status_codes: Box<[u64; STATUS_SLOTS]>,
    /// gRPC calls per status code, indexed by code.
    grpc_codes: [u64; GRPC_CODES],
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// With a mix of several requests: each request's own figures, by its
    /// index in the plan. Empty for a single request (the totals are its).
    pub requests: Vec<RequestFigures>,
    /// Model-serving runs: TTFT, ITL, TPOT, tokens, goodput.
    pub llm: Option<Box<LlmFigures>>,
    /// DNS, connect, TLS, time to first byte, transfer; connections opened.
    pub phases: Box<PhaseFigures>,
}

/// One request of a mix, for one interval.
#[derive(Debug, Clone)]
pub struct RequestFigures {
    pub latency: Histogram<u64>,
    pub errors: Histogram<u64>,
    pub outcomes: OutcomeCounts,
}

impl Default for RequestFigures {
    fn default() -> Self {
        Self {
            latency: new_latency_histogram(),
            errors: new_latency_histogram(),
            outcomes: OutcomeCounts::default(),
        }
    }
}

impl RequestFigures {
    pub fn merge(&mut self, other: &RequestFigures) {
        let _ = self.latency.add(&other.latency);
        let _ = self.errors.add(&other.errors);
        self.outcomes.add(&other.outcomes);
    }
}

impl Default for IntervalRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl IntervalRecorder {
    pub fn new() -> Self {
        Self {
            latency: new_latency_histogram(),
            errors: new_latency_histogram(),
            schedule_lag: new_latency_histogram(),
            outcomes: OutcomeCounts::default(),
            status_codes: Box::new([0; STATUS_SLOTS]),
            grpc_codes: [0; GRPC_CODES],
            bytes_received: 0,
            bytes_sent: 0,
            requests: Vec::new(),
            llm: None,
            phases: Box::default(),
        }
    }

    /// A recorder for a run with `requests` requests in its mix (figures
    /// per request only when there are several).
    /// Per-request figures for `requests` requests even when there is one:
    /// an endpoint's leg records apart from the others' (the coordinator
    /// reads the cross-region matrix from them).
    pub fn with_request_figures(requests: usize) -> Self {
        let mut r = Self::new();
        r.requests = (0..requests).map(|_| RequestFigures::default()).collect();
        r
    }

    pub fn for_requests(requests: usize) -> Self {
        let mut r = Self::new();
        if requests > 1 {
            r.requests = (0..requests).map(|_| RequestFigures::default()).collect();
        }
        r
    }

    /// With model-serving figures.
    pub fn with_llm(mut self) -> Self {
        self.llm = Some(Box::default());
        self
    }

    /// A fresh recorder of the same shape (for the next interval).
    pub fn fresh(&self) -> Self {
        // The same layout: per-request figures exactly when this one has them.
        let r = Self::with_request_figures(self.requests.len());
        if self.llm.is_some() { r.with_llm() } else { r }
    }

    /// `request`: the request's index in the mix.
    #[inline]
    pub fn record_success(&mut self, latency: Duration, status: u16, request: usize) {
        let us = micros(latency);
        self.latency.record_clamped(us);
        self.outcomes.success += 1;
        self.count_status(status);
        if let Some(r) = self.requests.get_mut(request) {
            r.latency.record_clamped(us);
            r.outcomes.success += 1;
        }
    }

    #[inline]
    pub fn record_failure(
        &mut self,
        class: FailureClass,
        latency: Duration,
        status: Option<u16>,
        request: usize,
    ) {
        let us = micros(latency);
        self.errors.record_clamped(us);
        self.outcomes.count_failure(class);
        if let Some(status) = status {
            self.count_status(status);
        }
        if let Some(r) = self.requests.get_mut(request) {
            r.errors.record_clamped(us);
            r.outcomes.count_failure(class);
        }
    }

    #[inline]
    pub fn record_schedule_lag(&mut self, lag: Duration) {
        self.schedule_lag.record_clamped(micros(lag));
    }

    #[inline]
    pub fn record_interrupted(&mut self, requests: u64) {
        self.outcomes.interrupted += requests;
    }

    #[inline]
    pub fn record_bytes(&mut self, sent: u64, received: u64) {
        self.bytes_sent += sent;
        self.bytes_received += received;
    }

    #[inline]
    fn count_status(&mut self, status: u16) {
        let slot = usize::from(status).min(STATUS_SLOTS - 1);
        self.status_codes[slot] += 1;
    }

    /// One gRPC call that ended with status `code`: a success, or a
    /// failure of `failure`'s class. No HTTP status is counted (gRPC answers
    /// are HTTP 200 whatever happened). `request`: the call's index in the
    /// agent's requests (its endpoint leg's offset), as for HTTP.
    #[inline]
    pub fn record_grpc(
        &mut self,
        latency: Duration,
        code: u8,
        failure: Option<FailureClass>,
        request: usize,
    ) {
        let slot = if usize::from(code) < GRPC_CODES {
            code
        } else {
            2
        };
        self.grpc_codes[usize::from(slot)] += 1;
        let us = micros(latency);
        let request = self.requests.get_mut(request);
        match failure {
            None => {
                self.latency.record_clamped(us);
                self.outcomes.success += 1;
                if let Some(r) = request {
                    r.latency.record_clamped(us);
                    r.outcomes.success += 1;
                }
            }
            Some(class) => {
                self.errors.record_clamped(us);
                self.outcomes.count_failure(class);
                if let Some(r) = request {
                    r.errors.record_clamped(us);
                    r.outcomes.count_failure(class);
                }
            }
        }
    }

    /// gRPC status codes that were seen, with their counts, in ascending order.
    pub fn grpc_codes(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        self.grpc_codes
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(code, n)| (code as u8, *n))
    }

    /// Status codes that were seen, with their counts, in ascending order.
    pub fn status_codes(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.status_codes
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(code, n)| (code as u16, *n))
    }

    /// Adds another recorder's contents into this one (exact: histogram
    /// counts are added, never percentiles averaged).
    pub fn merge(&mut self, other: &IntervalRecorder) {
        // Both histograms have the agreed shape, so `add` cannot go out of range.
        let _ = self.latency.add(&other.latency);
        let _ = self.errors.add(&other.errors);
        let _ = self.schedule_lag.add(&other.schedule_lag);
        self.outcomes.add(&other.outcomes);
        for (mine, theirs) in self.status_codes.iter_mut().zip(other.status_codes.iter()) {
            *mine += theirs;
        }
        for (mine, theirs) in self.grpc_codes.iter_mut().zip(other.grpc_codes.iter()) {
            *mine += theirs;
        }
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
        if self.requests.len() < other.requests.len() {
            self.requests
                .resize_with(other.requests.len(), RequestFigures::default);
        }
        for (mine, theirs) in self.requests.iter_mut().zip(&other.requests) {
            mine.merge(theirs);
        }
        if let Some(theirs) = &other.llm {
            self.llm.get_or_insert_with(Box::default).merge(theirs);
        }
        self.phases.merge(&other.phases);
    }
}

/// A latency in whole microseconds, clamped to the histogram's range.
#[inline]
pub fn micros(latency: Duration) -> u64 {
    (latency.as_micros() as u64).clamp(LOWEST_MICROS, HIGHEST_MICROS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_and_merges_exactly() {
        let mut a = IntervalRecorder::new();
        a.record_success(Duration::from_millis(5), 200, 0);
        a.record_failure(
            FailureClass::Status5xx,
            Duration::from_millis(7),
            Some(503),
            0,
        );
        let mut b = IntervalRecorder::new();
        b.record_success(Duration::from_millis(9), 200, 0);
        b.record_failure(FailureClass::Connect, Duration::from_micros(10), None, 0);
        b.record_interrupted(3);
        a.merge(&b);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.errors.len(), 2);
        assert_eq!(a.outcomes.success, 2);
        assert_eq!(a.outcomes.status_5xx, 1);
        assert_eq!(a.outcomes.connect_error, 1);
        assert_eq!(a.outcomes.interrupted, 3);
        assert_eq!(a.outcomes.completed(), 4);
        assert_eq!(
            a.status_codes().collect::<Vec<_>>(),
            vec![(200, 2), (503, 1)]
        );
    }

    #[test]
    fn clamps_out_of_range_latencies() {
        let mut r = IntervalRecorder::new();
        r.record_success(Duration::ZERO, 200, 0);
        r.record_success(Duration::from_secs(10_000), 200, 0);
        assert_eq!(r.latency.min(), 1);
        assert!(r.latency.max() >= HIGHEST_MICROS);
        assert_eq!(r.status_codes().next(), Some((200, 2)));
    }
}

#[cfg(test)]
mod mix_tests {
    use super::*;

    #[test]
    fn a_mix_keeps_each_requests_figures_and_the_totals() {
        let mut a = IntervalRecorder::for_requests(2);
        a.record_success(Duration::from_millis(1), 200, 0);
        a.record_success(Duration::from_millis(9), 200, 1);
        a.record_failure(FailureClass::Timeout, Duration::from_secs(1), None, 1);
        let mut total = IntervalRecorder::new();
        total.merge(&a);
        total.merge(&a.fresh());
        assert_eq!(total.requests.len(), 2);
        assert_eq!(total.latency.len(), 2);
        assert_eq!(total.requests[0].latency.len(), 1);
        assert_eq!(total.requests[1].outcomes.timeout, 1);
        assert_eq!(total.requests[1].latency.max(), total.latency.max());
        assert!(IntervalRecorder::for_requests(1).requests.is_empty());
    }

    #[test]
    fn grpc_calls_record_under_their_request_index() {
        // An endpoint leg at offset 1 of two request slots.
        let mut r = IntervalRecorder::with_request_figures(2);
        r.record_grpc(Duration::from_millis(4), 0, None, 1);
        r.record_grpc(
            Duration::from_millis(6),
            14,
            Some(FailureClass::Status5xx),
            1,
        );
        assert_eq!(r.requests[0].outcomes.completed(), 0);
        assert_eq!(r.requests[1].outcomes.success, 1);
        assert_eq!(r.requests[1].outcomes.status_5xx, 1);
        assert_eq!(r.requests[1].latency.len(), 1);
        assert_eq!(r.requests[1].errors.len(), 1);
        // The totals count both, with their codes.
        assert_eq!(r.outcomes.completed(), 2);
        assert_eq!(r.grpc_codes().collect::<Vec<_>>(), vec![(0, 1), (14, 1)]);
    }
}
