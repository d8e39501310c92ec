//! Where histograms are merged.
//!
//! Agents' interval reports are added — histogram counts added bucket by
//! bucket, never percentiles averaged — into per-agent, per-region and global
//! totals, both cumulative and per interval. Percentiles of a merged
//! histogram are therefore exactly those of the union of every sample the
//! agents recorded (within HDR precision, which the agents already applied).
//!
//! Memory: an interval's histograms stay in memory only while agents may
//! still report it; once closed it keeps its encoded histograms (a few KB)
//! and summary. State grows with intervals × (regions + 1), not requests.

use bytes::Bytes;
use hdrhistogram::Histogram;
use stampede_proto::histogram::{
    self, CumulativeCounts, DenseCounts, Encoding, HistogramCodecError, SparseHistogram,
    decode_sparse_into, new_latency_histogram,
};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

mod phases;
pub use phases::{PHASE_NAMES, PhaseDecodeError, PhaseInterval, ReceivedPhases};
use phases::{PhaseScratch, PhaseTotals};

/// Outcome counts: the agent's own type (one definition of what a request's
/// outcome is, on both sides of the wire).
pub use stampede_agent::recorder::OutcomeCounts as Outcomes;

/// Everything that adds up: histograms and counters for one scope.
#[derive(Debug, Clone)]
pub struct Totals {
    pub latency: Histogram<u64>,
    pub errors: Histogram<u64>,
    /// Open model: how far requests left from their intended time.
    pub schedule_lag: Histogram<u64>,
    pub outcomes: Outcomes,
    pub status_codes: BTreeMap<u16, u64>,
    /// gRPC calls by status code (0 OK ..= 16).
    pub grpc_codes: BTreeMap<u8, u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Connections the agents opened to the target.
    pub new_connections: u64,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            latency: new_latency_histogram(),
            errors: new_latency_histogram(),
            schedule_lag: new_latency_histogram(),
            outcomes: Outcomes::default(),
            status_codes: BTreeMap::new(),
            grpc_codes: BTreeMap::new(),
            bytes_received: 0,
            bytes_sent: 0,
            new_connections: 0,
        }
    }
}

impl Totals {
    /// Adds one agent interval, its histograms decoded in `h`, into `self`:
    /// O(non-zero buckets).
    pub fn add_interval(&mut self, r: &AgentInterval, h: &DecodedHistograms) {
        h.latency.add_to(&mut self.latency);
        h.errors.add_to(&mut self.errors);
        h.schedule_lag.add_to(&mut self.schedule_lag);
        self.outcomes.add(&r.outcomes);
        for (code, n) in &r.status_codes {
            *self.status_codes.entry(*code).or_default() += n;
        }
        for (code, n) in &r.grpc_codes {
            *self.grpc_codes.entry(*code).or_default() += n;
        }
        self.bytes_received += r.bytes_received;
        self.bytes_sent += r.bytes_sent;
        self.new_connections += r.new_connections();
    }

    /// Adds `other` into `self`. Both hold histograms of the agreed shape
    /// (decoding guarantees it), so adding cannot fail.
    pub fn add(&mut self, other: &Totals) {
        let _ = self.latency.add(&other.latency);
        let _ = self.errors.add(&other.errors);
        let _ = self.schedule_lag.add(&other.schedule_lag);
        self.outcomes.add(&other.outcomes);
        for (code, n) in &other.status_codes {
            *self.status_codes.entry(*code).or_default() += n;
        }
        for (code, n) in &other.grpc_codes {
            *self.grpc_codes.entry(*code).or_default() += n;
        }
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
        self.new_connections += other.new_connections;
    }
}

/// An agent interval's latency, error and schedule-lag histograms as
/// received: V2 bytes, slices of the message (not copies), their sizes
/// checked. The run actor decodes them into its reused
/// [`DecodedHistograms`] twice: on arrival, to add them into the open
/// interval, and after the close, for the agent's cumulative totals. Nothing
/// on the way to an interval's close allocates or copies them.
#[derive(Debug, Clone, Default)]
pub struct ReceivedHistograms {
    pub latency: Bytes,
    pub errors: Bytes,
    pub schedule_lag: Bytes,
}

