//! The client side of the run API, for `stampede run`: submit, follow the
//! events (turned back into [`RunEvent`]s for the same live view a local
//! run has), fetch the run and its report.

use super::api::{ErrorBody, SubmitRun, WireEvent};
use crate::events::{EventSender, RunEvent};
use crate::history::RunRow;
use crate::report::model::RunReport;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use stampede_proto::security::SharedToken;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: only http:// coordinator API URLs are supported")]
    Scheme { url: String },
    #[error("{url}: the URL names no host")]
    NoHost { url: String },
    #[error("{url}: cannot connect: {error}")]
    Connect { url: String, error: std::io::Error },
    #[error("{url}: {error}")]
    Http { url: String, error: hyper::Error },
    #[error("{url}: cannot build the request: {error}")]
    Request {
        url: String,
        error: hyper::http::Error,
    },
    #[error("{url}: answered {status}: {why}")]
    Refused {
        url: String,
        status: StatusCode,
        why: String,
    },
    #[error("{url}: the answer does not parse: {error}")]
    Answer {
        url: String,
        error: serde_json::Error,
    },
}

/// A standing coordinator's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: url::Url,
    token: SharedToken,
}

impl ApiClient {
    pub fn new(base: url::Url, token: SharedToken) -> Result<Self, ClientError> {
        if base.scheme() != "http" {
            return Err(ClientError::Scheme {
                url: base.to_string(),
            });
        }
        if base.host_str().is_none() {
            return Err(ClientError::NoHost {
                url: base.to_string(),
            });
        }
        Ok(Self { base, token })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// Sends one request; answers the response (2xx) with its body still
    /// to read.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let url = self.url(path);
        let host = self.base.host_str().unwrap_or_default();
        let port = self.base.port_or_known_default().unwrap_or(80);
        let stream = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|error| ClientError::Connect {
                url: url.clone(),
                error,
            })?;
        let http = |error| ClientError::Http {
            url: url.clone(),
            error,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(connection);
        let authority = match self.base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base.path().trim_end_matches('/')))
            .header(header::HOST, authority)
            .header(header::AUTHORIZATION, self.token.header_value())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| ClientError::Request {
                url: url.clone(),
                error,
            })?;
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response
            .into_body()
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        let why = serde_json::from_slice::<ErrorBody>(&text)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&text).chars().take(300).collect());
        Err(ClientError::Refused { url, status, why })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let response = self.send(method, path, body).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|error| ClientError::Http {
                url: url.clone(),
                error,
            })?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|error| ClientError::Answer { url, error })
    }

    pub async fn submit(&self, submission: &SubmitRun) -> Result<RunRow, ClientError> {
        let body = serde_json::to_vec(submission).unwrap_or_default();
        self.json(Method::POST, "/api/v1/runs", Some(body)).await
    }

    pub async fn run(&self, id: &str) -> Result<RunRow, ClientError> {
        self.json(Method::GET, &format!("/api/v1/runs/{id}"), None)
            .await
    }

    /// The history, newest first; `query`: the filters, URL-encoded
    /// (`scenario=checkout&label=branch%3Dmain`), or empty.
    pub async fn list(&self, query: &str) -> Result<Vec<RunRow>, ClientError> {
        let path = if query.is_empty() {
            "/api/v1/runs".to_owned()
        } else {
            format!("/api/v1/runs?{query}")
        };
        self.json(Method::GET, &path, None).await
    }

    pub async fn report(&self, id: &str) -> Result<RunReport, ClientError> {
        self.json(Method::GET, &format!("/api/v1/runs/{id}/report"), None)
            .await
    }

    /// The intervals the history kept as they closed.
    pub async fn intervals(
        &self,
        id: &str,
    ) -> Result<Vec<crate::history::KeptInterval>, ClientError> {
        self.json(Method::GET, &format!("/api/v1/runs/{id}/intervals"), None)
            .await
    }

    pub async fn abort(&self, id: &str) -> Result<RunRow, ClientError> {
        self.json(Method::POST, &format!("/api/v1/runs/{id}/abort"), None)
            .await
    }

    /// The HTML report (with the trend of the scenario's last runs).
    pub async fn report_html(&self, id: &str) -> Result<Bytes, ClientError> {
        let path = format!("/api/v1/runs/{id}/report.html");
        let url = self.url(&path);
        let response = self.send(Method::GET, &path, None).await?;
        Ok(response
            .into_body()
            .collect()
            .await
            .map_err(|error| ClientError::Http { url, error })?
            .to_bytes())
    }

    /// Follows run `id`'s events until it ends, sending each into `events`
    /// (dropping the sender then ends the live view).
    pub async fn follow(&self, id: &str, events: EventSender) -> Result<(), ClientError> {
        let path = format!("/api/v1/runs/{id}/events");
        let url = self.url(&path);
        let response = self.send(Method::GET, &path, None).await?;
        let mut body = response.into_body();
        let mut pending = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| ClientError::Http {
                url: url.clone(),
                error,
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line = pending.split_to(end + 1);
                let event: WireEvent =
                    serde_json::from_slice(&line).map_err(|error| ClientError::Answer {
                        url: url.clone(),
                        error,
                    })?;
                // Nobody watching is not an error (`--quiet`).
                let _ = events.send(RunEvent::from(event));
            }
        }
        Ok(())
    }
}
