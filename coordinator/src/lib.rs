//! Stampede's coordinator.
pub mod merge;
pub mod plan;
pub mod scenario;
pub mod wire;
