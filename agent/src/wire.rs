//! Conversions between the protocol's types and the agent's own, at the edge.
//! A slice from the coordinator is checked here: it comes from a peer.

use crate::engine::IntervalRecord;
use crate::llm::GoodputSlo;
use crate::phases::PhaseFigures;
use crate::plan::{
    Arrival, ClosedStages, DataOrder, DataSet, DnsPolicy, GrpcSpec, Leg, LlmSpec, LoadPlan,
    Protocol, RequestTemplate, TargetTls, Transport, WorkloadModel,
};
use crate::profile::{LevelProfile, Segment};
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

/// Most segments a profile from a peer may have (a step sweep of a few
/// hundred levels fits many times over).
const MAX_SEGMENTS: usize = 10_000;

/// Checks a level profile from the coordinator: sane levels, and segments
/// that add up to the slice's duration.
fn profile(
    field: &'static str,
    segments: &[v1::ProfileSegment],
    duration: Duration,
) -> Result<LevelProfile, SliceError> {
    if segments.len() > MAX_SEGMENTS {
        return Err(invalid(
            field,
            format!("{} segments (at most {MAX_SEGMENTS})", segments.len()),
        ));
    }
    let total: u64 = segments
        .iter()
        .map(|s| s.duration_micros)
        .fold(0, u64::saturating_add);
    if Duration::from_micros(total) != duration {
        return Err(invalid(
            field,
            format!(
                "segments last {total} µs, the slice {} µs",
                duration.as_micros()
            ),
        ));
    }
    LevelProfile::new(
        segments
            .iter()
            .map(|s| Segment {
                duration: Duration::from_micros(s.duration_micros),
                from: s.from,
                to: s.to,
            })
            .collect(),
    )
    .map_err(|e| invalid(field, e.to_string()))
}

fn segments_to_wire(profile: &LevelProfile) -> Vec<v1::ProfileSegment> {
    profile
        .segments()
        .iter()
        .map(|s| v1::ProfileSegment {
            duration_micros: s.duration.as_micros() as u64,
            from: s.from,
            to: s.to,
        })
        .collect()
}

/// Most requests a mix may have.
const MAX_REQUESTS: usize = 256;

/// One request from the wire. Its URL is kept as written: the path may
/// hold `{{placeholders}}`, which URL parsing would encode.
fn request_from_wire(
    name: &str,
    weight: f64,
    request: v1::RequestSpec,
    timeout_micros: u64,
) -> Result<RequestTemplate, SliceError> {
    let (url, target) = split_url(&request.url).map_err(|why| invalid("request.url", why))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            "request.url",
            format!("scheme {:?} is not supported (http or https)", url.scheme()),
        ));
    }
    if !(weight.is_finite() && weight > 0.0) {
        return Err(invalid("requests.weight", "must be a positive number"));
    }
    Ok(RequestTemplate {
        name: name.to_owned(),
        weight,
        method: request.method,
        target,
        url,
        headers: request
            .headers
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect(),
        body: request.body,
        timeout: (timeout_micros > 0).then(|| Duration::from_micros(timeout_micros)),
    })
}

/// Splits a URL as written into where connections go (scheme, host and
/// port) and the request target (path and query, kept as written: it may
/// hold `{{placeholders}}`, which URL parsing would encode).
pub fn split_url(raw: &str) -> Result<(url::Url, String), String> {
    let target = request_target(raw);
    let (scheme_len, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (scheme.len() + 3, rest),
        None => (0, raw),
    };
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let origin = &raw[..scheme_len + authority_len];
    if origin.contains("{{") {
        return Err(format!(
            "{raw:?}: the host and port cannot hold placeholders"
        ));
    }
    let url = url::Url::parse(origin).map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{raw:?} has no host"));
    }
    Ok((url, target))
}

/// The path and query of a URL as written (`/` when it has none).
pub fn request_target(raw: &str) -> String {
    let after_scheme = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    match after_scheme.find(['/', '?']) {
        Some(i) if after_scheme[i..].starts_with('/') => after_scheme[i..].to_owned(),
        Some(i) => format!("/{}", &after_scheme[i..]),
        None => "/".to_owned(),
    }
}

