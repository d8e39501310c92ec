//! An HTTP/1.1 keep-alive client built for load generation.
//!
//! The request is serialized once per run ([`PreparedRequest`]) and written
//! as it is; responses are parsed with `httparse` from one read buffer per
//! connection that lives as long as the connection. Bodies are counted and
//! discarded, never stored. Nothing here allocates per request.

use super::chunked::ChunkedDecoder;
use super::lazy_stream::Http1Stream;
use super::transport::TargetStream;
use crate::plan::RequestTemplate;
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Read buffer size per connection; a response head must fit in it.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Most response headers we parse.
const MAX_HEADERS: usize = 64;

/// What every send of a request shares, checked once: the method, and the
/// headers Stampede adds unless the scenario sets them.
pub struct RequestHead {
    method: String,
    fixed_headers: String,
    always_length: bool,
    /// The scenario sets Content-Length itself.
    user_length: bool,
}

impl RequestHead {
    pub fn new(template: &RequestTemplate) -> Result<Self, Http1Error> {
        let url = &template.url;
        let host = url
            .host_str()
            .ok_or_else(|| Http1Error::InvalidRequest(format!("URL {url} has no host")))?;
        let method = template.method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Http1Error::InvalidRequest(format!(
                "invalid method {:?}",
                template.method
            )));
        }
        if !template.target.starts_with('/')
            || crate::template::outside_placeholders(&template.target)
                .bytes()
                .any(|b| b.is_ascii_whitespace())
        {
            return Err(Http1Error::InvalidRequest(format!(
                "invalid request target {:?} (a path starting with /, no spaces)",
                template.target
            )));
        }
        for (name, value) in &template.headers {
            if name.is_empty()
                || name.bytes().any(|b| !b.is_ascii_graphic() || b == b':')
                || value.bytes().any(|b| b == b'\r' || b == b'\n')
            {
                return Err(Http1Error::InvalidRequest(format!(
                    "invalid header {name:?}"
                )));
            }
        }
        let has = |name: &str| {
            template
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let mut fixed_headers = String::new();
        if !has("host") {
            match url.port() {
                Some(port) => fixed_headers.push_str(&format!("Host: {host}:{port}\r\n")),
                None => fixed_headers.push_str(&format!("Host: {host}\r\n")),
            }
        }
        if !has("user-agent") {
            fixed_headers.push_str(concat!(
                "User-Agent: stampede/",
                env!("CARGO_PKG_VERSION"),
                "\r\n"
            ));
        }
        if !has("accept") {
            fixed_headers.push_str("Accept: */*\r\n");
        }
        let always_length = matches!(method.as_str(), "POST" | "PUT" | "PATCH");
        Ok(Self {
            method,
            fixed_headers,
            always_length,
            user_length: has("content-length"),
        })
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    /// Host, User-Agent and Accept lines, where the scenario sets none.
    pub fn fixed_headers(&self) -> String {
        self.fixed_headers.clone()
    }

    /// Content-Length is sent even for an empty body (POST, PUT, PATCH).
    pub fn always_length(&self) -> bool {
        self.always_length
    }

    /// The scenario's headers include Content-Length.
    pub fn user_length(&self) -> bool {
        self.user_length
    }

    /// HEAD responses carry no body whatever their headers say.
    pub fn expects_body(&self) -> bool {
        self.method != "HEAD"
    }
}

/// A request serialized once, sent many times.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    bytes: Box<[u8]>,
    expects_body: bool,
}

impl PreparedRequest {
    pub fn new(template: &RequestTemplate) -> Result<Self, Http1Error> {
        let head = RequestHead::new(template)?;
        let mut text = format!("{} {} HTTP/1.1\r\n", head.method, template.target);
        text.push_str(&head.fixed_headers);
        for (name, value) in &template.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if (!template.body.is_empty() || head.always_length) && !head.user_length {
            text.push_str(&format!("Content-Length: {}\r\n", template.body.len()));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&template.body);
        Ok(Self {
            bytes: bytes.into_boxed_slice(),
            expects_body: head.expects_body(),
        })
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn expects_body(&self) -> bool {
        self.expects_body
    }
}

impl std::fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("connection closed before the response was complete")]
    ClosedEarly,
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("response head larger than {READ_BUFFER_BYTES} bytes")]
    HeadTooLarge,
}

