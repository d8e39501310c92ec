//! HTTP/2 to the target with the `h2` crate (hyper's own HTTP/2 layer), used
//! directly: one h2 connection per "connection" of the plan, and
//! `streams` request slots on it, each running the same request loop as an
//! HTTP/1.1 connection (see `connection.rs`).
//!
//! The slots of a connection share an [`H2Group`]: the live connection's
//! send handle and a connect lock, so one slot (re)connects and the others
//! wait for it. All of it lives on one worker thread (`Rc`, no atomics); the
//! lock is only taken when a slot has no live connection, never per request.
//!
//! Per request, `h2` needs an owned `http::Request<()>`: its `HeaderMap` is
//! cloned from one built once per fixed request (a templated request is
//! parsed from its rendered HTTP/1.1 form, which allocates the map, the URI
//! and the body `Bytes`). The body of a fixed request is a shared `Bytes`
//! (a reference count, no copy).

use super::http1::{BodyObserver, ResponseInfo};
use super::request_set::RequestSet;
use super::transport::{ConnectFailure, Connector};
use crate::phases::ConnectTimings;
use bytes::Bytes;
use h2::client::SendRequest;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme, Uri};
use http::{Method, Request};
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use tokio::time::Instant;

/// Most request headers parsed from a rendered request.
const MAX_HEADERS: usize = 64;
/// Receive windows: large, so a long (streamed) response is never held up
/// by flow control between two reads; received data is released at once.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// Connection-specific HTTP/1.1 headers that HTTP/2 forbids (RFC 9113 §8.2.2).
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

#[derive(Debug, thiserror::Error)]
pub enum H2RequestError {
    #[error("the request does not parse")]
    Head,
    #[error("invalid {0} for HTTP/2")]
    Invalid(&'static str),
}

/// A request in HTTP/2 form, built once (fixed requests) or per send
/// (templated ones), from the HTTP/1.1 serialization the engine renders.
#[derive(Debug, Clone)]
pub(crate) struct H2Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl H2Request {
    /// Parses an HTTP/1.1 request (as `RequestSet` renders it): `Host`
    /// becomes the `:authority`, connection-specific headers are dropped.
    pub(crate) fn from_http1(
        bytes: &[u8],
        scheme: &Scheme,
        authority: &Authority,
    ) -> Result<Self, H2RequestError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let head_len = match request.parse(bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => return Err(H2RequestError::Head),
        };
        let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
            .map_err(|_| H2RequestError::Invalid("method"))?;
        let mut authority = authority.clone();
        let mut map = HeaderMap::with_capacity(request.headers.len());
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("host") {
                authority = Authority::try_from(header.value)
                    .map_err(|_| H2RequestError::Invalid("Host header"))?;
                continue;
            }
            if HOP_BY_HOP
                .iter()
                .any(|h| header.name.eq_ignore_ascii_case(h))
            {
                continue;
            }
            // `te` is allowed only as `trailers`.
            if header.name.eq_ignore_ascii_case("te")
                && !header.value.eq_ignore_ascii_case(b"trailers")
            {
                continue;
            }
            let name = HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|_| H2RequestError::Invalid("header name"))?;
            let value = HeaderValue::from_bytes(header.value)
                .map_err(|_| H2RequestError::Invalid("header value"))?;
            map.append(name, value);
        }
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority)
            .path_and_query(request.path.unwrap_or("/"))
            .build()
            .map_err(|_| H2RequestError::Invalid("request target"))?;
        Ok(Self {
            method,
            uri,
            headers: map,
            body: Bytes::copy_from_slice(&bytes[head_len..]),
        })
    }

    /// The owned request `h2` takes, and the body.
    fn to_request(&self) -> (Request<()>, Bytes) {
        let mut request = Request::new(());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        (request, self.body.clone())
    }
}

/// The run's requests in HTTP/2 form: fixed ones built once, templated ones
/// per send.
#[derive(Debug)]
pub(crate) struct H2Requests {
    scheme: Scheme,
    authority: Authority,
    fixed: Vec<Option<H2Request>>,
}

impl H2Requests {
    pub(crate) fn new(set: &RequestSet, url: &url::Url) -> Result<Self, H2RequestError> {
        let scheme = if url.scheme() == "https" {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let host = url.host_str().ok_or(H2RequestError::Invalid("host"))?;
        let authority = match url.port() {
            Some(port) => Authority::try_from(format!("{host}:{port}")),
            None => Authority::try_from(host),
        }
        .map_err(|_| H2RequestError::Invalid("host"))?;
        let (mut buf, mut scratch) = (Vec::new(), Vec::new());
        let mut fixed = Vec::with_capacity(set.len());
        for index in 0..set.len() {
            fixed.push(if set.is_fixed(index) {
                let bytes = set.bytes(index, None, &mut buf, &mut scratch);
                Some(H2Request::from_http1(bytes, &scheme, &authority)?)
            } else {
                None
            });
        }
        Ok(Self {
            scheme,
            authority,
            fixed,
        })
    }

    /// Request `index` whose HTTP/1.1 form is `rendered`: the prepared one,
    /// or (templated) one built into `built`.
    pub(crate) fn get<'a>(
        &'a self,
        index: usize,
        rendered: &[u8],
        built: &'a mut Option<H2Request>,
    ) -> Result<&'a H2Request, H2RequestError> {
        if let Some(Some(request)) = self.fixed.get(index) {
            return Ok(request);
        }
        let request = H2Request::from_http1(rendered, &self.scheme, &self.authority)?;
        Ok(built.insert(request))
    }
}

