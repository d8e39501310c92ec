//! The HTTP edges of the metrics: a small hyper server for `/metrics`, and
//! a PUT of a finished run's metrics to a Pushgateway.

use super::text::CONTENT_TYPE;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long a push may take, connection included.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `page()` at `/metrics` until `shutdown`; one task per connection.
pub async fn serve(
    listener: TcpListener,
    page: Arc<dyn Fn() -> String + Send + Sync>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or similar: try again shortly.
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let page = page.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let page = page.clone();
                async move { Ok::<_, Infallible>(respond(&request, &*page)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => if let Err(e) = served {
                    debug!(error = %e, "metrics endpoint: connection ended");
                },
                _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
        });
    }
}

fn respond(request: &Request<Incoming>, page: &dyn Fn() -> String) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "stampede: metrics are at /metrics\n".into(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET /metrics\n".into());
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return response;
    }
    let mut response = text(StatusCode::OK, page());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{url}: only http:// Pushgateway URLs are supported")]
    Scheme { url: String },
    #[error("{url}: the URL names no host")]
    NoHost { url: String },
    #[error("{url}: {error}")]
    Io { url: String, error: std::io::Error },
    #[error("{url}: {error}")]
    Http { url: String, error: hyper::Error },
    #[error("{url}: cannot build the request: {error}")]
    Request {
        url: String,
        error: hyper::http::Error,
    },
    #[error("{url}: no answer within {PUSH_TIMEOUT:?}")]
    Timeout { url: String },
    #[error("{url}: answered {status}: {body}")]
    Refused {
        url: String,
        status: StatusCode,
        body: String,
    },
}

/// Where a run's metrics go on a Pushgateway: its grouping key is the job
/// `stampede` and the run's id.
pub fn push_url(base: &url::Url, run_id: &str) -> Result<url::Url, PushError> {
    if base.scheme() != "http" {
        return Err(PushError::Scheme {
            url: base.to_string(),
        });
    }
    if base.host_str().is_none() {
        return Err(PushError::NoHost {
            url: base.to_string(),
        });
    }
    let mut url = base.clone();
    {
        let mut segments = url.path_segments_mut().map_err(|()| PushError::NoHost {
            url: base.to_string(),
        })?;
        // Segments are percent-encoded by the url crate.
        segments
            .pop_if_empty()
            .extend(["metrics", "job", "stampede", "run_id", run_id]);
    }
    Ok(url)
}

/// PUTs `body` (the text format) to `url`, replacing what the group held.
pub async fn push(url: &url::Url, body: String) -> Result<(), PushError> {
    let name = url.to_string();
    match tokio::time::timeout(PUSH_TIMEOUT, put(url, body)).await {
        Ok(result) => result,
        Err(_) => Err(PushError::Timeout { url: name }),
    }
}

async fn put(url: &url::Url, body: String) -> Result<(), PushError> {
    let name = url.to_string();
    let host = url
        .host_str()
        .ok_or_else(|| PushError::NoHost { url: name.clone() })?;
    let port = url.port_or_known_default().unwrap_or(80);
    let io = |error| PushError::Io {
        url: name.clone(),
        error,
    };
    let http = |error| PushError::Http {
        url: name.clone(),
        error,
    };
    // IPv6 literals come bracketed; the socket address wants them bare.
    let stream = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(io)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let driver = tokio::spawn(connection);
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let request = Request::builder()
        .method(Method::PUT)
        .uri(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| PushError::Request {
            url: name.clone(),
            error,
        })?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    let answer = response
        .into_body()
        .collect()
        .await
        .map_err(http)?
        .to_bytes();
    driver.abort();
    if status.is_success() {
        Ok(())
    } else {
        Err(PushError::Refused {
            url: name,
            status,
            body: String::from_utf8_lossy(&answer)
                .trim()
                .chars()
                .take(200)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_url_groups_by_job_and_run() {
        let base = url::Url::parse("http://pushgateway:9091").expect("url");
        assert_eq!(
            push_url(&base, "3f0c").expect("ok").as_str(),
            "http://pushgateway:9091/metrics/job/stampede/run_id/3f0c"
        );
        let base = url::Url::parse("http://gw.example/prefix/").expect("url");
        assert_eq!(
            push_url(&base, "a b").expect("ok").as_str(),
            "http://gw.example/prefix/metrics/job/stampede/run_id/a%20b"
        );
        let https = url::Url::parse("https://gw.example/").expect("url");
        assert!(matches!(
            push_url(&https, "x"),
            Err(PushError::Scheme { .. })
        ));
    }

    /// A Pushgateway that answers every request with `status` and `body`
    /// and hands over the request it read.
    async fn gateway(
        status: &'static str,
        body: &'static str,
    ) -> (url::Url, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr().expect("addr")))
            .expect("url");
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0; 4096];
            // Headers, then a body of the length they announce.
            loop {
                let n = stream.read(&mut buf).await.expect("read");
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if rest.len() >= length || n == 0 {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&request).to_string()
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_push_is_a_put_of_the_text_and_a_refusal_says_why() {
        let (base, request) = gateway("200 OK", "").await;
        let url = push_url(&base, "run-1").expect("url");
        push(&url, "stampede_up 1\n".into()).await.expect("pushed");
        let request = request.await.expect("the gateway ran");
        assert!(
            request.starts_with("PUT /metrics/job/stampede/run_id/run-1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("content-type: text/plain; version=0.0.4"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\nstampede_up 1\n"), "{request}");

        let (base, _) = gateway("400 Bad Request", "text format parsing error in line 1").await;
        let url = push_url(&base, "run-2").expect("url");
        let error = push(&url, "bad".into()).await.expect_err("refused");
        assert!(
            error
                .to_string()
                .ends_with("answered 400 Bad Request: text format parsing error in line 1"),
            "{error}"
        );
    }
}
