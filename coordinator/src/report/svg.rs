//! A small SVG line chart, rendered once, at report time: axes, grid,
//! one path per series, and per-x hover bands whose native tooltips list
//! every series' value there (no script needed).
//!
//! Series are told apart by a colour slot (`c0`, `c1`, …, styled by the
//! report's CSS) and optionally a dash, so the page stays readable printed
//! in grey. Every label is escaped: they come from the report, which is
//! input.

use super::scale::{self, Linear};
use std::fmt::Write;

const LEFT: f64 = 64.0;
/// Room for the last x tick's label, centred on the right edge.
const RIGHT: f64 = 28.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;
/// Beyond this many distinct x positions, hover bands are thinned (each
/// band then shows the values at its first position).
const MAX_BANDS: usize = 720;

#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// Points in increasing x.
    pub points: Vec<(f64, f64)>,
    /// Colour slot (the CSS class `c{color}`).
    pub color: usize,
    pub dashed: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum XAxis {
    /// A linear axis; the ticks are labelled `{value}{unit}`.
    Linear { unit: &'static str },
    /// The percentile axis (x in nines, see [`scale::nines`]).
    Nines,
}

/// The chart's size in SVG units. The page scales a chart to its column,
/// so pick the size it will be shown at: text then keeps its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size {
    pub width: f64,
    pub height: f64,
}

impl Size {
    /// A chart across the page.
    pub const WIDE: Size = Size {
        width: 1160.0,
        height: 300.0,
    };
    /// One of two charts side by side.
    pub const NARROW: Size = Size {
        width: 570.0,
        height: 240.0,
    };
}

/// What a time chart marks behind its lines: shaded spans (the warm-up)
/// and labelled boundaries (where each stage starts), in x units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    pub spans: Vec<Span>,
    pub boundaries: Vec<Boundary>,
}

impl Marks {
    /// Nothing marked.
    pub const NONE: Marks = Marks {
        spans: Vec::new(),
        boundaries: Vec::new(),
    };
}

#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Boundary {
    pub at: f64,
    /// What starts here.
    pub label: String,
}

/// Roughly how wide a mark's label is per character, in SVG units at the
/// chart's 10px mark font: to leave out labels that would overlap.
const MARK_CHAR_WIDTH: f64 = 5.6;

pub struct Chart<'a> {
    /// Text for screen readers and the SVG's own title.
    pub title: &'a str,
    pub size: Size,
    pub x: XAxis,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Formats a y value (tick labels and tooltips).
    pub y_format: &'a dyn Fn(f64) -> String,
    /// Appended to y values in tooltips (" req/s"), where ticks leave the
    /// unit to the axis label.
    pub y_unit: &'a str,
    /// The y values are counts: ticks at whole numbers only.
    pub y_counts: bool,
    pub series: Vec<Series>,
    /// Drawn behind the series.
    pub marks: &'a Marks,
}

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders the chart as an inline `<svg class="chart">`.
pub fn render(chart: &Chart<'_>) -> String {
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let (x_lo, x_hi) = bounds(points().map(|p| p.0));
    let (_, y_hi) = bounds(points().map(|p| p.1));
    let x_axis = match chart.x {
        XAxis::Linear { .. } => Linear::nice(x_lo.min(0.0), x_hi, 6),
        XAxis::Nines => scale::nines_axis(x_hi),
    };
    // Rates, counts and latencies all start at zero: an axis that does not
    // would make small wobbles look like cliffs.
    let min_step = if chart.y_counts { 1.0 } else { 0.0 };
    let y_axis = Linear::nice_with_min_step(0.0, y_hi.max(0.0), 5, min_step);
    let plot = Plot {
        x: &x_axis,
        y: &y_axis,
        width: chart.size.width,
        height: chart.size.height,
    };

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        plot.width,
        plot.height,
        t = escape(chart.title)
    );
    grid(&mut svg, chart, &plot);
    marks(&mut svg, chart.marks, &plot);
    if chart.series.iter().all(|s| s.points.is_empty()) {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{}" y="{}" text-anchor="middle">no data</text>"#,
            LEFT + (plot.width - LEFT - RIGHT) / 2.0,
            TOP + (plot.height - TOP - BOTTOM) / 2.0
        );
    }
    for s in &chart.series {
        series(&mut svg, s, &plot);
    }
    hover_bands(&mut svg, chart, &plot);
    svg.push_str("</svg>");
    svg
}

