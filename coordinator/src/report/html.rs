//! The HTML report: one self-contained file (inline CSS, inline SVG charts
//! drawn here, at report time; no script, no fonts, nothing fetched), so it
//! can be mailed, archived as a CI artifact and opened offline.
//!
//! The page skeleton is `html/template.html` and its look `html/style.css`;
//! [`charts`] and [`tables`] make the content. Every string taken from the
//! report is escaped ([`super::svg::escape`]): a report is input, and a
//! region name, URL or note could carry markup. The page's
//! Content-Security-Policy forbids scripts and any fetch, as a second line
//! of defence and so a browser reports any attempt as an error.

mod charts;
mod sections;
mod tables;
mod trend;

use super::build::HistogramFieldError;
use super::model::RunReport;
use super::svg::escape;
use std::path::Path;

const TEMPLATE: &str = include_str!("html/template.html");
const STYLE: &str = include_str!("html/style.css");

#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    #[error("{scope}: histogram does not decode: {error}")]
    Histogram {
        scope: String,
        error: HistogramFieldError,
    },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

/// Renders the whole page.
pub fn render(report: &RunReport) -> Result<String, HtmlError> {
    render_with_trend(report, &[])
}

/// Renders the whole page with a trend section: the headline figures of
/// the scenario's last runs, this one last (from a coordinator's history).
pub fn render_with_trend(
    report: &RunReport,
    trend: &[crate::history::TrendPoint],
) -> Result<String, HtmlError> {
    let name = escape(&report.scenario.name);
    let values = [
        ("version", escape(&report.tool.version)),
        ("title", format!("{name} · Stampede report")),
        ("style", STYLE.to_owned()),
        ("name", name.clone()),
        ("status", tables::status_badge(report)),
        ("subtitle", tables::subtitle(report)),
        ("notes", tables::notes(report)),
        ("verdict", sections::verdict(report)),
        ("cards", tables::cards(report)),
        ("thresholds", sections::thresholds(report)),
        ("trend", trend::trend(trend)),
        ("time_hint", charts::time_hint(report)),
        ("throughput", charts::throughput(report)),
        ("latency", charts::latency_over_time(report)),
        ("distribution", charts::distribution(report)?),
        ("errors", charts::errors(report)),
        ("stages", sections::stages(report)),
        ("requests", sections::requests(report)),
        ("llm", sections::llm(report)),
        ("matrix", sections::matrix(report)),
        ("phases", sections::phases(report)),
        ("regions", tables::regions(report)),
        ("error_classes", tables::error_classes(report)),
        ("agents", tables::agents(report)),
        ("scenario", tables::scenario(report)),
    ];
    Ok(fill(TEMPLATE, &values))
}

