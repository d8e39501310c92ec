//! Can one coordinator keep up with a large fleet?
//!
//!     cargo bench -p stampede-coordinator --bench coordinator_scale               # 1000 agents, 20 s
//!     cargo bench -p stampede-coordinator --bench coordinator_scale -- --smoke    # 50 agents, 3 s
//!     cargo bench -p stampede-coordinator --bench coordinator_scale -- --agents 500 --seconds 30
//!     cargo bench -p stampede-coordinator --bench coordinator_scale -- --deflate  # deflate-encoded histograms
//!     cargo bench -p stampede-coordinator --bench coordinator_scale -- --no-pin   # coordinator may use every core
//!     cargo bench -p stampede-coordinator --bench coordinator_scale -- --no-hold  # no held bursts (below)
//!     cargo bench -p stampede-coordinator --bench coordinator_scale -- --coordinator PATH  # another build's `stampede`
//!
//! Runs the real `stampede coordinator` as its own process (on CPU 0 when the
//! machine has two), and simulates agents in this process: each one dials
//! over its own gRPC connection, registers, accepts, and at every interval
//! boundary sends a real interval report — five serialized histograms
//! (latency of ~20k requests, errors, schedule lag, and the wait and
//! transfer phases, drawn afresh for each of 16 report variants) plus
//! counts — then its
//! final report. Like real agents they ping every second (and, like them,
//! send no heartbeat while they report every second). No load is sent anywhere.
//!
//! Measures the coordinator's CPU (from /proc, as a share of one core), its
//! peak RSS, and the per-interval merge latency: how long after an interval's
//! end the coordinator closed it (from its own log line). Every odd interval
//! is held (`support/held_burst.rs`, off with `--no-hold`): the coordinator is
//! stopped while the whole burst is written, as a fleet on many machines
//! would deliver it, and its latency is measured from its resume.

#[path = "support/held_burst.rs"]
mod held_burst;

use bytes::Bytes;
use hdrhistogram::Histogram;
use stampede_proto::histogram::{Encoding, RecordClamped, encode, new_latency_histogram};
use stampede_proto::v1::{
    self, agent_message, agent_session_client::AgentSessionClient, coordinator_message,
};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