/// One report's histograms, decoded into sparse buckets; reused report
/// after report.
#[derive(Debug, Clone, Default)]
pub struct DecodedHistograms {
    pub latency: SparseHistogram,
    pub errors: SparseHistogram,
    pub schedule_lag: SparseHistogram,
}

/// A report's histogram that did not decode: the report is refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{which} histogram: {source}")]
pub struct MalformedHistogram {
    pub which: &'static str,
    pub source: HistogramCodecError,
}

impl DecodedHistograms {
    /// Decodes all three (or fails, and nothing of them should be used).
    pub fn decode(&mut self, r: &ReceivedHistograms) -> Result<(), MalformedHistogram> {
        let each = [
            (&r.latency, &mut self.latency, "latency"),
            (&r.errors, &mut self.errors, "error"),
            (&r.schedule_lag, &mut self.schedule_lag, "schedule lag"),
        ];
        for (bytes, out, which) in each {
            decode_sparse_into(bytes, out)
                .map_err(|source| MalformedHistogram { which, source })?;
        }
        Ok(())
    }
}

/// One agent's report for one interval, checked; its main histograms still
/// encoded ([`ReceivedHistograms`]).
#[derive(Debug, Clone)]
pub struct AgentInterval {
    pub agent_id: Uuid,
    pub index: u32,
    pub start_unix_nanos: i64,
    pub end_unix_nanos: i64,
    pub histograms: ReceivedHistograms,
    pub outcomes: Outcomes,
    pub status_codes: BTreeMap<u16, u64>,
    /// gRPC calls by status code (0 OK ..= 16).
    pub grpc_codes: BTreeMap<u8, u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub last: bool,
    /// With a mix of several requests: each one's figures.
    pub requests: Vec<RequestInterval>,
    /// Model-serving runs: TTFT, ITL, TPOT and tokens (boxed: most runs
    /// have none, and every report moves through the actor's channel).
    pub llm: Option<Box<LlmInterval>>,
    /// Request phase timings and connections opened (absent from agents
    /// that predate them); the histograms are decoded only once the
    /// interval has closed ([`RunMerge::settle`]).
    pub phases: Option<ReceivedPhases>,
    /// Generator health: the agent's CPU time in this interval, and its
    /// worker threads.
    pub cpu_micros: u64,
    pub worker_threads: u32,
}

impl AgentInterval {
    /// Connections this agent opened in the interval.
    pub fn new_connections(&self) -> u64 {
        self.phases.as_ref().map_or(0, |p| p.new_connections)
    }
}

/// An agent interval's model-serving figures.
#[derive(Debug, Clone, Default)]
pub struct LlmInterval {
    pub ttft: SparseHistogram,
    pub itl: SparseHistogram,
    pub itl_per_token: SparseHistogram,
    pub tpot: SparseHistogram,
    pub tokens_per_second: SparseHistogram,
    pub counts: LlmCounts,
}

/// Model-serving counters (see `agent::llm::LlmFigures`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LlmCounts {
    pub output_tokens: u64,
    pub input_tokens: u64,
    pub usage_counted: u64,
    pub chunk_counted: u64,
    pub uncounted: u64,
    pub streamed: u64,
    pub good: u64,
    pub malformed: u64,
    pub truncated: u64,
}

impl LlmCounts {
    pub fn add(&mut self, o: &LlmCounts) {
        self.output_tokens += o.output_tokens;
        self.input_tokens += o.input_tokens;
        self.usage_counted += o.usage_counted;
        self.chunk_counted += o.chunk_counted;
        self.uncounted += o.uncounted;
        self.streamed += o.streamed;
        self.good += o.good;
        self.malformed += o.malformed;
        self.truncated += o.truncated;
    }
}

