//! Run history: every run a standing coordinator ran, in an embedded SQLite
//! file (no server). A run's row holds its scenario (text as submitted),
//! its labels and git SHA, its state, its headline figures and its full
//! JSON report (with the merged histograms); each interval's figures and
//! merged latency histogram are written as the interval closes, so a crash
//! keeps what was merged until then.
//!
//! The file is ours or it is refused ([`schema::check`]): a corrupt or
//! foreign file is never written to.

mod query;
pub mod schema;

pub use query::{HistoryFilter, KeptInterval, RunRow, Summary, TrendPoint, parse_time};

use crate::events::IntervalSnapshot;
use crate::report::model::RunReport;
use crate::report::thresholds;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;

/// Default file of the history, next to where the coordinator runs.
pub const DEFAULT_PATH: &str = "stampede-history.db";

/// The 16 bytes every SQLite database file starts with.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "{path}: not a Stampede history database ({why}); it was left untouched — give another --history path"
    )]
    Corrupt { path: String, why: String },
    #[error(
        "{path}: a SQLite database of another application (application_id {application_id:#x}), not a Stampede \
         history; it was left untouched — give another --history path"
    )]
    Foreign { path: String, application_id: i64 },
    #[error(
        "{path}: written by a newer Stampede (schema version {version}; this one reads up to {supported}); it was left \
         untouched"
    )]
    TooNew {
        path: String,
        version: i64,
        supported: i64,
    },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("history database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("history database: run {id}: stored report does not parse: {error}")]
    Report {
        id: String,
        error: serde_json::Error,
    },
    #[error("no run {0} in the history")]
    NoSuchRun(String),
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Queued,
    Running,
    /// Finished and every threshold passed.
    Passed,
    /// Finished with a failed threshold.
    Failed,
    /// Stopped on request, or cut short by the coordinator's end.
    Aborted,
    /// Could not run (agents missing, rejected assignment, …).
    Error,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
            Self::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Passed,
            Self::Failed,
            Self::Aborted,
            Self::Error,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// The run is over: its row changes no more.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

/// What a run was submitted with.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub id: String,
    pub scenario_name: String,
    pub scenario_file: String,
    pub scenario_text: String,
    /// Free-form, e.g. `branch=main`, `env=staging`.
    pub labels: Vec<String>,
    pub git_sha: Option<String>,
    pub submitted_at_ms: i64,
}

/// The history file, open.
pub struct History {
    conn: Connection,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").finish_non_exhaustive()
    }
}

impl History {
    /// Opens the history at `path`, creating it if there is no file (or an
    /// empty one). A file that is not a Stampede history is refused, and
    /// left byte for byte as it was.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let name = path.display().to_string();
        let existing = match std::fs::metadata(path) {
            Ok(meta) => meta.len() > 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(error) => return Err(HistoryError::Io { path: name, error }),
        };
        if existing {
            check_header(path, &name)?;
        }
        let flags = if existing {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let corrupt = |e: rusqlite::Error| HistoryError::Corrupt {
            path: name.clone(),
            why: e.to_string(),
        };
        let mut conn = Connection::open_with_flags(path, flags).map_err(corrupt)?;
        schema::check(&conn, &name)?;
        // WAL: a crash loses no committed interval, and `stampede history`
        // can read while a coordinator writes.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        Ok(Self { conn })
    }

    /// Marks the runs a previous coordinator left queued or running as
    /// aborted (it stopped, or crashed, before they ended); returns how
    /// many. What they merged until then stays.
    pub fn recover(&self, now_ms: i64) -> Result<usize, HistoryError> {
        Ok(self.conn.execute(
            "UPDATE runs SET state = 'aborted', finished_at_ms = ?1,
                error = coalesce(error, CASE state
                    WHEN 'queued' THEN 'the coordinator stopped before its turn'
                    ELSE 'the coordinator stopped before the run ended' END)
             WHERE state IN ('queued', 'running')",
            params![now_ms],
        )?)
    }

