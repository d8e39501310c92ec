//! A capacity search (`search:` in a scenario): the highest load that meets
//! an SLO. This module turns a level into the scenario of one probe
//! ([`check`] checks the section); `crate::search` drives the probes.
//!
//! ```yaml
//! search:
//!   slo: ["p99 < 250ms", "error_rate < 0.1%"]
//!   min: 100            # requests/s (open model) or connections (closed)
//!   max: 20000
//!   step: 30s           # each probe's measured time
//!   settle: 10s         # each probe's warm-up, left out of its figures
//!   tolerance: 5%       # or an absolute level, e.g. 50
//!   mode: per-region    # or global (default)
//!   base: 200           # per-region: the other regions' level meanwhile
//! ```

mod check;

pub use check::{check_alignment, validate};

use super::stages::{LevelUnit, Phase, PhaseKind};
use super::thresholds::ThresholdScope;
use super::{Model, Scenario, Share, Threshold};
use std::time::Duration;

/// Most probes one search (all its legs) may need, estimated from its range
/// and tolerance; a search beyond it would run for a very long time.
pub const MAX_PROBES: u32 = 100;

/// The warm-up of each probe unless `settle` says otherwise.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);

/// Default for `max_schedule_lag`: past it, the generator is behind.
pub const DEFAULT_MAX_SCHEDULE_LAG: Duration = Duration::from_millis(5);

/// A checked `search:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpec {
    /// A probe passes when every line holds.
    pub slo: Vec<SloLine>,
    /// Requests/s (open model) or connections (closed model).
    pub unit: LevelUnit,
    /// The range searched: per region in per-region mode, else the cluster's.
    pub min: f64,
    pub max: f64,
    /// The first probe's level.
    pub start: f64,
    /// Each probe's measured time.
    pub step: Duration,
    /// Each probe's warm-up, left out of its figures.
    pub settle: Duration,
    pub tolerance: Tolerance,
    pub mode: SearchMode,
    /// Open model: a probe whose schedule lag p99 exceeds this saw the
    /// generator fall behind.
    pub max_schedule_lag: Duration,
}

/// One SLO line.
#[derive(Debug, Clone, PartialEq)]
pub struct SloLine {
    pub threshold: Threshold,
    /// Written with a scope (`global:`, `regions:`, `eu-west:`). Without
    /// one, a per-region search judges the line on the region it searches.
    pub scoped: bool,
}

/// When the search stops: the gap between the highest passing and lowest
/// failing level is under this.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// In the level's unit.
    Absolute(f64),
    /// A fraction of the passing level.
    Relative(f64),
}

impl Tolerance {
    /// The largest gap still worth a probe between `pass` and `fail`.
    pub fn gap(self, pass: f64) -> f64 {
        match self {
            Tolerance::Absolute(x) => x,
            Tolerance::Relative(f) => f * pass,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Tolerance::Absolute(x) => format!("{x}"),
            Tolerance::Relative(f) => format!("{}%", f * 100.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchMode {
    /// One search of the cluster's load, split across regions as usual.
    Global,
    /// One search per region, in scenario order, while the other regions
    /// stay at `base`.
    PerRegion { base: f64 },
}

impl SearchSpec {
    /// What each search leg varies: `None` for the whole cluster, else one
    /// region after another.
    pub fn legs(&self, scenario: &Scenario) -> Vec<Option<String>> {
        match self.mode {
            SearchMode::Global => vec![None],
            SearchMode::PerRegion { .. } => scenario
                .regions
                .iter()
                .map(|r| Some(r.name.clone()))
                .collect(),
        }
    }

    /// The cluster's level when the searched scope is at `level`.
    pub fn total(&self, regions: usize, level: f64) -> f64 {
        match self.mode {
            SearchMode::Global => level,
            SearchMode::PerRegion { base } => level + base * regions.saturating_sub(1) as f64,
        }
    }

    /// The scenario of one probe: `settle` of warm-up, then `step` measured,
    /// both at `level` for `focus` (a region, in per-region mode) or the
    /// cluster; the SLO lines become the probe's thresholds.
    pub fn probe(&self, scenario: &Scenario, focus: Option<&str>, level: f64) -> Scenario {
        let mut probe = scenario.clone();
        let total = self.total(scenario.regions.len(), level);
        if let (SearchMode::PerRegion { base }, Some(focus)) = (self.mode, focus) {
            // Weights in proportion to each region's level make the split exact.
            for region in &mut probe.regions {
                region.share = Share::Weight(if region.name == focus { level } else { base });
            }
        }
        let phases = self.phases(total);
        let load = &mut probe.load;
        match &mut load.model {
            Model::Open { rate, .. } => *rate = total,
            Model::Closed => load.connections = total.round() as u32,
        }
        load.phases = phases;
        load.duration = self.settle + self.step;
        load.staged = false;
        probe.thresholds = self
            .slo
            .iter()
            .map(|line| {
                let mut t = line.threshold.clone();
                if let (false, Some(focus)) = (line.scoped, focus) {
                    t.scope = ThresholdScope::Region(focus.to_owned());
                }
                t
            })
            .collect();
        probe.repeat = 1;
        probe
    }

    /// A probe's phases at the cluster's level `total`: the settling time
    /// (a warm-up), then the measured step.
    pub fn phases(&self, total: f64) -> Vec<Phase> {
        let phase = |kind, duration| Phase {
            kind,
            stage: 0,
            duration,
            from: total,
            to: total,
        };
        let mut phases = Vec::with_capacity(2);
        if !self.settle.is_zero() {
            phases.push(phase(PhaseKind::Warmup, self.settle));
        }
        phases.push(phase(PhaseKind::Steady, self.step));
        phases
    }

    /// Probes one leg may take at most: doubling from `start` to `max`, then
    /// halving the widest gap down to the tolerance (plus the probe at `min`
    /// when `start` fails).
    pub fn probes_per_leg(&self) -> u32 {
        let doublings = (self.max / self.start).log2().ceil().max(0.0) as u32;
        let smallest_gap = match self.unit {
            LevelUnit::Rate => self.tolerance.gap(self.min),
            LevelUnit::Connections => self.tolerance.gap(self.min).max(1.0),
        };
        let widest = (self.max / 2.0).max(self.start - self.min).max(1e-9);
        let halvings = (widest / smallest_gap.max(1e-9)).log2().ceil().max(0.0) as u32;
        (1 + doublings + 1 + halvings).min(u32::MAX / 2)
    }

    /// Describes the search in a line, for `stampede validate`.
    pub fn describe(&self, scenario: &Scenario) -> String {
        let unit = match self.unit {
            LevelUnit::Rate => "req/s",
            LevelUnit::Connections => "connections",
        };
        let legs = self.legs(scenario).len() as u32;
        let probes = self.probes_per_leg().saturating_mul(legs);
        let longest = (self.settle + self.step + scenario.start_delay) * probes;
        let mode = match self.mode {
            SearchMode::Global => "the cluster".to_owned(),
            SearchMode::PerRegion { base } => {
                format!("each region in turn, the others at {base} {unit}")
            }
        };
        format!(
            "capacity search of {mode}: {} to {} {unit}, probes of {} + {} settling, tolerance {}, \
             at most {probes} probes (~{}); SLO: {}",
            self.min,
            self.max,
            humantime::format_duration(self.step),
            humantime::format_duration(self.settle),
            self.tolerance.describe(),
            humantime::format_duration(Duration::from_secs(longest.as_secs())),
            self.slo
                .iter()
                .map(|l| l.threshold.text.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

#[cfg(test)]
mod tests;
