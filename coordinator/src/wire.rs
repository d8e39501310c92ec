//! Conversions between the protocol's types and the coordinator's own, at
//! the edge. Everything arriving here comes from a peer and is checked.

use crate::merge::{
    AgentInterval, LlmCounts, LlmInterval, Outcomes, PHASE_NAMES, ReceivedHistograms,
    ReceivedPhases, RequestInterval,
};
use bytes::Bytes;
use stampede_proto::histogram::{self, HistogramCodecError};
use stampede_proto::v1;
use std::net::SocketAddr;
use uuid::Uuid;

/// Most distinct status codes one interval report may carry.
const MAX_STATUS_CODES: usize = 600;
/// Most per-request figures one interval report may carry (the agent's
/// limit on a mix).
const MAX_REQUESTS: usize = 256;
/// Most target addresses one interval report may list (the agent's limit).
const MAX_ADDRESSES: usize = stampede_agent::phases::MAX_ADDRESSES;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("agent id {0:?} is not a uuid")]
    AgentId(String),
    #[error("{which} histogram: {source}")]
    Histogram {
        which: &'static str,
        source: HistogramCodecError,
    },
    #[error("{0} status codes in one report (at most {MAX_STATUS_CODES})")]
    TooManyStatusCodes(usize),
    #[error("status code {0} is outside 100..=599")]
    StatusCode(u32),
    #[error("gRPC status code {0} is outside 0..=16")]
    GrpcCode(u32),
    #[error("interval end precedes its start")]
    Backwards,
    #[error("{0} per-request figures in one report (at most {MAX_REQUESTS})")]
    TooManyRequests(usize),
    #[error("{0} target addresses in one report (at most {MAX_ADDRESSES})")]
    TooManyAddresses(usize),
    #[error("target address {0:?} is not ip:port")]
    Address(String),
}

/// Decodes an interval report from an agent.
pub fn agent_interval(report: v1::IntervalReport) -> Result<AgentInterval, ReportError> {
    let agent_id = Uuid::parse_str(&report.agent_id)
        .map_err(|_| ReportError::AgentId(report.agent_id.clone()))?;
    if report.status_codes.len() > MAX_STATUS_CODES {
        return Err(ReportError::TooManyStatusCodes(report.status_codes.len()));
    }
    if let Some(code) = report
        .status_codes
        .keys()
        .find(|c| !(100..=599).contains(*c))
    {
        return Err(ReportError::StatusCode(*code));
    }
    if let Some(code) = report.grpc_codes.keys().find(|c| **c > 16) {
        return Err(ReportError::GrpcCode(*code));
    }
    if report.end_unix_nanos < report.start_unix_nanos {
        return Err(ReportError::Backwards);
    }
    let decode = |which, bytes: &[u8]| {
        histogram::decode_sparse(bytes).map_err(|source| ReportError::Histogram { which, source })
    };
    if report.requests.len() > MAX_REQUESTS {
        return Err(ReportError::TooManyRequests(report.requests.len()));
    }
    let requests = report
        .requests
        .iter()
        .map(|r| {
            Ok(RequestInterval {
                index: r.index,
                latency: decode("request latency", &r.latency_histogram)?,
                errors: decode("request error", &r.error_histogram)?,
                outcomes: outcomes(r.outcomes.unwrap_or_default()),
            })
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    let llm = match &report.llm {
        None => None,
        Some(l) => Some(Box::new(LlmInterval {
            ttft: decode("ttft", &l.ttft_histogram)?,
            itl: decode("itl", &l.itl_histogram)?,
            itl_per_token: decode("itl per token", &l.itl_per_token_histogram)?,
            tpot: decode("tpot", &l.tpot_histogram)?,
            tokens_per_second: decode("tokens per second", &l.tokens_per_second_histogram)?,
            counts: LlmCounts {
                output_tokens: l.output_tokens,
                input_tokens: l.input_tokens,
                usage_counted: l.usage_counted,
                chunk_counted: l.chunk_counted,
                uncounted: l.uncounted,
                streamed: l.streamed,
                good: l.good,
                malformed: l.malformed,
                truncated: l.truncated,
            },
        })),
    };
    // The phase histograms are kept encoded: only cumulative figures need
    // them, so they are decoded once the interval has closed (see
    // `merge::phases`, which also says what a malformed one does then).
    let phases = match report.phases {
        None => None,
        Some(p) => {
            if p.addresses.len() > MAX_ADDRESSES {
                return Err(ReportError::TooManyAddresses(p.addresses.len()));
            }
            let mut addresses = std::collections::BTreeMap::new();
            for a in &p.addresses {
                let address: SocketAddr = a
                    .address
                    .parse()
                    .map_err(|_| ReportError::Address(a.address.clone()))?;
                *addresses.entry(address.to_string()).or_default() += a.connections;
            }
            let encoded = [
                &p.dns_histogram,
                &p.connect_histogram,
                &p.tls_histogram,
                &p.wait_histogram,
                &p.transfer_histogram,
            ];
            check_kept_sizes(encoded.into_iter().zip(PHASE_NAMES))?;
            Some(ReceivedPhases {
                encoded: [
                    p.dns_histogram,
                    p.connect_histogram,
                    p.tls_histogram,
                    p.wait_histogram,
                    p.transfer_histogram,
                ],
                new_connections: p.new_connections,
                addresses,
            })
        }
    };
    // Kept encoded and decoded by the run actor (`RunMerge::add`), which
    // refuses the report if one does not decode.
    check_kept_sizes([
        (&report.latency_histogram, "latency"),
        (&report.error_histogram, "error"),
        (&report.schedule_lag_histogram, "schedule lag"),
    ])?;
    let o = report.outcomes.unwrap_or_default();
    Ok(AgentInterval {
        phases,
        cpu_micros: report.cpu_micros,
        worker_threads: report.worker_threads,
        llm,
        requests,
        agent_id,
        index: report.index,
        start_unix_nanos: report.start_unix_nanos,
        end_unix_nanos: report.end_unix_nanos,
        histograms: ReceivedHistograms {
            latency: report.latency_histogram,
            errors: report.error_histogram,
            schedule_lag: report.schedule_lag_histogram,
        },
        outcomes: outcomes(o),
        status_codes: report
            .status_codes
            .into_iter()
            .map(|(code, n)| (code as u16, n))
            .collect(),
        grpc_codes: report
            .grpc_codes
            .into_iter()
            .map(|(code, n)| (code as u8, n))
            .collect(),
        bytes_received: report.bytes_received,
        bytes_sent: report.bytes_sent,
        last: report.last,
    })
}

/// Histograms kept encoded until they are decoded later must be no larger
/// than decoding would accept: refused here, at the edge, with their name.
fn check_kept_sizes<'a>(
    histograms: impl IntoIterator<Item = (&'a Bytes, &'static str)>,
) -> Result<(), ReportError> {
    for (bytes, which) in histograms {
        if bytes.len() > histogram::MAX_ENCODED_BYTES {
            return Err(ReportError::Histogram {
                which,
                source: HistogramCodecError::TooLarge(bytes.len()),
            });
        }
    }
    Ok(())
}

fn outcomes(o: v1::OutcomeCounts) -> Outcomes {
    Outcomes {
        success: o.success,
        connect_error: o.connect_error,
        tls_error: o.tls_error,
        timeout: o.timeout,
        status_4xx: o.status_4xx,
        status_5xx: o.status_5xx,
        other_error: o.other_error,
        interrupted: o.interrupted,
    }
}