impl LlmInterval {
    /// Adds another's figures (cumulative totals are kept in this form).
    pub fn add(&mut self, o: &LlmInterval) {
        self.ttft.merge(&o.ttft);
        self.itl.merge(&o.itl);
        self.itl_per_token.merge(&o.itl_per_token);
        self.tpot.merge(&o.tpot);
        self.tokens_per_second.merge(&o.tokens_per_second);
        self.counts.add(&o.counts);
    }
}

/// One request of a mix in one agent interval.
#[derive(Debug, Clone)]
pub struct RequestInterval {
    /// Its index in the scenario's mix.
    pub index: u32,
    pub latency: SparseHistogram,
    pub errors: SparseHistogram,
    pub outcomes: Outcomes,
}

/// One request of a mix, added up over the run (warm-up excluded).
#[derive(Debug, Clone, Default)]
pub struct RequestTotals {
    pub latency: SparseHistogram,
    pub errors: SparseHistogram,
    pub outcomes: Outcomes,
}

impl RequestTotals {
    fn add(&mut self, r: &RequestInterval) {
        self.latency.merge(&r.latency);
        self.errors.merge(&r.errors);
        self.outcomes.add(&r.outcomes);
    }

    /// Full totals, for reports (no status codes or bytes per request).
    pub fn to_totals(&self) -> Totals {
        Totals {
            latency: self.latency.to_histogram(),
            errors: self.errors.to_histogram(),
            outcomes: self.outcomes,
            ..Totals::default()
        }
    }
}

/// Totals kept compact once their interval is closed: histograms encoded
/// (V2 deflate, a few KB) instead of two full bucket arrays (~190 KB each).
#[derive(Debug, Clone)]
pub struct SealedTotals {
    latency: Vec<u8>,
    errors: Vec<u8>,
    schedule_lag: Vec<u8>,
    outcomes: Outcomes,
    status_codes: BTreeMap<u16, u64>,
    grpc_codes: BTreeMap<u8, u64>,
    bytes_received: u64,
    bytes_sent: u64,
    new_connections: u64,
}

impl SealedTotals {
    fn seal(t: &Totals) -> Self {
        // Encoding our own well-formed histogram into a Vec cannot fail.
        let encode = |h| histogram::encode(h, Encoding::Deflate).unwrap_or_default();
        Self {
            latency: encode(&t.latency),
            errors: encode(&t.errors),
            schedule_lag: encode(&t.schedule_lag),
            outcomes: t.outcomes,
            status_codes: t.status_codes.clone(),
            grpc_codes: t.grpc_codes.clone(),
            bytes_received: t.bytes_received,
            bytes_sent: t.bytes_sent,
            new_connections: t.new_connections,
        }
    }

    /// Decodes back into full totals (for reports, or a late report).
    pub fn unseal(&self) -> Totals {
        let decode = |b: &[u8]| histogram::decode(b).unwrap_or_else(|_| new_latency_histogram());
        Totals {
            latency: decode(&self.latency),
            errors: decode(&self.errors),
            schedule_lag: decode(&self.schedule_lag),
            outcomes: self.outcomes,
            status_codes: self.status_codes.clone(),
            grpc_codes: self.grpc_codes.clone(),
            bytes_received: self.bytes_received,
            bytes_sent: self.bytes_sent,
            new_connections: self.new_connections,
        }
    }

    /// The latency histogram, encoded (V2 deflate), as kept.
    pub fn latency_encoded(&self) -> &[u8] {
        &self.latency
    }

    /// Size of the encoded histograms, bytes.
    pub fn encoded_len(&self) -> usize {
        self.latency.len() + self.errors.len() + self.schedule_lag.len()
    }
}

/// A closed interval: global and per-region totals.
#[derive(Debug, Clone)]
pub struct ClosedInterval {
    pub index: u32,
    pub start_unix_nanos: i64,
    pub end_unix_nanos: i64,
    pub global: SealedTotals,
    pub regions: BTreeMap<String, SealedTotals>,
}

