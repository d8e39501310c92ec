//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! `# HELP` and `# TYPE` once per family, then its samples, label values
//! and help text escaped as the format requires.

use std::fmt::Write;

/// The `Content-Type` of a page in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Writes families one after the other; a family's samples follow its
/// header, as the format requires.
#[derive(Debug, Default)]
pub struct TextEncoder {
    out: String,
    /// The family being written: samples must carry its name.
    current: Option<&'static str>,
}

impl TextEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family. `name` is one of ours (a constant), so it is only
    /// checked in debug builds.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "bad metric name {name}");
        debug_assert!(
            kind != Kind::Counter || name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self.current = Some(name);
    }

    /// One sample of the current family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let Some(name) = self.current else {
            debug_assert!(false, "a sample before any family");
            return;
        };
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                debug_assert!(valid_label(label), "bad label name {label}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample value: integers without a fraction, and the format's own
/// spellings of the special values.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Rust prints the shortest text that reads back as the same f64.
        format!("{v}")
    }
}

/// Label values: backslash, double quote and line feed are escaped.
fn escape_label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text: backslash and line feed are escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(name: &str) -> bool {
    valid_name(name) && !name.contains(':') && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_a_header_then_its_samples() {
        let mut e = TextEncoder::new();
        e.family("x_requests_total", Kind::Counter, "Requests.");
        e.sample(&[("region", "eu-west")], 12.0);
        e.sample(&[], 3.0);
        e.family("x_latency_seconds", Kind::Gauge, "Latency.");
        e.sample(&[("region", "a"), ("quantile", "0.99")], 0.0415);
        assert_eq!(
            e.finish(),
            "# HELP x_requests_total Requests.\n\
             # TYPE x_requests_total counter\n\
             x_requests_total{region=\"eu-west\"} 12\n\
             x_requests_total 3\n\
             # HELP x_latency_seconds Latency.\n\
             # TYPE x_latency_seconds gauge\n\
             x_latency_seconds{region=\"a\",quantile=\"0.99\"} 0.0415\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = TextEncoder::new();
        e.family("x", Kind::Gauge, "a \\ b\nc");
        e.sample(&[("region", "a\"b\\c\nd")], 1.0);
        let text = e.finish();
        assert!(text.starts_with("# HELP x a \\\\ b\\nc\n"), "{text}");
        assert!(text.contains("x{region=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
        // Every line is one sample or comment: no raw line break got in.
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn values_are_written_as_the_format_spells_them() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(42.0), "42");
        assert_eq!(number(0.000_125), "0.000125");
        assert_eq!(number(1234.5), "1234.5");
        assert_eq!(number(9_007_199_254_740_992.0), "9007199254740992");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(-2.5), "-2.5");
    }

    #[test]
    fn names_follow_the_data_model() {
        assert!(valid_name("stampede_requests_total"));
        assert!(valid_name("a:b_c"));
        assert!(!valid_name("9lives"));
        assert!(!valid_name("has-dash"));
        assert!(!valid_name(""));
        assert!(valid_label("region"));
        assert!(!valid_label("__name__"));
        assert!(!valid_label("a:b"));
    }
}
