//! The per-interval time series as CSV (RFC 4180): one row per interval and
//! scope, where the scope is `global` or a region, for spreadsheets and
//! plotting scripts.

use super::model::{IntervalFigures, RunReport};
use std::fmt::Write;

pub const HEADER: [&str; 14] = [
    "interval",
    "start_s",
    "end_s",
    "scope",
    "requests",
    "successes",
    "errors",
    "rps",
    "p50_us",
    "p90_us",
    "p99_us",
    "p99_9_us",
    "max_us",
    // Appended last, so scripts reading the columns before it by position
    // keep working.
    "new_connections_per_s",
];

/// Renders the series. Within an interval the global row comes first, then
/// the regions in the report's order; a region that reported nothing in an
/// interval gets a row of zero counts, so every scope has one row per
/// interval. Latency cells are empty when no request succeeded (there is no
/// latency to show, and 0 would read as "instant").
pub fn render(report: &RunReport) -> String {
    let regions = region_order(report);
    let mut out = String::new();
    push_row(&mut out, HEADER.iter().map(|h| h.to_string()));
    for interval in &report.intervals {
        let mut scopes: Vec<(&str, Option<&IntervalFigures>)> =
            vec![("global", Some(&interval.global))];
        scopes.extend(
            regions
                .iter()
                .map(|name| (name.as_str(), interval.regions.get(name))),
        );
        for (scope, figures) in scopes {
            let mut row = vec![
                interval.index.to_string(),
                format!("{:.3}", interval.start_s),
                format!("{:.3}", interval.end_s),
                scope.to_owned(),
            ];
            row.extend(figure_cells(figures));
            push_row(&mut out, row.into_iter());
        }
    }
    out
}

/// The report's regions in its order, then any region that only appears in
/// the intervals (a hand-edited or truncated report), by name.
fn region_order(report: &RunReport) -> Vec<String> {
    let mut names: Vec<String> = report.regions.iter().map(|r| r.name.clone()).collect();
    for interval in &report.intervals {
        for name in interval.regions.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

fn figure_cells(figures: Option<&IntervalFigures>) -> Vec<String> {
    let Some(f) = figures else {
        let mut cells = vec!["0".to_owned(); 3];
        cells.push(format!("{:.3}", 0.0));
        cells.extend(std::iter::repeat_n(String::new(), 5));
        cells.push(format!("{:.3}", 0.0));
        return cells;
    };
    let l = &f.latency_us;
    let latency = |v: u64| {
        if l.count == 0 {
            String::new()
        } else {
            v.to_string()
        }
    };
    vec![
        f.requests.to_string(),
        f.successes.to_string(),
        f.errors.to_string(),
        format!("{:.3}", f.rps),
        latency(l.p50),
        latency(l.p90),
        latency(l.p99),
        latency(l.p99_9),
        latency(l.max),
        format!("{:.3}", f.new_connections_per_second),
    ]
}

fn push_row(out: &mut String, cells: impl Iterator<Item = String>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", quote(&cell));
    }
    // RFC 4180 ends records with CRLF.
    out.push_str("\r\n");
}

/// Quotes a field when it holds a comma, a quote or a line break (RFC 4180
/// §2.6), doubling inner quotes (§2.7).
pub fn quote(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{report, slice};
    use super::*;

    /// A minimal RFC 4180 reader, to check that what we write parses back.
    fn parse(text: &str) -> Vec<Vec<String>> {
        let mut rows = vec![];
        let mut row = vec![];
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') => {}
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        rows
    }

    #[test]
    fn one_row_per_interval_and_scope_with_the_interval_figures() {
        let r = report(&[
            (
                "us-east",
                vec![slice([1000, 2000, 3000], 1), slice([4000], 0)],
            ),
            ("eu-west", vec![slice([40_000], 0)]),
        ]);
        let text = render(&r);
        assert!(text.ends_with("\r\n"));
        let rows = parse(&text);
        assert_eq!(rows[0], HEADER);
        assert_eq!(rows.len(), 1 + 2 * 3, "{text}");
        let scopes: Vec<(&str, &str)> = rows[1..]
            .iter()
            .map(|r| (r[0].as_str(), r[3].as_str()))
            .collect();
        assert_eq!(
            scopes,
            [
                ("0", "global"),
                ("0", "us-east"),
                ("0", "eu-west"),
                ("1", "global"),
                ("1", "us-east"),
                ("1", "eu-west"),
            ]
        );
        // interval 0, us-east: 4 requests, 3 successes, 1 error.
        assert_eq!(
            rows[2][1..8],
            ["0.000", "1.000", "us-east", "4", "3", "1", "4.000"]
        );
        let p50 = r.intervals[0].regions["us-east"].latency_us.p50;
        assert_eq!(rows[2][8], p50.to_string());
        // The global row is the sum of the regions.
        assert_eq!(rows[1][4..7], ["5", "4", "1"]);
        assert_eq!(
            rows[1][12],
            r.intervals[0].global.latency_us.max.to_string()
        );
        // eu-west reported nothing in interval 1: zero counts, no latency.
        assert_eq!(
            rows[6][4..],
            ["0", "0", "0", "0.000", "", "", "", "", "", "0.000"]
        );
    }

    #[test]
    fn awkward_region_names_are_quoted() {
        assert_eq!(quote("us-east"), "us-east");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
        let name = "eu, \"west\"\nfar";
        let text = render(&report(&[(name, vec![slice([1000], 0)])]));
        let rows = parse(&text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2][3], name);
        assert!(rows.iter().all(|r| r.len() == HEADER.len()));
    }
}
