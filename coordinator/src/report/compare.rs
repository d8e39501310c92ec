//! `stampede compare BASE NEW`: how each headline figure moved between two
//! runs, for the whole run and each region, and which moves are
//! regressions beyond a threshold (for CI).
//!
//! A latency percentile counts as a regression only when it grew by more
//! than the threshold *and* the two runs' latency distributions differ
//! beyond noise: a Mann-Whitney U test on their merged histograms
//! ([`super::significance`], p < 0.001). Two runs of the same target differ
//! in their tails by chance; a slower target shifts the whole distribution.

use super::model::{RunReport, ScopeSummary};
use super::table::micros;
use serde::Serialize;
use std::fmt::Write;

/// One headline figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// Achieved requests per second.
    Rps,
    /// Failed over completed requests (a fraction, 0–1).
    ErrorRate,
    P50,
    P90,
    P99,
    #[serde(rename = "p99_9")]
    P999,
    Max,
}

impl Figure {
    pub const ALL: [Figure; 7] = [
        Figure::Rps,
        Figure::ErrorRate,
        Figure::P50,
        Figure::P90,
        Figure::P99,
        Figure::P999,
        Figure::Max,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Figure::Rps => "rps",
            Figure::ErrorRate => "error rate",
            Figure::P50 => "p50",
            Figure::P90 => "p90",
            Figure::P99 => "p99",
            Figure::P999 => "p99.9",
            Figure::Max => "max",
        }
    }

    /// Throughput is worse when it falls; everything else when it grows.
    pub fn worse_when_higher(self) -> bool {
        self != Figure::Rps
    }

    /// Whether `--fail-on-regression` gates on this figure: throughput and
    /// the latency percentiles. Not the max (a single request: too noisy to
    /// gate on) and not the error rate (its relative change from zero is
    /// undefined; gate on it with thresholds).
    pub fn gated(self) -> bool {
        matches!(
            self,
            Figure::Rps | Figure::P50 | Figure::P90 | Figure::P99 | Figure::P999
        )
    }

    fn of(self, s: &ScopeSummary) -> f64 {
        let l = &s.latency_us;
        match self {
            Figure::Rps => s.achieved_rps,
            Figure::ErrorRate => {
                if s.requests == 0 {
                    0.0
                } else {
                    s.errors.total as f64 / s.requests as f64
                }
            }
            Figure::P50 => l.p50 as f64,
            Figure::P90 => l.p90 as f64,
            Figure::P99 => l.p99 as f64,
            Figure::P999 => l.p99_9 as f64,
            Figure::Max => l.max as f64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Better,
    Worse,
    Same,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FigureChange {
    pub figure: Figure,
    pub base: f64,
    pub new: f64,
    /// `new - base`, in the figure's unit (req/s, a fraction, µs).
    pub delta: f64,
    /// `delta / base`; absent when the base is zero.
    pub relative: Option<f64>,
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScopeChange {
    /// `global` or a region's name.
    pub scope: String,
    pub figures: Vec<FigureChange>,
    /// Whether NEW's latencies differ from BASE's beyond noise (absent when
    /// either run has no latency samples).
    pub latency_shift: Option<LatencyShift>,
}

/// The Mann-Whitney test of one scope's latency distributions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyShift {
    /// P(a NEW request is slower than a BASE one); 0.5: no shift.
    pub probability_slower: f64,
    pub z: f64,
    /// Beyond noise (two-sided p < 0.001).
    pub significant: bool,
}

/// A gated figure that moved the wrong way by more than the threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    pub scope: String,
    pub figure: Figure,
    pub relative: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRef {
    pub run_id: String,
    pub scenario: String,
    pub started_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub base: RunRef,
    pub new: RunRef,
    /// Global first, then the regions both runs have (in BASE's order).
    pub scopes: Vec<ScopeChange>,
    /// Regions only NEW has.
    pub added_regions: Vec<String>,
    /// Regions only BASE has.
    pub removed_regions: Vec<String>,
    /// `--fail-on-regression`, in percent.
    pub threshold_pct: Option<f64>,
    /// Gated figures beyond the threshold (empty without one).
    pub regressions: Vec<Regression>,
}

pub fn compare(base: &RunReport, new: &RunReport, threshold_pct: Option<f64>) -> Comparison {
    let mut scopes = vec![scope_change("global", &base.global, &new.global)];
    for b in &base.regions {
        if let Some(n) = new.regions.iter().find(|n| n.name == b.name) {
            scopes.push(scope_change(&b.name, &b.summary, &n.summary));
        }
    }
    let names = |r: &RunReport| r.regions.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    let (base_names, new_names) = (names(base), names(new));
    let regressions = threshold_pct.map_or_else(Vec::new, |pct| regressions(&scopes, pct));
    Comparison {
        base: run_ref(base),
        new: run_ref(new),
        scopes,
        added_regions: new_names
            .iter()
            .filter(|n| !base_names.contains(n))
            .cloned()
            .collect(),
        removed_regions: base_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .cloned()
            .collect(),
        threshold_pct,
        regressions,
    }
}

fn run_ref(r: &RunReport) -> RunRef {
    RunRef {
        run_id: r.run_id.clone(),
        scenario: r.scenario.name.clone(),
        started_at: r.started_at.clone(),
    }
}

fn latency_shift(base: &ScopeSummary, new: &ScopeSummary) -> Option<LatencyShift> {
    let b = super::build::decode_base64(&base.latency_histogram).ok()?;
    let n = super::build::decode_base64(&new.latency_histogram).ok()?;
    super::significance::shift(&b, &n).map(|s| LatencyShift {
        probability_slower: s.superiority,
        z: s.z,
        significant: s.significant(),
    })
}

fn scope_change(scope: &str, base: &ScopeSummary, new: &ScopeSummary) -> ScopeChange {
    let figures = Figure::ALL
        .iter()
        .map(|&figure| {
            let (b, n) = (figure.of(base), figure.of(new));
            let delta = n - b;
            let direction = if delta == 0.0 {
                Direction::Same
            } else if (delta > 0.0) == figure.worse_when_higher() {
                Direction::Worse
            } else {
                Direction::Better
            };
            FigureChange {
                figure,
                base: b,
                new: n,
                delta,
                relative: (b != 0.0).then(|| delta / b),
                direction,
            }
        })
        .collect();
    ScopeChange {
        scope: scope.to_owned(),
        figures,
        latency_shift: latency_shift(base, new),
    }
}

fn regressions(scopes: &[ScopeChange], pct: f64) -> Vec<Regression> {
    let limit = pct / 100.0;
    scopes
        .iter()
        .flat_map(|s| {
            // A latency percentile's move counts only if the distributions
            // really differ, NEW being slower.
            let slower = s.latency_shift.is_some_and(|l| l.significant && l.z > 0.0);
            s.figures.iter().filter_map(move |f| {
                let relative = f.relative?;
                let latency = !matches!(f.figure, Figure::Rps | Figure::ErrorRate);
                let beyond = f.figure.gated()
                    && f.direction == Direction::Worse
                    && relative.abs() > limit
                    && (!latency || slower);
                beyond.then(|| Regression {
                    scope: s.scope.clone(),
                    figure: f.figure,
                    relative,
                })
            })
        })
        .collect()
}

impl Regression {
    /// `global p99 +25.0%`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {:+.1}%",
            self.scope,
            self.figure.name(),
            self.relative * 100.0
        )
    }
}

