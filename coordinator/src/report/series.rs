//! A series (`repeat: N`): the headline figures of every run, and their mean
//! and standard deviation, so a reader can tell a real difference between
//! two versions from run-to-run noise.
//!
//! Each run keeps its own full report (with its merged histograms); the
//! summary only compares runs. Percentiles are never averaged *within* a
//! run: each run's are exact, and the spread across runs is what is shown.

use super::model::{RunReport, ScopeSummary};
use super::table::micros;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeriesSummary {
    pub series_id: String,
    pub scenario: String,
    pub runs: Vec<SeriesRun>,
    /// Whole-run figures across the runs.
    pub global: Headlines,
    pub regions: BTreeMap<String, Headlines>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeriesRun {
    pub run_id: String,
    /// `complete` or `partial`.
    pub status: String,
    /// Where its report was written.
    pub report: String,
}

/// The figures a series compares, each across the runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Headlines {
    pub achieved_rps: Spread,
    /// Failed / completed requests.
    pub error_rate: Spread,
    /// Latency of successful requests, µs.
    pub p50_us: Spread,
    pub p90_us: Spread,
    pub p99_us: Spread,
    pub p99_9_us: Spread,
}

/// One figure over the runs: every value, in run order, and its summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    pub values: Vec<f64>,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for a single run.
    pub stdev: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: Vec<f64>) -> Self {
        let n = values.len() as f64;
        let mean = if values.is_empty() {
            0.0
        } else {
            values.iter().sum::<f64>() / n
        };
        let stdev = if values.len() < 2 {
            0.0
        } else {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self {
            mean,
            stdev,
            min: if values.is_empty() { 0.0 } else { min },
            max: if values.is_empty() { 0.0 } else { max },
            values,
        }
    }
}

fn headlines<'a>(scopes: impl Iterator<Item = &'a ScopeSummary> + Clone) -> Headlines {
    let take = |f: fn(&ScopeSummary) -> f64| Spread::of(scopes.clone().map(f).collect());
    Headlines {
        achieved_rps: take(|s| s.achieved_rps),
        error_rate: take(|s| {
            if s.requests == 0 {
                0.0
            } else {
                s.errors.total as f64 / s.requests as f64
            }
        }),
        p50_us: take(|s| s.latency_us.p50 as f64),
        p90_us: take(|s| s.latency_us.p90 as f64),
        p99_us: take(|s| s.latency_us.p99 as f64),
        p99_9_us: take(|s| s.latency_us.p99_9 as f64),
    }
}

/// Summarizes the runs' reports; `paths` are where each was written.
pub fn summarize(series_id: &str, reports: &[RunReport], paths: &[String]) -> SeriesSummary {
    let mut regions: BTreeMap<String, Headlines> = BTreeMap::new();
    let names: Vec<String> = reports
        .first()
        .map(|r| r.regions.iter().map(|x| x.name.clone()).collect())
        .unwrap_or_default();
    for name in names {
        let scopes: Vec<&ScopeSummary> = reports
            .iter()
            .filter_map(|r| r.regions.iter().find(|x| x.name == name))
            .map(|x| &x.summary)
            .collect();
        regions.insert(name, headlines(scopes.into_iter()));
    }
    SeriesSummary {
        series_id: series_id.to_owned(),
        scenario: reports
            .first()
            .map(|r| r.scenario.name.clone())
            .unwrap_or_default(),
        runs: reports
            .iter()
            .zip(paths)
            .map(|(r, path)| SeriesRun {
                run_id: r.run_id.clone(),
                status: r.status.as_str().into(),
                report: path.clone(),
            })
            .collect(),
        global: headlines(reports.iter().map(|r| &r.global)),
        regions,
    }
}

/// The terminal view: one line per scope, each figure as mean ± sd.
pub fn render(summary: &SeriesSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "series {} \"{}\": {} runs; each figure is mean ± standard deviation over the runs",
        summary.series_id,
        summary.scenario,
        summary.runs.len()
    );
    let latency = |s: &Spread| {
        format!(
            "{} ± {}",
            micros(s.mean.round() as u64),
            micros(s.stdev.round() as u64)
        )
    };
    let mut rows = vec![
        ["scope", "rps", "error rate", "p50", "p90", "p99", "p99.9"]
            .map(str::to_owned)
            .to_vec(),
    ];
    let row = |name: &str, h: &Headlines| {
        vec![
            name.to_owned(),
            format!("{:.1} ± {:.1}", h.achieved_rps.mean, h.achieved_rps.stdev),
            format!(
                "{:.3}% ± {:.3}%",
                h.error_rate.mean * 100.0,
                h.error_rate.stdev * 100.0
            ),
            latency(&h.p50_us),
            latency(&h.p90_us),
            latency(&h.p99_us),
            latency(&h.p99_9_us),
        ]
    };
    for (name, h) in &summary.regions {
        rows.push(row(name, h));
    }
    rows.push(row("global", &summary.global));
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = " ".repeat(widths[c] - cell.chars().count());
            if c == 0 {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_sample_mean_and_deviation() {
        let s = Spread::of(vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(s.mean, 5.0);
        // Sample variance: 32 / 7.
        assert!((s.stdev - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        let one = Spread::of(vec![3.0]);
        assert_eq!((one.mean, one.stdev), (3.0, 0.0));
    }

    #[test]
    fn summarizes_runs_per_scope() {
        let mut a = super::super::fixture::report(&[(
            "eu-west",
            vec![super::super::fixture::slice([1_000, 2_000], 0)],
        )]);
        let mut b = a.clone();
        a.run_id = "a".into();
        b.run_id = "b".into();
        a.global.achieved_rps = 100.0;
        b.global.achieved_rps = 110.0;
        a.global.latency_us.p99 = 1_000;
        b.global.latency_us.p99 = 3_000;
        let s = summarize("s", &[a, b], &["a.json".into(), "b.json".into()]);
        assert_eq!(s.runs.len(), 2);
        assert_eq!(s.global.achieved_rps.mean, 105.0);
        assert_eq!(s.global.p99_us.values, [1_000.0, 3_000.0]);
        assert!((s.global.p99_us.stdev - 2f64.sqrt() * 1_000.0).abs() < 1e-9);
        assert!(s.regions.contains_key("eu-west"));
        let text = render(&s);
        assert!(text.contains("2 runs"), "{text}");
        assert!(text.contains("105.0 ± 7.1"), "{text}");
        assert!(text.contains("2.00ms ± 1.41ms"), "{text}");
    }
}
