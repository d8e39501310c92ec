//! Reading the history: runs by filter, one run, the last passing run of a
//! scenario, and the headline figures of the last runs (the trend).

use super::{History, HistoryError, RunState};
use crate::events::IntervalSnapshot;
use crate::report::model::RunReport;
use rusqlite::{OptionalExtension, Row, params_from_iter, types::Value};
use serde::{Deserialize, Serialize};

/// A run's headline figures (warm-up excluded, as in its report).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub requests: u64,
    pub achieved_rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Failed requests over completed ones.
    pub error_rate: f64,
}

impl Summary {
    pub fn of(report: &RunReport) -> Self {
        let g = &report.global;
        Self {
            requests: g.requests,
            achieved_rps: g.achieved_rps,
            p50_us: g.latency_us.p50,
            p99_us: g.latency_us.p99,
            error_rate: if g.requests == 0 {
                0.0
            } else {
                g.errors.total as f64 / g.requests as f64
            },
        }
    }
}

/// One run as the history lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: String,
    pub scenario_name: String,
    pub scenario_file: String,
    pub labels: Vec<String>,
    pub git_sha: Option<String>,
    /// `queued`, `running`, `passed`, `failed`, `aborted` or `error`.
    pub state: String,
    pub submitted_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub error: Option<String>,
    /// The headline figures, once the run has a report.
    pub summary: Option<Summary>,
    /// Intervals merged and kept (while it runs, and after a crash).
    pub intervals: u64,
}

/// Which runs to list; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub scenario: Option<String>,
    /// Runs carrying every one of these labels.
    pub labels: Vec<String>,
    /// Submitted at or after (unix ms).
    pub since_ms: Option<i64>,
    /// Submitted before (unix ms).
    pub until_ms: Option<i64>,
    pub state: Option<RunState>,
    /// Newest first, at most this many (default 50).
    pub limit: Option<u32>,
}

/// One interval as the history kept it when it closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptInterval {
    pub index: u32,
    /// Seconds from the run's start.
    pub start_s: f64,
    pub end_s: f64,
    pub warmup: bool,
    /// Requests, successes, errors, rps and latency, globally and per region.
    pub figures: serde_json::Value,
    /// The interval's merged latency histogram, all regions, µs
    /// (`hdr-v2-deflate-base64`, as in reports).
    pub latency_histogram: String,
}

/// The headline figures of one run, for the trend view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub id: String,
    pub submitted_at_ms: i64,
    pub git_sha: Option<String>,
    pub state: String,
    pub summary: Summary,
}

const ROW_COLUMNS: &str =
    "id, scenario_name, scenario_file, labels, git_sha, state, submitted_at_ms,
    started_at_ms, finished_at_ms, error, requests, achieved_rps, p50_us, p99_us, error_rate,
    (SELECT count(*) FROM intervals WHERE run_id = runs.id)";

fn row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    let labels: String = r.get(3)?;
    let requests: Option<i64> = r.get(10)?;
    let summary = match requests {
        Some(requests) => Some(Summary {
            requests: requests as u64,
            achieved_rps: r.get::<_, Option<f64>>(11)?.unwrap_or(0.0),
            p50_us: r.get::<_, Option<i64>>(12)?.unwrap_or(0) as u64,
            p99_us: r.get::<_, Option<i64>>(13)?.unwrap_or(0) as u64,
            error_rate: r.get::<_, Option<f64>>(14)?.unwrap_or(0.0),
        }),
        None => None,
    };
    Ok(RunRow {
        id: r.get(0)?,
        scenario_name: r.get(1)?,
        scenario_file: r.get(2)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        git_sha: r.get(4)?,
        state: r.get(5)?,
        submitted_at_ms: r.get(6)?,
        started_at_ms: r.get(7)?,
        finished_at_ms: r.get(8)?,
        error: r.get(9)?,
        summary,
        intervals: r.get::<_, i64>(15)? as u64,
    })
}

/// What the history keeps of a closed interval besides its histogram.
pub(super) fn figures_json(interval: &IntervalSnapshot) -> String {
    let g = &interval.global;
    serde_json::json!({
        "requests": g.requests,
        "successes": g.successes,
        "errors": g.errors,
        "rps": g.rps,
        "latency_us": g.latency,
        "regions": interval.regions.iter().map(|(name, f)| (name.clone(), serde_json::json!({
            "requests": f.requests,
            "errors": f.errors.total,
            "rps": f.rps,
            "latency_us": f.latency,
        }))).collect::<serde_json::Map<_, _>>(),
    })
    .to_string()
}

