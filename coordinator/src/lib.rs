//! Stampede's coordinator.
pub mod plan;
pub mod scenario;