/// The plot area's mapping from data to pixels.
struct Plot<'a> {
    x: &'a Linear,
    y: &'a Linear,
    width: f64,
    height: f64,
}

impl Plot<'_> {
    fn px(&self, x: f64) -> f64 {
        LEFT + self.x.fraction(x).clamp(0.0, 1.0) * (self.width - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        self.height - BOTTOM - self.y.fraction(y).clamp(0.0, 1.0) * (self.height - TOP - BOTTOM)
    }
}

/// The finite min and max of `values` (0, 0 when there are none).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        })
        .unwrap_or((0.0, 0.0))
}

fn grid(svg: &mut String, chart: &Chart<'_>, plot: &Plot<'_>) {
    let bottom = plot.height - BOTTOM;
    svg.push_str(r#"<g class="grid">"#);
    for &t in &plot.y.ticks {
        let y = plot.py(t);
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            plot.width - RIGHT,
            LEFT - 6.0,
            y + 3.5,
            escape(&(chart.y_format)(t))
        );
    }
    for &t in &plot.x.ticks {
        let x = plot.px(t);
        let label = match chart.x {
            XAxis::Linear { unit } => format!("{}{unit}", number(t)),
            XAxis::Nines => scale::nines_label(t),
        };
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{bottom}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 14.0,
            escape(&label)
        );
    }
    let _ = write!(
        svg,
        r#"</g><line class="axis" x1="{LEFT}" x2="{}" y1="{bottom}" y2="{bottom}"/><text class="axis-label" x="{}" y="{}" text-anchor="middle">{}</text><text class="axis-label" transform="translate(14 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        plot.width - RIGHT,
        LEFT + (plot.width - LEFT - RIGHT) / 2.0,
        plot.height - 6.0,
        escape(chart.x_label),
        TOP + (plot.height - TOP - BOTTOM) / 2.0,
        escape(chart.y_label)
    );
}

/// Shaded spans, then boundary lines, each labelled at the top of the plot
/// when its label fits before the next mark.
fn marks(svg: &mut String, marks: &Marks, plot: &Plot<'_>) {
    if marks.spans.is_empty() && marks.boundaries.is_empty() {
        return;
    }
    let (top, bottom) = (TOP, plot.height - BOTTOM);
    let right_edge = plot.width - RIGHT;
    svg.push_str(r#"<g class="marks">"#);
    for span in &marks.spans {
        let (x1, x2) = (plot.px(span.from), plot.px(span.to));
        let _ = write!(
            svg,
            r#"<rect class="span" x="{x1:.1}" y="{top}" width="{:.1}" height="{:.1}"><title>{l}</title></rect>"#,
            (x2 - x1).max(0.0),
            bottom - top,
            l = escape(&span.label)
        );
        if (x2 - x1) >= label_width(&span.label) {
            let _ = write!(
                svg,
                r#"<text class="mark-label" x="{:.1}" y="{:.1}">{}</text>"#,
                x1 + 4.0,
                top + 11.0,
                escape(&span.label)
            );
        }
    }
    for (i, b) in marks.boundaries.iter().enumerate() {
        let x = plot.px(b.at);
        let next = marks
            .boundaries
            .get(i + 1)
            .map_or(right_edge, |n| plot.px(n.at));
        let _ = write!(
            svg,
            r#"<line class="boundary" x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{bottom}"><title>{}</title></line>"#,
            escape(&b.label)
        );
        if next - x >= label_width(&b.label) {
            let _ = write!(
                svg,
                r#"<text class="mark-label" x="{:.1}" y="{:.1}">{}</text>"#,
                x + 4.0,
                top + 22.0,
                escape(&b.label)
            );
        }
    }
    svg.push_str("</g>");
}

fn label_width(label: &str) -> f64 {
    8.0 + MARK_CHAR_WIDTH * label.chars().count() as f64
}

fn series(svg: &mut String, s: &Series, plot: &Plot<'_>) {
    let finite: Vec<(f64, f64)> = s
        .points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let dash = if s.dashed { " dashed" } else { "" };
    match finite.as_slice() {
        [] => {}
        // One point draws no line: mark it instead.
        [(x, y)] => {
            let _ = write!(
                svg,
                r#"<circle class="line c{} dot" cx="{:.1}" cy="{:.1}" r="3"><title>{}</title></circle>"#,
                s.color,
                plot.px(*x),
                plot.py(*y),
                escape(&s.label)
            );
        }
        _ => {
            let mut d = String::with_capacity(finite.len() * 14);
            for (i, (x, y)) in finite.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1}",
                    if i == 0 { "M" } else { "L" },
                    plot.px(*x),
                    plot.py(*y)
                );
            }
            let _ = write!(
                svg,
                r#"<path class="line c{}{dash}" d="{d}"><title>{}</title></path>"#,
                s.color,
                escape(&s.label)
            );
        }
    }
}