impl History {
    /// The intervals of run `id` kept as they closed, in order: what a run
    /// cut short by a crash merged before it.
    pub fn intervals(&self, id: &str) -> Result<Vec<KeptInterval>, HistoryError> {
        use base64::Engine;
        let mut statement = self.conn.prepare(
            "SELECT idx, start_s, end_s, warmup, figures, latency_histogram FROM intervals
             WHERE run_id = ?1 ORDER BY idx",
        )?;
        let rows = statement.query_map([id], |r| {
            let figures: String = r.get(4)?;
            let histogram: Vec<u8> = r.get(5)?;
            Ok(KeptInterval {
                index: r.get(0)?,
                start_s: r.get(1)?,
                end_s: r.get(2)?,
                warmup: r.get(3)?,
                figures: serde_json::from_str(&figures).unwrap_or(serde_json::Value::Null),
                latency_histogram: base64::engine::general_purpose::STANDARD.encode(histogram),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn get(&self, id: &str) -> Result<Option<RunRow>, HistoryError> {
        let sql = format!("SELECT {ROW_COLUMNS} FROM runs WHERE id = ?1");
        Ok(self.conn.query_row(&sql, [id], row).optional()?)
    }

    /// Runs matching `filter`, newest first.
    pub fn list(&self, filter: &HistoryFilter) -> Result<Vec<RunRow>, HistoryError> {
        let mut sql = format!("SELECT {ROW_COLUMNS} FROM runs WHERE 1 = 1");
        let mut values: Vec<Value> = Vec::new();
        if let Some(scenario) = &filter.scenario {
            values.push(scenario.clone().into());
            sql += &format!(" AND scenario_name = ?{}", values.len());
        }
        for label in &filter.labels {
            values.push(label.clone().into());
            sql += &format!(
                " AND EXISTS (SELECT 1 FROM json_each(runs.labels) WHERE value = ?{})",
                values.len()
            );
        }
        if let Some(since) = filter.since_ms {
            values.push(since.into());
            sql += &format!(" AND submitted_at_ms >= ?{}", values.len());
        }
        if let Some(until) = filter.until_ms {
            values.push(until.into());
            sql += &format!(" AND submitted_at_ms < ?{}", values.len());
        }
        if let Some(state) = filter.state {
            values.push(state.as_str().to_owned().into());
            sql += &format!(" AND state = ?{}", values.len());
        }
        values.push(i64::from(filter.limit.unwrap_or(50)).into());
        sql += &format!(
            " ORDER BY submitted_at_ms DESC, rowid DESC LIMIT ?{}",
            values.len()
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(params_from_iter(values), row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last passing run of `scenario` carrying every one of `labels`,
    /// submitted before `before_ms` (and not `except`).
    pub fn last_passing(
        &self,
        scenario: &str,
        labels: &[String],
        before_ms: Option<i64>,
        except: Option<&str>,
    ) -> Result<Option<RunRow>, HistoryError> {
        let filter = HistoryFilter {
            scenario: Some(scenario.to_owned()),
            labels: labels.to_vec(),
            until_ms: before_ms,
            state: Some(RunState::Passed),
            limit: Some(2),
            ..Default::default()
        };
        Ok(self
            .list(&filter)?
            .into_iter()
            .find(|r| Some(r.id.as_str()) != except))
    }

    /// The headline figures of the last `n` finished runs of `scenario`
    /// submitted up to `until_ms` (inclusive), oldest first.
    pub fn trend(
        &self,
        scenario: &str,
        until_ms: i64,
        n: u32,
    ) -> Result<Vec<TrendPoint>, HistoryError> {
        let filter = HistoryFilter {
            scenario: Some(scenario.to_owned()),
            until_ms: Some(until_ms.saturating_add(1)),
            limit: Some(n.saturating_mul(4).max(n)),
            ..Default::default()
        };
        let mut points: Vec<TrendPoint> = self
            .list(&filter)?
            .into_iter()
            .filter_map(|r| {
                Some(TrendPoint {
                    summary: r.summary?,
                    id: r.id,
                    submitted_at_ms: r.submitted_at_ms,
                    git_sha: r.git_sha,
                    state: r.state,
                })
            })
            .take(n as usize)
            .collect();
        points.reverse();
        Ok(points)
    }
}

/// A point in time for `--since`/`--until`: an RFC 3339 time
/// (`2026-11-01T12:00:00Z`), a date (`2026-11-01`, midnight UTC), or a
/// duration ago (`7d`, `12h`); unix ms.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(now_ms.saturating_sub(ago.as_millis() as i64));
    }
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .map_err(|_| {
            format!("{text:?} is not a time: give 2026-11-01, 2026-11-01T12:00:00Z or a duration ago such as 7d")
        })
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .map_err(|_| format!("{text:?} is before 1970"))
        })
}