/// Sees a response as it arrives (model-serving metrics: when each streamed
/// token came). The default does nothing and compiles away.
pub trait BodyObserver {
    /// The response head: its status, and whether it is a server-sent event
    /// stream (`content-type: text/event-stream`).
    fn head(&mut self, _status: u16, _event_stream: bool) {}
    /// Body bytes (chunk framing removed), as soon as they are read.
    fn body(&mut self, _bytes: &[u8]) {}
}

/// Discards everything.
pub struct Discard;

impl BodyObserver for Discard {}

/// What the engine needs to know about a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseInfo {
    pub status: u16,
    /// Bytes read from the socket for this response (head and body).
    pub bytes_received: u64,
    /// False when the server asked to close, or framed the body by closing.
    pub keep_alive: bool,
    /// When the response's first byte was read (time to first byte); for a
    /// stream timed by the kernel, when it was received.
    pub first_byte: Instant,
    /// When the kernel received the bytes that completed the response, if
    /// the stream knows (read at pacer ticks); else it ended when read.
    pub received_at: Option<Instant>,
}

/// How the body of the response being read is delimited.
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// One keep-alive connection (plain or TLS) and its reusable read buffer.
pub struct Http1Connection {
    stream: Http1Stream,
    buf: Box<[u8]>,
    /// Bytes of `buf` holding unconsumed data.
    filled: usize,
    chunked: ChunkedDecoder,
}

