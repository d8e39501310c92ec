//! Where each request's time went, as k6 splits it: DNS, TCP connect, TLS
//! handshake, time to first byte ("wait") and body transfer — each its own
//! HDR histogram, merged across agents like latency — plus the connections
//! opened and the addresses they went to.
//!
//! With keep-alive most requests open no connection: their connect and TLS
//! phases are not zero, they are absent (the connect and TLS histograms
//! count connections, not requests). DNS is resolved apart from requests
//! (at the start and on every refresh), so its histogram counts lookups.

use crate::recorder::micros;
use hdrhistogram::Histogram;
use stampede_proto::histogram::{RecordClamped, new_latency_histogram};
use std::net::SocketAddr;
use std::time::Duration;

/// Most distinct addresses one interval keeps connection counts for; more
/// are counted in `new_connections` only (a target behind thousands of
/// addresses is a resolver's story, not this report's).
pub const MAX_ADDRESSES: usize = 64;

/// How a new connection was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectTimings {
    pub addr: SocketAddr,
    /// TCP connect.
    pub tcp: Duration,
    /// TLS handshake (https only).
    pub tls: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct PhaseFigures {
    /// Each resolution of the target's name, µs.
    pub dns: Histogram<u64>,
    /// TCP connect of each new connection, µs.
    pub connect: Histogram<u64>,
    /// TLS handshake of each new connection, µs.
    pub tls: Histogram<u64>,
    /// Request written (on a ready connection) to the response's first
    /// byte, µs.
    pub wait: Histogram<u64>,
    /// The response's first byte to its last, µs.
    pub transfer: Histogram<u64>,
    /// Connections opened.
    pub new_connections: u64,
    /// Connections opened, per address, in order of first use.
    pub addresses: Vec<(SocketAddr, u64)>,
}

impl Default for PhaseFigures {
    fn default() -> Self {
        Self {
            dns: new_latency_histogram(),
            connect: new_latency_histogram(),
            tls: new_latency_histogram(),
            wait: new_latency_histogram(),
            transfer: new_latency_histogram(),
            new_connections: 0,
            addresses: Vec::new(),
        }
    }
}

impl PhaseFigures {
    /// A connection was opened.
    pub fn record_connect(&mut self, c: &ConnectTimings) {
        self.connect.record_clamped(micros(c.tcp));
        if let Some(tls) = c.tls {
            self.tls.record_clamped(micros(tls));
        }
        self.count_connections(c.addr, 1);
    }

    /// A response arrived: `wait` to its first byte, `transfer` to its last.
    #[inline]
    pub fn record_response(&mut self, wait: Duration, transfer: Duration) {
        self.wait.record_clamped(micros(wait));
        self.transfer.record_clamped(micros(transfer));
    }

    pub fn record_dns(&mut self, took: Duration) {
        self.dns.record_clamped(micros(took));
    }

    fn count_connections(&mut self, addr: SocketAddr, n: u64) {
        self.new_connections += n;
        if let Some((_, count)) = self.addresses.iter_mut().find(|(a, _)| *a == addr) {
            *count += n;
        } else if self.addresses.len() < MAX_ADDRESSES {
            self.addresses.push((addr, n));
        }
    }

    pub fn merge(&mut self, other: &PhaseFigures) {
        let _ = self.dns.add(&other.dns);
        let _ = self.connect.add(&other.connect);
        let _ = self.tls.add(&other.tls);
        let _ = self.wait.add(&other.wait);
        let _ = self.transfer.add(&other.transfer);
        // `count_connections` adds to `new_connections`; start from the rest.
        let unlisted = other.new_connections - other.addresses.iter().map(|(_, n)| n).sum::<u64>();
        self.new_connections += unlisted;
        for (addr, n) in &other.addresses {
            self.count_connections(*addr, *n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn counts_connections_per_address_and_merges_them() {
        let mut a = PhaseFigures::default();
        let timings = |port| ConnectTimings {
            addr: addr(port),
            tcp: Duration::from_micros(100),
            tls: Some(Duration::from_micros(900)),
        };
        a.record_connect(&timings(1));
        a.record_connect(&timings(2));
        a.record_connect(&timings(1));
        a.record_response(Duration::from_millis(2), Duration::from_micros(5));
        let mut b = PhaseFigures::default();
        b.record_connect(&ConnectTimings {
            tls: None,
            ..timings(2)
        });
        b.record_dns(Duration::from_micros(300));
        a.merge(&b);
        assert_eq!(a.new_connections, 4);
        assert_eq!(a.addresses, vec![(addr(1), 2), (addr(2), 2)]);
        assert_eq!(a.connect.len(), 4);
        assert_eq!(a.tls.len(), 3, "no TLS phase for a plain connection");
        assert_eq!(a.wait.len(), 1);
        assert_eq!(a.dns.len(), 1);
    }

    #[test]
    fn addresses_past_the_limit_are_still_counted() {
        let mut a = PhaseFigures::default();
        for port in 0..(MAX_ADDRESSES as u16 + 10) {
            a.record_connect(&ConnectTimings {
                addr: addr(port),
                tcp: Duration::from_micros(10),
                tls: None,
            });
        }
        assert_eq!(a.addresses.len(), MAX_ADDRESSES);
        assert_eq!(a.new_connections, MAX_ADDRESSES as u64 + 10);
        let mut total = PhaseFigures::default();
        total.merge(&a);
        total.merge(&a);
        assert_eq!(total.new_connections, 2 * (MAX_ADDRESSES as u64 + 10));
    }
}
