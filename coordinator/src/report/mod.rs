//! How results are shown and kept: the JSON report ([`model`], built by
//! [`build`]), and what is rendered from it: the terminal table
//! ([`table`]), the per-interval CSV ([`csv`]), HdrHistogram interval logs
//! ([`hlog`]), the HTML page ([`html`], drawing its charts with [`svg`] on
//! [`scale`]d axes) and the comparison of two runs ([`compare`]).

pub mod build;
pub mod compare;
pub mod csv;
#[cfg(test)]
pub(crate) mod fixture;
pub mod hlog;
pub mod html;
pub mod model;
pub mod scale;
pub mod series;
pub mod significance;
pub mod svg;
pub mod table;
pub mod thresholds;

use model::{RunReport, SCHEMA_VERSION};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ReportFileError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: not a Stampede report: {error}")]
    Json {
        path: String,
        error: serde_json::Error,
    },
    #[error("{path}: report schema version {found}; this build reads version {SCHEMA_VERSION}")]
    Version { path: String, found: u32 },
    #[error("{path}: {scope}: histogram does not decode: {error}")]
    Histogram {
        path: String,
        scope: String,
        error: build::HistogramFieldError,
    },
}

/// Writes the report as pretty JSON (to a temporary file, then renamed, so
/// a reader never sees half a report).
pub fn write(report: &RunReport, path: &Path) -> Result<(), ReportFileError> {
    let io = |error| ReportFileError::Io {
        path: path.display().to_string(),
        error,
    };
    let text = serde_json::to_string_pretty(report).map_err(|e| io(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads a saved report and recomputes every latency summary from its
/// stored histograms (so the figures shown are re-derived, not trusted).
pub fn read(path: &Path) -> Result<RunReport, ReportFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ReportFileError::Io {
        path: shown.clone(),
        error,
    })?;
    let mut report: RunReport =
        serde_json::from_str(&text).map_err(|error| ReportFileError::Json {
            path: shown.clone(),
            error,
        })?;
    if report.schema_version != SCHEMA_VERSION {
        return Err(ReportFileError::Version {
            path: shown,
            found: report.schema_version,
        });
    }
    let reanalyse = |scope: String, s: &mut model::ScopeSummary| -> Result<(), ReportFileError> {
        let err = |error| ReportFileError::Histogram {
            path: shown.clone(),
            scope: scope.clone(),
            error,
        };
        s.latency_us =
            build::latency_summary(&build::decode_base64(&s.latency_histogram).map_err(err)?);
        s.error_latency_us =
            build::latency_summary(&build::decode_base64(&s.error_histogram).map_err(err)?);
        s.schedule_lag_us =
            build::latency_summary(&build::decode_base64(&s.schedule_lag_histogram).map_err(err)?);
        Ok(())
    };
    reanalyse("global".into(), &mut report.global)?;
    for r in &mut report.regions {
        reanalyse(format!("region {}", r.name), &mut r.summary)?;
    }
    for a in &mut report.agents {
        reanalyse(format!("agent {}", a.id), &mut a.summary)?;
    }
    for interval in &mut report.intervals {
        let scopes = std::iter::once(("global".to_owned(), &mut interval.global)).chain(
            interval
                .regions
                .iter_mut()
                .map(|(name, f)| (format!("region {name}"), f)),
        );
        for (scope, figures) in scopes {
            let histogram = build::decode_base64(&figures.latency_histogram).map_err(|error| {
                ReportFileError::Histogram {
                    path: shown.clone(),
                    scope: format!("interval {} {scope}", interval.index),
                    error,
                }
            })?;
            figures.latency_us = build::latency_summary(&histogram);
        }
    }
    Ok(report)
}
