//! Stampede's coordinator, and the `stampede` command line.
//!
//! - [`scenario`]: how a scenario is read and checked.
//! - [`plan`]: how load is split across regions and agents.
//! - [`run`]: the run actor that owns a run's state.
//! - [`service`]: the gRPC face agents talk to; [`cluster`] wires it to a run;
//!   [`tls`]: the server's certificates.
//! - [`merge`]: where histograms are merged.
//! - [`report`]: the JSON report and the terminal table.
//! - [`events`]: what a run tells while it goes; [`live`] shows it on the
//!   terminal, [`metrics`] serves it to Prometheus.
//! - [`demo`], [`bench`]: everything in one process.
//! - [`cli`], [`commands`]: the command line.

pub mod allocator;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod demo;
pub mod events;
pub mod fault_log;
pub mod history;
pub mod live;
pub mod merge;
pub mod metrics;
pub mod plan;
pub mod redistribute;
pub mod report;
pub mod run;
pub mod scenario;
pub mod search;
pub mod serve;
pub mod service;
pub mod tls;
pub mod wire;
