//! The report's charts: which series each one plots, taken from the
//! per-interval figures and the merged histograms, drawn by [`svg`].
//!
//! Colours: the whole run is slot 0 and region *i* (in the report's order)
//! slot 1 + i, the same in every chart.

use super::HtmlError;
use crate::report::build::decode_base64;
use crate::report::model::{IntervalFigures, RunReport};
use crate::report::scale;
use crate::report::svg::{self, Boundary, Chart, Marks, Series, Size, Span, XAxis, escape};
use std::fmt::Write;

/// Step of the distribution curve along the nines axis: 20 points per
/// nine, enough for HDR's 3-significant-digit steps to show.
const NINES_STEP: f64 = 0.05;
/// The distribution axis stops here (99.99999%) whatever the count.
const MAX_NINES: f64 = 7.0;
const SLOTS: usize = 8;

pub(super) fn region_color(index: usize) -> usize {
    1 + index % SLOTS
}

/// The unit the time axis counts in, chosen so ticks stay round numbers.
struct TimeUnit {
    suffix: &'static str,
    seconds: f64,
    label: &'static str,
}

fn time_unit(report: &RunReport) -> TimeUnit {
    let span = report.intervals.iter().map(|i| i.end_s).fold(0.0, f64::max);
    if span <= 300.0 {
        TimeUnit {
            suffix: "s",
            seconds: 1.0,
            label: "seconds into the run",
        }
    } else if span <= 3.0 * 3600.0 {
        TimeUnit {
            suffix: "m",
            seconds: 60.0,
            label: "minutes into the run",
        }
    } else {
        TimeUnit {
            suffix: "h",
            seconds: 3600.0,
            label: "hours into the run",
        }
    }
}

/// One series over time: `value` of each interval that has figures for
/// `scope` (`None`: the whole run), plotted at the interval's middle (the
/// figure describes the whole interval).
fn over_time(
    report: &RunReport,
    unit: &TimeUnit,
    scope: Option<&str>,
    value: impl Fn(&IntervalFigures) -> Option<f64>,
) -> Vec<(f64, f64)> {
    report
        .intervals
        .iter()
        .filter_map(|i| {
            let figures = match scope {
                None => Some(&i.global),
                Some(name) => i.regions.get(name),
            }?;
            let middle = (i.start_s + i.end_s) / 2.0;
            Some((middle / unit.seconds, value(figures)?))
        })
        .collect()
}

/// What the time charts mark: the warm-up, shaded, and where each stage
/// after it starts.
fn time_marks(report: &RunReport, unit: &TimeUnit) -> Marks {
    let mut marks = Marks::default();
    let warmup = report.scenario.warmup_s;
    if warmup > 0.0 {
        marks.spans.push(Span {
            from: 0.0,
            to: warmup / unit.seconds,
            label: "warm-up: not in the totals".into(),
        });
    }
    for stage in report.stages.iter().filter(|s| !s.warmup) {
        marks.boundaries.push(Boundary {
            at: stage.start_s / unit.seconds,
            label: stage.name.clone(),
        });
    }
    marks
}

/// What the time charts' marks mean, for the page's hint (empty without).
pub(super) fn time_hint(report: &RunReport) -> String {
    let mut hint = String::new();
    if report.scenario.warmup_s > 0.0 {
        hint.push_str(
            " The shaded start is the warm-up: its requests were sent, and are left out of every figure.",
        );
    }
    if report.stages.iter().any(|s| !s.warmup) {
        hint.push_str(" Dotted lines mark where each stage starts.");
    }
    hint
}

/// With one region, the whole run's line would hide under the region's.
fn whole_run_differs(report: &RunReport) -> bool {
    report.regions.len() != 1
}

/// The whole run (unless it is the one region) plus each region, one
/// series each.
fn run_and_regions(
    report: &RunReport,
    unit: &TimeUnit,
    value: impl Fn(&IntervalFigures) -> Option<f64> + Copy,
) -> Vec<Series> {
    let mut series = Vec::new();
    if whole_run_differs(report) {
        series.push(Series {
            label: "all regions".into(),
            points: over_time(report, unit, None, value),
            color: 0,
            dashed: false,
        });
    }
    for (i, region) in report.regions.iter().enumerate() {
        series.push(Series {
            label: region.name.clone(),
            points: over_time(report, unit, Some(&region.name), value),
            color: region_color(i),
            dashed: false,
        });
    }
    series
}

pub(super) fn throughput(report: &RunReport) -> String {
    let unit = time_unit(report);
    let marks = time_marks(report, &unit);
    let format = |v: f64| svg::number(v);
    figure(&Chart {
        title: "Throughput over time",
        size: Size::WIDE,
        x: XAxis::Linear { unit: unit.suffix },
        x_label: unit.label,
        y_label: "requests per second",
        y_format: &format,
        y_unit: " req/s",
        y_counts: false,
        series: run_and_regions(report, &unit, |f| Some(f.rps)),
        marks: &marks,
    })
}

