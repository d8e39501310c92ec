//! HdrHistogram interval logs (`.hlog`): one per region and one for the
//! whole run, each holding the successful-request latency histogram of every
//! interval. HistogramLogAnalyzer and the log readers of the other
//! HdrHistogram implementations (Java, Python, Go, C) open them.
//!
//! Written with the `hdrhistogram` crate's interval log writer. Like Java's
//! `HistogramLogWriter`, each log has a StartTime and a BaseTime header (both
//! the run's start) so interval timestamps are seconds into the run and
//! readers can still place them on the wall clock. Values are microseconds;
//! the informational max column is in milliseconds.

use super::build::{HistogramFieldError, decode_base64};
use super::model::RunReport;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The max column shows milliseconds (values are microseconds), as Java's
/// writer shows milliseconds of its nanosecond values by default.
const MAX_VALUE_DIVISOR: f64 = 1000.0;

/// File name of the whole-run log.
pub const GLOBAL_FILE: &str = "global.hlog";

#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    #[error("started_at {0:?} is not an RFC 3339 time")]
    StartTime(String),
    #[error("region name {0:?} cannot be part of a file name")]
    RegionName(String),
    #[error("interval {index} {scope}: {error}")]
    Histogram {
        index: u32,
        scope: String,
        error: HistogramFieldError,
    },
    #[error("{scope}: cannot write the interval log: {message}")]
    Write { scope: String, message: String },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

/// The log's scope: the whole run or one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Global,
    Region(&'a str),
}

impl Scope<'_> {
    fn describe(&self) -> String {
        match self {
            Scope::Global => "global".to_owned(),
            Scope::Region(name) => format!("region {name}"),
        }
    }
}

/// File name of a region's log. A region's name is a file name stem only
/// when it is tame; a report is input, and a name like `../x` must not
/// write outside the chosen directory.
pub fn region_file(name: &str) -> Result<String, HlogError> {
    let tame = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if tame {
        Ok(format!("region-{name}.hlog"))
    } else {
        Err(HlogError::RegionName(name.to_owned()))
    }
}

/// Renders one scope's interval log. Every interval of the run gets a line,
/// with an empty histogram where the scope reported nothing, so the logs
/// of all scopes share one time axis.
pub fn render(report: &RunReport, scope: Scope<'_>) -> Result<Vec<u8>, HlogError> {
    let start = start_time(report)?;
    let write_err = |message: String| HlogError::Write {
        scope: scope.describe(),
        message,
    };
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(&format!(
                "stampede {} run {} \"{}\", {}: latency of successful requests in microseconds",
                report.tool.version,
                report.run_id,
                one_line(&report.scenario.name),
                scope.describe()
            ))
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(start)
            .with_base_time(start);
        builder
            .begin_log_with(&mut out, &mut serializer)
            .map_err(|e| write_err(e.to_string()))?;
    }
    // The column legend Java's writer emits; the crate's writer has no call
    // for it, and every reader skips it.
    out.extend_from_slice(
        b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
    );
    // This builder only notes the divisor ("#[MaxValueDivisor: …]").
    let mut writer = IntervalLogWriterBuilder::new()
        .with_max_value_divisor(MAX_VALUE_DIVISOR)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(|e| write_err(e.to_string()))?;
    for interval in &report.intervals {
        let encoded = match scope {
            Scope::Global => Some(&interval.global.latency_histogram),
            Scope::Region(name) => interval.regions.get(name).map(|f| &f.latency_histogram),
        };
        let histogram = decode_base64(encoded.map_or("", String::as_str)).map_err(|error| {
            HlogError::Histogram {
                index: interval.index,
                scope: scope.describe(),
                error,
            }
        })?;
        writer
            .write_histogram(
                &histogram,
                seconds(interval.start_s),
                seconds(interval.end_s - interval.start_s),
                None,
            )
            .map_err(|e| write_err(e.to_string()))?;
    }
    Ok(out)
}