/// The live connection of a group, as a slot holds it.
#[derive(Clone)]
struct H2Handle {
    sender: SendRequest<Bytes>,
    /// Cleared when the connection ends (its driver task returns) or a slot
    /// sees a connection-level error.
    alive: Rc<Cell<bool>>,
}

/// What the slots of one HTTP/2 connection share.
#[derive(Default)]
pub(crate) struct H2Group {
    /// Held while (re)connecting, so the slots open one connection, not one each.
    connecting: tokio::sync::Mutex<()>,
    current: RefCell<Option<H2Handle>>,
}

/// How an HTTP/2 exchange failed.
pub(crate) enum H2Failure {
    Connect(ConnectFailure),
    /// The stream or the connection failed; `mid_body`: after the response
    /// head arrived.
    Stream {
        mid_body: bool,
    },
}

/// One request slot on a group's connection.
pub(crate) struct H2Slot {
    group: Rc<H2Group>,
    handle: Option<H2Handle>,
}

impl H2Slot {
    pub(crate) fn new(group: Rc<H2Group>) -> Self {
        Self {
            group,
            handle: None,
        }
    }

    /// Lets go of this slot's view of the connection (others keep it).
    pub(crate) fn release(&mut self) {
        self.handle = None;
    }

    /// A live connection for this slot: its own, the group's current one,
    /// or a new one this slot opens for the group.
    /// Gives the connection's timings when this slot opened it.
    pub(crate) async fn ready(
        &mut self,
        connector: &Connector,
        addr: SocketAddr,
    ) -> Result<Option<ConnectTimings>, ConnectFailure> {
        if self.is_connected() {
            return Ok(None);
        }
        self.handle = None;
        let group = self.group.clone();
        let _connecting = group.connecting.lock().await;
        let current = group
            .current
            .borrow()
            .as_ref()
            .filter(|h| h.alive.get())
            .cloned();
        let (handle, opened) = match current {
            Some(handle) => (handle, None),
            None => {
                // Boxed: the handshake's state is large, and unboxed it
                // would be part of (and moved with) every send's future.
                let (handle, timings) = Box::pin(open(connector, addr)).await?;
                *group.current.borrow_mut() = Some(handle.clone());
                (handle, Some(timings))
            }
        };
        self.handle = Some(handle);
        Ok(opened)
    }

    /// This slot holds a live connection (the next send opens none).
    pub(crate) fn is_connected(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| h.alive.get())
    }

    /// Sends `request` on a stream and reads the whole response, showing it
    /// to `observer` as it arrives. When this slot opened the connection,
    /// `opened` says how (and when it was ready).
    pub(crate) async fn send<O: BodyObserver>(
        &mut self,
        connector: &Connector,
        addr: SocketAddr,
        request: &H2Request,
        observer: &mut O,
        opened: &mut Option<(ConnectTimings, Instant)>,
    ) -> Result<ResponseInfo, H2Failure> {
        // Checked here first so a live connection costs no `ready` future.
        if !self.is_connected() {
            if let Some(timings) = self
                .ready(connector, addr)
                .await
                .map_err(H2Failure::Connect)?
            {
                *opened = Some((timings, Instant::now()));
            }
        }
        let Some(handle) = self.handle.as_mut() else {
            return Err(H2Failure::Connect(ConnectFailure::Tcp));
        };
        let result = exchange(&mut handle.sender, request, observer).await;
        if let Err((e, _)) = &result {
            // A stream reset leaves the connection up; anything else
            // (GOAWAY, I/O, protocol error) ends it for every slot, and the
            // next send reconnects.
            if !e.is_reset() {
                handle.alive.set(false);
                self.handle = None;
            }
        }
        result.map_err(|(_, mid_body)| H2Failure::Stream { mid_body })
    }
}

/// Opens a connection (TLS with ALPN h2, or h2c with prior knowledge) and
/// starts its driver task on this worker thread.
async fn open(
    connector: &Connector,
    addr: SocketAddr,
) -> Result<(H2Handle, ConnectTimings), ConnectFailure> {
    let (stream, timings) = connector.connect(addr).await?;
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(|e| {
            tracing::debug!(%addr, error = %e, "HTTP/2 handshake failed");
            ConnectFailure::Tcp
        })?;
    let alive = Rc::new(Cell::new(true));
    let flag = alive.clone();
    tokio::task::spawn_local(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%addr, error = %e, "HTTP/2 connection ended");
        }
        flag.set(false);
    });
    Ok((H2Handle { sender, alive }, timings))
}