pub(super) fn errors(report: &RunReport) -> String {
    let unit = time_unit(report);
    let marks = time_marks(report, &unit);
    let format = |v: f64| svg::number(v);
    let none = if report.global.errors.total == 0 {
        r#"<p class="hint">No request failed in this run.</p>"#
    } else {
        ""
    };
    let chart = figure(&Chart {
        title: "Failed requests per interval",
        size: Size::WIDE,
        x: XAxis::Linear { unit: unit.suffix },
        x_label: unit.label,
        y_label: "failed requests",
        y_format: &format,
        y_unit: " failed",
        y_counts: true,
        series: run_and_regions(report, &unit, |f| Some(f.errors as f64)),
        marks: &marks,
    });
    format!("{none}{chart}")
}

/// One small chart per region: p50 and p99 of each interval.
pub(super) fn latency_over_time(report: &RunReport) -> String {
    let unit = time_unit(report);
    let marks = time_marks(report, &unit);
    let mut out = String::new();
    for (i, region) in report.regions.iter().enumerate() {
        let percentile = |pick: fn(&IntervalFigures) -> u64| {
            over_time(report, &unit, Some(&region.name), move |f| {
                (f.latency_us.count > 0).then(|| pick(f) as f64)
            })
        };
        let title = format!("{}: latency over time", region.name);
        out.push_str(&figure(&Chart {
            title: &title,
            size: Size::NARROW,
            x: XAxis::Linear { unit: unit.suffix },
            x_label: unit.label,
            y_label: "latency",
            y_format: &latency_tick,
            y_unit: "",
            y_counts: false,
            series: vec![
                Series {
                    label: format!("{} p50", region.name),
                    points: percentile(|f| f.latency_us.p50),
                    color: region_color(i),
                    dashed: false,
                },
                Series {
                    label: format!("{} p99", region.name),
                    points: percentile(|f| f.latency_us.p99),
                    color: region_color(i),
                    dashed: true,
                },
            ],
            marks: &marks,
        }));
    }
    out
}

/// The percentile curve of each region's merged histogram (and the whole
/// run's), on the nines axis.
pub(super) fn distribution(report: &RunReport) -> Result<String, HtmlError> {
    let curve = |scope: &str, encoded: &str| -> Result<Vec<(f64, f64)>, HtmlError> {
        let h = decode_base64(encoded).map_err(|error| HtmlError::Histogram {
            scope: scope.to_owned(),
            error,
        })?;
        if h.is_empty() {
            return Ok(vec![]);
        }
        let top = scale::resolvable_nines(h.len()).min(MAX_NINES);
        let steps = (top / NINES_STEP).floor() as usize;
        let mut points: Vec<(f64, f64)> = (0..=steps)
            .map(|k| {
                let n = k as f64 * NINES_STEP;
                (n, h.value_at_quantile(scale::quantile_at(n)) as f64)
            })
            .collect();
        // End the curve at the resolution limit, where it reaches the max.
        if points.last().is_some_and(|(n, _)| *n < top) {
            points.push((top, h.value_at_quantile(scale::quantile_at(top)) as f64));
        }
        Ok(points)
    };
    let mut series = Vec::new();
    if whole_run_differs(report) {
        series.push(Series {
            label: "all regions".into(),
            points: curve("global", &report.global.latency_histogram)?,
            color: 0,
            dashed: true,
        });
    }
    for (i, region) in report.regions.iter().enumerate() {
        series.push(Series {
            label: region.name.clone(),
            points: curve(
                &format!("region {}", region.name),
                &region.summary.latency_histogram,
            )?,
            color: region_color(i),
            dashed: false,
        });
    }
    Ok(figure(&Chart {
        title: "Latency by percentile",
        size: Size::WIDE,
        x: XAxis::Nines,
        x_label: "percentile",
        y_label: "latency",
        y_format: &latency_tick,
        y_unit: "",
        y_counts: false,
        series,
        marks: &Marks::NONE,
    }))
}

/// A chart in a figure, with its legend below it.
pub(super) fn figure(chart: &Chart<'_>) -> String {
    let mut out = format!(
        r#"<figure class="plot"><h3>{}</h3>{}<ul class="legend">"#,
        escape(chart.title),
        svg::render(chart)
    );
    for s in &chart.series {
        let _ = write!(
            out,
            r#"<li class="c{}"><span class="swatch{}"></span><span>{}</span></li>"#,
            s.color,
            if s.dashed { " dashed" } else { "" },
            escape(&s.label)
        );
    }
    out.push_str("</ul></figure>");
    out
}

/// A latency axis tick (µs in, readable unit out): 250µs, 20ms, 1.5s.
fn latency_tick(us: f64) -> String {
    if us == 0.0 {
        "0".to_owned()
    } else if us < 1_000.0 {
        format!("{}µs", svg::number(us))
    } else if us < 1_000_000.0 {
        format!("{}ms", svg::number(us / 1e3))
    } else {
        format!("{}s", svg::number(us / 1e6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_ticks_pick_a_readable_unit() {
        assert_eq!(latency_tick(0.0), "0");
        assert_eq!(latency_tick(250.0), "250µs");
        assert_eq!(latency_tick(20_000.0), "20ms");
        assert_eq!(latency_tick(2_500.0), "2.5ms");
        assert_eq!(latency_tick(1_500_000.0), "1.5s");
    }
}
