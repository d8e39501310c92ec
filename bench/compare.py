#!/usr/bin/env python3
"""Stampede against its peers, side by side in one run, as ratios.

    bench/compare.py            # full: 10 s per tool, median of 3 runs
    bench/compare.py --smoke    # 2 s, one run each: what CI runs so this never rots
    bench/compare.py --soak 600 # agent RSS over a 10-minute fixed-rate run, and report size per hour

A target (nginx with one worker, or Stampede's own `target`) is pinned to
CPU 0, and each load generator in turn to CPU 1. For each generator the
harness reads the kernel's own accounting of the child process (user + sys
CPU seconds and peak RSS, from wait4) and counts the requests it completed.
The headline figure is requests per generator CPU-second: absolute times on a
shared machine are noise, ratios measured in the same run are not.

Peers are used when installed (Debian: wrk, nghttp2-client for h2load, hey);
the HTTP/2 table (h2c, stampede --http2 --streams 10 against h2load -m10) runs
against stampede's own target, which serves h2c on its plain port;
oha and wrk2 are used if found on PATH. Missing peers are skipped with a note.
Every load goes to 127.0.0.1 only, and every run is bounded in time.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu, argv):
    """Runs argv on one CPU when the machine has more than one."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)] + argv
    return argv


def measure(argv, timeout):
    """Runs argv to completion; returns (stdout, stderr, user_s, sys_s, max_rss_kb)."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    # Peak RSS from /proc (VmHWM), not wait4's ru_maxrss: that one keeps the
    # forked Python's own size across exec and hides small generators.
    peak_kb = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            raise RuntimeError(f"{argv[0]} ran past {timeout} s and was killed")
        time.sleep(0.02)  # polling a child for exit and its RSS, not synchronising a test
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}: {stderr.strip()[-500:]}")
    return stdout, stderr, usage.ru_utime, usage.ru_stime, peak_kb


def vm_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Target:
    """nginx (1 worker, small fixed body) or stampede's own target, on CPU 0."""

    def __init__(self, kind, stampede):
        self.kind = kind
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="stampede-bench-")
        if kind == "nginx":
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(f"""worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{self.port};
    location / {{ return 200 "ok"; }}
  }}
}}
""")
            argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-c", conf, "-p", self.dir]
        else:
            argv = [stampede, "target", "--listen", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(pinned(0, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)  # waiting for the server to listen
        else:
            self.stop()
            raise RuntimeError(f"{kind} did not start listening on port {self.port}")
        self.url = f"http://127.0.0.1:{self.port}/"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if self.kind != "nginx" else signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_wrk(out):
    m = re.search(r"(\d+) requests in", out)
    return int(m.group(1)) if m else None


def parse_h2load(out):
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    return int(m.group(2)) if m else None


def parse_hey(out):
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    return sum(int(n) for _, n in codes) if codes else None


def parse_oha(out):
    try:
        return sum(int(n) for n in json.loads(out)["statusCodeDistribution"].values())
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def parse_stampede(out):
    try:
        return json.loads(out)["global"]["requests"]
    except (ValueError, KeyError):
        return None


def closed_loop_tools(args, stampede, url):
    d, c = args.duration, args.connections
    tools = [
        ("stampede", [stampede, "bench", url, "-c", str(c), "-d", f"{d}s", "-t", "1", "--json"], parse_stampede),
        ("wrk", ["wrk", "-t1", f"-c{c}", f"-d{d}s", url], parse_wrk),
        ("h2load", ["h2load", "--h1", "-t1", f"-c{c}", "-D", str(d), url], parse_h2load),
        ("hey", ["hey", "-z", f"{d}s", "-c", str(c), "-cpus", "1", url], parse_hey),
        ("oha", ["oha", "-z", f"{d}s", "-c", str(c), "--no-tui", "--json", url], parse_oha),
    ]
    return [t for t in tools if t[0] == "stampede" or shutil.which(t[1][0])], [t[0] for t in tools if t[0] != "stampede" and not shutil.which(t[1][0])]


def h2_closed_loop(args, timeout):
    """HTTP/2 closed loop: stampede against h2load, both over h2c to stampede's
    own target (it serves h2c on its plain port; nginx would need its own
    config), with the same number of requests in flight as the HTTP/1.1 table:
    connections / 10 connections of 10 streams each."""
    conns, streams = max(1, args.connections // 10), 10
    target = Target("stampede", args.stampede)
    failed = False
    results = {}
    try:
        tools = [("stampede", [args.stampede, "bench", target.url, "--http2", "--streams", str(streams),
                               "-c", str(conns), "-d", f"{args.duration}s", "-t", "1", "--json"], parse_stampede)]
        if shutil.which("h2load"):
            tools.append(("h2load", ["h2load", "-t1", f"-c{conns}", f"-m{streams}", "-D", str(args.duration),
                                     target.url], parse_h2load))
        else:
            print("h2load not installed: the HTTP/2 table has stampede only")
        for name, argv, parse in tools:
            try:
                results[name] = run_reps(name, argv, parse, args.reps, timeout)
            except RuntimeError as e:
                print(f"{name} (HTTP/2): {e}")
                failed |= name == "stampede"
    finally:
        target.stop()
    print(f"\nclosed loop, HTTP/2 (h2c), {conns} connections x {streams} streams, 1 thread, stampede's target")
    base = results.get("h2load")
    base_eff = base and base["requests"] / (base["user"] + base["sys"])
    rows = []
    for name, r in results.items():
        cpu = r["user"] + r["sys"]
        eff = r["requests"] / cpu
        rows.append([name, r["requests"], f"{r['requests'] / args.duration:,.0f}", f"{r['user']:.2f}",
                     f"{r['sys']:.2f}", f"{eff:,.0f}", f"{eff / base_eff:.2f}x" if base_eff else "-",
                     f"{r['rss_kb'] / 1024:.1f}"])
    table(rows, ["tool", "requests", "req/s", "user s", "sys s", "req/CPU-s", "vs h2load", "peak RSS MB"])
    return failed


def run_reps(name, argv, parse, reps, timeout):
    results = []
    for _ in range(reps):
        stdout, stderr, user, sys_, rss = measure(pinned(1, argv), timeout)
        requests = parse(stdout)
        if not requests:
            raise RuntimeError(f"{name}: could not read a request count from its output:\n{stdout[-800:]}")
        results.append({"requests": requests, "user": user, "sys": sys_, "rss_kb": rss, "stdout": stdout})
    # The median run by efficiency stands for the tool.
    results.sort(key=lambda r: r["requests"] / max(r["user"] + r["sys"], 1e-9))
    return results[len(results) // 2]


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    print(line(header))
    print("-" * len(line(header)))
    for r in rows:
        print(line(r))


def soak(args):
    """One long open-model run: is the agent's memory flat, how big is the report?

    The agent runs as its own process (`stampede agent`), apart from the
    coordinator, so its RSS is the agent's alone: the coordinator keeps the
    per-interval series the report needs, and that grows with the run.
    """
    rate = min(args.rate, 5000)
    target = Target(args.target, args.stampede)
    work = tempfile.mkdtemp(prefix="stampede-soak-")
    scenario, report = os.path.join(work, "soak.yaml"), os.path.join(work, "report.json")
    with open(scenario, "w") as f:
        f.write(f"name: soak\ntarget:\n  url: {target.url}\nload:\n  model: open\n  rate: {rate}\n"
                f"  connections: {args.connections}\n  duration: {args.soak}s\nregions:\n  - name: local\n"
                f"start_delay: 1s\n")
    port = free_port()
    procs = []
    try:
        coordinator = subprocess.Popen([args.stampede, "coordinator", "--scenario", scenario, "--listen",
                                        f"127.0.0.1:{port}", "--insecure-plaintext", "--report", report],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(coordinator)
        agent = subprocess.Popen(pinned(1, [args.stampede, "agent", "--coordinator", f"http://127.0.0.1:{port}",
                                            "--region", "local", "--threads", "1", "--once",
                                            "--insecure-plaintext", "--allow-target", "127.0.0.0/8"]),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(agent)
        samples = []
        started = time.monotonic()
        while agent.poll() is None:
            if time.monotonic() - started > args.soak + 120:
                raise RuntimeError("soak run did not end")
            rss = 0
            try:
                with open(f"/proc/{agent.pid}/status") as f:
                    rss = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
            except OSError:
                pass
            if rss:
                samples.append((time.monotonic() - started, rss))
            time.sleep(10)  # sampling interval, not synchronisation
        if coordinator.wait(timeout=60) != 0 or agent.returncode != 0:
            raise RuntimeError("coordinator or agent failed")
        with open(report) as f:
            data = json.load(f)
        size = os.path.getsize(report)
        intervals = len(data["intervals"])
        regions = len(data["regions"])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        target.stop()
        shutil.rmtree(work, ignore_errors=True)
    # Ignore the first minute (allocator warm-up, connection set-up).
    steady = [kb for t, kb in samples if t >= 60] or [kb for _, kb in samples]
    print(f"soak: {rate} req/s for {args.soak} s, {len(samples)} RSS samples of the agent process")
    print(f"  agent RSS after 1 min {steady[0] / 1024:.1f} MB, at the end {steady[-1] / 1024:.1f} MB, "
          f"max {max(steady) / 1024:.1f} MB: {(steady[-1] - steady[0]) / steady[0] * 100:+.1f}% over the run")
    print(f"  report {size / 1024:.0f} KB for {intervals} intervals x {regions} region(s): "
          f"{size / intervals:.0f} bytes per interval -> {size / intervals * 3600 / 1024 / 1024:.1f} MB per hour "
          f"(grows with intervals x (regions + 1))")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="2 s runs, one repetition (CI)")
    p.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    p.add_argument("--reps", type=int, default=3, help="repetitions; the median is shown (default 3)")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--rate", type=int, default=20000, help="open-model rate (default 20000 req/s)")
    p.add_argument("--target", choices=["nginx", "stampede"], default="nginx")
    p.add_argument("--stampede", default=os.path.join(ROOT, "target", "release", "stampede"))
    p.add_argument("--soak", type=int, metavar="SECONDS", help="instead: one long open-model run, sampling RSS")
    args = p.parse_args()
    if args.smoke:
        args.duration, args.reps = 2, 1
    if args.target == "nginx" and not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        print("nginx not found (Debian: nginx-light); using stampede's own target")
        args.target = "stampede"
    if not os.path.exists(args.stampede):
        print("building stampede (release)…", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "stampede-coordinator"], cwd=ROOT, check=True)

    if args.soak:
        soak(args)
        return
    timeout = args.duration + 60
    print(f"machine: {os.cpu_count()} CPUs; target {args.target} on CPU 0, generators on CPU 1; "
          f"{args.duration} s per run, median of {args.reps}")
    target = Target(args.target, args.stampede)
    failed = False
    try:
        # Closed loop: as many requests as one core can drive.
        tools, missing = closed_loop_tools(args, args.stampede, target.url)
        if missing:
            print(f"skipped (not installed): {', '.join(missing)}")
        results = {}
        for name, argv, parse in tools:
            try:
                results[name] = run_reps(name, argv, parse, args.reps, timeout)
            except RuntimeError as e:
                print(f"{name}: {e}")
                failed |= name == "stampede"
        print(f"\nclosed loop, HTTP/1.1 keep-alive, {args.connections} connections, 1 thread")
        base = results.get("wrk")
        base_eff = base and base["requests"] / (base["user"] + base["sys"])
        rows = []
        for name, r in results.items():
            cpu = r["user"] + r["sys"]
            eff = r["requests"] / cpu
            rows.append([
                name, r["requests"], f"{r['requests'] / args.duration:,.0f}",
                f"{r['user']:.2f}", f"{r['sys']:.2f}", f"{eff:,.0f}",
                f"{eff / base_eff:.2f}x" if base_eff else "-",
                f"{r['user'] / r['requests'] * 1e5:.3f}", f"{r['rss_kb'] / 1024:.1f}",
            ])
        table(rows, ["tool", "requests", "req/s", "user s", "sys s", "req/CPU-s", "vs wrk", "user s/100k", "peak RSS MB"])

        # Open model: a fixed rate, latency from the intended send time.
        print(f"\nopen model, {args.rate} req/s, {args.connections} connections, 1 thread")
        argv = [args.stampede, "bench", target.url, "-c", str(args.connections), "-d", f"{args.duration}s",
                "-t", "1", "-R", str(args.rate), "--json"]
        try:
            r = run_reps("stampede -R", argv, parse_stampede, args.reps, timeout)
            g = json.loads(r["stdout"])["global"]
            cpu = r["user"] + r["sys"]
            lat = g["latency_us"]
            rows = [["stampede", f"{g['achieved_rps']:,.1f}", f"{g['achieved_rps'] / args.rate * 100:.2f}%",
                     f"{lat['p50'] / 1000:.3f}", f"{lat['p99'] / 1000:.3f}", f"{lat['p99_9'] / 1000:.3f}",
                     f"{cpu / r['requests'] * 1e5:.3f}", f"{r['rss_kb'] / 1024:.1f}"]]
            if shutil.which("h2load"):
                # h2load's own fixed rate (--rps is per connection). It paces
                # each connection on its own timer and times requests from
                # their actual send, so its latencies are not comparable.
                per_conn = max(1, round(args.rate / args.connections))
                h_argv = ["h2load", "--h1", "-t1", f"-c{args.connections}", "--rps", str(per_conn),
                          "-D", str(args.duration), target.url]
                h = run_reps("h2load --rps", h_argv, parse_h2load, args.reps, timeout)
                rows.append(["h2load --rps (same rate)", f"{h['requests'] / args.duration:,.1f}",
                             f"{h['requests'] / args.duration / args.rate * 100:.2f}%", "-", "-", "-",
                             f"{(h['user'] + h['sys']) / h['requests'] * 1e5:.3f}", f"{h['rss_kb'] / 1024:.1f}"])
            if "h2load" in results:
                h = results["h2load"]
                rows.append(["h2load (closed, for CPU)", "-", "-", "-", "-", "-",
                             f"{(h['user'] + h['sys']) / h['requests'] * 1e5:.3f}", f"{h['rss_kb'] / 1024:.1f}"])
            table(rows, ["tool", "achieved req/s", "of target", "p50 ms", "p99 ms", "p99.9 ms", "CPU s/100k", "peak RSS MB"])
            if shutil.which("wrk2"):
                print("(wrk2 found: compare with `wrk2 -t1 -c50 -d10s -R20000 --latency URL`)")
            else:
                print("wrk2 not installed: skipped")
        except RuntimeError as e:
            print(f"stampede -R: {e}")
            failed = True
    finally:
        target.stop()
    failed |= h2_closed_loop(args, timeout)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