/// One request/response on a new stream. The error says whether the
/// response head had arrived.
async fn exchange<O: BodyObserver>(
    sender: &mut SendRequest<Bytes>,
    request: &H2Request,
    observer: &mut O,
) -> Result<ResponseInfo, (h2::Error, bool)> {
    // Waits while the server's limit on concurrent streams is reached.
    poll_fn(|cx| sender.poll_ready(cx))
        .await
        .map_err(|e| (e, false))?;
    let (head, body) = request.to_request();
    let (response, mut stream) = sender
        .send_request(head, body.is_empty())
        .map_err(|e| (e, false))?;
    if !body.is_empty() {
        stream.send_data(body, true).map_err(|e| (e, false))?;
    }
    let response = response.await.map_err(|e| (e, false))?;
    let first_byte = Instant::now();
    let status = response.status().as_u16();
    let event_stream = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            let v = v.as_bytes().trim_ascii_start();
            v.len() >= 17 && v[..17].eq_ignore_ascii_case(b"text/event-stream")
        });
    // Header bytes as HTTP/1.1 would carry them (HPACK hides the wire size).
    let mut received = 12 + 2;
    for (name, value) in response.headers() {
        received += (name.as_str().len() + value.len() + 4) as u64;
    }
    observer.head(status, event_stream);
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| (e, true))?;
        received += chunk.len() as u64;
        observer.body(&chunk);
        // Gives the window back at once so long streams never stall.
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(ResponseInfo {
        status,
        bytes_received: received,
        keep_alive: true,
        first_byte,
        received_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::http1::Discard;
    use crate::plan::Protocol;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn authority() -> Authority {
        Authority::from_static("127.0.0.1:9")
    }

    #[test]
    fn http1_form_becomes_an_h2_request() {
        let text = b"POST /v1/x?q=1 HTTP/1.1\r\nHost: api.test:8443\r\nConnection: keep-alive\r\n\
            Content-Type: application/json\r\nTE: gzip\r\nContent-Length: 2\r\n\r\n{}";
        let r = H2Request::from_http1(text, &Scheme::HTTPS, &authority()).expect("valid");
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.uri.to_string(), "https://api.test:8443/v1/x?q=1");
        assert_eq!(
            r.headers.get("content-type").expect("kept"),
            "application/json"
        );
        assert_eq!(r.headers.get("content-length").expect("kept"), "2");
        // Connection-specific headers (and `te` other than trailers) are dropped.
        assert!(r.headers.get("connection").is_none() && r.headers.get("te").is_none());
        assert!(r.headers.get("host").is_none());
        assert_eq!(&r.body[..], b"{}");
        assert!(H2Request::from_http1(b"GET / HTTP/1.1\r\n", &Scheme::HTTP, &authority()).is_err());
    }

    /// An h2c server that answers one request per connection, then sends
    /// GOAWAY and closes; it counts the connections it accepted.
    async fn one_request_per_connection() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(socket).await else {
                        return;
                    };
                    if let Some(Ok((_, mut respond))) = conn.accept().await {
                        if let Ok(mut body) = respond.send_response(http::Response::new(()), false)
                        {
                            let _ = body.send_data(Bytes::from_static(b"ok"), true);
                        }
                        conn.graceful_shutdown();
                    }
                    while let Some(Ok(_)) = conn.accept().await {}
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn a_connection_that_goes_away_is_replaced() {
        let (addr, accepted) = one_request_per_connection().await;
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let connector = Connector::new(Protocol::Http2, None);
                let request = H2Request::from_http1(
                    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
                    &Scheme::HTTP,
                    &authority(),
                )
                .expect("valid");
                let group = Rc::new(H2Group::default());
                let mut slot = H2Slot::new(group);
                let info = match slot
                    .send(&connector, addr, &request, &mut Discard, &mut None)
                    .await
                {
                    Ok(info) => info,
                    Err(_) => panic!("the first request succeeds"),
                };
                assert_eq!((info.status, info.bytes_received > 2), (200, true));
                // The server went away: within a few sends the slot is on a
                // new connection and succeeds again (at most one send fails,
                // the one racing the GOAWAY).
                let mut failures = 0;
                let mut ok = false;
                for _ in 0..3 {
                    match slot
                        .send(&connector, addr, &request, &mut Discard, &mut None)
                        .await
                    {
                        Ok(info) => {
                            assert_eq!(info.status, 200);
                            ok = true;
                            break;
                        }
                        Err(H2Failure::Stream { .. }) => failures += 1,
                        Err(H2Failure::Connect(c)) => panic!("connect failed: {c:?}"),
                    }
                }
                assert!(ok && failures <= 1, "ok {ok}, failures {failures}");
                assert_eq!(accepted.load(Ordering::SeqCst), 2);
            })
            .await;
    }
}