/// Histogram storage that agent intervals are added into: dense counts for
/// open intervals (one array add per bucket), sparse buckets or a dense
/// window, whichever is smaller, for per-agent totals (small, however many
/// agents).
pub trait Buckets: Default {
    fn add_sparse(&mut self, sparse: &SparseHistogram);
    fn to_histogram(&self) -> Histogram<u64>;
}

impl Buckets for DenseCounts {
    fn add_sparse(&mut self, sparse: &SparseHistogram) {
        DenseCounts::add_sparse(self, sparse);
    }
    fn to_histogram(&self) -> Histogram<u64> {
        DenseCounts::to_histogram(self)
    }
}

impl Buckets for SparseHistogram {
    fn add_sparse(&mut self, sparse: &SparseHistogram) {
        self.merge(sparse);
    }
    fn to_histogram(&self) -> Histogram<u64> {
        SparseHistogram::to_histogram(self)
    }
}

impl Buckets for CumulativeCounts {
    fn add_sparse(&mut self, sparse: &SparseHistogram) {
        CumulativeCounts::add_sparse(self, sparse);
    }
    fn to_histogram(&self) -> Histogram<u64> {
        CumulativeCounts::to_histogram(self)
    }
}

/// Agent intervals added up, histograms held in `B`.
#[derive(Debug, Clone, Default)]
pub struct Accumulated<B> {
    pub latency: B,
    pub errors: B,
    pub schedule_lag: B,
    pub outcomes: Outcomes,
    pub status_codes: BTreeMap<u16, u64>,
    /// gRPC calls by status code (0 OK ..= 16).
    pub grpc_codes: BTreeMap<u8, u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub new_connections: u64,
}

impl<B: Buckets> Accumulated<B> {
    pub fn add_interval(&mut self, r: &AgentInterval, h: &DecodedHistograms) {
        self.latency.add_sparse(&h.latency);
        self.errors.add_sparse(&h.errors);
        self.schedule_lag.add_sparse(&h.schedule_lag);
        self.outcomes.add(&r.outcomes);
        for (code, n) in &r.status_codes {
            *self.status_codes.entry(*code).or_default() += n;
        }
        for (code, n) in &r.grpc_codes {
            *self.grpc_codes.entry(*code).or_default() += n;
        }
        self.bytes_received += r.bytes_received;
        self.bytes_sent += r.bytes_sent;
        self.new_connections += r.new_connections();
    }

    /// Full totals, for reports and sealing.
    pub fn to_totals(&self) -> Totals {
        Totals {
            latency: self.latency.to_histogram(),
            errors: self.errors.to_histogram(),
            schedule_lag: self.schedule_lag.to_histogram(),
            outcomes: self.outcomes,
            status_codes: self.status_codes.clone(),
            grpc_codes: self.grpc_codes.clone(),
            bytes_received: self.bytes_received,
            bytes_sent: self.bytes_sent,
            new_connections: self.new_connections,
        }
    }
}

/// Totals of an open interval: counts kept dense.
type OpenTotals = Accumulated<DenseCounts>;

/// An interval agents may still report: per-region totals only; its global
/// totals are the regions' sum, added once when it closes.
struct OpenInterval {
    start_unix_nanos: i64,
    end_unix_nanos: i64,
    regions: BTreeMap<String, OpenTotals>,
    /// Reports received for this interval.
    reports: usize,
}

/// An agent's cumulative totals, each histogram kept in the smaller of
/// sparse and dense-window form (`CumulativeCounts`): a thousand agents'
/// full histograms would take ~570 MB; these take tens of KB each, and a
/// latency histogram held as a window takes a report in with one array add
/// per bucket instead of a merge walk over the whole total.
pub type AgentTotals = Accumulated<CumulativeCounts>;