impl Http1Connection {
    /// A plain TCP connection (tests).
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self::over(TargetStream::Plain(stream).into()))
    }

    /// HTTP/1.1 over an open connection (TLS already negotiated).
    pub(crate) fn over(stream: Http1Stream) -> Self {
        Self {
            stream,
            buf: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            filled: 0,
            chunked: ChunkedDecoder::default(),
        }
    }

    /// Sends the request and reads the whole response.
    ///
    /// After an error the connection is in an unknown state: drop it.
    pub async fn send(
        &mut self,
        request: &[u8],
        expects_body: bool,
    ) -> Result<ResponseInfo, Http1Error> {
        self.send_observed(request, expects_body, &mut Discard)
            .await
    }

    /// [`Http1Connection::send`], showing the response to `observer` as it
    /// arrives.
    pub async fn send_observed<O: BodyObserver>(
        &mut self,
        request: &[u8],
        expects_body: bool,
        observer: &mut O,
    ) -> Result<ResponseInfo, Http1Error> {
        self.stream.write_all(request).await?;
        self.filled = 0;
        let mut received = 0u64;
        self.fill(&mut received).await?;
        let first_byte = self.stream.received_at().unwrap_or_else(Instant::now);
        loop {
            let (status, head_len, framing, keep_alive, event_stream) =
                self.read_head(&mut received).await?;
            if (100..200).contains(&status) && status != 101 {
                // Interim response (100 Continue, 103 Early Hints): skip it.
                self.consume(head_len);
                continue;
            }
            self.consume(head_len);
            observer.head(status, event_stream);
            let has_body = expects_body && !(status == 204 || status == 304);
            let keep_alive = if has_body {
                match framing {
                    Framing::Length(n) => self.skip_length(n, &mut received, observer).await?,
                    Framing::Chunked => self.skip_chunked(&mut received, observer).await?,
                    Framing::UntilClose => self.skip_until_close(&mut received, observer).await?,
                }
                keep_alive && !matches!(framing, Framing::UntilClose)
            } else {
                keep_alive
            };
            if self.filled != 0 {
                // We never pipeline, so nothing may follow the response.
                return Err(Http1Error::Malformed("bytes after the end of the response"));
            }
            return Ok(ResponseInfo {
                status,
                bytes_received: received,
                keep_alive,
                first_byte,
                // The last read completed the response.
                received_at: self.stream.received_at(),
            });
        }
    }

    /// Reads until a complete response head is buffered; returns its status,
    /// length, body framing and whether the connection may be reused.
    async fn read_head(
        &mut self,
        received: &mut u64,
    ) -> Result<(u16, usize, Framing, bool, bool), Http1Error> {
        loop {
            if self.filled > 0 {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buf[..self.filled]) {
                    Ok(httparse::Status::Complete(head_len)) => {
                        let status = response
                            .code
                            .ok_or(Http1Error::Malformed("no status code"))?;
                        let http10 = response.version == Some(0);
                        let (framing, close) = framing_of(response.headers)?;
                        let keep_alive = !close && !http10;
                        let event_stream = response.headers.iter().any(|h| {
                            h.name.eq_ignore_ascii_case("content-type")
                                && h.value.trim_ascii_start().len() >= 17
                                && h.value.trim_ascii_start()[..17]
                                    .eq_ignore_ascii_case(b"text/event-stream")
                        });
                        return Ok((status, head_len, framing, keep_alive, event_stream));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(Http1Error::Malformed("response head does not parse")),
                }
            }
            if self.filled == self.buf.len() {
                return Err(Http1Error::HeadTooLarge);
            }
            self.fill(received).await?;
        }
    }

    async fn skip_length<O: BodyObserver>(
        &mut self,
        mut remaining: u64,
        received: &mut u64,
        observer: &mut O,
    ) -> Result<(), Http1Error> {
        loop {
            let take = (self.filled as u64).min(remaining) as usize;
            if take > 0 {
                observer.body(&self.buf[..take]);
            }
            self.consume(take);
            remaining -= take as u64;
            if remaining == 0 {
                return Ok(());
            }
            self.fill(received).await?;
        }
    }

    async fn skip_chunked<O: BodyObserver>(
        &mut self,
        received: &mut u64,
        observer: &mut O,
    ) -> Result<(), Http1Error> {
        self.chunked.reset();
        loop {
            let (used, done) = self
                .chunked
                .feed_with(&self.buf[..self.filled], |data| observer.body(data))
                .map_err(Http1Error::Malformed)?;
            self.consume(used);
            if done {
                return Ok(());
            }
            if self.filled == self.buf.len() {
                return Err(Http1Error::Malformed("chunk size line too long"));
            }
            self.fill(received).await?;
        }
    }

    async fn skip_until_close<O: BodyObserver>(
        &mut self,
        received: &mut u64,
        observer: &mut O,
    ) -> Result<(), Http1Error> {
        if self.filled > 0 {
            observer.body(&self.buf[..self.filled]);
        }
        loop {
            self.filled = 0;
            let n = self.stream.read(&mut self.buf[..]).await?;
            if n == 0 {
                return Ok(());
            }
            observer.body(&self.buf[..n]);
            *received += n as u64;
        }
    }

    /// Reads more bytes after the `filled` ones. End of stream is an error:
    /// every caller still needs bytes.
    async fn fill(&mut self, received: &mut u64) -> Result<(), Http1Error> {
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            return Err(Http1Error::ClosedEarly);
        }
        self.filled += n;
        *received += n as u64;
        Ok(())
    }

    /// Drops the first `n` buffered bytes.
    fn consume(&mut self, n: usize) {
        if n == self.filled {
            self.filled = 0;
        } else {
            self.buf.copy_within(n..self.filled, 0);
            self.filled -= n;
        }
    }
}

