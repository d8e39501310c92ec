//! Stages: how the cluster's load changes over a run (warm-up, ramps,
//! steady holds, spikes, step sweeps), turned into [`Phase`]s — the linear
//! pieces of one global level profile that planning scales to each agent.

use super::file::StageSection;
use super::parse_duration;
use super::validate::FieldError;
use stampede_agent::profile::{LevelProfile, Segment};
use std::time::Duration;

/// Most phases a scenario may have (a step sweep counts one per level).
pub const MAX_PHASES: usize = 1000;

/// What a phase is for; the report labels its figures with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseKind {
    /// Load is sent, results are kept apart and left out of the totals.
    Warmup,
    Ramp,
    Steady,
    /// The peak of a spike.
    Spike,
    /// After a spike, back at the level before it.
    Recover,
    /// One level of a step sweep.
    Step,
}

impl PhaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseKind::Warmup => "warmup",
            PhaseKind::Ramp => "ramp",
            PhaseKind::Steady => "steady",
            PhaseKind::Spike => "spike",
            PhaseKind::Recover => "recover",
            PhaseKind::Step => "step",
        }
    }
}

/// One linear piece of the cluster's load: requests per second (open
/// model) or connections (closed model) going from `from` to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub kind: PhaseKind,
    /// Index of the scenario stage it comes from.
    pub stage: usize,
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

impl Phase {
    /// A short label, e.g. `ramp 100→1000` or `step 2000`.
    pub fn label(&self) -> String {
        let level = |x: f64| {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                format!("{x}")
            }
        };
        if self.from == self.to {
            format!("{} {}", self.kind.as_str(), level(self.to))
        } else {
            format!(
                "{} {}→{}",
                self.kind.as_str(),
                level(self.from),
                level(self.to)
            )
        }
    }

    /// Mean level over the phase.
    pub fn mean(&self) -> f64 {
        (self.from + self.to) / 2.0
    }
}

/// A constant load: one steady phase at `level` (requests/s or connections).
pub fn steady(level: f64, duration: Duration) -> Vec<Phase> {
    vec![Phase {
        kind: PhaseKind::Steady,
        stage: 0,
        duration,
        from: level,
        to: level,
    }]
}

/// The phases as one level profile (what agents are given, scaled).
pub fn profile(phases: &[Phase]) -> LevelProfile {
    let segments = phases
        .iter()
        .map(|p| Segment {
            duration: p.duration,
            from: p.from,
            to: p.to,
        })
        .collect();
    // Validation guarantees phases with durations and sane levels; an empty
    // or broken list can only come from a bug, and yields a flat zero.
    LevelProfile::new(segments).unwrap_or_else(|_| {
        LevelProfile::constant(0.0, Duration::from_secs(1)).unwrap_or_else(|_| unreachable!())
    })
}

/// Which word a stage uses for its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelUnit {
    /// Open model: `rate`, requests per second.
    Rate,
    /// Closed model: `connections`, whole numbers.
    Connections,
}

impl LevelUnit {
    fn field(self) -> &'static str {
        match self {
            LevelUnit::Rate => "rate",
            LevelUnit::Connections => "connections",
        }
    }
}

