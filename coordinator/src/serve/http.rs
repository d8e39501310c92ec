//! The run API over HTTP/JSON (hyper), for `stampede run`, curl and CI:
//!
//! | call | does |
//! |---|---|
//! | `POST /api/v1/runs` | submit a scenario ([`SubmitRun`]); answers the run, queued |
//! | `GET /api/v1/runs?scenario=&label=&since=&until=&state=&limit=` | the history, newest first |
//! | `GET /api/v1/runs/{id}` | one run: state, labels, headline figures |
//! | `GET /api/v1/runs/{id}/report` | its JSON report (with histograms) |
//! | `GET /api/v1/runs/{id}/report.html` | its HTML report, with the trend of the scenario's last runs |
//! | `GET /api/v1/runs/{id}/intervals` | its intervals as kept when they closed (figures, merged latency histogram) |
//! | `GET /api/v1/runs/{id}/events` | its events so far, then live: one JSON object per line |
//! | `POST /api/v1/runs/{id}/abort` | abort it (queued: dropped; running: stopped, partial report kept) |
//!
//! Every call must carry `Authorization: Bearer TOKEN`; without it the
//! answer is 401 and nothing else is read.

use super::SharedHistory;
use super::api::{ErrorBody, SubmitRun, WireEvent};
use super::queue::{QueueError, QueueRequest};
use crate::events::RunEvent;
use crate::history::{HistoryFilter, RunState, now_ms, parse_time};
use crate::report::html;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use stampede_proto::security::SharedToken;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast::error::RecvError, mpsc, oneshot};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Largest request body: a scenario (at most 1 MiB) in JSON, with room for
/// escaping.
const MAX_BODY_BYTES: usize = 4 << 20;

type Body = BoxBody<Bytes, Infallible>;

/// What the API serves from.
#[derive(Debug, Clone)]
pub struct Api {
    pub token: SharedToken,
    pub queue: mpsc::Sender<QueueRequest>,
    pub history: SharedHistory,
    pub trend_runs: u32,
}

/// Serves the API on `listener` until `shutdown`; one task per connection.
pub async fn serve(listener: TcpListener, api: Api, shutdown: CancellationToken) {
    let api = Arc::new(api);
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "run API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let api = api.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(respond(&api, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => if let Err(e) = served {
                    debug!(error = %e, "run API: connection ended");
                },
                _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
        });
    }
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, why: impl Into<String>) -> Response<Body> {
    json(status, &ErrorBody { error: why.into() })
}

