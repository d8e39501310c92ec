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
mod tables;

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
    let name = escape(&report.scenario.name);
    let values = [
        ("version", escape(&report.tool.version)),
        ("title", format!("{name} · Stampede report")),
        ("style", STYLE.to_owned()),
        ("name", name.clone()),
        ("status", tables::status_badge(report)),
        ("subtitle", tables::subtitle(report)),
        ("notes", tables::notes(report)),
        ("cards", tables::cards(report)),
        ("throughput", charts::throughput(report)),
        ("latency", charts::latency_over_time(report)),
        ("distribution", charts::distribution(report)?),
        ("errors", charts::errors(report)),
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
    use super::super::model::RunStatus;
    use super::*;

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
        r.agents[0].hostname = "<svg onload=alert(2)>".into();
        r.agents[0].zone = "{{style}}".into();
        r.tool.version = "0.1.0\"><script>".into();
        let page = render(&r).expect("renders");
        for raw in ["<script", "<img", "<svg onload", "<b>", "<i>"] {
            assert!(!page.contains(raw), "unescaped {raw:?}");
        }
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("agent &lt;i&gt;x&lt;/i&gt; &amp; &quot;y&quot; was lost"));
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

    #[test]
    fn an_empty_run_still_renders() {
        let r = report(&[("us-east", vec![])]);
        let page = render(&r).expect("renders");
        assert!(page.contains(">no data<"));
    }
}