/// Where an agent stands in the run.
#[derive(Debug, Clone)]
pub struct AgentProgress {
    pub region: String,
    pub totals: AgentTotals,
    /// Highest interval index received (agents send in order).
    pub last_index: Option<u32>,
    pub intervals: u32,
    /// Sent its last interval, or is gone: it will report nothing more.
    pub done: bool,
    /// Generator health: CPU time over the run, and the busiest interval's
    /// share of the agent's worker threads (1.0: all of them, all along).
    pub cpu_micros: u64,
    pub peak_cpu_share: f64,
    /// An agent that joined mid-run: intervals up to this one had closed
    /// before it started, and its (empty) reports of them are skipped.
    pub joined_after: Option<u32>,
}

/// The merged state of one run.
///
/// Per report the run actor adds the agent's interval into its region's
/// open interval (dense counts), the only work an interval's closing waits
/// for. The cumulative figures — the agent's own totals (sparse), its
/// region's requests, model-serving figures and phases — are added later,
/// once the interval has closed ([`RunMerge::settle`]). Region and global
/// cumulative totals are sums of closed intervals, added once per interval
/// (and once at the end), not once per report.
pub struct RunMerge {
    /// Cumulative totals per region, warm-up excluded.
    pub regions: BTreeMap<String, Totals>,
    pub agents: BTreeMap<Uuid, AgentProgress>,
    /// Agents not yet done.
    active: usize,
    open: BTreeMap<u32, OpenInterval>,
    closed: Vec<ClosedInterval>,
    /// Highest interval index closed so far: a report above it cannot be
    /// late, so `add` looks through `closed` (one entry per interval of
    /// the run) only for reports that may be.
    closed_through: Option<u32>,
    /// Intervals `0..warmup` are the warm-up: kept as intervals, left out of
    /// every cumulative total.
    warmup: u32,
    /// Per (region, request index of the mix): cumulative figures.
    pub requests: BTreeMap<(String, u32), RequestTotals>,
    /// Per region: cumulative model-serving figures (warm-up excluded).
    pub llm: BTreeMap<String, LlmInterval>,
    /// Per region: cumulative request phase timings (warm-up excluded);
    /// read through [`RunMerge::phases`].
    phases: BTreeMap<String, PhaseTotals>,
    /// Requests in the scenario's mix (reports naming others are refused).
    request_count: u32,
    /// Measured reports whose cumulative figures (per agent; per region:
    /// requests, model-serving, phases) are not added in yet. Closing an
    /// interval needs none of them, so they wait until it is closed
    /// ([`RunMerge::settle`]) instead of lengthening the burst of reports
    /// an interval waits for. At most [`RunMerge::pending_limit`] wait.
    pending: Vec<AgentInterval>,
    /// Where [`RunMerge::settle`] decodes phase histograms (reused).
    phase_scratch: PhaseScratch,
    /// The report being added (or settled), decoded: reused.
    decoded: DecodedHistograms,
    /// Reports whose phase histograms did not decode when settled, until
    /// the run takes them ([`RunMerge::take_dropped_phases`]).
    dropped_phases: Vec<DroppedPhases>,
}

/// A report whose phase histograms were left out of its region's phase
/// figures because one did not decode (its other figures stand).
#[derive(Debug)]
pub struct DroppedPhases {
    pub agent_id: Uuid,
    pub region: String,
    pub index: u32,
    pub error: PhaseDecodeError,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("report from agent {0}, which is not part of this run")]
    UnknownAgent(Uuid),
    #[error("agent {agent} sent interval {index} after interval {previous}")]
    OutOfOrder {
        agent: Uuid,
        index: u32,
        previous: u32,
    },
    #[error("agent {0} reported after its last interval")]
    AfterLast(Uuid),
    #[error("agent {agent} reported request {index}, but the mix has {count}")]
    UnknownRequest { agent: Uuid, index: u32, count: u32 },
    #[error("agent {agent}: {source}")]
    Malformed {
        agent: Uuid,
        source: MalformedHistogram,
    },
}

