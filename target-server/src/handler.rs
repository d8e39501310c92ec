//! Answering one request: stall, capacity queue, delay, count and respond on the load path; report or act on
//! admin paths.
//!
//! Handling is split in two so the per-connection RNG never has to live inside a future: `plan` runs
//! synchronously as the request arrives (routing, sampling the delay, registering the arrival with the
//! stall), and `respond` does the waiting and builds the response.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::time::Instant;

use crate::capacity::CapacityLimit;
use crate::config::TargetConfig;
use crate::delay::DelaySpec;
use crate::llm::{self, Fault, LlmConfig, LlmStream};
use crate::route::{self, Route};
use crate::stall::Stall;
use crate::stats::{RegionSlot, TargetStats};

/// Response bodies: a `Bytes` (the load path hands out clones of one preallocated buffer), or the
/// OpenAI mock's timed event stream.
pub(crate) type ResponseBody = Either<Full<Bytes>, LlmStream>;

/// Largest request body the OpenAI mock reads.
const MAX_LLM_REQUEST_BYTES: usize = 1 << 20;

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Request bodies are read and dropped up to this size, so a POST load keeps its connection alive; beyond
/// it hyper closes the connection after answering rather than read an unbounded body.
const MAX_DRAIN_BYTES: usize = 16 << 20;

/// What `plan` decided, carried into `respond`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plan {
    Load {
        /// When the request may be served: the end of the stall window it arrived in, or of its wait for a
        /// slot under a capacity limit, whichever is later; `None` at once.
        hold_until: Option<Instant>,
        delay: Duration,
        slot: RegionSlot,
        status: Option<StatusCode>,
    },
    Llm {
        delay: Duration,
        slot: RegionSlot,
        chat: bool,
        fault: Option<Fault>,
    },
    Stats,
    Stall,
    NotFound,
}

/// Server-wide state shared by every connection.
#[derive(Debug)]
pub(crate) struct Handler {
    default_delay: DelaySpec,
    /// Delays of the configured regions, indexed like `RegionSlot::Known`.
    region_delays: Vec<DelaySpec>,
    /// The whole server's capacity limit.
    capacity: Option<CapacityLimit>,
    /// Each configured region's own limit, indexed like `RegionSlot::Known`.
    region_capacities: Vec<Option<CapacityLimit>>,
    body: Bytes,
    stats: TargetStats,
    stall: Stall,
    llm: LlmConfig,
}

impl Handler {
    pub(crate) fn new(config: &TargetConfig) -> Self {
        // A region is configured when it has a delay or a capacity of its own.
        let regions: std::collections::BTreeSet<&str> = config
            .region_delays
            .keys()
            .chain(config.region_capacities.keys())
            .map(String::as_str)
            .collect();
        Handler {
            default_delay: config.default_delay,
            region_delays: regions
                .iter()
                .map(|r| {
                    *config
                        .region_delays
                        .get(*r)
                        .unwrap_or(&config.default_delay)
                })
                .collect(),
            capacity: config.capacity.map(CapacityLimit::new),
            region_capacities: regions
                .iter()
                .map(|r| {
                    config
                        .region_capacities
                        .get(*r)
                        .copied()
                        .map(CapacityLimit::new)
                })
                .collect(),
            body: make_body(config.body_bytes),
            stats: TargetStats::new(regions.iter().copied()),
            stall: Stall::new(config.stall),
            llm: config.llm,
        }
    }

    pub(crate) fn stats(&self) -> &TargetStats {
        &self.stats
    }

    /// The synchronous part of handling, run the moment the request arrives.
    pub(crate) fn plan(&self, req: &Request<Incoming>, rng: &mut fastrand::Rng) -> Plan {
        match route::route(req.uri().path(), req.headers()) {
            Route::Load { region, status } => {
                let slot = self.stats.slot(region);
                let spec = match slot {
                    RegionSlot::Known(i) => {
                        self.region_delays.get(i).unwrap_or(&self.default_delay)
                    }
                    RegionSlot::Unnamed | RegionSlot::Unknown => &self.default_delay,
                };
                let delay = spec.sample(rng);
                let stalled = self.stall.on_arrival();
                // Slots are reserved on arrival, so the queue is served in arrival order.
                let now = Instant::now();
                let region_limit = match slot {
                    RegionSlot::Known(i) => self.region_capacities.get(i).and_then(Option::as_ref),
                    RegionSlot::Unnamed | RegionSlot::Unknown => None,
                };
                let queued = [self.capacity.as_ref(), region_limit]
                    .into_iter()
                    .flatten()
                    .filter_map(|limit| limit.reserve(now))
                    .max();
                let hold_until = stalled.max(queued);
                Plan::Load {
                    hold_until,
                    delay,
                    slot,
                    status,
                }
            }
            Route::Llm { region, chat } => {
                let slot = self.stats.slot(region);
                let spec = match slot {
                    RegionSlot::Known(i) => {
                        self.region_delays.get(i).unwrap_or(&self.default_delay)
                    }
                    RegionSlot::Unnamed | RegionSlot::Unknown => &self.default_delay,
                };
                Plan::Llm {
                    delay: spec.sample(rng),
                    slot,
                    chat,
                    fault: Fault::from_query(route::query_param(req.uri().query(), "fault")),
                }
            }
            Route::Stats => Plan::Stats,
            Route::Stall => Plan::Stall,
            Route::UnknownAdmin => Plan::NotFound,
        }
    }