/// Checks `load.stages` and flattens it into phases.
pub fn phases(stages: &[StageSection], unit: LevelUnit) -> Result<Vec<Phase>, FieldError> {
    if stages.is_empty() {
        return Err(("load.stages".into(), "list at least one stage".into()));
    }
    let mut phases: Vec<Phase> = Vec::new();
    let mut measuring = false;
    for (i, s) in stages.iter().enumerate() {
        let at = |f: &str| format!("load.stages[{i}].{f}");
        let fail = |f: &str, why: String| -> FieldError { (at(f), why) };
        let previous = phases.last().map(|p| p.to);
        let dur = |f: &str, text: &Option<String>| -> Result<Duration, FieldError> {
            let text = text
                .as_deref()
                .ok_or_else(|| fail(f, format!("a {} stage needs `{f}`", s.kind)))?;
            let d = parse_duration(text).map_err(|why| fail(f, why))?;
            if d.is_zero() {
                return Err(fail(f, "must be longer than zero".into()));
            }
            Ok(d)
        };
        let level_of = |f: &str, x: f64| -> Result<f64, FieldError> {
            if !(x.is_finite() && x >= 0.0) {
                return Err(fail(f, format!("{x}: must be zero or a positive number")));
            }
            if unit == LevelUnit::Connections && x.fract() != 0.0 {
                return Err(fail(f, format!("{x}: connections are whole numbers")));
            }
            if unit == LevelUnit::Connections && x > 1_000_000.0 {
                return Err(fail(f, format!("{x}: at most 1000000 connections")));
            }
            Ok(x)
        };
        // The stage's own level: `rate` in the open model, `connections` in
        // the closed one; the other word is a mistake worth naming.
        let level = |required: bool| -> Result<Option<f64>, FieldError> {
            let (given, wrong) = match unit {
                LevelUnit::Rate => (s.rate, s.connections.map(|c| ("connections", c as f64))),
                LevelUnit::Connections => {
                    (s.connections.map(|c| c as f64), s.rate.map(|r| ("rate", r)))
                }
            };
            if let Some((word, _)) = wrong {
                return Err(fail(
                    word,
                    format!("this model's stages set `{}`, not `{word}`", unit.field()),
                ));
            }
            match given {
                Some(x) => level_of(unit.field(), x).map(Some),
                None if required => Err(fail(
                    unit.field(),
                    format!("a {} stage needs `{}`", s.kind, unit.field()),
                )),
                None => Ok(None),
            }
        };
        // Fields that only some kinds take.
        let refuse = |f: &str, present: bool| -> Result<(), FieldError> {
            if present {
                Err(fail(f, format!("a {} stage has no `{f}`", s.kind)))
            } else {
                Ok(())
            }
        };
        let kind = s.kind.as_str();
        if kind != "warmup" {
            measuring = true;
        } else if measuring {
            return Err(fail(
                "kind",
                "warm-up stages come first, before any measured stage".into(),
            ));
        }
        match kind {
            "warmup" | "steady" => {
                refuse("from", s.from.is_some())?;
                refuse("to", s.to.is_some())?;
                refuse("levels", s.levels.is_some())?;
                refuse("hold", s.hold.is_some())?;
                refuse("recover", s.recover.is_some())?;
                let x = level(true)?.unwrap_or_default();
                phases.push(Phase {
                    kind: if kind == "warmup" {
                        PhaseKind::Warmup
                    } else {
                        PhaseKind::Steady
                    },
                    stage: i,
                    duration: dur("duration", &s.duration)?,
                    from: x,
                    to: x,
                });
            }
            "ramp" => {
                refuse(unit.field(), level(false)?.is_some())?;
                refuse("levels", s.levels.is_some())?;
                refuse("hold", s.hold.is_some())?;
                refuse("recover", s.recover.is_some())?;
                let to = s
                    .to
                    .ok_or_else(|| fail("to", "a ramp needs `to`, the level it ends at".into()))?;
                let from = match (s.from, previous) {
                    (Some(from), _) => level_of("from", from)?,
                    (None, Some(previous)) => previous,
                    (None, None) => 0.0,
                };
                phases.push(Phase {
                    kind: PhaseKind::Ramp,
                    stage: i,
                    duration: dur("duration", &s.duration)?,
                    from,
                    to: level_of("to", to)?,
                });
            }
            "spike" => {
                refuse("from", s.from.is_some())?;
                refuse("to", s.to.is_some())?;
                refuse("levels", s.levels.is_some())?;
                refuse("duration", s.duration.is_some())?;
                let base = previous.ok_or_else(|| {
                    fail(
                        "kind",
                        "a spike returns to the level before it: put a stage before it".into(),
                    )
                })?;
                let peak = level(true)?.unwrap_or_default();
                phases.push(Phase {
                    kind: PhaseKind::Spike,
                    stage: i,
                    duration: dur("hold", &s.hold)?,
                    from: peak,
                    to: peak,
                });
                if s.recover.is_some() {
                    phases.push(Phase {
                        kind: PhaseKind::Recover,
                        stage: i,
                        duration: dur("recover", &s.recover)?,
                        from: base,
                        to: base,
                    });
                }
            }
            "step" => {
                refuse(unit.field(), level(false)?.is_some())?;
                refuse("from", s.from.is_some())?;
                refuse("to", s.to.is_some())?;
                refuse("duration", s.duration.is_some())?;
                refuse("recover", s.recover.is_some())?;
                let levels = s.levels.as_deref().unwrap_or_default();
                if levels.is_empty() {
                    return Err(fail(
                        "levels",
                        "a step stage needs `levels`, e.g. [1000, 2000, 4000]".into(),
                    ));
                }
                let hold = dur("hold", &s.hold)?;
                for (k, &x) in levels.iter().enumerate() {
                    let x = level_of(&format!("levels[{k}]"), x)?;
                    phases.push(Phase {
                        kind: PhaseKind::Step,
                        stage: i,
                        duration: hold,
                        from: x,
                        to: x,
                    });
                }
            }
            other => {
                return Err(fail(
                    "kind",
                    format!("{other:?}: expected warmup, ramp, steady, spike or step"),
                ));
            }
        }
        if phases.len() > MAX_PHASES {
            return Err(fail(
                "levels",
                format!("more than {MAX_PHASES} phases in all"),
            ));
        }
    }
    if !measuring {
        return Err((
            "load.stages".into(),
            "only warm-up stages: add a stage whose results are measured".into(),
        ));
    }
    if phases.iter().all(|p| p.from == 0.0 && p.to == 0.0) {
        return Err(("load.stages".into(), "every stage's level is zero".into()));
    }
    Ok(phases)
}

/// Checks that every phase starts and ends on an interval boundary, so each
/// phase's figures (and the warm-up's exclusion) are whole intervals.
pub fn check_alignment(phases: &[Phase], interval: Duration) -> Result<(), FieldError> {
    let mut at = Duration::ZERO;
    for p in phases {
        at += p.duration;
        if at.as_nanos() % interval.as_nanos().max(1) != 0 {
            return Err((
                format!("load.stages[{}]", p.stage),
                format!(
                    "its {} ends {} into the run, not on an interval boundary (every {}); \
                     make stage durations multiples of load.interval",
                    p.kind.as_str(),
                    humantime::format_duration(at),
                    humantime::format_duration(interval)
                ),
            ));
        }
    }
    Ok(())
}