impl RunMerge {
    /// `agents`: every agent of the run with its region. Intervals below
    /// `warmup_intervals` are the warm-up.
    pub fn new(agents: impl IntoIterator<Item = (Uuid, String)>, warmup_intervals: u32) -> Self {
        Self::with_requests(agents, warmup_intervals, 1)
    }

    /// [`RunMerge::new`] for a mix of `requests` requests.
    pub fn with_requests(
        agents: impl IntoIterator<Item = (Uuid, String)>,
        warmup_intervals: u32,
        requests: u32,
    ) -> Self {
        let mut regions = BTreeMap::new();
        let agents: BTreeMap<Uuid, AgentProgress> = agents
            .into_iter()
            .map(|(id, region)| {
                regions
                    .entry(region.clone())
                    .or_insert_with(Totals::default);
                let progress = AgentProgress {
                    region,
                    totals: AgentTotals::default(),
                    last_index: None,
                    intervals: 0,
                    done: false,
                    cpu_micros: 0,
                    peak_cpu_share: 0.0,
                    joined_after: None,
                };
                (id, progress)
            })
            .collect();
        Self {
            regions,
            active: agents.len(),
            agents,
            open: BTreeMap::new(),
            closed: Vec::new(),
            closed_through: None,
            warmup: warmup_intervals,
            requests: BTreeMap::new(),
            llm: BTreeMap::new(),
            phases: BTreeMap::new(),
            request_count: requests,
            pending: Vec::new(),
            phase_scratch: PhaseScratch::default(),
            decoded: DecodedHistograms::default(),
            dropped_phases: Vec::new(),
        }
    }

    /// Adds the cumulative figures of every report waiting for it (see
    /// `pending`). The run actor calls this once intervals have closed;
    /// [`RunMerge::close_all`] calls it too, so totals read after it are
    /// complete.
    pub fn settle(&mut self) {
        for report in self.pending.drain(..) {
            let Some(agent) = self.agents.get_mut(&report.agent_id) else {
                continue;
            };
            // Decoded once already, on arrival: it cannot fail now, but if
            // it ever did, say so rather than lose its figures unseen.
            if let Err(error) = self.decoded.decode(&report.histograms) {
                tracing::error!(agent = %report.agent_id, index = report.index, %error,
                    "a report that decoded on arrival did not decode again: its cumulative figures are left out");
                continue;
            }
            agent.totals.add_interval(&report, &self.decoded);
            for r in &report.requests {
                self.requests
                    .entry((agent.region.clone(), r.index))
                    .or_default()
                    .add(r);
            }
            if let Some(llm) = &report.llm {
                match self.llm.get_mut(&agent.region) {
                    Some(totals) => totals.add(llm),
                    None => {
                        self.llm
                            .insert(agent.region.clone(), LlmInterval::clone(llm));
                    }
                }
            }
            if let Some(phases) = &report.phases {
                if !self.phases.contains_key(&agent.region) {
                    self.phases
                        .insert(agent.region.clone(), PhaseTotals::default());
                }
                let Some(totals) = self.phases.get_mut(&agent.region) else {
                    continue;
                };
                if let Err(error) = totals.add_received(phases, &mut self.phase_scratch) {
                    self.dropped_phases.push(DroppedPhases {
                        agent_id: report.agent_id,
                        region: agent.region.clone(),
                        index: report.index,
                        error,
                    });
                }
            }
        }
    }

    /// Reports settled since the last call whose phase histograms did not
    /// decode, and were left out (see `merge::phases`): the run records
    /// each as a fault of its agent.
    pub fn take_dropped_phases(&mut self) -> Vec<DroppedPhases> {
        std::mem::take(&mut self.dropped_phases)
    }

