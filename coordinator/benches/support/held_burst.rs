//! Held bursts: the merge latency of the coordinator alone.
//!
//! Real agents, each on its own machine, send an interval's reports at the
//! same moment. This bench's agents share one thread, which takes tens of
//! milliseconds to write a burst of 1000 reports, so on the natural
//! intervals the burst's arrival is paced by the sender, not the
//! coordinator. On a held interval the coordinator is stopped (SIGSTOP) just
//! before the interval ends, every simulated agent writes its report into
//! the coordinator's socket buffers, and the coordinator is resumed once
//! every connection holds a whole report: from the resume to the interval's
//! close is the time the coordinator takes to merge a burst that arrived all
//! at once.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// One held interval: when the coordinator was let go, and how long the
/// burst took to be written while it was stopped.
pub struct HeldInterval {
    pub index: u32,
    pub end_unix_nanos: i64,
    pub resumed_unix_nanos: i64,
    pub written_in: Duration,
}

/// Sends SIGCONT when dropped, so the coordinator is never left stopped.
struct Stopped(Pid);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

/// Established TCP connections to local `port` with at least `bytes` waiting
/// to be read, from `/proc/net/tcp` (IPv4; the bench listens on 127.0.0.1).
fn connections_holding(port: u16, bytes: u64) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            // sl local_address rem_address st tx_queue:rx_queue ...
            let fields: Vec<&str> = line.split_whitespace().take(5).collect();
            let [_, local, _, state, queues] = fields[..] else {
                return false;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let waiting = queues
                .rsplit(':')
                .next()
                .and_then(|q| u64::from_str_radix(q, 16).ok())
                .unwrap_or(0);
            state == "01" && local_port == Some(port) && waiting >= bytes
        })
        .count()
}

fn sleep_until_unix(unix_nanos: i64, now: fn() -> i64) {
    let wait = (unix_nanos - now()).max(0) as u64;
    std::thread::sleep(Duration::from_nanos(wait));
}

/// The coordinator whose bursts are held, and what a whole burst is.
pub struct Burst {
    pub pid: u32,
    /// The coordinator's gRPC port on 127.0.0.1.
    pub port: u16,
    pub agents: usize,
    /// The least a connection holds once its agent's report is written.
    pub report_bytes: u64,
}

/// Holds the bursts of `indices` (interval `i` ends at `start + (i + 1) *
/// interval`): stops the coordinator 3 ms before each end, waits until all
/// the agents' connections hold a report, resumes it. An interval whose
/// burst is not all there within 5 s is resumed and left out.
pub fn hold(
    burst: &Burst,
    start_unix_nanos: i64,
    interval: Duration,
    indices: impl Iterator<Item = u32>,
    now: fn() -> i64,
) -> Vec<HeldInterval> {
    let pid = Pid::from_raw(burst.pid as i32);
    let mut held = Vec::new();
    for index in indices {
        let end = start_unix_nanos + (interval.as_nanos() as i64) * (index as i64 + 1);
        sleep_until_unix(end - 3_000_000, now);
        if kill(pid, Signal::SIGSTOP).is_err() {
            break;
        }
        let stopped = Stopped(pid);
        sleep_until_unix(end, now);
        let from = Instant::now();
        let mut complete = false;
        while from.elapsed() < Duration::from_secs(5) {
            if connections_holding(burst.port, burst.report_bytes) >= burst.agents {
                complete = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let written_in = from.elapsed();
        let resumed_unix_nanos = now();
        drop(stopped);
        if complete {
            held.push(HeldInterval {
                index,
                end_unix_nanos: end,
                resumed_unix_nanos,
                written_in,
            });
        }
    }
    held
}