/// One transparent band per x position (thinned past [`MAX_BANDS`]); its
/// tooltip lists every series' value at that x.
fn hover_bands(svg: &mut String, chart: &Chart<'_>, plot: &Plot<'_>) {
    let mut xs: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| x.is_finite())
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    if xs.is_empty() {
        return;
    }
    let stride = xs.len().div_ceil(MAX_BANDS);
    let shown: Vec<f64> = xs.iter().step_by(stride).copied().collect();
    svg.push_str(r#"<g class="hover">"#);
    for (i, &x) in shown.iter().enumerate() {
        // A band spans halfway to each neighbour.
        let left = if i == 0 {
            LEFT
        } else {
            (plot.px(shown[i - 1]) + plot.px(x)) / 2.0
        };
        let right = shown.get(i + 1).map_or(plot.width - RIGHT, |next| {
            (plot.px(x) + plot.px(*next)) / 2.0
        });
        let mut tip = match chart.x {
            XAxis::Linear { unit } => format!("{}{unit}", number(x)),
            XAxis::Nines => format!("percentile {}", percent(scale::quantile_at(x))),
        };
        for s in &chart.series {
            if let Some(y) = value_at(&s.points, x) {
                let _ = write!(
                    tip,
                    "\n{}: {}{}",
                    s.label,
                    (chart.y_format)(y),
                    chart.y_unit
                );
            }
        }
        let _ = write!(
            svg,
            r#"<rect x="{left:.1}" y="{TOP}" width="{:.1}" height="{}"><title>{}</title></rect>"#,
            (right - left).max(0.5),
            plot.height - TOP - BOTTOM,
            escape(&tip)
        );
    }
    svg.push_str("</g>");
}

/// The y of the point at `x` (points are sorted by x).
fn value_at(points: &[(f64, f64)], x: f64) -> Option<f64> {
    let i = points.partition_point(|p| p.0 < x - 1e-9);
    points
        .get(i)
        .filter(|p| (p.0 - x).abs() < 1e-9)
        .map(|p| p.1)
}

