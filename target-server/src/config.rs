//! What a target server is told to do: where to listen, how long to delay, how big a body, when to stall.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::delay::DelaySpec;
use crate::llm::LlmConfig;
use crate::tls::ServerTls;

/// Body size used when nothing else is configured: `ok`.
pub const DEFAULT_BODY_BYTES: usize = 2;

/// Configuration of one target server.
///
/// One server can stand in for several regions at different network distances: a request names its
/// region (see the crate docs) and gets that region's delay.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Address to listen on; port 0 picks a free port (read it back with `TargetServer::local_addr`).
    pub listen: SocketAddr,
    /// Delay for requests that name no region, or a region missing from `region_delays`.
    pub default_delay: DelaySpec,
    /// Delay per region name.
    pub region_delays: BTreeMap<String, DelaySpec>,
    /// Size of every load-path response body in bytes.
    pub body_bytes: usize,
    /// An automatic stall, to test a load generator's coordinated-omission correction.
    pub stall: Option<StallSpec>,
    /// The OpenAI-compatible mock's timing (`/v1/completions`, `/v1/chat/completions`).
    pub llm: LlmConfig,
    /// The whole server's capacity in requests per second: past it requests queue (see the `capacity`
    /// module), so latency rises sharply. `None`: unlimited.
    pub capacity: Option<f64>,
    /// Per region name, that region's own capacity in requests per second (on top of `capacity`).
    pub region_capacities: BTreeMap<String, f64>,
    /// Serve TLS (ALPN h2 and http/1.1) instead of plain HTTP/1.1 and h2c.
    pub tls: Option<ServerTls>,
}

impl Default for TargetConfig {
    /// Loopback on a free port, no delay, no regions, a 2-byte body, no stall, no capacity limit: what
    /// tests want.
    fn default() -> Self {
        TargetConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            default_delay: DelaySpec::default(),
            region_delays: BTreeMap::new(),
            body_bytes: DEFAULT_BODY_BYTES,
            stall: None,
            llm: LlmConfig::default(),
            capacity: None,
            region_capacities: BTreeMap::new(),
            tls: None,
        }
    }
}

/// One automatic stall per server life.
///
/// When the `after_requests`-th load-path request arrives (1-based), a stall window of `duration` opens;
/// every load-path request arriving while it is open, including the one that opened it, is held until it
/// closes. A load generator that measures from when it *sent* rather than from when it *meant to send*
/// will under-report this stall; that is what the stall is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallSpec {
    /// Which arriving request (1-based) opens the stall window; 0 never does.
    pub after_requests: u64,
    /// How long the window stays open.
    pub duration: Duration,
}