fn queue_error(e: QueueError) -> Response<Body> {
    let status = match &e {
        QueueError::Invalid(_) => StatusCode::BAD_REQUEST,
        QueueError::NotFound(_) => StatusCode::NOT_FOUND,
        QueueError::Over { .. } => StatusCode::CONFLICT,
        QueueError::History(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

async fn respond(api: &Api, request: Request<Incoming>) -> Response<Body> {
    let presented = request.headers().get(header::AUTHORIZATION);
    if !api.token.accepts(presented.map(|v| v.as_bytes())) {
        warn!(path = %request.uri().path(), "run API call refused: missing or wrong token");
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send `Authorization: Bearer TOKEN` with the coordinator's token",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/api/v1/runs") else {
        return error(StatusCode::NOT_FOUND, "the run API is at /api/v1/runs");
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let method = request.method().clone();
    match (&method, parts.as_slice()) {
        (&Method::POST, []) => submit(api, request).await,
        (&Method::GET, []) => list(api, request.uri().query().unwrap_or("")),
        (&Method::GET, [id]) => match api.history.lock().get(id) {
            Ok(Some(row)) => json(StatusCode::OK, &row),
            Ok(None) => error(StatusCode::NOT_FOUND, format!("no run {id}")),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        (&Method::GET, [id, "report"]) => match api.history.lock().report(id) {
            Ok(Some(report)) => json(StatusCode::OK, &report),
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                format!("run {id} has no report (yet)"),
            ),
            Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
        },
        (&Method::GET, [id, "report.html"]) => report_html(api, id),
        (&Method::GET, [id, "intervals"]) => {
            let history = api.history.lock();
            match history.get(id) {
                Ok(Some(_)) => match history.intervals(id) {
                    Ok(intervals) => json(StatusCode::OK, &intervals),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                },
                Ok(None) => error(StatusCode::NOT_FOUND, format!("no run {id}")),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        (&Method::GET, [id, "events"]) => events(api, id).await,
        (&Method::POST, [id, "abort"]) => {
            let id = (*id).to_owned();
            ask(api, |reply| QueueRequest::Abort { id, reply })
                .await
                .map_or_else(queue_error, |row| json(StatusCode::OK, &row))
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no such call: {method} {path}"),
        ),
    }
}

/// Sends the queue actor a request and waits for its answer.
async fn ask<T>(
    api: &Api,
    make: impl FnOnce(oneshot::Sender<Result<T, QueueError>>) -> QueueRequest,
) -> Result<T, QueueError> {
    let (reply, answer) = oneshot::channel();
    let gone = || QueueError::Invalid("the coordinator is shutting down".into());
    api.queue.send(make(reply)).await.map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?
}

async fn submit(api: &Api, request: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body could not be read (at most {MAX_BODY_BYTES} bytes): {e}"),
            );
        }
    };
    let submission: SubmitRun = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not a submission ({{\"scenario_file\", \"scenario_text\", \"labels\", \"git_sha\"}}): {e}"
                ),
            );
        }
    };
    let answer = ask(api, |reply| QueueRequest::Submit {
        file: submission.scenario_file,
        text: submission.scenario_text,
        labels: submission.labels,
        git_sha: submission.git_sha,
        reply,
    })
    .await;
    match answer {
        Ok(row) => json(StatusCode::CREATED, &row),
        Err(e) => queue_error(e),
    }
}

fn list(api: &Api, query: &str) -> Response<Body> {
    let mut filter = HistoryFilter::default();
    let now = now_ms();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let bad = |why: String| error(StatusCode::BAD_REQUEST, format!("{key}: {why}"));
        match key.as_ref() {
            "scenario" => filter.scenario = Some(value.into_owned()),
            "label" => filter.labels.push(value.into_owned()),
            "since" => match parse_time(&value, now) {
                Ok(t) => filter.since_ms = Some(t),
                Err(why) => return bad(why),
            },
            "until" => match parse_time(&value, now) {
                Ok(t) => filter.until_ms = Some(t),
                Err(why) => return bad(why),
            },
            "state" => match RunState::parse(&value) {
                Some(state) => filter.state = Some(state),
                None => {
                    return bad(format!(
                        "{value:?} is not a state (queued, running, passed, failed, aborted, error)"
                    ));
                }
            },
            "limit" => match value.parse() {
                Ok(n) => filter.limit = Some(n),
                Err(_) => return bad(format!("{value:?} is not a count")),
            },
            _ => return bad("unknown filter (scenario, label, since, until, state, limit)".into()),
        }
    }
    match api.history.lock().list(&filter) {
        Ok(rows) => json(StatusCode::OK, &rows),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn report_html(api: &Api, id: &str) -> Response<Body> {
    let history = api.history.lock();
    let (row, report) = match (history.get(id), history.report(id)) {
        (Ok(Some(row)), Ok(Some(report))) => (row, report),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::NOT_FOUND, e.to_string()),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("run {id} has no report (yet)"),
            );
        }
    };
    let trend = match history.trend(&row.scenario_name, row.submitted_at_ms, api.trend_runs) {
        Ok(trend) => trend,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    drop(history);
    match html::render_with_trend(&report, &trend) {
        Ok(page) => {
            let mut response = Response::new(Full::new(Bytes::from(page)).boxed());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn line(event: &RunEvent) -> Bytes {
    let mut text = serde_json::to_vec(&WireEvent::from(event)).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

/// Streams the run's events (so far, then live) as JSON lines. A run this
/// coordinator no longer holds in memory gets its report's `finished`
/// event alone (or nothing, when it has none).
async fn events(api: &Api, id: &str) -> Response<Body> {
    let owned = id.to_owned();
    let (past, live) = match ask(api, |reply| QueueRequest::Watch { id: owned, reply }).await {
        Ok(log) => log.subscribe(),
        Err(QueueError::NotFound(_)) => match api.history.lock().report(id) {
            Ok(Some(report)) => (vec![RunEvent::Finished(Arc::new(report))], None),
            Ok(None) => (Vec::new(), None),
            Err(e) => return error(StatusCode::NOT_FOUND, e.to_string()),
        },
        Err(e) => return queue_error(e),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for event in &past {
            if tx.send(line(event)).await.is_err() {
                return;
            }
        }
        let Some(mut live) = live else { return };
        loop {
            match live.recv().await {
                Ok(event) => {
                    if tx.send(line(&event)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            }
        }
    });
    let stream = ReceiverStream::new(rx).map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}
