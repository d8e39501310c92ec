//! A capacity search (`search:` in a scenario): the highest load that meets
//! an SLO. This module checks the section and turns a level into the
//! scenario of one probe; `crate::search` drives the probes.
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

use super::file::{LoadSection, ScenarioFile, SearchSection, ToleranceValue};
use super::stages::{LevelUnit, Phase, PhaseKind};
use super::thresholds::{self, ThresholdScope};
use super::validate::FieldError;
use super::{Model, RegionSpec, Scenario, Share, Threshold, parse_duration};
use std::time::Duration;

/// Most probes one search (all its legs) may need, estimated from its range
/// and tolerance; a search beyond it would run for a very long time.
pub const MAX_PROBES: u32 = 100;

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

fn err<T>(field: impl Into<String>, why: impl Into<String>) -> Result<T, FieldError> {
    Err((field.into(), why.into()))
}

/// Fields the search sets itself, or that make no sense with one.
fn refuse_conflicts(raw: &ScenarioFile, unit: LevelUnit) -> Result<(), FieldError> {
    let l: &LoadSection = &raw.load;
    if l.rate.is_some() {
        return err(
            "load.rate",
            "the search sets the rate of each probe (search.min to search.max): remove load.rate",
        );
    }
    if unit == LevelUnit::Connections && l.connections.is_some() {
        return err(
            "load.connections",
            "in the closed model the search sets the connections of each probe (search.min to search.max): \
             remove load.connections",
        );
    }
    if l.stages.is_some() {
        return err(
            "load.stages",
            "the search sets the load of each probe (search.settle, then search.step): remove load.stages",
        );
    }
    if l.duration.is_some() {
        return err(
            "load.duration",
            "each probe lasts search.settle + search.step: remove load.duration",
        );
    }
    if raw.thresholds.is_some() {
        return err(
            "thresholds",
            "a search judges each probe by search.slo: move these lines there",
        );
    }
    if raw.repeat.is_some() {
        return err(
            "repeat",
            "a search runs as many probes as it needs: remove repeat",
        );
    }
    if let Some(i) = raw.regions.iter().position(|r| r.rate.is_some()) {
        return err(
            format!("regions[{i}].rate"),
            "the search sets each region's load: give the region a weight, or none",
        );
    }
    Ok(())
}