/// Writes `global.hlog` and one `region-<name>.hlog` per region into `dir`
/// (created if missing); returns the paths written.
pub fn write_dir(report: &RunReport, dir: &Path) -> Result<Vec<PathBuf>, HlogError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |error| HlogError::Io { path, error }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut logs = vec![(GLOBAL_FILE.to_owned(), Scope::Global)];
    for region in &report.regions {
        logs.push((region_file(&region.name)?, Scope::Region(&region.name)));
    }
    let mut written = Vec::new();
    for (file, scope) in logs {
        let bytes = render(report, scope)?;
        let path = dir.join(file);
        std::fs::write(&path, bytes).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// A non-negative, finite number of seconds (a report is input: no panic
/// on NaN or a negative span).
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

/// Keeps a comment on one line (the writer would split it, harmlessly, but
/// a scenario name is not worth two comment lines).
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// The run's start as the logs' StartTime (for callers that check it).
pub fn start_time(report: &RunReport) -> Result<SystemTime, HlogError> {
    humantime::parse_rfc3339_weak(&report.started_at)
        .map_err(|_| HlogError::StartTime(report.started_at.clone()))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{report, slice, spread};
    use super::*;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn logs_read_back_with_the_reports_counts_and_percentiles() {
        let r = report(&[
            (
                "us-east",
                vec![
                    slice(spread(1000, 9000, 500), 2),
                    slice(spread(2000, 3000, 10), 0),
                ],
            ),
            ("eu-west", vec![slice(spread(40_000, 90_000, 300), 0)]),
        ]);
        let start = start_time(&r).expect("fixture start");
        for scope in [
            Scope::Global,
            Scope::Region("us-east"),
            Scope::Region("eu-west"),
        ] {
            let bytes = render(&r, scope).expect("renders");
            let mut intervals = vec![];
            let (mut start_seen, mut base_seen) = (None, None);
            for entry in IntervalLogIterator::new(&bytes) {
                match entry.expect("parses") {
                    LogEntry::StartTime(t) => start_seen = Some(t),
                    LogEntry::BaseTime(t) => base_seen = Some(t),
                    LogEntry::Interval(i) => intervals.push((
                        i.start_timestamp(),
                        i.duration(),
                        i.encoded_histogram().to_owned(),
                    )),
                }
            }
            let since_epoch = start.duration_since(std::time::UNIX_EPOCH).expect("epoch");
            assert_eq!(start_seen, Some(since_epoch), "{scope:?}");
            assert_eq!(base_seen, Some(since_epoch), "{scope:?}");
            assert_eq!(intervals.len(), r.intervals.len(), "{scope:?}");
            for ((at, length, encoded), interval) in intervals.iter().zip(&r.intervals) {
                assert_eq!(at.as_secs_f64(), interval.start_s);
                assert_eq!(length.as_secs_f64(), interval.end_s - interval.start_s);
                let bytes =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
                        .expect("base64");
                let h: hdrhistogram::Histogram<u64> = Deserializer::new()
                    .deserialize(&mut &bytes[..])
                    .expect("a V2 histogram");
                let expected = match scope {
                    Scope::Global => Some(&interval.global),
                    Scope::Region(name) => interval.regions.get(name),
                };
                let (count, p99) = expected.map_or((0, 0), |f| (f.successes, f.latency_us.p99));
                assert_eq!(h.len(), count, "{scope:?} interval {}", interval.index);
                let got_p99 = if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.99)
                };
                assert_eq!(got_p99, p99, "{scope:?} interval {}", interval.index);
            }
        }
    }

    #[test]
    fn headers_are_the_ones_other_readers_look_for() {
        let r = report(&[("local", vec![slice([1500], 0)])]);
        let text = String::from_utf8(render(&r, Scope::Global).expect("renders")).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("#stampede 0.1.0 run 11111111-"),
            "{text}"
        );
        assert!(lines.contains(&"#[Histogram log format version 1.3]"));
        // Java and Python parse "#[StartTime: <secs> " and "#[BaseTime: <secs> ".
        assert!(
            lines.contains(&"#[StartTime: 1767323045.000 (seconds since epoch)]"),
            "{text}"
        );
        assert!(
            lines.contains(&"#[BaseTime: 1767323045.000 (seconds since epoch)]"),
            "{text}"
        );
        let data: Vec<&str> = lines
            .iter()
            .filter(|l| !l.starts_with(['#', '"']))
            .copied()
            .collect();
        // start 0 s into the run, 1 s long, max 1.5 ms; base64 V2 deflate ("HISTF" cookie).
        assert!(data[0].starts_with("0.000,1.000,1.500,HISTF"), "{text}");
    }

    #[test]
    fn region_names_that_are_not_file_names_are_refused() {
        assert_eq!(region_file("us-east").expect("tame"), "region-us-east.hlog");
        for bad in ["../etc/x", "a/b", ".hidden", "", "eu west", "x\0y"] {
            assert!(region_file(bad).is_err(), "{bad:?}");
        }
        let r = report(&[("../escape", vec![slice([1000], 0)])]);
        let dir = tempfile::tempdir().expect("temp dir");
        let err = write_dir(&r, dir.path()).expect_err("refused");
        assert!(err.to_string().contains("../escape"), "{err}");
    }

    #[test]
    fn write_dir_writes_global_and_one_log_per_region() {
        let r = report(&[
            ("us-east", vec![slice([1000], 0)]),
            ("eu-west", vec![slice([2000], 0)]),
        ]);
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("logs");
        let written = write_dir(&r, &out).expect("writes");
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["global.hlog", "region-us-east.hlog", "region-eu-west.hlog"]
        );
        assert!(written.iter().all(|p| p.is_file()));
    }
}
