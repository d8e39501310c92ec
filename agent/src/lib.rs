//! Stampede's agent.
