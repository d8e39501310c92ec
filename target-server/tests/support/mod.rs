//! Test support: a tiny raw-TCP HTTP/1.1 client and a running-server harness.
//!
//! A hand-written client keeps the tests honest about the wire (keep-alive, pipelining, exact bodies)
//! and avoids pulling hyper's client into the crate.

use std::net::SocketAddr;
use std::time::Duration;

use stampede_target::{TargetConfig, TargetError, TargetServer, TargetStats};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long `stop` waits for `run` to return before calling it hung. A failure detector, not a timing
/// assertion: `run` normally returns at once.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// One HTTP response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A single keep-alive connection.
pub struct Client {
    conn: BufReader<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the target");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            conn: BufReader::new(stream),
        }
    }

    /// Writes one request without waiting for the answer (for pipelining and concurrency tests).
    pub async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n");
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.conn
            .get_mut()
            .write_all(&bytes)
            .await
            .expect("write request");
    }

    /// Reads one response; the target always sends a content-length (or no body at all).
    pub async fn read_response(&mut self) -> Response {
        let mut line = String::new();
        self.conn
            .read_line(&mut line)
            .await
            .expect("read status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.conn.read_line(&mut line).await.expect("read header");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':').expect("header has a colon");
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = response
            .header("content-length")
            .map_or(0, |v| v.parse().expect("numeric length"));
        response.body.resize(len, 0);
        self.conn
            .read_exact(&mut response.body)
            .await
            .expect("read body");
        response
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        self.send(method, path, headers, b"").await;
        self.read_response().await
    }

    pub async fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[]).await
    }

    /// True once the server has closed the connection (EOF with nothing left to read).
    pub async fn is_closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.conn.read(&mut buf).await, Ok(0) | Err(_))
    }
}

/// A target server running on a background task.
pub struct Running {
    pub addr: SocketAddr,
    pub stats: TargetStats,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), TargetError>>,
}

impl Running {
    pub async fn start(config: TargetConfig) -> Running {
        let server = TargetServer::bind(config).await.expect("bind");
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0, "port 0 must be resolved to the bound port");
        let stats = server.stats();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(server.run(cancel.clone()));
        Running {
            addr,
            stats,
            cancel,
            task,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Cancels the server and checks that `run` returns cleanly.
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(STOP_DEADLINE, self.task)
            .await
            .expect("run returns promptly after cancellation")
            .expect("run task did not panic")
            .expect("run returns Ok");
    }
}
