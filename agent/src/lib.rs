//! Stampede's agent: receives its slice of a run from the coordinator, drives
//! that load at the target, and streams one interval report (serialized HDR
//! histograms and counts) per interval back.
//!
//! - [`session`]: the gRPC session with the coordinator (register, receive,
//!   report, reconnect); [`tls`]: its TLS settings.
//! - [`allowlist`]: the targets this agent agrees to load.
//! - [`engine`]: worker threads and the per-connection request loop.
//! - [`schedule`]: when each request is due (open model).
//! - [`llm`]: OpenAI-compatible responses and their TTFT, ITL, TPOT, tokens/s.
//! - [`profile`]: a load level over time (stages: ramps, steps, spikes).
//! - [`template`]: `{{column}}` placeholders filled from data rows.
//! - [`recorder`]: where latencies are recorded; [`phases`]: request phase
//!   timings (DNS, connect, TLS, wait, transfer).
//! - [`resolver`]: the target's addresses, resolved per agent and refreshed.
//! - [`plan`]: the engine's view of an assignment; [`wire`] converts to and
//!   from the protocol's types.

pub mod allowlist;
pub mod engine;
pub mod llm;
pub mod phases;
pub mod plan;
pub mod profile;
pub mod recorder;
pub mod resolver;
pub mod schedule;
pub mod session;
pub mod template;
pub mod tls;
pub mod wire;

pub use allowlist::{AllowRule, TargetAllowlist};
pub use session::{AgentConfig, SessionError, run_agent};
pub use tls::ClientTls;