/// A tick value without float noise or needless decimals.
pub fn number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// A quantile as a percentage with the digits that matter (99.99%).
pub fn percent(q: f64) -> String {
    let p = q * 100.0;
    // Float noise (nines(0.999) = 3.0000000000000013) must not add a digit.
    let digits = ((scale::nines(q) - 1e-6).ceil().max(0.0) as usize)
        .saturating_sub(2)
        .min(6);
    format!("{p:.digits$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>, x: XAxis) -> String {
        let fmt = |v: f64| format!("{v}ms");
        render(&Chart {
            title: "t",
            size: Size::WIDE,
            x,
            x_label: "time",
            y_label: "latency",
            y_format: &fmt,
            y_unit: "",
            y_counts: false,
            series,
            marks: &Marks::NONE,
        })
    }

    fn line(label: &str, points: &[(f64, f64)]) -> Series {
        Series {
            label: label.into(),
            points: points.to_vec(),
            color: 0,
            dashed: false,
        }
    }

    /// The `d` attribute of every plotted path, as (x, y) pixel pairs.
    fn paths(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.split(r#" d=""#)
            .skip(1)
            .map(|rest| {
                let d = &rest[..rest.find('"').expect("closing quote")];
                d.split(['M', 'L'])
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (x, y) = p.split_once(' ').expect("x y");
                        (x.parse().expect("x"), y.parse().expect("y"))
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn points_map_into_the_plot_area_with_y_growing_upwards() {
        let svg = chart(
            vec![line("a", &[(0.0, 0.0), (5.0, 50.0), (10.0, 100.0)])],
            XAxis::Linear { unit: "s" },
        );
        let p = &paths(&svg)[0];
        assert_eq!(p.len(), 3);
        // x from the left edge of the plot to the right one.
        assert_eq!(p[0].0, LEFT);
        let Size { width, height } = Size::WIDE;
        assert_eq!(p[2].0, width - RIGHT);
        assert!((p[1].0 - (LEFT + width - RIGHT) / 2.0).abs() < 0.1);
        // y: zero on the bottom axis, the maximum at the top.
        assert_eq!(p[0].1, height - BOTTOM);
        assert_eq!(p[2].1, TOP);
        assert!(svg.contains(">10s</text>"), "{svg}");
    }

    #[test]
    fn the_nines_axis_puts_99_percent_twice_as_far_as_90() {
        let points = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)];
        let svg = chart(vec![line("d", &points)], XAxis::Nines);
        let p = &paths(&svg)[0];
        let step = p[1].0 - p[0].0;
        assert!((p[2].0 - p[0].0 - 2.0 * step).abs() < 0.2, "{p:?}");
        for label in [">0%<", ">90%<", ">99%<", ">99.9%<"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(
            svg.contains("percentile 99.9%"),
            "tooltip names the percentile"
        );
    }

    #[test]
    fn labels_are_escaped_and_each_x_gets_a_tooltip() {
        let svg = chart(
            vec![
                line("<script>alert(1)</script>", &[(0.0, 1.0), (1.0, 2.0)]),
                line("b & \"c\"", &[(1.0, 3.0)]),
            ],
            XAxis::Linear { unit: "s" },
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("b &amp; &quot;c&quot;: 3ms"));
        assert_eq!(svg.matches("<rect ").count(), 2);
        // The one-point series is drawn as a dot.
        assert!(svg.contains("<circle class=\"line c0 dot\""));
    }

    #[test]
    fn an_empty_chart_says_so_and_long_series_are_thinned() {
        let svg = chart(vec![line("none", &[])], XAxis::Linear { unit: "s" });
        assert!(svg.contains(">no data<"));
        assert!(paths(&svg).is_empty());

        let long: Vec<(f64, f64)> = (0..3600).map(|i| (f64::from(i), 1.0)).collect();
        let svg = chart(vec![line("long", &long)], XAxis::Linear { unit: "s" });
        assert_eq!(paths(&svg)[0].len(), 3600, "every point is drawn");
        assert!(svg.matches("<rect ").count() <= MAX_BANDS);
    }

    #[test]
    fn numbers_and_percentiles_read_well() {
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.30000000000000004), "0.3");
        assert_eq!(number(-0.0), "0");
        assert_eq!(percent(0.5), "50%");
        assert_eq!(percent(0.99), "99%");
        assert_eq!(percent(0.999), "99.9%");
        assert_eq!(percent(0.9999), "99.99%");
    }
}