fn request_to_wire(r: &RequestTemplate) -> v1::RequestSpec {
    v1::RequestSpec {
        method: r.method.clone(),
        url: format!("{}{}", r.url.origin().ascii_serialization(), r.target),
        headers: r
            .headers
            .iter()
            .map(|(name, value)| v1::Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        body: r.body.clone(),
    }
}

/// Most streams per connection a peer may ask for.
const MAX_STREAMS: u32 = 1_000;

/// Shortest DNS refresh a peer may ask for (1 s): more often is a resolver
/// load test, not a target's.
const MIN_DNS_REFRESH_MICROS: u64 = 1_000_000;

/// The transport from the wire; `https` decides whether TLS is used.
fn transport_from_wire(
    t: Option<v1::TargetTransport>,
    https: bool,
) -> Result<Transport, SliceError> {
    let t = t.unwrap_or_default();
    let protocol = match v1::TargetProtocol::try_from(t.protocol) {
        Ok(v1::TargetProtocol::Http1) => Protocol::Http1,
        Ok(v1::TargetProtocol::Http2) => Protocol::Http2,
        Err(_) => {
            return Err(invalid(
                "transport.protocol",
                format!("unknown protocol {}", t.protocol),
            ));
        }
    };
    let streams = t.streams_per_connection.max(1);
    if protocol == Protocol::Http1 && streams != 1 {
        return Err(invalid(
            "transport.streams_per_connection",
            "must be 1 with HTTP/1.1",
        ));
    }
    if streams > MAX_STREAMS {
        return Err(invalid(
            "transport.streams_per_connection",
            format!("{streams} (at most {MAX_STREAMS})"),
        ));
    }
    let tls = match (https, t.tls) {
        (false, None) => None,
        (false, Some(_)) => return Err(invalid("transport.tls", "set for a plain http URL")),
        (true, tls) => {
            let tls = tls.unwrap_or_default();
            if tls.cert_pem.is_empty() != tls.key_pem.is_empty() {
                return Err(invalid(
                    "transport.tls",
                    "a client certificate needs its key (both or neither)",
                ));
            }
            Some(TargetTls {
                ca_pem: tls.ca_pem,
                cert_pem: tls.cert_pem,
                key_pem: tls.key_pem,
                server_name: (!tls.server_name.is_empty()).then_some(tls.server_name),
                insecure: tls.insecure,
            })
        }
    };
    if t.new_connection_per_request && protocol != Protocol::Http1 {
        return Err(invalid(
            "transport.new_connection_per_request",
            "applies to HTTP/1.1 only",
        ));
    }
    let dns_refresh = match t.dns_refresh_micros {
        0 => None,
        us if us < MIN_DNS_REFRESH_MICROS => {
            return Err(invalid(
                "transport.dns_refresh_micros",
                format!("{us} µs (at least {MIN_DNS_REFRESH_MICROS})"),
            ));
        }
        us => Some(Duration::from_micros(us)),
    };
    let dns_policy = match v1::DnsPolicy::try_from(t.dns_policy) {
        Ok(v1::DnsPolicy::PreferIpv4) => DnsPolicy::PreferIpv4,
        Ok(v1::DnsPolicy::PreferIpv6) => DnsPolicy::PreferIpv6,
        Ok(v1::DnsPolicy::OnlyIpv4) => DnsPolicy::OnlyIpv4,
        Ok(v1::DnsPolicy::OnlyIpv6) => DnsPolicy::OnlyIpv6,
        Ok(v1::DnsPolicy::Any) => DnsPolicy::Any,
        Err(_) => {
            return Err(invalid(
                "transport.dns_policy",
                format!("unknown policy {}", t.dns_policy),
            ));
        }
    };
    Ok(Transport {
        protocol,
        streams,
        tls,
        new_connection_per_request: t.new_connection_per_request,
        dns_refresh,
        dns_policy,
    })
}

fn transport_to_wire(t: &Transport) -> v1::TargetTransport {
    v1::TargetTransport {
        protocol: match t.protocol {
            Protocol::Http1 => v1::TargetProtocol::Http1,
            Protocol::Http2 => v1::TargetProtocol::Http2,
        } as i32,
        streams_per_connection: t.streams,
        tls: t.tls.as_ref().map(|tls| v1::TargetTls {
            ca_pem: tls.ca_pem.clone(),
            cert_pem: tls.cert_pem.clone(),
            key_pem: tls.key_pem.clone(),
            server_name: tls.server_name.clone().unwrap_or_default(),
            insecure: tls.insecure,
        }),
        new_connection_per_request: t.new_connection_per_request,
        dns_refresh_micros: t
            .dns_refresh
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        dns_policy: match t.dns_policy {
            DnsPolicy::PreferIpv4 => v1::DnsPolicy::PreferIpv4,
            DnsPolicy::PreferIpv6 => v1::DnsPolicy::PreferIpv6,
            DnsPolicy::OnlyIpv4 => v1::DnsPolicy::OnlyIpv4,
            DnsPolicy::OnlyIpv6 => v1::DnsPolicy::OnlyIpv6,
            DnsPolicy::Any => v1::DnsPolicy::Any,
        } as i32,
    }
}

/// Checks a slice from the coordinator and turns it into a [`LoadPlan`].
pub fn plan_from_slice(slice: v1::LoadSlice) -> Result<LoadPlan, SliceError> {
    let requests = if slice.requests.is_empty() {
        let request = slice.request.ok_or(SliceError::Missing("request"))?;
        vec![request_from_wire("default", 1.0, request, 0)?]
    } else {
        if slice.requests.len() > MAX_REQUESTS {
            return Err(invalid(
                "requests",
                format!("{} requests (at most {MAX_REQUESTS})", slice.requests.len()),
            ));
        }
        let mut out = Vec::with_capacity(slice.requests.len());
        for r in slice.requests {
            let request = r.request.ok_or(SliceError::Missing("requests.request"))?;
            out.push(request_from_wire(
                &r.name,
                r.weight,
                request,
                r.timeout_micros,
            )?);
        }
        if out.iter().any(|r| r.url.origin() != out[0].url.origin()) {
            return Err(invalid(
                "requests",
                "every request must go to the same scheme, host and port",
            ));
        }
        out
    };
    let transport = transport_from_wire(slice.transport, requests[0].url.scheme() == "https")?;
    let data = match slice.data {
        None => None,
        Some(d) => Some(DataSet {
            order: match v1::DataOrder::try_from(d.order) {
                Ok(v1::DataOrder::Sequential) => DataOrder::Sequential,
                Ok(v1::DataOrder::Random) => DataOrder::Random,
                Ok(v1::DataOrder::Once) => DataOrder::Once,
                Err(_) => return Err(invalid("data.order", format!("unknown order {}", d.order))),
            },
            rows: d
                .rows
                .into_iter()
                .map(|r| {
                    if r.values.len() == d.columns.len() {
                        Ok(r.values)
                    } else {
                        Err(invalid(
                            "data.rows",
                            "a row's values do not match the columns",
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
            columns: d.columns,
        }),
    };
    let duration = match slice.duration_micros {
        0 => return Err(invalid("duration", "must be positive")),
        micros => Duration::from_micros(micros),
    };
    let model = match slice.model.ok_or(SliceError::Missing("model"))? {
        v1::load_slice::Model::Closed(c) => {
            if c.connections == 0 {
                return Err(invalid("closed.connections", "must be at least 1"));
            }
            let stages = if c.concurrency.is_empty() {
                None
            } else {
                let concurrency = profile("closed.concurrency", &c.concurrency, duration)?;
                if c.slots.len() != c.connections as usize {
                    return Err(invalid(
                        "closed.slots",
                        format!("{} slots for {} connections", c.slots.len(), c.connections),
                    ));
                }
                Some(ClosedStages {
                    concurrency,
                    slots: c.slots,
                })
            };
            WorkloadModel::Closed {
                connections: c.connections,
                stages,
            }
        }
        v1::load_slice::Model::Open(o) => {
            if o.connections == 0 {
                return Err(invalid("open.connections", "must be at least 1"));
            }
            let rate = if o.rate_profile.is_empty() {
                if !(o.rate_per_second.is_finite() && o.rate_per_second > 0.0) {
                    return Err(invalid("open.rate_per_second", "must be a positive number"));
                }
                LevelProfile::constant(o.rate_per_second, duration)
                    .map_err(|e| invalid("open.rate_per_second", e.to_string()))?
            } else {
                profile("open.rate_profile", &o.rate_profile, duration)?
            };
            WorkloadModel::Open {
                rate,
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
    let grpc = slice.grpc.map(grpc_from_wire).transpose()?;
    let positive = |field, micros: u64| {
        if micros == 0 {
            Err(invalid(field, "must be positive"))
        } else {
            Ok(Duration::from_micros(micros))
        }
    };
    if let Some(g) = &grpc {
        let rows = data.as_ref().map_or(0, |d| d.rows.len());
        if !g.row_payloads.is_empty() && g.row_payloads.len() != rows {
            return Err(invalid(
                "grpc.row_payloads",
                format!("{} payloads for {rows} data rows", g.row_payloads.len()),
            ));
        }
    }
    Ok(LoadPlan {
        requests,
        data,
        grpc,
        llm: slice.llm.map(|l| {
            let limit = |micros: u64| (micros > 0).then(|| Duration::from_micros(micros));
            LlmSpec {
                goodput: GoodputSlo {
                    ttft: limit(l.goodput_ttft_micros),
                    tpot: limit(l.goodput_tpot_micros),
                    e2e: limit(l.goodput_e2e_micros),
                },
            }
        }),
        model,
        duration,
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
        leg: (!slice.endpoint.is_empty()).then(|| Leg {
            endpoint: slice.endpoint.clone(),
            request_offset: slice.request_offset,
        }),
        transport,
    })
}

/// Checks a gRPC call: a `/package.Service/Method` path and metadata the
/// client can send.
fn grpc_from_wire(call: v1::GrpcCall) -> Result<GrpcSpec, SliceError> {
    if !is_grpc_method_path(&call.path) {
        return Err(invalid(
            "grpc.path",
            format!("{:?} is not /package.Service/Method", call.path),
        ));
    }
    let mut metadata = Vec::with_capacity(call.metadata.len());
    for h in call.metadata {
        let name_ok = !h.name.is_empty()
            && h.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !name_ok || h.name.ends_with("-bin") || h.name.starts_with("grpc-") {
            return Err(invalid(
                "grpc.metadata",
                format!("{:?} is not a usable ASCII metadata name", h.name),
            ));
        }
        if !h.value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(invalid(
                "grpc.metadata",
                format!("the value of {:?} is not visible ASCII", h.name),
            ));
        }
        metadata.push((h.name, h.value));
    }
    Ok(GrpcSpec {
        path: call.path,
        payload: call.payload.into(),
        row_payloads: call.row_payloads.into_iter().map(Into::into).collect(),
        metadata,
    })
}

/// `/package.Service/Method`: two non-empty segments of identifier
/// characters, the service's qualified by a package or not.
pub fn is_grpc_method_path(path: &str) -> bool {
    let ident = |s: &str, dots: bool| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.contains("..")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dots && b == b'.'))
    };
    match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((service, method)) => ident(service, true) && ident(method, false),
        None => false,
    }
}

/// The wire form of a [`LoadPlan`] (used by the coordinator to build
/// assignments, and by tests).
pub fn slice_from_plan(plan: &LoadPlan) -> v1::LoadSlice {
    let micros = |d: Duration| d.as_micros() as u64;
    v1::LoadSlice {
        request: None,
        grpc: plan.grpc.as_ref().map(|g| v1::GrpcCall {
            path: g.path.clone(),
            payload: g.payload.to_vec(),
            row_payloads: g.row_payloads.iter().map(|p| p.to_vec()).collect(),
            metadata: g
                .metadata
                .iter()
                .map(|(name, value)| v1::Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        }),
        llm: plan.llm.map(|l| v1::LlmSpec {
            goodput_ttft_micros: l.goodput.ttft.map_or(0, micros),
            goodput_tpot_micros: l.goodput.tpot.map_or(0, micros),
            goodput_e2e_micros: l.goodput.e2e.map_or(0, micros),
        }),
        requests: plan
            .requests
            .iter()
            .map(|r| v1::NamedRequest {
                name: r.name.clone(),
                weight: r.weight,
                request: Some(request_to_wire(r)),
                timeout_micros: r.timeout.map_or(0, micros),
            })
            .collect(),
        data: plan.data.as_ref().map(|d| v1::DataSet {
            columns: d.columns.clone(),
            rows: d
                .rows
                .iter()
                .map(|r| v1::DataRow { values: r.clone() })
                .collect(),
            order: match d.order {
                DataOrder::Sequential => v1::DataOrder::Sequential,
                DataOrder::Random => v1::DataOrder::Random,
                DataOrder::Once => v1::DataOrder::Once,
            } as i32,
        }),
        model: Some(match &plan.model {
            WorkloadModel::Closed {
                connections,
                stages,
            } => v1::load_slice::Model::Closed(v1::ClosedModel {
                connections: *connections,
                concurrency: stages
                    .as_ref()
                    .map(|s| segments_to_wire(&s.concurrency))
                    .unwrap_or_default(),
                slots: stages.as_ref().map(|s| s.slots.clone()).unwrap_or_default(),
            }),
            WorkloadModel::Open {
                rate,
                connections,
                arrival,
            } => v1::load_slice::Model::Open(v1::OpenModel {
                rate_per_second: plan.model.mean_rate().unwrap_or_default(),
                connections: *connections,
                arrival: match arrival {
                    Arrival::Constant => v1::Arrival::Constant as i32,
                    Arrival::Poisson { .. } => v1::Arrival::Poisson as i32,
                },
                seed: match arrival {
                    Arrival::Constant => 0,
                    Arrival::Poisson { seed } => *seed,
                },
                rate_profile: segments_to_wire(rate),
            }),
        }),
        duration_micros: micros(plan.duration),
        interval_micros: micros(plan.interval),
        timeout_micros: micros(plan.timeout),
        graceful_stop_micros: micros(plan.graceful_stop),
        think_min_micros: plan.think_time.map_or(0, |(min, _)| micros(min)),
        think_max_micros: plan.think_time.map_or(0, |(_, max)| micros(max)),
        endpoint: plan
            .leg
            .as_ref()
            .map(|l| l.endpoint.clone())
            .unwrap_or_default(),
        request_offset: plan.leg.as_ref().map_or(0, |l| l.request_offset),
        transport: Some(transport_to_wire(&plan.transport)),
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
        // Filled in by the session, which keeps the process's CPU clock.
        cpu_micros: 0,
        worker_threads: 0,
        run_id: run_id.to_owned(),
        agent_id: agent_id.to_owned(),
        index: record.index,
        start_unix_nanos: offset(record.start),
        end_unix_nanos: offset(record.end),
        latency_histogram: histogram::encode(&data.latency, encoding)?.into(),
        error_histogram: histogram::encode(&data.errors, encoding)?.into(),
        outcomes: Some(outcomes_to_wire(o)),
        status_codes: data
            .status_codes()
            .map(|(code, n)| (u32::from(code), n))
            .collect(),
        grpc_codes: data
            .grpc_codes()
            .map(|(code, n)| (u32::from(code), n))
            .collect(),
        bytes_received: data.bytes_received,
        bytes_sent: data.bytes_sent,
        last: record.last,
        schedule_lag_histogram: if data.schedule_lag.is_empty() {
            Default::default()
        } else {
            histogram::encode(&data.schedule_lag, encoding)?.into()
        },
        requests: data
            .requests
            .iter()
            .enumerate()
            .map(|(index, r)| {
                Ok(v1::RequestFigures {
                    index: index as u32,
                    latency_histogram: histogram::encode(&r.latency, encoding)?.into(),
                    error_histogram: histogram::encode(&r.errors, encoding)?.into(),
                    outcomes: Some(outcomes_to_wire(&r.outcomes)),
                })
            })
            .collect::<Result<_, histogram::HistogramCodecError>>()?,
        llm: match &data.llm {
            None => None,
            Some(l) => Some(v1::LlmFigures {
                ttft_histogram: histogram::encode(&l.ttft, encoding)?.into(),
                itl_histogram: histogram::encode(&l.itl, encoding)?.into(),
                itl_per_token_histogram: histogram::encode(&l.itl_per_token, encoding)?.into(),
                tpot_histogram: histogram::encode(&l.tpot, encoding)?.into(),
                tokens_per_second_histogram: histogram::encode(&l.tokens_per_second, encoding)?
                    .into(),
                output_tokens: l.output_tokens,
                input_tokens: l.input_tokens,
                usage_counted: l.usage_counted,
                chunk_counted: l.chunk_counted,
                uncounted: l.uncounted,
                streamed: l.streamed,
                good: l.good,
                malformed: l.malformed,
                truncated: l.truncated,
            }),
        },
        phases: Some(phases_to_wire(&data.phases, encoding)?),
    })
}

/// Phase timings; empty histograms travel as empty bytes (with keep-alive
/// the connect and TLS ones usually are).
fn phases_to_wire(
    p: &PhaseFigures,
    encoding: Encoding,
) -> Result<v1::PhaseFigures, histogram::HistogramCodecError> {
    let encode = |h: &hdrhistogram::Histogram<u64>| {
        if h.is_empty() {
            Ok(Default::default())
        } else {
            histogram::encode(h, encoding).map(Into::into)
        }
    };
    Ok(v1::PhaseFigures {
        dns_histogram: encode(&p.dns)?,
        connect_histogram: encode(&p.connect)?,
        tls_histogram: encode(&p.tls)?,
        wait_histogram: encode(&p.wait)?,
        transfer_histogram: encode(&p.transfer)?,
        new_connections: p.new_connections,
        addresses: p
            .addresses
            .iter()
            .map(|(addr, n)| v1::AddressUse {
                address: addr.to_string(),
                connections: *n,
            })
            .collect(),
    })
}

fn outcomes_to_wire(o: &crate::recorder::OutcomeCounts) -> v1::OutcomeCounts {
    v1::OutcomeCounts {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> LoadPlan {
        let mut small = RequestTemplate::new(
            "POST",
            url::Url::parse("http://127.0.0.1:9/x?y=1").expect("url"),
        );
        small.name = "small".into();
        small.weight = 80.0;
        small.headers = vec![("a".into(), "{{id}}".into())];
        small.body = b"{\"p\": \"{{prompt}}\"}".to_vec();
        let mut large = small.clone();
        large.name = "large".into();
        large.weight = 20.0;
        large.target = "/items/{{id}}?full=1".into();
        large.timeout = Some(Duration::from_millis(2500));
        LoadPlan {
            grpc: None,
            requests: vec![small, large],
            data: Some(DataSet {
                columns: vec!["id".into(), "prompt".into()],
                rows: vec![vec!["1".into(), "hi".into()], vec!["2".into(), "ho".into()]],
                order: DataOrder::Once,
            }),
            llm: Some(LlmSpec {
                goodput: GoodputSlo {
                    ttft: Some(Duration::from_millis(500)),
                    tpot: None,
                    e2e: Some(Duration::from_secs(9)),
                },
            }),
            model: WorkloadModel::Open {
                rate: LevelProfile::new(vec![
                    Segment {
                        duration: Duration::from_secs(2),
                        from: 0.0,
                        to: 123.5,
                    },
                    Segment::flat(123.5, Duration::from_secs(1)),
                ])
                .expect("valid"),
                connections: 7,
                arrival: Arrival::Poisson { seed: 42 },
            },
            duration: Duration::from_secs(3),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(1500),
            graceful_stop: Duration::from_secs(2),
            transport: Transport::default(),
            think_time: Some((Duration::from_millis(10), Duration::from_millis(30))),
            leg: None,
        }
    }

    #[test]
    fn request_targets_are_kept_as_written() {
        assert_eq!(
            request_target("http://h:1/a/{{id}}?q={{x}}"),
            "/a/{{id}}?q={{x}}"
        );
        assert_eq!(request_target("http://h"), "/");
        assert_eq!(request_target("http://h?x=1"), "/?x=1");
        let (url, target) = split_url("http://127.0.0.1:8/v1/{{model}}:predict").expect("ok");
        assert_eq!(url.as_str(), "http://127.0.0.1:8/");
        assert_eq!(target, "/v1/{{model}}:predict");
        assert!(split_url("http://{{host}}/x").is_err());
        assert!(split_url("not a url").is_err());
    }

    #[test]
    fn plan_survives_the_wire() {
        let p = plan();
        assert_eq!(plan_from_slice(slice_from_plan(&p)).expect("valid"), p);
        let closed = LoadPlan {
            grpc: None,
            model: WorkloadModel::Closed {
                connections: 2,
                stages: Some(ClosedStages {
                    concurrency: LevelProfile::new(vec![Segment {
                        duration: Duration::from_secs(3),
                        from: 0.0,
                        to: 4.0,
                    }])
                    .expect("valid"),
                    slots: vec![1, 3],
                }),
            },
            ..plan()
        };
        assert_eq!(
            plan_from_slice(slice_from_plan(&closed)).expect("valid"),
            closed
        );
        for (_, dns_policy) in DnsPolicy::NAMES {
            let p = LoadPlan {
                transport: Transport {
                    dns_policy,
                    ..Transport::default()
                },
                ..plan()
            };
            assert_eq!(plan_from_slice(slice_from_plan(&p)).expect("valid"), p);
        }
        let mut unknown = slice_from_plan(&plan());
        if let Some(t) = unknown.transport.as_mut() {
            t.dns_policy = 99;
        }
        let refused = plan_from_slice(unknown).expect_err("an unknown policy is refused");
        assert!(refused.to_string().contains("dns_policy"), "{refused}");
    }

    #[test]
    fn a_grpc_call_survives_the_wire_and_bad_ones_are_refused() {
        let p = LoadPlan {
            grpc: Some(GrpcSpec {
                path: "/inference.GRPCInferenceService/ModelInfer".into(),
                payload: bytes::Bytes::from_static(b"\x0a\x04echo"),
                row_payloads: vec![],
                metadata: vec![("x-stampede-region".into(), "eu-west".into())],
            }),
            ..plan()
        };
        assert_eq!(plan_from_slice(slice_from_plan(&p)).expect("valid"), p);
        let with = |edit: fn(&mut v1::GrpcCall)| {
            let mut s = slice_from_plan(&p);
            if let Some(g) = s.grpc.as_mut() {
                edit(g);
            }
            plan_from_slice(s)
        };
        assert!(with(|g| g.path = "/NoMethod".into()).is_err());
        assert!(with(|g| g.metadata[0].name = "Upper".into()).is_err());
        assert!(with(|g| g.metadata[0].name = "grpc-timeout".into()).is_err());
        assert!(with(|g| g.metadata[0].value = "line\nbreak".into()).is_err());
    }

    #[test]
    fn grpc_method_paths() {
        for good in [
            "/a.b.Svc/Method",
            "/Svc/M_1",
            "/inference.GRPCInferenceService/ModelInfer",
        ] {
            assert!(is_grpc_method_path(good), "{good}");
        }
        for bad in [
            "", "/", "Svc/M", "/Svc/", "//M", "/a..b/M", "/.a/M", "/a/M/x", "/a/M.x", "/a b/M",
        ] {
            assert!(!is_grpc_method_path(bad), "{bad}");
        }
    }

    #[test]
    fn refuses_bad_slices() {
        let mut s = slice_from_plan(&plan());
        s.model = Some(v1::load_slice::Model::Open(v1::OpenModel {
            rate_per_second: -1.0,
            connections: 1,
            rate_profile: vec![],
            ..Default::default()
        }));
        assert!(plan_from_slice(s).is_err());
        let mut s = slice_from_plan(&plan());
        if let Some(v1::load_slice::Model::Open(o)) = s.model.as_mut() {
            o.rate_profile[0].duration_micros += 1;
        }
        assert!(
            plan_from_slice(s).is_err(),
            "segments must add up to the duration"
        );
        let mut s = slice_from_plan(&plan());
        if let Some(v1::load_slice::Model::Open(o)) = s.model.as_mut() {
            o.rate_profile[1].to = f64::NAN;
        }
        assert!(plan_from_slice(s).is_err());
        let mut s = slice_from_plan(&plan());
        s.model = Some(v1::load_slice::Model::Closed(v1::ClosedModel {
            connections: 2,
            concurrency: vec![v1::ProfileSegment {
                duration_micros: 3_000_000,
                from: 1.0,
                to: 2.0,
            }],
            slots: vec![0],
        }));
        assert!(plan_from_slice(s).is_err(), "one slot per connection");
        let mut s = slice_from_plan(&plan());
        if let Some(r) = s.requests[1].request.as_mut() {
            r.url = "http://127.0.0.1:10/other".into();
        }
        assert!(
            plan_from_slice(s).is_err(),
            "a mix goes to one host and port"
        );
        let mut s = slice_from_plan(&plan());
        if let Some(d) = s.data.as_mut() {
            d.rows[0].values.pop();
        }
        assert!(plan_from_slice(s).is_err(), "ragged rows");
        let mut s = slice_from_plan(&plan());
        s.interval_micros = 0;
        assert!(plan_from_slice(s).is_err());
        let mut s = slice_from_plan(&plan());
        if let Some(r) = s.requests[0].request.as_mut() {
            r.url = "ftp://x/".into();
        }
        assert!(plan_from_slice(s).is_err());
    }
}
