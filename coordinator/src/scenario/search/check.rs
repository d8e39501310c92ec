//! Checks `search:` against the rest of the scenario, naming the field and
//! why, like the rest of the scenario's validation.

use super::{
    DEFAULT_MAX_SCHEDULE_LAG, DEFAULT_SETTLE, MAX_PROBES, SearchMode, SearchSpec, SloLine,
    Tolerance,
};
use crate::scenario::file::{LoadSection, ScenarioFile, SearchSection, ToleranceValue};
use crate::scenario::stages::LevelUnit;
use crate::scenario::thresholds;
use crate::scenario::validate::FieldError;
use crate::scenario::{RegionSpec, parse_duration};
use std::time::Duration;

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