    pub fn insert(&self, s: &Submission) -> Result<(), HistoryError> {
        let labels = serde_json::to_string(&s.labels).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "INSERT INTO runs (id, scenario_name, scenario_file, scenario_text, labels, git_sha, state, submitted_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)",
            params![
                s.id,
                s.scenario_name,
                s.scenario_file,
                s.scenario_text,
                labels,
                s.git_sha,
                s.submitted_at_ms
            ],
        )?;
        Ok(())
    }

    pub fn mark_running(&self, id: &str, now_ms: i64) -> Result<(), HistoryError> {
        self.conn.execute(
            "UPDATE runs SET state = 'running', started_at_ms = ?2 WHERE id = ?1",
            params![id, now_ms],
        )?;
        Ok(())
    }

    /// Keeps one closed interval: its figures and its merged latency
    /// histogram (committed at once: a crash keeps it).
    pub fn record_interval(
        &self,
        id: &str,
        interval: &IntervalSnapshot,
    ) -> Result<(), HistoryError> {
        let figures = query::figures_json(interval);
        self.conn.execute(
            "INSERT OR REPLACE INTO intervals (run_id, idx, start_s, end_s, warmup, figures, latency_histogram)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                interval.index,
                interval.start_s,
                interval.end_s,
                interval.warmup,
                figures,
                interval.global_latency_histogram.as_slice()
            ],
        )?;
        Ok(())
    }

    /// Ends a run: its state, its report (figures and histograms) if it
    /// has one, and the error that ended it, if any.
    pub fn finish(
        &self,
        id: &str,
        state: RunState,
        report: Option<&RunReport>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), HistoryError> {
        let summary = report.map(Summary::of);
        let json = report.and_then(|r| serde_json::to_string(r).ok());
        self.conn.execute(
            "UPDATE runs SET state = ?2, finished_at_ms = ?3, error = ?4, report = ?5,
                requests = ?6, achieved_rps = ?7, p50_us = ?8, p99_us = ?9, error_rate = ?10
             WHERE id = ?1",
            params![
                id,
                state.as_str(),
                now_ms,
                error,
                json,
                summary.map(|s| s.requests as i64),
                summary.map(|s| s.achieved_rps),
                summary.map(|s| s.p50_us as i64),
                summary.map(|s| s.p99_us as i64),
                summary.map(|s| s.error_rate),
            ],
        )?;
        Ok(())
    }

    /// The report a finished run left (`None`: it has none, e.g. it could
    /// not start, or it is still running).
    pub fn report(&self, id: &str) -> Result<Option<RunReport>, HistoryError> {
        let text: Option<Option<String>> = self
            .conn
            .query_row("SELECT report FROM runs WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()?;
        match text {
            None => Err(HistoryError::NoSuchRun(id.to_owned())),
            Some(None) => Ok(None),
            Some(Some(text)) => {
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|error| HistoryError::Report {
                        id: id.to_owned(),
                        error,
                    })
            }
        }
    }

    /// How many intervals of run `id` are kept.
    pub fn interval_count(&self, id: &str) -> Result<u64, HistoryError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM intervals WHERE run_id = ?1",
            [id],
            |row| row.get(0),
        )?)
    }
}

/// The verdict of a finished report: passed, or failed on a threshold.
pub fn verdict(report: &RunReport) -> RunState {
    if thresholds::failures(report).is_empty() {
        RunState::Passed
    } else {
        RunState::Failed
    }
}

/// Refuses a file that does not start like a SQLite database, before
/// SQLite opens it (it would treat some damage as an empty database).
fn check_header(path: &Path, name: &str) -> Result<(), HistoryError> {
    use std::io::Read;
    let mut header = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(|error| HistoryError::Io {
        path: name.to_owned(),
        error,
    })?;
    let read = file.read(&mut header).map_err(|error| HistoryError::Io {
        path: name.to_owned(),
        error,
    })?;
    if read < header.len() || &header != SQLITE_HEADER {
        return Err(HistoryError::Corrupt {
            path: name.to_owned(),
            why: "it does not start with the SQLite header".into(),
        });
    }
    Ok(())
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