/// The comparison as a terminal table.
pub fn render_table(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "base: run {} \"{}\" started {}",
        c.base.run_id, c.base.scenario, c.base.started_at
    );
    let _ = writeln!(
        out,
        "new:  run {} \"{}\" started {}\n",
        c.new.run_id, c.new.scenario, c.new.started_at
    );
    let mut rows: Vec<[String; 6]> = vec![[
        "scope".into(),
        "figure".into(),
        "base".into(),
        "new".into(),
        "change".into(),
        String::new(),
    ]];
    for s in &c.scopes {
        for (i, f) in s.figures.iter().enumerate() {
            let scope = if i == 0 {
                s.scope.clone()
            } else {
                String::new()
            };
            let flagged = c
                .regressions
                .iter()
                .any(|r| r.scope == s.scope && r.figure == f.figure);
            let mark = match (f.direction, flagged) {
                (_, true) => "worse  REGRESSION",
                (Direction::Worse, false) => "worse",
                (Direction::Better, _) => "better",
                (Direction::Same, _) => "",
            };
            rows.push([
                scope,
                f.figure.name().into(),
                value(f.figure, f.base),
                value(f.figure, f.new),
                change(f),
                mark.into(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            // Names left-aligned, figures right-aligned.
            if i < 2 || i == 5 {
                let _ = write!(line, "{cell}{pad}  ");
            } else {
                let _ = write!(line, "{pad}{cell}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(
        out,
        "\nlatency distributions (Mann-Whitney, every sample; P = chance a new request is slower than a base one):"
    );
    for s in &c.scopes {
        let verdict = match s.latency_shift {
            None => "no samples to compare".to_owned(),
            Some(l) => format!(
                "P = {:.3}, z = {:+.1}: {}",
                l.probability_slower,
                l.z,
                match (l.significant, l.z > 0.0) {
                    (false, _) => "within noise",
                    (true, true) => "slower beyond noise",
                    (true, false) => "faster beyond noise",
                }
            ),
        };
        let _ = writeln!(out, "  {}: {verdict}", s.scope);
    }
    if !c.added_regions.is_empty() {
        let _ = writeln!(out, "\nadded (only in new): {}", c.added_regions.join(", "));
    }
    if !c.removed_regions.is_empty() {
        let _ = writeln!(
            out,
            "\nremoved (only in base): {}",
            c.removed_regions.join(", ")
        );
    }
    if let Some(pct) = c.threshold_pct {
        if c.regressions.is_empty() {
            let _ = writeln!(
                out,
                "\nno regression beyond {pct}% (rps, and p50–p99.9 when the latencies differ beyond noise, are gated)"
            );
        }
    }
    out
}

fn value(figure: Figure, v: f64) -> String {
    match figure {
        Figure::Rps => format!("{v:.1}"),
        Figure::ErrorRate => format!("{:.2}%", v * 100.0),
        _ => micros(v.max(0.0) as u64),
    }
}

fn change(f: &FigureChange) -> String {
    let absolute = match f.figure {
        Figure::Rps => format!("{:+.1}", f.delta),
        Figure::ErrorRate => format!("{:+.2}pp", f.delta * 100.0),
        _ => {
            let sign = if f.delta < 0.0 { "-" } else { "+" };
            let magnitude = micros(f.delta.abs() as u64);
            if f.delta == 0.0 {
                "0".to_owned()
            } else {
                format!("{sign}{magnitude}")
            }
        }
    };
    match f.relative {
        Some(r) => format!("{absolute} ({:+.1}%)", r * 100.0),
        None if f.delta == 0.0 => absolute,
        None => format!("{absolute} (new)"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{report, slice, spread};
    use super::*;

    fn base() -> RunReport {
        report(&[
            ("us-east", vec![slice(spread(5_000, 10_000, 1000), 0)]),
            ("eu-west", vec![slice(spread(40_000, 50_000, 1000), 0)]),
        ])
    }

    fn figure<'a>(c: &'a Comparison, scope: &str, figure: Figure) -> &'a FigureChange {
        c.scopes
            .iter()
            .find(|s| s.scope == scope)
            .and_then(|s| s.figures.iter().find(|f| f.figure == figure))
            .unwrap_or_else(|| panic!("no {scope} {figure:?}"))
    }

    #[test]
    fn identical_runs_change_nothing_and_pass_any_gate() {
        let c = compare(&base(), &base(), Some(0.0));
        assert_eq!(c.scopes.len(), 3);
        for s in &c.scopes {
            for f in &s.figures {
                assert_eq!(f.direction, Direction::Same, "{} {:?}", s.scope, f.figure);
                assert_eq!(f.delta, 0.0);
            }
        }
        assert!(c.regressions.is_empty());
        assert!(render_table(&c).contains("no regression beyond 0%"));
    }

    #[test]
    fn a_slower_region_is_worse_and_gated_beyond_the_threshold() {
        // eu-west 20% slower (and fewer requests), us-east unchanged.
        let new = report(&[
            ("us-east", vec![slice(spread(5_000, 10_000, 1000), 0)]),
            ("eu-west", vec![slice(spread(48_000, 60_000, 800), 0)]),
        ]);
        let c = compare(&base(), &new, Some(10.0));
        let p99 = figure(&c, "eu-west", Figure::P99);
        assert_eq!(p99.direction, Direction::Worse);
        let rel = p99.relative.expect("base is not zero");
        assert!((rel - 0.2).abs() < 0.01, "{rel}");
        assert!((p99.delta - (p99.new - p99.base)).abs() < 1e-9);
        let rps = figure(&c, "eu-west", Figure::Rps);
        assert_eq!(rps.direction, Direction::Worse, "fewer req/s is worse");
        assert!((rps.relative.expect("rps") + 0.2).abs() < 1e-9);
        assert_eq!(
            figure(&c, "us-east", Figure::P99).direction,
            Direction::Same
        );

        let flagged: Vec<String> = c.regressions.iter().map(Regression::describe).collect();
        for expected in ["eu-west rps -20.0%", "eu-west p50 +20.", "eu-west p99 +20."] {
            assert!(
                flagged.iter().any(|f| f.starts_with(expected)),
                "{expected} not in {flagged:?}"
            );
        }
        assert!(
            flagged.iter().all(|f| !f.starts_with("us-east")),
            "{flagged:?}"
        );
        // The global figures moved too (half the requests are slower).
        assert!(
            flagged.iter().any(|f| f.starts_with("global p99")),
            "{flagged:?}"
        );

        // A looser gate lets the same change through.
        assert!(compare(&base(), &new, Some(25.0)).regressions.is_empty());
        // No gate, no regressions listed (the changes are still shown).
        let ungated = compare(&base(), &new, None);
        assert!(ungated.regressions.is_empty());
        let table = render_table(&ungated);
        assert!(table.contains("worse"), "{table}");
        assert!(!table.contains("REGRESSION"), "{table}");
    }

    #[test]
    fn faster_is_better_and_never_a_regression() {
        let new = report(&[
            ("us-east", vec![slice(spread(2_500, 5_000, 1200), 0)]),
            ("eu-west", vec![slice(spread(40_000, 50_000, 1000), 0)]),
        ]);
        let c = compare(&base(), &new, Some(1.0));
        assert_eq!(
            figure(&c, "us-east", Figure::P50).direction,
            Direction::Better
        );
        assert_eq!(
            figure(&c, "us-east", Figure::Rps).direction,
            Direction::Better
        );
        assert!(c.regressions.is_empty(), "{:?}", c.regressions);
    }

    #[test]
    fn errors_and_the_max_are_shown_but_not_gated() {
        let new = report(&[
            ("us-east", vec![slice(spread(5_000, 10_000, 1000), 10)]),
            (
                "eu-west",
                vec![slice(
                    spread(40_000, 50_000, 999).into_iter().chain([900_000]),
                    0,
                )],
            ),
        ]);
        let c = compare(&base(), &new, Some(5.0));
        let errors = figure(&c, "us-east", Figure::ErrorRate);
        assert_eq!(errors.direction, Direction::Worse);
        assert_eq!(errors.relative, None, "from zero errors");
        assert_eq!(
            figure(&c, "eu-west", Figure::Max).direction,
            Direction::Worse
        );
        assert!(
            c.regressions
                .iter()
                .all(|r| !matches!(r.figure, Figure::ErrorRate | Figure::Max)),
            "{:?}",
            c.regressions
        );
        let table = render_table(&c);
        assert!(table.contains("+0.99pp (new)"), "{table}");
    }

    #[test]
    fn regions_in_only_one_run_are_listed_as_added_or_removed() {
        let new = report(&[
            ("us-east", vec![slice(spread(5_000, 10_000, 1000), 0)]),
            ("ap-south", vec![slice(spread(120_000, 130_000, 1000), 0)]),
        ]);
        let c = compare(&base(), &new, None);
        let scopes: Vec<&str> = c.scopes.iter().map(|s| s.scope.as_str()).collect();
        assert_eq!(scopes, ["global", "us-east"]);
        assert_eq!(c.added_regions, ["ap-south"]);
        assert_eq!(c.removed_regions, ["eu-west"]);
        let table = render_table(&c);
        assert!(table.contains("added (only in new): ap-south"), "{table}");
        assert!(table.contains("removed (only in base): eu-west"), "{table}");
    }

    #[test]
    fn json_names_figures_and_directions() {
        let c = compare(&base(), &base(), Some(5.0));
        let v = serde_json::to_value(&c).expect("serializes");
        assert_eq!(v["scopes"][0]["scope"], "global");
        assert_eq!(v["scopes"][0]["figures"][5]["figure"], "p99_9");
        assert_eq!(v["scopes"][0]["figures"][0]["direction"], "same");
        assert_eq!(v["threshold_pct"], 5.0);
        assert!(v["regressions"].as_array().is_some_and(|r| r.is_empty()));
    }
}