    /// Waits as planned and builds the response. Never fails: every problem is an HTTP status.
    pub(crate) async fn respond(
        &self,
        req: Request<Incoming>,
        plan: Plan,
    ) -> Response<ResponseBody> {
        match plan {
            Plan::Load {
                hold_until,
                delay,
                slot,
                status,
            } => {
                let (parts, body) = req.into_parts();
                drain(body).await;
                if let Some(end) = hold_until {
                    tokio::time::sleep_until(end).await;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let name = match slot {
                    RegionSlot::Unknown => {
                        route::region(parts.uri.path(), &parts.headers).unwrap_or_default()
                    }
                    RegionSlot::Unnamed | RegionSlot::Known(_) => "",
                };
                self.stats.record(slot, name);
                match status {
                    // These statuses forbid a body.
                    Some(code @ (StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)) => {
                        response(code, TEXT_PLAIN, Bytes::new())
                    }
                    Some(status) => response(status, TEXT_PLAIN, self.body.clone()),
                    None => text(
                        StatusCode::BAD_REQUEST,
                        "bad status code: /status/<code> takes a code from 200 to 599\n",
                    ),
                }
            }
            Plan::Llm {
                delay,
                slot,
                chat,
                fault,
            } => {
                let arrived = Instant::now();
                let (parts, body) = req.into_parts();
                if parts.method != Method::POST {
                    return method_not_allowed("POST");
                }
                let Some(bytes) = read_bounded(body, MAX_LLM_REQUEST_BYTES).await else {
                    return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
                };
                let Some(request) = llm::parse_request(chat, &bytes, &self.llm, fault) else {
                    return text(StatusCode::BAD_REQUEST, "the body must be a JSON object\n");
                };
                let name = match slot {
                    RegionSlot::Unknown => {
                        route::region(parts.uri.path(), &parts.headers).unwrap_or_default()
                    }
                    RegionSlot::Unnamed | RegionSlot::Known(_) => "",
                };
                let start = arrived + delay;
                if request.stream {
                    // Counted once its last event is out, like any answer
                    // once it is produced.
                    let stats = self.stats.clone();
                    let name = name.to_owned();
                    let stream = LlmStream::new(&request, &self.llm, start)
                        .on_done(move || stats.record(slot, &name));
                    let mut resp = Response::new(Either::Right(stream));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/event-stream"),
                    );
                    resp.headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                    resp
                } else {
                    tokio::time::sleep_until(start + llm::full_duration(&request, &self.llm)).await;
                    self.stats.record(slot, name);
                    response(
                        StatusCode::OK,
                        APPLICATION_JSON,
                        llm::full_response(&request),
                    )
                }
            }
            Plan::Stats => self.stats_endpoint(req.method()),
            Plan::Stall => self.stall_endpoint(req.method(), req.uri().query()),
            Plan::NotFound => text(
                StatusCode::NOT_FOUND,
                "unknown admin endpoint: try GET /__stampede/stats or POST /__stampede/stall?for=1s\n",
            ),
        }
    }

    /// `GET /__stampede/stats`: the counters as JSON.
    fn stats_endpoint(&self, method: &Method) -> Response<ResponseBody> {
        if method != Method::GET && method != Method::HEAD {
            return method_not_allowed("GET, HEAD");
        }
        match serde_json::to_vec(&self.stats.snapshot()) {
            Ok(json) => response(StatusCode::OK, APPLICATION_JSON, Bytes::from(json)),
            Err(e) => text_owned(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode stats: {e}\n"),
            ),
        }
    }

    /// `POST /__stampede/stall?for=1s`: opens a stall window now.
    fn stall_endpoint(&self, method: &Method, query: Option<&str>) -> Response<ResponseBody> {
        if method != Method::POST {
            return method_not_allowed("POST");
        }
        let Some(value) = route::query_param(query, "for") else {
            return text(
                StatusCode::BAD_REQUEST,
                "missing ?for=DURATION, e.g. ?for=1s\n",
            );
        };
        match humantime::parse_duration(value) {
            Ok(duration) => {
                self.stall.stall_now(duration);
                let msg = format!("stalling for {}\n", humantime::format_duration(duration));
                text_owned(StatusCode::OK, msg)
            }
            Err(e) => text_owned(
                StatusCode::BAD_REQUEST,
                format!("invalid duration {value:?} in ?for=: {e}\n"),
            ),
        }
    }
}

/// The load-path body: `ok` for the default 2 bytes, padded with `.` or truncated to `len`.
fn make_body(len: usize) -> Bytes {
    let mut body = vec![b'.'; len];
    for (dst, src) in body.iter_mut().zip(b"ok") {
        *dst = *src;
    }
    Bytes::from(body)
}

/// Reads and drops the request body, so that the connection can be reused.
async fn drain(mut body: Incoming) {
    let mut seen = 0usize;
    while !body.is_end_stream() && seen <= MAX_DRAIN_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) | None => break,
        }
    }
}

/// Reads a request body of at most `limit` bytes; `None` when it is larger or broken.
async fn read_bounded(mut body: Incoming, limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > limit {
                return None;
            }
            out.extend_from_slice(data);
        }
    }
    Some(out)
}

fn response(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Response<ResponseBody> {
    let mut resp = Response::new(Either::Left(Full::new(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    resp
}

fn text(status: StatusCode, msg: &'static str) -> Response<ResponseBody> {
    response(status, TEXT_PLAIN, Bytes::from_static(msg.as_bytes()))
}

fn text_owned(status: StatusCode, msg: String) -> Response<ResponseBody> {
    response(status, TEXT_PLAIN, Bytes::from(msg))
}

fn method_not_allowed(allow: &'static str) -> Response<ResponseBody> {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_configured_size() {
        assert_eq!(&make_body(2)[..], b"ok");
        assert_eq!(&make_body(0)[..], b"");
        assert_eq!(&make_body(1)[..], b"o");
        assert_eq!(&make_body(5)[..], b"ok...");
    }
}
