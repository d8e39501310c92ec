//! Request phase timings (DNS, connect, TLS, wait, transfer) as the merge
//! holds them: received still encoded, decoded and added up per region only
//! once the report's interval has closed.
//!
//! Only cumulative figures (the report's phase table) need these histograms,
//! and the wait phase is as large as the latency histogram: decoding them on
//! arrival would lengthen the burst of reports every interval close waits
//! for. So the run keeps the bytes the agent sent until
//! [`RunMerge::settle`](super::RunMerge::settle), which decodes them into
//! reused buffers and adds them into the region's dense totals.
//!
//! A phase histogram that does not decode is found after the rest of its
//! report has been merged. Then the report's five phase histograms are left
//! out (all or none, so a region's phases never hold part of a report), its
//! connection counts stay (checked on arrival, and already in the interval's
//! figures), and the run records a fault and a note for that agent: its
//! phase figures are short, never silently wrong.

use stampede_proto::histogram::{self, DenseCounts, HistogramCodecError, SparseHistogram};
use std::collections::BTreeMap;

/// The phases, in the order the arrays below hold them.
pub const PHASE_NAMES: [&str; 5] = ["dns", "connect", "tls", "wait", "transfer"];

/// An agent interval's request phase timings (see `agent::phases`).
#[derive(Debug, Clone, Default)]
pub struct PhaseInterval {
    pub dns: SparseHistogram,
    pub connect: SparseHistogram,
    pub tls: SparseHistogram,
    pub wait: SparseHistogram,
    pub transfer: SparseHistogram,
    pub new_connections: u64,
    /// Connections opened per target address ("ip:port").
    pub addresses: BTreeMap<String, u64>,
}

impl PhaseInterval {
    /// Adds another's figures (cumulative totals are kept in this form).
    pub fn add(&mut self, o: &PhaseInterval) {
        self.dns.merge(&o.dns);
        self.connect.merge(&o.connect);
        self.tls.merge(&o.tls);
        self.wait.merge(&o.wait);
        self.transfer.merge(&o.transfer);
        self.new_connections += o.new_connections;
        add_addresses(&mut self.addresses, &o.addresses);
    }
}

/// An agent interval's phase timings as received: the connection counts
/// checked, the histograms still as the agent encoded them.
#[derive(Debug, Clone, Default)]
pub struct ReceivedPhases {
    /// V2 bytes of each phase, in [`PHASE_NAMES`] order: slices of the
    /// message as received, not copies.
    pub encoded: [bytes::Bytes; 5],
    pub new_connections: u64,
    /// Connections opened per target address ("ip:port").
    pub addresses: BTreeMap<String, u64>,
}

/// A phase histogram of a report that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("{phase} phase histogram: {source}")]
pub struct PhaseDecodeError {
    pub phase: &'static str,
    pub source: HistogramCodecError,
}

/// Buffers phase histograms are decoded into, kept from report to report so
/// settling a fleet's reports allocates nothing once they are large enough.
#[derive(Debug, Default)]
pub struct PhaseScratch([SparseHistogram; 5]);

/// A region's request phase timings added up over the run: dense counts,
/// so each report adds in one array add per bucket, however long the run
/// (a sparse cumulative total would be walked whole by every report).
#[derive(Debug, Clone, Default)]
pub struct PhaseTotals {
    /// In [`PHASE_NAMES`] order.
    histograms: [DenseCounts; 5],
    new_connections: u64,
    addresses: BTreeMap<String, u64>,
}

impl PhaseTotals {
    /// Adds a received report's phases. Its connection counts are added
    /// whatever happens; its histograms only if all five decode (else none
    /// is, and the first that failed is returned).
    pub fn add_received(
        &mut self,
        r: &ReceivedPhases,
        scratch: &mut PhaseScratch,
    ) -> Result<(), PhaseDecodeError> {
        self.new_connections += r.new_connections;
        add_addresses(&mut self.addresses, &r.addresses);
        for ((bytes, buffer), phase) in r.encoded.iter().zip(&mut scratch.0).zip(PHASE_NAMES) {
            histogram::decode_sparse_into(bytes, buffer)
                .map_err(|source| PhaseDecodeError { phase, source })?;
        }
        for (total, decoded) in self.histograms.iter_mut().zip(&scratch.0) {
            total.add_sparse(decoded);
        }
        Ok(())
    }

    pub fn to_interval(&self) -> PhaseInterval {
        let [dns, connect, tls, wait, transfer] = &self.histograms;
        PhaseInterval {
            dns: dns.to_sparse(),
            connect: connect.to_sparse(),
            tls: tls.to_sparse(),
            wait: wait.to_sparse(),
            transfer: transfer.to_sparse(),
            new_connections: self.new_connections,
            addresses: self.addresses.clone(),
        }
    }
}

/// Adds connection counts by address; an address already listed is not
/// cloned again.
fn add_addresses(total: &mut BTreeMap<String, u64>, add: &BTreeMap<String, u64>) {
    for (address, n) in add {
        match total.get_mut(address) {
            Some(t) => *t += n,
            None => {
                total.insert(address.clone(), *n);
            }
        }
    }
}