    /// Per region: cumulative request phase timings (warm-up excluded),
    /// for the report; regions whose agents sent none are absent.
    pub fn phases(&self) -> BTreeMap<String, PhaseInterval> {
        self.phases
            .iter()
            .map(|(region, totals)| (region.clone(), totals.to_interval()))
            .collect()
    }

    /// Reports waiting for [`RunMerge::settle`].
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Most reports left waiting: two intervals' worth. Past it (an
    /// interval held open by a silent agent) [`RunMerge::add`] settles at
    /// once, so memory stays bounded whatever happens.
    fn pending_limit(&self) -> usize {
        2 * self.agents.len().max(1)
    }

    /// True for an interval of the warm-up.
    pub fn is_warmup(&self, index: u32) -> bool {
        index < self.warmup
    }

    /// Adds one agent interval everywhere it counts, then closes the
    /// intervals no agent can still report.
    pub fn add(&mut self, report: AgentInterval) -> Result<(), MergeError> {
        let agent = self
            .agents
            .get_mut(&report.agent_id)
            .ok_or(MergeError::UnknownAgent(report.agent_id))?;
        if agent.done {
            return Err(MergeError::AfterLast(report.agent_id));
        }
        if agent
            .joined_after
            .is_some_and(|after| report.index <= after)
        {
            // Closed before it joined; its load starts later (nothing due).
            return Ok(());
        }
        if let Some(r) = report
            .requests
            .iter()
            .find(|r| r.index >= self.request_count)
        {
            return Err(MergeError::UnknownRequest {
                agent: report.agent_id,
                index: r.index,
                count: self.request_count,
            });
        }
        if let Some(previous) = agent.last_index {
            if report.index <= previous {
                return Err(MergeError::OutOfOrder {
                    agent: report.agent_id,
                    index: report.index,
                    previous,
                });
            }
        }
        // Decoded here into reused buffers, not on the session task into
        // fresh ones: a burst of a thousand reports allocates and copies
        // nothing on the way to the interval's close. A malformed histogram
        // refuses the report before anything of it is counted.
        self.decoded
            .decode(&report.histograms)
            .map_err(|source| MergeError::Malformed {
                agent: report.agent_id,
                source,
            })?;
        agent.last_index = Some(report.index);
        agent.intervals += 1;
        agent.cpu_micros += report.cpu_micros;
        let span_micros = (report.end_unix_nanos - report.start_unix_nanos).max(1) as f64 / 1e3;
        if report.worker_threads > 0 && !report.last {
            // The last interval runs on past the end (graceful stop): skip it.
            let share = report.cpu_micros as f64 / (span_micros * f64::from(report.worker_threads));
            agent.peak_cpu_share = agent.peak_cpu_share.max(share);
        }
        agent.done = report.last;
        let measured = report.index >= self.warmup;
        if report.last {
            self.active -= 1;
        }
        let region = agent.region.clone();

        let late = if self.closed_through.is_some_and(|c| report.index <= c) {
            self.closed.iter_mut().find(|c| c.index == report.index)
        } else {
            None
        };
        if let Some(closed) = late {
            // Late for an interval already closed (its agent had been given
            // up on): still counted, nothing lost.
            let mut global = closed.global.unseal();
            global.add_interval(&report, &self.decoded);
            closed.global = SealedTotals::seal(&global);
            let mut regional = closed
                .regions
                .get(&region)
                .map(SealedTotals::unseal)
                .unwrap_or_default();
            regional.add_interval(&report, &self.decoded);
            closed
                .regions
                .insert(region.clone(), SealedTotals::seal(&regional));
            // The closed interval is already in the cumulative totals.
            if measured {
                self.regions
                    .entry(region)
                    .or_default()
                    .add_interval(&report, &self.decoded);
            }
        } else {
            let open = self
                .open
                .entry(report.index)
                .or_insert_with(|| OpenInterval {
                    start_unix_nanos: report.start_unix_nanos,
                    end_unix_nanos: report.end_unix_nanos,
                    regions: BTreeMap::new(),
                    reports: 0,
                });
            open.reports += 1;
            open.start_unix_nanos = open.start_unix_nanos.min(report.start_unix_nanos);
            open.end_unix_nanos = open.end_unix_nanos.max(report.end_unix_nanos);
            open.regions
                .entry(region)
                .or_default()
                .add_interval(&report, &self.decoded);
        }
        if measured {
            self.pending.push(report);
            if self.pending.len() > self.pending_limit() {
                self.settle();
            }
        }
        self.close_ready();
        Ok(())
    }