struct Options {
    encoding: Encoding,
    agents: usize,
    seconds: u64,
    regions: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    fn value<T: std::str::FromStr>(args: &[String], flag: &str) -> Option<T> {
        let i = args.iter().position(|a| a == flag)?;
        args.get(i + 1)?.parse().ok()
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    Options {
        encoding: if args.iter().any(|a| a == "--deflate") {
            Encoding::Deflate
        } else {
            Encoding::Plain
        },
        agents: value(&args, "--agents").unwrap_or(if smoke { 50 } else { 1000 }),
        seconds: value(&args, "--seconds").unwrap_or(if smoke { 3 } else { 20 }),
        regions: value(&args, "--regions").unwrap_or(4),
    }
}

/// A realistic interval's histograms: log-normal latencies (median 20 ms).
/// The encoded histograms of one interval report: latency, errors, schedule
/// lag, and the two request phases every request records (wait, transfer).
type ReportHistograms = (Bytes, Bytes, Bytes, Bytes, Bytes);

fn sample_histograms(seed: u64, encoding: Encoding) -> ReportHistograms {
    let mut state = seed | 1;
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut normal = move || {
        let (u1, u2) = (uniform().max(1e-12), uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let mut fill = |n: usize, median: f64, sigma: f64| -> Histogram<u64> {
        let mut h = new_latency_histogram();
        for _ in 0..n {
            h.record_clamped((median * (sigma * normal()).exp()).clamp(1.0, 3.6e9) as u64);
        }
        h
    };
    let latency = fill(20_000, 20_000.0, 0.6);
    let errors = fill(200, 50_000.0, 1.0);
    let lag = fill(20_000, 30.0, 1.0);
    let wait = fill(20_000, 19_000.0, 0.6);
    let transfer = fill(20_000, 15.0, 0.5);
    let enc = |h: &Histogram<u64>| Bytes::from(encode(h, encoding).expect("encodes"));
    (
        enc(&latency),
        enc(&errors),
        enc(&lag),
        enc(&wait),
        enc(&transfer),
    )
}

fn unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// One simulated agent: register, accept, report every interval, finish.
/// Distinct reports the simulated agents draw from: agent `a` sends
/// variant `(a + i) % REPORT_VARIANTS` for interval `i`, so an agent's
/// cumulative totals grow over the run as a real agent's do (new tail
/// buckets, denser middles), rather than adding the same buckets again.
const REPORT_VARIANTS: usize = 16;

async fn agent(
    url: String,
    region: String,
    number: usize,
    variants: std::sync::Arc<Vec<ReportHistograms>>,
    run_start: std::sync::Arc<tokio::sync::watch::Sender<i64>>,
) -> Result<usize, String> {
    // Pinged as a real agent pings (`agent/src/session.rs`, its default
    // link timeout): the coordinator answers every ping.
    let half_link = stampede_agent::AgentConfig::new("", "").link_timeout / 2;
    let channel = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| e.to_string())?
        .http2_keep_alive_interval(half_link)
        .keep_alive_timeout(half_link)
        .keep_alive_while_idle(true)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut client = AgentSessionClient::new(channel);
    let (tx, rx) = mpsc::channel(8);
    let agent_id = uuid::Uuid::new_v4().to_string();
    let send = |kind| v1::AgentMessage { kind: Some(kind) };
    tx.send(send(agent_message::Kind::Register(v1::Register {
        agent_id: agent_id.clone(),
        region,
        zone: String::new(),
        version: "bench".into(),
        cores: 1,
        hostname: "sim".into(),
    })))
    .await
    .map_err(|e| e.to_string())?;
    let mut inbound = client
        .join(ReceiverStream::new(rx))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut run_id = String::new();
    let mut interval = Duration::from_secs(1);
    let mut intervals = 0u32;
    let mut bytes = 0usize;
    while let Some(message) = inbound.message().await.map_err(|e| e.to_string())? {
        match message.kind {
            Some(coordinator_message::Kind::Assignment(a)) => {
                run_id = a.run_id.clone();
                let slice = a.slice.unwrap_or_default();
                interval = Duration::from_micros(slice.interval_micros);
                intervals = slice.duration_micros.div_ceil(slice.interval_micros) as u32;
                let ok = v1::AssignmentAccepted { run_id: a.run_id };
                tx.send(send(agent_message::Kind::AssignmentAccepted(ok)))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(coordinator_message::Kind::ClockProbe(probe)) => {
                // Same host, same clock: no offset.
                let now = unix_nanos();
                let reply = v1::ClockReply {
                    seq: probe.seq,
                    probe_sent_unix_nanos: probe.sent_unix_nanos,
                    received_unix_nanos: now,
                    replied_unix_nanos: now,
                };
                tx.send(send(agent_message::Kind::ClockReply(reply)))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(coordinator_message::Kind::Start(start)) => {
                run_start.send_replace(start.start_unix_nanos);
                let delay =
                    Duration::from_nanos((start.start_unix_nanos - unix_nanos()).max(0) as u64);
                let start_at = tokio::time::Instant::now() + delay;
                for index in 0..intervals {
                    let end = start_at + interval * (index + 1);
                    tokio::time::sleep_until(end).await;
                    let histograms = &variants[(number + index as usize) % variants.len()];
                    let report = v1::IntervalReport {
                        run_id: run_id.clone(),
                        agent_id: agent_id.clone(),
                        index,
                        start_unix_nanos: start.start_unix_nanos
                            + (interval * index).as_nanos() as i64,
                        end_unix_nanos: start.start_unix_nanos
                            + (interval * (index + 1)).as_nanos() as i64,
                        latency_histogram: histograms.0.clone(),
                        error_histogram: histograms.1.clone(),
                        schedule_lag_histogram: histograms.2.clone(),
                        outcomes: Some(v1::OutcomeCounts {
                            success: 20_000,
                            status_5xx: 200,
                            ..Default::default()
                        }),
                        status_codes: [(200, 20_000), (503, 200)].into(),
                        grpc_codes: Default::default(),
                        bytes_received: 2_000_000,
                        bytes_sent: 1_000_000,
                        last: index + 1 == intervals,
                        requests: Vec::new(),
                        llm: None,
                        cpu_micros: 0,
                        worker_threads: 0,
                        phases: Some(v1::PhaseFigures {
                            wait_histogram: histograms.3.clone(),
                            transfer_histogram: histograms.4.clone(),
                            ..Default::default()
                        }),
                    };
                    bytes = prost::Message::encoded_len(&report);
                    tx.send(send(agent_message::Kind::IntervalReport(report)))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let fin = v1::FinalReport {
                    run_id: run_id.clone(),
                    agent_id: agent_id.clone(),
                    intervals_sent: intervals,
                    error: String::new(),
                };
                tx.send(send(agent_message::Kind::FinalReport(fin)))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(coordinator_message::Kind::RunFinished(_)) => return Ok(bytes),
            Some(coordinator_message::Kind::Refused(r)) => return Err(r.reason),
            _ => {}
        }
    }
    Err("coordinator closed the session early".into())
}

/// CPU seconds (user + sys) a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the comm field: utime is field 14, stime 15 (1-based) => 11, 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let o = options();
    let dir = std::env::temp_dir().join(format!("stampede-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let scenario = dir.join("scale.yaml");
    let per_region = o.agents.div_ceil(o.regions);
    let mut yaml = format!(
        "name: scale\ntarget:\n  url: http://127.0.0.1:9/\nload:\n  model: open\n  rate: {}\n  connections: {}\n  duration: {}s\n  interval: 1s\nregions:\n",
        o.agents, o.agents, o.seconds
    );
    let mut regions = Vec::new();
    let mut left = o.agents;
    for r in 0..o.regions {
        let n = per_region.min(left);
        if n == 0 {
            break;
        }
        left -= n;
        regions.push((format!("region-{r}"), n));
        yaml.push_str(&format!("  - name: region-{r}\n    agents: {n}\n"));
    }
    yaml.push_str("start_delay: 5s\nagent_wait_timeout: 120s\n");
    std::fs::write(&scenario, yaml).expect("write scenario");

    // `--coordinator PATH` runs another build's binary against the same
    // simulated agents: paired A/B runs of two builds on a shared machine.
    let binary = std::env::args()
        .skip_while(|a| a != "--coordinator")
        .nth(1)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_stampede").to_owned());
    let pin = !std::env::args().any(|a| a == "--no-pin");
    let mut command = if pin
        && std::path::Path::new("/usr/bin/taskset").exists()
        && std::thread::available_parallelism().map_or(1, |n| n.get()) > 1
    {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", &binary]);
        c
    } else {
        Command::new(&binary)
    };
    let mut coordinator = command
        .args(["coordinator", "--scenario"])
        .arg(&scenario)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--insecure-plaintext",
            // Stdout is only read up to the address: no live lines to fill the pipe.
            "--quiet",
            "--max-agents",
        ])
        .arg(o.agents.max(1).to_string())
        .arg("--report")
        .arg(dir.join("report.json"))
        .env("STAMPEDE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the coordinator");
    let pid = coordinator.id();
    let mut stdout = BufReader::new(coordinator.stdout.take().expect("stdout"));
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("coordinator exited before listening");
        }
        if let Some(rest) = line.strip_prefix("coordinator listening on ") {
            break rest.trim().to_owned();
        }
    };
    let stderr = coordinator.stderr.take().expect("stderr");
    let merge_lags = std::thread::spawn(move || {
        // `interval=3 closed_after_ms=12.3` on each interval line.
        let field = |line: &str, name: &str| -> Option<f64> {
            line.split(name)
                .nth(1)?
                .split_whitespace()
                .next()?
                .trim_matches('"')
                .parse()
                .ok()
        };
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| {
                Some((
                    field(&l, " interval=")? as u32,
                    field(&l, "closed_after_ms=")?,
                ))
            })
            .collect::<Vec<(u32, f64)>>()
    });
    let hold = !std::env::args().any(|a| a == "--no-hold")
        && std::path::Path::new("/proc/net/tcp").exists();
    let burst = held_burst::Burst {
        pid,
        port: addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the coordinator's port"),
        agents: o.agents,
        report_bytes: 0,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("http://{addr}");
    let variants: std::sync::Arc<Vec<ReportHistograms>> = std::sync::Arc::new(
        (0..REPORT_VARIANTS as u64)
            .map(|seed| sample_histograms(7 + seed, o.encoding))
            .collect(),
    );
    // A connection holds a whole report once it has at least its histograms.
    let burst = held_burst::Burst {
        report_bytes: variants
            .iter()
            .map(|(a, b, c, d, e)| (a.len() + b.len() + c.len() + d.len() + e.len()) as u64)
            .min()
            .unwrap_or(0),
        ..burst
    };
    let seconds = o.seconds;
    let (report_bytes, cpu, wall, sim_cpu, in_run, held) = runtime.block_on(async {
        let (run_start, mut started) = tokio::sync::watch::channel(0i64);
        let run_start = std::sync::Arc::new(run_start);
        let mut started_for_hold = started.clone();
        let held = tokio::spawn(async move {
            if !hold {
                return None;
            }
            let start = *started_for_hold.wait_for(|s| *s != 0).await.ok()?;
            let odd = (1..seconds.saturating_sub(1) as u32).step_by(2);
            let holding = std::thread::spawn(move || {
                held_burst::hold(&burst, start, Duration::from_secs(1), odd, unix_nanos)
            });
            tokio::task::spawn_blocking(move || holding.join().ok())
                .await
                .ok()
                .flatten()
        });
        let mut tasks = Vec::new();
        for (region, n) in &regions {
            for _ in 0..*n {
                tasks.push(tokio::spawn(agent(
                    url.clone(),
                    region.clone(),
                    tasks.len(),
                    variants.clone(),
                    run_start.clone(),
                )));
            }
        }
        // The coordinator's CPU while the run goes, apart from registering
        // 1000 agents and writing the report: from half an interval after
        // the start to half an interval before the end.
        let in_run = tokio::spawn(async move {
            let start = *started.wait_for(|s| *s != 0).await.ok()?;
            let at = |offset: f64| async move {
                let due = start + (offset * 1e9) as i64;
                let wait = (due - unix_nanos()).max(0) as u64;
                tokio::time::sleep(Duration::from_nanos(wait)).await;
                cpu_seconds(pid)
            };
            let window = seconds as f64 - 1.0;
            let from = at(0.5).await;
            let to = at(seconds as f64 - 0.5).await;
            Some((to - from, window))
        });
        // The run starts start_delay after the last agent registers; measure
        // from (about) then to the end.
        let t0 = Instant::now();
        let cpu0 = cpu_seconds(pid);
        let own0 = cpu_seconds(std::process::id());
        let mut bytes = 0;
        for t in tasks {
            match t.await {
                Ok(Ok(b)) => bytes = b,
                Ok(Err(e)) => panic!("simulated agent failed: {e}"),
                Err(e) => panic!("simulated agent panicked: {e}"),
            }
        }
        let own = cpu_seconds(std::process::id()) - own0;
        let held = held.await.ok().flatten().unwrap_or_default();
        (
            bytes,
            cpu_seconds(pid) - cpu0,
            t0.elapsed().as_secs_f64(),
            own,
            in_run.await.ok().flatten(),
            held,
        )
    });
    let peak_rss_mb = status_kb(pid, "VmHWM:") as f64 / 1024.0;
    let status = coordinator.wait().expect("coordinator exits");
    let closes = merge_lags.join().unwrap_or_default();
    // Natural intervals: from the interval's end. Held ones: from the resume.
    let mut lags: Vec<f64> = closes
        .iter()
        .filter(|(index, _)| !held.iter().any(|h| h.index == *index))
        .map(|(_, ms)| *ms)
        .collect();
    lags.sort_by(f64::total_cmp);
    let mut held_lags: Vec<f64> = held
        .iter()
        .filter_map(|h| {
            let (_, ms) = closes.iter().find(|(index, _)| *index == h.index)?;
            Some(ms - (h.resumed_unix_nanos - h.end_unix_nanos) as f64 / 1e6)
        })
        .collect();
    held_lags.sort_by(f64::total_cmp);
    let mut written: Vec<f64> = held
        .iter()
        .map(|h| h.written_in.as_secs_f64() * 1e3)
        .collect();
    written.sort_by(f64::total_cmp);
    let report = std::fs::metadata(dir.join("report.json"))
        .map(|m| m.len())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "coordinator failed");

    let reports = o.agents as f64 * o.seconds as f64;
    println!(
        "coordinator scale: {} agents in {} regions, 1 report/s each, {} s",
        o.agents,
        regions.len(),
        o.seconds
    );
    println!(
        "  interval report on the wire        {report_bytes} bytes (5 {} V2 histograms + counts)",
        format!("{:?}", o.encoding).to_lowercase()
    );
    println!(
        "  reports merged                     {reports:.0} ({:.0}/s)",
        reports / o.seconds as f64
    );
    println!(
        "  coordinator CPU                    {cpu:.2} s over {wall:.1} s of registration + run = {:.1}% of one core",
        cpu / wall * 100.0
    );
    println!(
        "  coordinator CPU per report         {:.0} µs",
        cpu / reports * 1e6
    );
    if let Some((run_cpu, window)) = in_run.filter(|(_, w)| *w > 0.0) {
        println!(
            "  coordinator CPU during the run     {run_cpu:.2} s over {window:.1} s = {:.1}% of one core, {:.0} µs per report (registration and the report excluded)",
            run_cpu / window * 100.0,
            run_cpu / (o.agents as f64 * window) * 1e6
        );
    }
    println!(
        "  simulated agents' CPU (this process) {sim_cpu:.2} s = {:.1}% of one core (the senders share the machine)",
        sim_cpu / wall * 100.0
    );
    println!(
        "  merge latency (interval end → closed)  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} intervals",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0.0),
        lags.len()
    );
    if !held_lags.is_empty() {
        println!(
            "  merge latency, held burst (resumed → closed)  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} intervals (burst written in {:.0} ms, median)",
            percentile(&held_lags, 0.5),
            percentile(&held_lags, 0.99),
            held_lags.last().copied().unwrap_or(0.0),
            held_lags.len(),
            percentile(&written, 0.5)
        );
    }
    println!("  coordinator peak RSS               {peak_rss_mb:.1} MB");
    println!(
        "  report size                        {:.1} KB",
        report as f64 / 1024.0
    );
}
