#!/usr/bin/env python3
"""Where does a held burst's time go? Slices a coordinator profile into bursts.

    cargo bench -p stampede-coordinator --bench coordinator_scale &   # holds every odd interval
    perf record -F 2999 -g -p $(pgrep -f 'coordinator --scenario /tmp/stampede-scale') -o burst.data -- sleep 12
    perf script -i burst.data -F time,ip,sym > burst.txt
    python3 bench/burst_profile.py burst.txt [FROM_S TO_S]   # default: 0 to 0.08 s after each resume

A held interval shows in the profile as a gap (the coordinator stopped) followed
by a long busy stretch (the burst, then settling). Busy stretches of 80-500 ms
after a gap of more than 25 ms are taken as bursts (a natural interval's burst,
paced by the bench's sender, looks alike and is counted too); samples from
FROM_S to TO_S after each one's start are grouped by where they ran (leaf
symbol).
"""
import bisect
import collections
import re
import sys

# Shortest busy stretch (burst and settling) taken for a burst, seconds.
MIN_BUSY = 0.08

GROUPS = [
    ("decode_agreed", "histogram decoding"), ("decode_sparse", "histogram decoding"),
    ("read_varint", "histogram decoding"),
    ("malloc", "allocation"), ("cfree", "allocation"), ("_int_free", "allocation"),
    ("unlink_chunk", "allocation"), ("_int_", "allocation"),
    ("memmove", "memmove/memset"), ("memset", "memmove/memset"), ("memcpy", "memmove/memset"),
    ("h2::", "HTTP/2, tonic"), ("hyper", "HTTP/2, tonic"), ("tonic", "HTTP/2, tonic"),
    ("http_body", "HTTP/2, tonic"), ("bytes::", "HTTP/2, tonic"),
    ("tokio", "tokio"), ("prost", "prost"), ("v1::", "prost"),
    ("RunMerge::add", "dense adds (open interval)"), ("DenseCounts", "dense adds (open interval)"),
    ("Cumulative", "settle"), ("SparseHistogram::merge", "settle"), ("add_received", "settle"),
]


def group(symbol):
    for key, name in GROUPS:
        if key in symbol:
            return name
    if re.match(r"^[a-z_0-9.]+$", symbol):
        return "kernel"
    return "other"


def main():
    path = sys.argv[1]
    lo = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    hi = float(sys.argv[3]) if len(sys.argv) > 3 else 0.08
    rows, current = [], None
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*([\d.]+):\s*$", line)
            if m:
                current = [float(m.group(1)), None]
                rows.append(current)
                continue
            m = re.match(r"\s+[0-9a-f]+\s+(.*)", line)
            if m and current is not None and current[1] is None:
                current[1] = m.group(1).strip()  # the leaf frame
    rows = sorted(r for r in rows if r[1])
    times = [t for t, _ in rows]
    leaves, total, bursts = collections.Counter(), 0, 0
    for i in range(1, len(rows)):
        if times[i] - times[i - 1] <= 0.025:
            continue
        j = i
        while j + 1 < len(times) and times[j + 1] - times[j] < 0.005:
            j += 1
        if not MIN_BUSY < times[j] - times[i] < 0.5:
            continue
        bursts += 1
        a = bisect.bisect_left(times, times[i] + lo)
        b = bisect.bisect_left(times, times[i] + hi)
        for _, symbol in rows[a:b]:
            leaves[symbol] += 1
            total += 1
    if not total:
        sys.exit("no held bursts found (was the bench run without --no-hold, and perf given -F 2999?)")
    print(f"{bursts} bursts, {total} samples, {lo * 1e3:.0f}-{hi * 1e3:.0f} ms after each resume")
    groups = collections.Counter()
    for symbol, n in leaves.items():
        groups[group(symbol)] += n
    for name, n in groups.most_common():
        print(f"{100 * n / total:6.1f}%  {name}")
    print()
    for symbol, n in leaves.most_common(25):
        print(f"{100 * n / total:6.1f}%  {symbol[:110]}")


if __name__ == "__main__":
    main()
