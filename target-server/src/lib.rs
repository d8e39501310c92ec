//! The built-in target: a small, fast HTTP server for load tests to aim at.
//!
//! One plain port serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c); with
//! [`TargetConfig::tls`] it serves TLS instead, offering h2 and http/1.1 by
//! ALPN. Every behaviour below is the same over either version.
//!
//! Stampede needs something to hit that behaves predictably, so that what a test measures is the load
//! generator and not the target. This server answers every request after a configurable delay (fixed, or
//! drawn from a distribution), and one server can stand in for several regions at different network
//! distances. It counts what it served, so tests can check that a load generator lost nothing and counted
//! nothing twice.
//!
//! # Requests
//!
//! * **Region**: the path prefix `/region/<name>` (`/region/eu-west`, `/region/eu-west/any/path?x=1`),
//!   else the header `x-stampede-region: <name>`. A region missing from
//!   [`TargetConfig::region_delays`] gets the default delay but is still counted under its name.
//! * **Load path**: anything outside `/__stampede/`. Answered after the region's delay (and any stall)
//!   with `200`, `content-type: text/plain` and a body of exactly [`TargetConfig::body_bytes`] bytes.
//!   Request bodies are read and discarded so that keep-alive survives POST loads.
//! * **`/status/<code>`** (also under a region prefix, e.g. `/region/us-east/status/503`): the same, but
//!   answered with `<code>` (200..=599; anything else gets 400). Counted as served too.
//! * **`POST /v1/completions`, `POST /v1/chat/completions`** (also under a region prefix): an
//!   OpenAI-compatible mock, streamed as server-sent events with `"stream": true`; see [`LlmConfig`] for
//!   its timing. Counted as served.
//! * **Admin**, never delayed, stalled or counted: `GET /__stampede/stats` returns a JSON
//!   [`StatsSnapshot`]; `POST /__stampede/stall?for=1s` opens a stall window now.
//!
//! # Counting
//!
//! A load-path request is counted when its response is produced, i.e. after its delay; one whose client
//! went away before that is not. Requests naming no region are counted under the region name `""`, so
//! the per-region counts add up to the total.
//!
//! # Capacity
//!
//! [`TargetConfig::capacity`] (and per region [`TargetConfig::region_capacities`]) caps the requests per
//! second served: past the limit, requests wait in arrival order for a free slot before their delay, so
//! latency rises sharply and predictably. A capacity search has a known answer to find.
//!
//! # KServe v2 gRPC mock
//!
//! [`KserveServer`] (`stampede target --kserve`) serves the KServe v2 / Triton inference protocol over
//! plaintext HTTP/2 instead: ModelInfer echoes its inputs after the region's delay, and answers a set
//! share of calls `UNAVAILABLE`, deterministically; see the `kserve` module.
//!
//! # Stalls
//!
//! See [`StallSpec`]: a window during which every arriving load-path request is held until the window
//! closes, to test a load generator's coordinated-omission correction.

mod capacity;
mod config;
mod delay;
mod error;
mod handler;
mod kserve;
mod llm;
mod region;
mod route;
mod server;
mod stall;
mod stats;
mod tls;

pub use capacity::{
    BURST as CAPACITY_BURST, CapacityParseError, MAX_CAPACITY, parse_capacity,
    parse_region_capacity,
};
pub use config::{DEFAULT_BODY_BYTES, StallSpec, TargetConfig};
pub use delay::{DelayParseError, DelaySpec};
pub use error::TargetError;
pub use kserve::{KserveConfig, KserveServer, KserveStats};
pub use llm::LlmConfig;
pub use region::{
    MAX_REGION_NAME_LEN, RegionDelayParseError, check_region_name, parse_region_delay,
};
pub use route::{ADMIN_PATH_PREFIX, REGION_HEADER, REGION_PATH_PREFIX};
pub use server::{SHUTDOWN_GRACE, TargetServer};
pub use stats::{MAX_UNKNOWN_REGIONS, OVERFLOW_REGION, StatsSnapshot, TargetStats};
pub use tls::ServerTls;