/// Checks `search:` against the rest of the scenario. `unit` follows the
/// model; `regions` are checked already.
pub fn validate(
    section: &SearchSection,
    raw: &ScenarioFile,
    unit: LevelUnit,
    regions: &[RegionSpec],
) -> Result<SearchSpec, FieldError> {
    refuse_conflicts(raw, unit)?;
    let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
    let slo_lines = section.slo.as_deref().unwrap_or_default();
    if slo_lines.is_empty() {
        return err(
            "search.slo",
            "list what each probe must meet, e.g. [\"p99 < 250ms\", \"error_rate < 0.1%\"]",
        );
    }
    let slo = slo_lines
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let threshold =
                thresholds::parse(text, &names).map_err(|why| (format!("search.slo[{i}]"), why))?;
            Ok(SloLine {
                threshold,
                scoped: text.contains(':'),
            })
        })
        .collect::<Result<Vec<_>, FieldError>>()?;

    let mode = match section.mode.as_deref() {
        None | Some("global") => {
            if section.base.is_some() {
                return err(
                    "search.base",
                    "base is the other regions' level in `mode: per-region`; the global search has none",
                );
            }
            SearchMode::Global
        }
        Some("per-region") => {
            if let Some(i) = raw.regions.iter().position(|r| r.weight.is_some()) {
                return err(
                    format!("regions[{i}].weight"),
                    "a per-region search holds the other regions at search.base: remove the weight",
                );
            }
            SearchMode::PerRegion { base: 0.0 }
        }
        Some(other) => {
            return err(
                "search.mode",
                format!("{other:?}: expected `global` or `per-region`"),
            );
        }
    };
    let (what, whole) = match unit {
        LevelUnit::Rate => ("a positive number of requests per second", false),
        LevelUnit::Connections => ("a whole, positive number of connections", true),
    };
    let level = |field: &str, x: Option<f64>| -> Result<f64, FieldError> {
        let x = x.ok_or_else(|| (format!("search.{field}"), format!("give {what}")))?;
        if !(x.is_finite() && x > 0.0) || (whole && x.fract() != 0.0) {
            return err(format!("search.{field}"), format!("{x}: must be {what}"));
        }
        if whole && x > 1_000_000.0 {
            return err(
                format!("search.{field}"),
                format!("{x}: at most 1000000 connections"),
            );
        }
        Ok(x)
    };
    let min = level("min", section.min)?;
    let max = level("max", section.max)?;
    if max < min {
        return err("search.max", format!("{max} is below search.min ({min})"));
    }
    let start = match section.start {
        None => min,
        Some(_) => level("start", section.start)?,
    };
    if !(min..=max).contains(&start) {
        return err(
            "search.start",
            format!("{start} is outside search.min to search.max ({min} to {max})"),
        );
    }
    let mode = match mode {
        SearchMode::PerRegion { .. } => SearchMode::PerRegion {
            base: match section.base {
                None => min,
                Some(_) => level("base", section.base)?,
            },
        },
        global => global,
    };
    // Closed model: every agent needs a connection of its own.
    if unit == LevelUnit::Connections {
        let (field, scope_agents, scope) = match mode {
            SearchMode::Global => (
                "search.min",
                regions.iter().map(|r| r.agents).sum::<u32>(),
                "the cluster's",
            ),
            SearchMode::PerRegion { .. } => (
                "search.min",
                regions.iter().map(|r| r.agents).max().unwrap_or(1),
                "the largest region's",
            ),
        };
        if min < f64::from(scope_agents) {
            return err(
                field,
                format!("{min} connections cannot give each of {scope} {scope_agents} agents one"),
            );
        }
        if let SearchMode::PerRegion { base } = mode {
            if let Some(r) = regions.iter().find(|r| base < f64::from(r.agents)) {
                return err(
                    "search.base",
                    format!(
                        "{base} connections cannot give each of region {}'s {} agents one",
                        r.name, r.agents
                    ),
                );
            }
        }
    }

    let duration = |field: &str, text: &Option<String>| -> Result<Option<Duration>, FieldError> {
        text.as_deref()
            .map(|t| parse_duration(t).map_err(|why| (format!("search.{field}"), why)))
            .transpose()
    };
    let step = duration("step", &section.step)?.ok_or_else(|| {
        (
            "search.step".to_owned(),
            "how long is each probe measured? e.g. 30s".to_owned(),
        )
    })?;
    if step.is_zero() {
        return err("search.step", "must be longer than zero");
    }
    let settle = duration("settle", &section.settle)?.unwrap_or(DEFAULT_SETTLE);
    let tolerance = match &section.tolerance {
        None => Tolerance::Relative(0.05),
        Some(value) => tolerance(value)?,
    };
    let max_schedule_lag = match duration("max_schedule_lag", &section.max_schedule_lag)? {
        None => DEFAULT_MAX_SCHEDULE_LAG,
        Some(d) if d.is_zero() => {
            return err("search.max_schedule_lag", "must be longer than zero");
        }
        Some(_) if unit == LevelUnit::Connections => {
            return err(
                "search.max_schedule_lag",
                "the closed model sends each request as soon as the last one ends: it has no schedule to lag",
            );
        }
        Some(d) => d,
    };
    let spec = SearchSpec {
        slo,
        unit,
        min,
        max,
        start,
        step,
        settle,
        tolerance,
        mode,
        max_schedule_lag,
    };
    let legs = match mode {
        SearchMode::Global => 1,
        SearchMode::PerRegion { .. } => regions.len() as u32,
    };
    let probes = spec.probes_per_leg().saturating_mul(legs);
    if probes > MAX_PROBES {
        return err(
            "search.tolerance",
            format!(
                "this search may need {probes} probes (more than {MAX_PROBES}): narrow search.min to search.max \
                 or widen the tolerance"
            ),
        );
    }
    Ok(spec)
}

/// The warm-up of each probe unless `settle` says otherwise.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);

/// `5%` (of the passing level) or an absolute level, e.g. `50`.
fn tolerance(value: &ToleranceValue) -> Result<Tolerance, FieldError> {
    let field = "search.tolerance";
    let bad = |text: &str| {
        (
            field.to_owned(),
            format!("{text:?}: write a percentage of the level (5%) or an absolute level (50)"),
        )
    };
    let t = match value {
        ToleranceValue::Number(x) => Tolerance::Absolute(*x),
        ToleranceValue::Text(text) => match text.trim().strip_suffix('%') {
            Some(pct) => {
                Tolerance::Relative(pct.trim().parse::<f64>().map_err(|_| bad(text))? / 100.0)
            }
            None => Tolerance::Absolute(text.trim().parse().map_err(|_| bad(text))?),
        },
    };
    match t {
        Tolerance::Absolute(x) if !(x.is_finite() && x > 0.0) => {
            err(field, format!("{x}: must be a positive level"))
        }
        Tolerance::Relative(f) if !(f.is_finite() && f > 0.0 && f < 1.0) => err(
            field,
            format!("{}%: must be between 0% and 100%", f * 100.0),
        ),
        t => Ok(t),
    }
}

/// Each probe's settling time and step must be whole intervals, so the
/// warm-up's exclusion never splits an interval.
pub fn check_alignment(spec: &SearchSpec, interval: Duration) -> Result<(), FieldError> {
    let every = interval.as_nanos().max(1);
    for (field, d) in [("search.settle", spec.settle), ("search.step", spec.step)] {
        if d.as_nanos() % every != 0 {
            return err(
                field,
                format!(
                    "{} is not a whole number of intervals (load.interval is {})",
                    humantime::format_duration(d),
                    humantime::format_duration(interval)
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