    /// Run-wide totals: the sum of the regions' (exact: histograms added).
    pub fn global(&self) -> Totals {
        let mut global = Totals::default();
        for totals in self.regions.values() {
            global.add(totals);
        }
        global
    }

    /// Adds an agent to a run under way. The intervals closed so far are
    /// not waited for from it; every interval still open is.
    pub fn join(&mut self, agent_id: Uuid, region: &str) {
        let joined_after = self.closed.last().map(|c| c.index);
        self.regions.entry(region.to_owned()).or_default();
        let progress = AgentProgress {
            region: region.to_owned(),
            totals: AgentTotals::default(),
            last_index: joined_after,
            intervals: 0,
            done: false,
            cpu_micros: 0,
            peak_cpu_share: 0.0,
            joined_after,
        };
        if self.agents.insert(agent_id, progress).is_none() {
            self.active += 1;
        }
    }

    /// Marks an agent as reporting nothing more (finished or lost).
    pub fn agent_done(&mut self, agent_id: Uuid) {
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            if !agent.done {
                agent.done = true;
                self.active -= 1;
            }
        }
        self.close_ready();
    }

    /// True when every agent has sent its last interval (or is gone).
    pub fn all_done(&self) -> bool {
        self.agents.values().all(|a| a.done)
    }

    /// Closes every open interval, in order (end of run).
    pub fn close_all(&mut self) {
        while let Some((index, open)) = self.open.pop_first() {
            self.close(index, open);
        }
        self.settle();
    }

    /// Closed intervals so far, in order.
    pub fn intervals(&self) -> &[ClosedInterval] {
        &self.closed
    }

    /// Closes open intervals, oldest first, that every agent still
    /// reporting has already passed.
    fn close_ready(&mut self) {
        while let Some((&index, open)) = self.open.first_key_value() {
            // Cheap necessary condition first: every running agent must have
            // sent this interval, so at least `active` reports are in. Only
            // then scan the agents (about once per interval, not per report).
            if open.reports < self.active {
                return;
            }
            let waiting = self
                .agents
                .values()
                .any(|a| !a.done && a.last_index.is_none_or(|last| last < index));
            if waiting {
                return;
            }
            if let Some((index, open)) = self.open.pop_first() {
                self.close(index, open);
            }
        }
    }

    /// Seals an interval and folds it into the cumulative totals: global
    /// figures are the regions' sum, added here once per interval.
    fn close(&mut self, index: u32, open: OpenInterval) {
        let mut global = Totals::default();
        let mut regions = BTreeMap::new();
        let measured = index >= self.warmup;
        for (region, open_totals) in &open.regions {
            let totals = open_totals.to_totals();
            global.add(&totals);
            let cumulative = self.regions.entry(region.clone()).or_default();
            if measured {
                cumulative.add(&totals);
            }
            regions.insert(region.clone(), SealedTotals::seal(&totals));
        }
        self.closed_through = Some(self.closed_through.map_or(index, |c| c.max(index)));
        self.closed.push(ClosedInterval {
            index,
            start_unix_nanos: open.start_unix_nanos,
            end_unix_nanos: open.end_unix_nanos,
            global: SealedTotals::seal(&global),
            regions,
        });
    }

    /// Agents that have not finished, by region (for progress messages).
    pub fn pending_agents(&self) -> BTreeSet<Uuid> {
        self.agents
            .iter()
            .filter(|(_, a)| !a.done)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests;
