#!/usr/bin/env python3
"""Paired A/B of stampede builds against h2load, for judging one change.

    bench/ab.py h2 OLD-BINARY NEW-BINARY           # HTTP/2 closed loop (h2c, 5 x 10 streams)
    bench/ab.py open OLD-BINARY NEW-BINARY         # open model, 20 000 req/s, 50 connections
                                                   # (peers: h2load at the same rate, --rps, and closed)
    bench/ab.py h1 OLD-BINARY NEW-BINARY --no-peer # HTTP/1.1 closed loop, builds only

On a shared machine the load changes from minute to minute, so
`compare.py`'s blocks (all runs of one tool, then the next) can put two
builds in different conditions. Here every repetition runs each build and
then h2load back to back, with the same target, pinning and CPU accounting
as `compare.py` (target on CPU 0, generator on CPU 1, user + sys from
wait4), and prints each run, the per-repetition ratios and the medians.
Loads go to 127.0.0.1 only; every run is bounded in time.
"""

import argparse
import json
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the sibling harness: Target, measure, parsers)

H2LOAD_AT_RATE = "h2load --rps"
PEERS = ("h2load", H2LOAD_AT_RATE)


def argv_for(mode, binary, url, duration, rate):
    if binary == H2LOAD_AT_RATE:
        # h2load's own fixed rate: --rps is per connection.
        per_conn = max(1, round(rate / 50))
        return (["h2load", "--h1", "-t1", "-c50", "--rps", str(per_conn), "-D", str(duration), url],
                compare.parse_h2load)
    if binary == "h2load":
        if mode == "h2":
            return ["h2load", "-t1", "-c5", "-m10", "-D", str(duration), url], compare.parse_h2load
        return ["h2load", "--h1", "-t1", "-c50", "-D", str(duration), url], compare.parse_h2load
    argv = [binary, "bench", url, "-d", f"{duration}s", "-t", "1", "--json"]
    if mode == "h2":
        argv += ["--http2", "--streams", "10", "-c", "5"]
    elif mode == "open":
        argv += ["-c", "50", "-R", str(rate)]
    else:
        argv += ["-c", "50"]
    return argv, compare.parse_stampede


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["h2", "open", "h1"])
    p.add_argument("binaries", nargs="+", help="stampede binaries to compare, the first is the baseline")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("-d", "--duration", type=int, default=8, help="seconds per run")
    p.add_argument("--rate", type=int, default=20000, help="open model: req/s")
    p.add_argument("--no-peer", action="store_true", help="skip h2load")
    args = p.parse_args()
    for b in args.binaries:
        if not os.path.exists(b):
            sys.exit(f"{b}: no such binary")
    tools = list(args.binaries)
    if not args.no_peer:
        if shutil.which("h2load"):
            tools.append("h2load")
            if args.mode == "open":
                tools.append(H2LOAD_AT_RATE)
        else:
            print("h2load not installed: builds only")
    # h2c needs stampede's own target; the others use nginx when installed.
    kind = "stampede" if args.mode == "h2" else "nginx"
    if kind == "nginx" and not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        kind = "stampede"
    target = compare.Target(kind, args.binaries[0])
    runs = {t: [] for t in tools}
    try:
        for rep in range(args.reps):
            for tool in tools:
                argv, parse = argv_for(args.mode, tool, target.url, args.duration, args.rate)
                out, _, user, sys_, _ = compare.measure(compare.pinned(1, argv), args.duration + 60)
                n = parse(out)
                if not n:
                    sys.exit(f"{tool}: no request count in its output:\n{out[-800:]}")
                r = {"n": n, "user": user, "sys": sys_, "eff": n / max(user + sys_, 1e-9)}
                note = ""
                if tool not in PEERS and args.mode == "open":
                    g = json.loads(out)["global"]
                    lag = g.get("schedule_lag_us") or {}
                    note = (f"  achieved {g['achieved_rps'] / args.rate * 100:.2f}%, latency p50 "
                            f"{g['latency_us']['p50']} us, lag p50/p99 {lag.get('p50')}/{lag.get('p99')} us")
                runs[tool].append(r)
                print(f"rep {rep} {tool}: {n} requests, user {user:.2f} s, sys {sys_:.2f} s, "
                      f"{r['eff']:,.0f} req/CPU-s, {(user + sys_) / n * 1e5:.3f} CPU s/100k{note}", flush=True)
    finally:
        target.stop()
    peers = [t for t in PEERS if t in runs]
    print("\nper repetition, req/CPU-s against the first build" + "".join(f" and {p}" for p in peers))
    for tool in tools:
        if tool in PEERS:
            continue
        vs_base = [r["eff"] / b["eff"] for r, b in zip(runs[tool], runs[tools[0]])]
        line = f"  {tool}: vs first " + " ".join(f"{x:.2f}" for x in vs_base)
        line += f" (median {statistics.median(vs_base):.2f})"
        for peer in peers:
            vs_peer = [r["eff"] / h["eff"] for r, h in zip(runs[tool], runs[peer])]
            line += f"; vs {peer} " + " ".join(f"{x:.2f}" for x in vs_peer)
            line += f" (median {statistics.median(vs_peer):.2f}x)"
        print(line)
    print("medians")
    for tool, rs in runs.items():
        eff = statistics.median(r["eff"] for r in rs)
        per = statistics.median((r["user"] + r["sys"]) / r["n"] * 1e5 for r in rs)
        print(f"  {tool}: {eff:,.0f} req/CPU-s, {per:.3f} CPU s/100k")


if __name__ == "__main__":
    main()