/// Writes the page (to a temporary file, then renamed, so a reader never
/// sees half a page).
pub fn write(report: &RunReport, path: &Path) -> Result<(), HtmlError> {
    let io = |error| HtmlError::Io {
        path: path.display().to_string(),
        error,
    };
    let page = render(report)?;
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, page).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Replaces each `{{key}}` in `template` by its value in one pass: values
/// are never scanned again, so a report string that happens to contain
/// `{{…}}` stays text. Unknown keys are left as they are.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let key = &after[..close];
                match values.iter().find(|(k, _)| *k == key) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[open..open + 2 + close + 2]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{report, slice, spread};
    use super::super::model::{RunStatus, ScopeSummary};
    use super::*;
    use std::collections::BTreeMap;

    fn three_regions() -> RunReport {
        report(&[
            (
                "us-east",
                vec![
                    slice(spread(5000, 7000, 200), 0),
                    slice(spread(5000, 8000, 200), 3),
                ],
            ),
            (
                "eu-west",
                vec![
                    slice(spread(40_000, 44_000, 200), 0),
                    slice(spread(40_000, 45_000, 200), 0),
                ],
            ),
            (
                "ap-south",
                vec![
                    slice(spread(120_000, 125_000, 200), 1),
                    slice(spread(120_000, 130_000, 200), 0),
                ],
            ),
        ])
    }

    #[test]
    fn fill_replaces_known_keys_once_and_leaves_values_alone() {
        let out = fill(
            "<p>{{a}} {{b}} {{unknown}} {{unclosed",
            &[("a", "{{b}}".into()), ("b", "B".into())],
        );
        assert_eq!(out, "<p>{{b}} B {{unknown}} {{unclosed");
    }

    #[test]
    fn phase_timings_get_their_section() {
        let mut r = three_regions();
        assert!(!render(&r).expect("renders").contains("Request phases"));
        let phases = super::super::model::PhaseSummary {
            connect_us: super::super::model::LatencySummary {
                count: 4,
                p50: 1_500,
                p99: 2_500,
                ..Default::default()
            },
            new_connections: 4,
            new_connections_per_second: 0.4,
            requests_per_connection: Some(250.0),
            addresses: vec![super::super::model::AddressUse {
                address: "127.0.0.1:8080".into(),
                connections: 4,
            }],
            ..Default::default()
        };
        r.global.phases = Some(phases.clone());
        r.regions[0].summary.phases = Some(phases);
        let page = render(&r).expect("renders");
        assert!(page.contains("<h2>Request phases</h2>"));
        assert!(page.contains("1.50ms / 2.50ms"), "connect p50 / p99");
        assert!(page.contains("127.0.0.1:8080 (4)"));
        assert!(page.contains("250.0"));
        assert!(!page.contains("{{"));
    }

    #[test]
    fn a_model_serving_run_gets_its_section_and_others_do_not() {
        let plain = render(&three_regions()).expect("renders");
        assert!(!plain.contains("Model serving"));
        let mut r = three_regions();
        let llm = super::super::model::LlmSummary {
            ttft_us: super::super::model::LatencySummary {
                p50: 201_000,
                p99: 240_000,
                ..Default::default()
            },
            output_tokens_per_second: 123.4,
            goodput_rps: 9.5,
            goodput_ratio: 0.95,
            token_count_source: "usage".into(),
            truncated: 2,
            ..Default::default()
        };
        r.global.llm = Some(llm.clone());
        r.regions[0].summary.llm = Some(llm);
        let page = render(&r).expect("renders");
        assert!(page.contains("<h2>Model serving</h2>"));
        assert!(
            page.contains(&crate::report::table::micros(201_000)),
            "TTFT p50 shown"
        );
        assert!(page.contains("123.4"));
        assert!(page.contains("9.5/s (95.0%)"));
        assert!(page.contains("streams cut before their end"));
        assert!(!page.contains("{{"));
    }

    #[test]
    fn every_placeholder_is_filled_and_nothing_is_fetched() {
        let page = render(&three_regions()).expect("renders");
        assert!(!page.contains("{{"), "a placeholder is left");
        assert!(page.starts_with("<!DOCTYPE html>"));
        // Self-contained: no external stylesheet, script, image or font.
        for needle in ["<script", "<link", "src=", "@import", "url("] {
            assert!(!page.contains(needle), "{needle} in the page");
        }
        assert!(page.contains("default-src 'none'"));
    }

    #[test]
    fn the_page_has_every_chart_and_table() {
        let r = three_regions();
        let page = render(&r).expect("renders");
        // throughput + one latency chart per region + distribution + errors
        assert_eq!(page.matches("<svg class=\"chart\"").count(), 1 + 3 + 1 + 1);
        // Every chart plots lines: throughput (global + 3), latency (2 per
        // region), distribution (global + 3), errors (global + 3).
        assert_eq!(page.matches("<path class=\"line").count(), 4 + 6 + 4 + 4);
        for region in ["us-east", "eu-west", "ap-south"] {
            assert!(page.contains(&format!(">{region}</td>")), "{region} row");
        }
        // The agents table names every agent.
        for agent in &r.agents {
            assert!(page.contains(&agent.id), "agent {}", agent.id);
        }
        assert!(page.contains(">99.9%</text>"), "the nines axis");
        assert!(page.contains("http://127.0.0.1:9/"), "the scenario echo");
    }

    #[test]
    fn strings_from_the_report_are_escaped() {
        let mut r = report(&[(
            "<img src=x onerror=alert(1)>",
            vec![slice([1000, 2000], 0), slice([1500], 0)],
        )]);
        r.scenario.name = "</title><script>alert('name')</script>".into();
        r.scenario.url = "http://x/\"><script>alert('url')</script>".into();
        r.scenario
            .region_urls
            .insert("<b>r</b>".into(), "javascript:alert(1)".into());
        r.notes = vec!["agent <i>x</i> & \"y\" was lost".into()];
        r.status = RunStatus::Partial;
        r.faults = vec![crate::report::model::Fault {
            at_s: 2.5,
            kind: "agent_lost".into(),
            agent: Some("<img src=y>".into()),
            region: Some("eu-west".into()),
            detail: "its session ended <b>mid-run</b>".into(),
        }];
        r.agents[0].hostname = "<svg onload=alert(2)>".into();
        r.agents[0].zone = "{{style}}".into();
        r.tool.version = "0.1.0\"><script>".into();
        let page = render(&r).expect("renders");
        for raw in ["<script", "<img", "<svg onload", "<b>", "<i>"] {
            assert!(!page.contains(raw), "unescaped {raw:?}");
        }
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // Faults, when recorded, are listed instead of the notes.
        assert!(page.contains("its session ended &lt;b&gt;mid-run&lt;/b&gt;"));
        assert!(page.contains("+2.5 s"));
        assert!(page.contains("{{style}}"), "a value is not a placeholder");
        assert!(page.contains("badge partial"));
    }

    #[test]
    fn one_region_is_not_drawn_twice() {
        let r = report(&[("local", vec![slice([1000], 1), slice([1200], 0)])]);
        let page = render(&r).expect("renders");
        assert!(
            !page.contains("all regions</span></li>"),
            "no whole-run series"
        );
        // throughput, latency p50 + p99, distribution, errors: one line each
        assert_eq!(page.matches("<path class=\"line").count(), 1 + 2 + 1 + 1);
        assert!(page.contains("class=\"value warn\""), "errors stand out");
    }

    /// Three regions over 6 s: a 2 s warm-up, two steps, a mix of two
    /// requests, thresholds (one failing), run 2 of a series, a data file.
    fn staged_mix() -> RunReport {
        use super::super::model::{RequestReport, SeriesInfo, StageReport, ThresholdResult};
        let mut r = report(&["us-east", "eu-west", "ap-south"].map(|name| {
            let slices = (0..6)
                .map(|i| slice(spread(5_000 + i * 1000, 9_000 + i * 1000, 50), 0))
                .collect();
            (name, slices)
        }));
        r.scenario.model = "open".into();
        r.scenario.warmup_s = 2.0;
        r.scenario.data_file = Some("prompts.jsonl".into());
        r.scenario.data_rows = Some(120);
        r.scenario.data_order = Some("sequential".into());
        for i in &mut r.intervals[..2] {
            i.warmup = true;
        }
        let by_region = |r: &RunReport| -> BTreeMap<String, ScopeSummary> {
            r.regions
                .iter()
                .map(|g| (g.name.clone(), g.summary.clone()))
                .collect()
        };
        let stage = |name: &str, kind: &str, start: f64, level: f64| StageReport {
            name: name.into(),
            kind: kind.into(),
            stage: 0,
            start_s: start,
            end_s: start + 2.0,
            level_from: level,
            level_to: level,
            warmup: kind == "warmup",
            global: r.global.clone(),
            regions: by_region(&r),
        };
        r.stages = vec![
            stage("warmup 100", "warmup", 0.0, 100.0),
            stage("step 200", "step", 2.0, 200.0),
            stage("step 400", "step", 4.0, 400.0),
        ];
        r.requests = ["predict-small", "predict-large"]
            .iter()
            .zip([0.8, 0.2])
            .map(|(name, share)| RequestReport {
                name: (*name).into(),
                method: "POST".into(),
                url: "/v1/models/{{model}}:predict".into(),
                share,
                global: r.global.clone(),
                regions: by_region(&r),
            })
            .collect();
        let verdict =
            |threshold: &str, scope: &str, metric: &str, limit, actual, passed| ThresholdResult {
                threshold: threshold.into(),
                scope: scope.into(),
                metric: metric.into(),
                limit,
                actual,
                passed,
            };
        r.thresholds = vec![
            verdict(
                "p99 < 250ms",
                "global",
                "p99",
                250_000.0,
                Some(14_000.0),
                true,
            ),
            verdict(
                "eu-west: p50 < 1ms",
                "eu-west",
                "p50",
                1_000.0,
                Some(9_000.0),
                false,
            ),
            verdict(
                "error_rate < 0.1%",
                "global",
                "error_rate",
                0.001,
                Some(0.0),
                true,
            ),
        ];
        r.series = Some(SeriesInfo {
            id: "series-7".into(),
            run: 2,
            runs: 3,
        });
        r
    }

    #[test]
    fn stages_mix_thresholds_series_and_data_have_their_sections() {
        let r = staged_mix();
        let page = render(&r).expect("renders");
        // The failed threshold is loud: a banner at the top, a badge, a row.
        let banner = page
            .find("class=\"verdict fail\"")
            .expect("a failure banner");
        assert!(
            banner < page.find("class=\"cards\"").expect("cards"),
            "banner first"
        );
        assert!(page.contains("1 of 3 threshold check(s) failed"));
        assert!(page.contains("<li>eu-west: p50 &lt; 1ms (was 9.00ms)</li>"));
        assert!(page.contains("badge fail\">thresholds failed"));
        assert_eq!(page.matches("<tr class=\"fail\">").count(), 1);
        assert_eq!(page.matches("badge complete\">pass").count(), 2);
        // Stages: a row per phase (the warm-up muted), and per region.
        assert!(page.contains("id=\"stages\""));
        assert!(page.contains("<tr class=\"muted\"><td class=\"text\">warmup 100 (warm-up)</td>"));
        for name in ["step 200", "step 400", "step 400 · ap-south"] {
            assert!(page.contains(&format!(">{name}</td>")), "{name}");
        }
        // The time charts (throughput, 3 latency, errors) shade the warm-up
        // and mark the two steps' starts; the distribution does not.
        assert_eq!(page.matches("<rect class=\"span\"").count(), 5);
        assert_eq!(page.matches("<line class=\"boundary\"").count(), 10);
        assert!(page.contains("Dotted lines mark where each stage starts"));
        // The mix: each request, its share, per region.
        assert!(page.contains("id=\"requests\""));
        assert!(page.contains(">predict-small</td>"));
        assert!(page.contains("<td>80.0%</td>"));
        assert!(page.contains(">predict-large · eu-west</td>"));
        assert!(
            page.contains("/v1/models/{{model}}:predict"),
            "placeholders stay text"
        );
        // Series and data file.
        assert!(page.contains("run 2 of 3 in series <code>series-7</code>"));
        assert!(page.contains("prompts.jsonl, 120 rows, taken in sequential order"));
        assert!(page.contains("left out of every figure"));
    }

    #[test]
    fn a_plain_run_has_none_of_the_optional_sections() {
        let page = render(&three_regions()).expect("renders");
        for needle in [
            "id=\"thresholds\"",
            "id=\"stages\"",
            "id=\"requests\"",
            "class=\"verdict",
            "class=\"marks\"",
            "in series",
            "data file",
        ] {
            assert!(!page.contains(needle), "{needle}");
        }
    }

    #[test]
    fn all_thresholds_passing_says_so_quietly() {
        let mut r = staged_mix();
        for t in &mut r.thresholds {
            t.passed = true;
        }
        let page = render(&r).expect("renders");
        assert!(page.contains("class=\"verdict pass\""));
        assert!(page.contains("All 3 threshold check(s) passed."));
        assert!(!page.contains("badge fail"));
    }

    #[test]
    fn an_empty_run_still_renders() {
        let r = report(&[("us-east", vec![])]);
        let page = render(&r).expect("renders");
        assert!(page.contains(">no data<"));
    }
}