/// Body framing and `Connection: close` from the response headers (RFC 9112 §6.3).
fn framing_of(headers: &[httparse::Header<'_>]) -> Result<(Framing, bool), Http1Error> {
    let mut length = None;
    let mut chunked = false;
    let mut close = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(Http1Error::Malformed("invalid content-length"))?;
            if length.is_some_and(|l| l != value) {
                return Err(Http1Error::Malformed("conflicting content-length headers"));
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header
                .value
                .split(|b| *b == b',')
                .next_back()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            close |= header
                .value
                .split(|b| *b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    // Transfer-Encoding overrides Content-Length.
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok((framing, close))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    fn template(method: &str, url: &str, body: &[u8]) -> RequestTemplate {
        let mut t = RequestTemplate::new(method, url::Url::parse(url).expect("valid url"));
        t.headers = vec![("X-Test".into(), "1".into())];
        t.body = body.to_vec();
        t
    }

    #[test]
    fn serializes_the_request_once() {
        let req =
            PreparedRequest::new(&template("post", "http://example.test:8080/a/b?c=d", b"hi"))
                .expect("valid");
        let text = std::str::from_utf8(req.as_bytes()).expect("ascii");
        assert!(
            text.starts_with("POST /a/b?c=d HTTP/1.1\r\nHost: example.test:8080\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nX-Test: 1\r\n"));
        assert!(text.ends_with("Content-Length: 2\r\n\r\nhi"), "{text}");
    }

    #[test]
    fn refuses_header_injection() {
        let mut t = template("GET", "http://h/", b"");
        t.headers.push(("X-Bad".into(), "a\r\nInjected: 1".into()));
        assert!(PreparedRequest::new(&t).is_err());
    }

    /// Serves canned responses, one per request line-block received.
    async fn canned_server(responses: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (read, mut write) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(read);
            for response in responses {
                // Read one request head (no bodies in these tests).
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                // Dribble the response in small pieces to exercise partial reads.
                for piece in response.chunks(7) {
                    if write.write_all(piece).await.is_err() {
                        return;
                    }
                    let _ = write.flush().await;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_length_chunked_and_interim_responses_on_one_connection() {
        let addr = canned_server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ])
        .await;
        let req = PreparedRequest::new(&template("GET", "http://127.0.0.1/", b"")).expect("valid");
        let mut conn = Http1Connection::connect(addr).await.expect("connects");
        let r = conn
            .send(req.as_bytes(), req.expects_body())
            .await
            .expect("first");
        assert_eq!((r.status, r.keep_alive), (200, true));
        assert_eq!(r.bytes_received, 43);
        let r = conn
            .send(req.as_bytes(), req.expects_body())
            .await
            .expect("second");
        assert_eq!((r.status, r.keep_alive), (201, true));
        let r = conn
            .send(req.as_bytes(), req.expects_body())
            .await
            .expect("third");
        assert_eq!((r.status, r.keep_alive), (204, true));
        let r = conn
            .send(req.as_bytes(), req.expects_body())
            .await
            .expect("fourth");
        assert_eq!((r.status, r.keep_alive), (503, false));
    }

    #[tokio::test]
    async fn body_until_close_and_truncation() {
        let addr = canned_server(vec![b"HTTP/1.1 200 OK\r\n\r\nall of this until close"]).await;
        let req = PreparedRequest::new(&template("GET", "http://127.0.0.1/", b"")).expect("valid");
        let mut conn = Http1Connection::connect(addr).await.expect("connects");
        let r = conn
            .send(req.as_bytes(), req.expects_body())
            .await
            .expect("until close");
        assert!(!r.keep_alive);

        let addr =
            canned_server(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"]).await;
        let mut conn = Http1Connection::connect(addr).await.expect("connects");
        assert!(matches!(
            conn.send(req.as_bytes(), req.expects_body()).await,
            Err(Http1Error::ClosedEarly)
        ));

        let addr = canned_server(vec![b"NOT HTTP AT ALL\r\n\r\n"]).await;
        let mut conn = Http1Connection::connect(addr).await.expect("connects");
        assert!(matches!(
            conn.send(req.as_bytes(), req.expects_body()).await,
            Err(Http1Error::Malformed(_))
        ));
    }
}
