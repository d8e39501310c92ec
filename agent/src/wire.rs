//! Conversions between the protocol's types and the agent's own, at the edge.
//! A slice from the coordinator is checked here: it comes from a peer.

use crate::engine::IntervalRecord;
use crate::plan::{Arrival, LoadPlan, RequestTemplate, WorkloadModel};
use stampede_proto::histogram::{self, Encoding};
use stampede_proto::v1;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error("assignment has no {0}")]
    Missing(&'static str),
    #[error("assignment field {field}: {why}")]
    Invalid { field: &'static str, why: String },
}

fn invalid(field: &'static str, why: impl Into<String>) -> SliceError {
    SliceError::Invalid {
        field,
        why: why.into(),
    }
}

/// Checks a slice from the coordinator and turns it into a [`LoadPlan`].
pub fn plan_from_slice(slice: v1::LoadSlice) -> Result<LoadPlan, SliceError> {
    let request = slice.request.ok_or(SliceError::Missing("request"))?;
    let url = url::Url::parse(&request.url).map_err(|e| invalid("request.url", e.to_string()))?;
    if url.scheme() != "http" {
        return Err(invalid(
            "request.url",
            format!("scheme {:?} is not supported (http only)", url.scheme()),
        ));
    }
    let model = match slice.model.ok_or(SliceError::Missing("model"))? {
        v1::load_slice::Model::Closed(c) => {
            if c.connections == 0 {
                return Err(invalid("closed.connections", "must be at least 1"));
            }
            WorkloadModel::Closed {
                connections: c.connections,
            }
        }
        v1::load_slice::Model::Open(o) => {
            if !(o.rate_per_second.is_finite() && o.rate_per_second > 0.0) {
                return Err(invalid("open.rate_per_second", "must be a positive number"));
            }
            if o.connections == 0 {
                return Err(invalid("open.connections", "must be at least 1"));
            }
            WorkloadModel::Open {
                rate_per_second: o.rate_per_second,
                connections: o.connections,
                arrival: match v1::Arrival::try_from(o.arrival) {
                    Ok(v1::Arrival::Constant) => Arrival::Constant,
                    Ok(v1::Arrival::Poisson) => Arrival::Poisson { seed: o.seed },
                    Err(_) => {
                        return Err(invalid(
                            "open.arrival",
                            format!("unknown arrival process {}", o.arrival),
                        ));
                    }
                },
            }
        }
    };
    let positive = |field, micros: u64| {
        if micros == 0 {
            Err(invalid(field, "must be positive"))
        } else {
            Ok(Duration::from_micros(micros))
        }
    };
    Ok(LoadPlan {
        request: RequestTemplate {
            method: request.method,
            url,
            headers: request
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: request.body,
        },
        model,
        duration: positive("duration", slice.duration_micros)?,
        interval: positive("interval", slice.interval_micros)?,
        timeout: positive("timeout", slice.timeout_micros)?,
        graceful_stop: Duration::from_micros(slice.graceful_stop_micros),
        think_time: match (slice.think_min_micros, slice.think_max_micros) {
            (0, 0) => None,
            (min, max) if min > max => {
                return Err(invalid("think_min_micros", "exceeds think_max_micros"));
            }
            (min, max) => Some((Duration::from_micros(min), Duration::from_micros(max))),
        },
    })
}

/// The wire form of a [`LoadPlan`] (used by the coordinator to build
/// assignments, and by tests).
pub fn slice_from_plan(plan: &LoadPlan) -> v1::LoadSlice {
    let micros = |d: Duration| d.as_micros() as u64;
    v1::LoadSlice {
        request: Some(v1::RequestSpec {
            method: plan.request.method.clone(),
            url: plan.request.url.to_string(),
            headers: plan
                .request
                .headers
                .iter()
                .map(|(name, value)| v1::Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            body: plan.request.body.clone(),
        }),
        model: Some(match plan.model {
            WorkloadModel::Closed { connections } => {
                v1::load_slice::Model::Closed(v1::ClosedModel { connections })
            }
            WorkloadModel::Open {
                rate_per_second,
                connections,
                arrival,
            } => v1::load_slice::Model::Open(v1::OpenModel {
                rate_per_second,
                connections,
                arrival: match arrival {
                    Arrival::Constant => v1::Arrival::Constant as i32,
                    Arrival::Poisson { .. } => v1::Arrival::Poisson as i32,
                },
                seed: match arrival {
                    Arrival::Constant => 0,
                    Arrival::Poisson { seed } => seed,
                },
            }),
        }),
        duration_micros: micros(plan.duration),
        interval_micros: micros(plan.interval),
        timeout_micros: micros(plan.timeout),
        graceful_stop_micros: micros(plan.graceful_stop),
        think_min_micros: plan.think_time.map_or(0, |(min, _)| micros(min)),
        think_max_micros: plan.think_time.map_or(0, |(_, max)| micros(max)),
    }
}

/// Builds the wire report for one interval.
pub fn interval_report(
    run_id: &str,
    agent_id: &str,
    start_unix_nanos: i64,
    record: &IntervalRecord,
    encoding: Encoding,
) -> Result<v1::IntervalReport, histogram::HistogramCodecError> {
    let data = &record.data;
    let o = &data.outcomes;
    let offset = |d: Duration| {
        start_unix_nanos.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    };
    Ok(v1::IntervalReport {
        run_id: run_id.to_owned(),
        agent_id: agent_id.to_owned(),
        index: record.index,
        start_unix_nanos: offset(record.start),
        end_unix_nanos: offset(record.end),
        latency_histogram: histogram::encode(&data.latency, encoding)?,
        error_histogram: histogram::encode(&data.errors, encoding)?,
        outcomes: Some(v1::OutcomeCounts {
            success: o.success,
            connect_error: o.connect_error,
            timeout: o.timeout,
            status_4xx: o.status_4xx,
            status_5xx: o.status_5xx,
            other_error: o.other_error,
            interrupted: o.interrupted,
        }),
        status_codes: data
            .status_codes()
            .map(|(code, n)| (u32::from(code), n))
            .collect(),
        bytes_received: data.bytes_received,
        bytes_sent: data.bytes_sent,
        last: record.last,
        schedule_lag_histogram: if data.schedule_lag.is_empty() {
            Vec::new()
        } else {
            histogram::encode(&data.schedule_lag, encoding)?
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> LoadPlan {
        LoadPlan {
            request: RequestTemplate {
                method: "POST".into(),
                url: url::Url::parse("http://127.0.0.1:9/x?y=1").expect("url"),
                headers: vec![("a".into(), "b".into())],
                body: b"{}".to_vec(),
            },
            model: WorkloadModel::Open {
                rate_per_second: 123.5,
                connections: 7,
                arrival: Arrival::Poisson { seed: 42 },
            },
            duration: Duration::from_secs(3),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(1500),
            graceful_stop: Duration::from_secs(2),
            think_time: Some((Duration::from_millis(10), Duration::from_millis(30))),
        }
    }

    #[test]
    fn plan_survives_the_wire() {
        let p = plan();
        assert_eq!(plan_from_slice(slice_from_plan(&p)).expect("valid"), p);
    }

    #[test]
    fn refuses_bad_slices() {
        let mut s = slice_from_plan(&plan());
        s.model = Some(v1::load_slice::Model::Open(v1::OpenModel {
            rate_per_second: -1.0,
            connections: 1,
            ..Default::default()
        }));
        assert!(plan_from_slice(s).is_err());
        let mut s = slice_from_plan(&plan());
        s.interval_micros = 0;
        assert!(plan_from_slice(s).is_err());
        let mut s = slice_from_plan(&plan());
        if let Some(r) = s.request.as_mut() {
            r.url = "ftp://x/".into();
        }
        assert!(plan_from_slice(s).is_err());
    }
}
