//! Stampede coordinator.
