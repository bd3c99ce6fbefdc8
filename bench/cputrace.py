#!/usr/bin/env python3
"""cputrace.py: where a storm's CPU goes over time (bench/storm.sh --cpu-trace).

  cputrace.py sample OUT PGID...   every 100 ms until killed, append a JSON line to OUT: each
                                   CPU's user, system and irq+softirq % (/proc/stat), and the CPU %
                                   of the server (processes in the given process groups) and of
                                   the storm client (comm pxed-storm); every second the three
                                   busiest processes of the machine (anything else running shows).
  cputrace.py show TRACE MACHINES_JSON [BUCKET]
                                   the trace in BUCKET-second rows (default 0.5) from the storm's
                                   start (NAME.tracestart next to MACHINES_JSON: its wall clock), with the machines in each stage (from the storm's
                                   NAME.machines.json), and the averages over the NBP and HTTP
                                   stages: which side's CPU was saturated there.

The sampler itself takes ~1 % of a core (reads /proc/stat and a few /proc/PID/stat)."""
import json, os, sys, time


def sample(out, pgids):
    hz = os.sysconf("SC_CLK_TCK")
    pgids = {int(p) for p in pgids}
    f = open(out, "w")

    def cpus():
        r = {}
        for line in open("/proc/stat"):
            if line.startswith("cpu") and line[3] != " ":
                x = line.split()
                v = list(map(int, x[1:]))
                r[x[0]] = (v[0] + v[1], v[2], v[5] + v[6], v[3] + v[4])  # user, system, irq+softirq, idle
        return r

    def stat(pid):
        d = open(f"/proc/{pid}/stat").read()
        comm = d[d.index("(") + 1:d.rindex(")")]
        x = d[d.rindex(")") + 2:].split()
        return comm, int(x[2]), int(x[11]) + int(x[12])  # comm, pgrp, utime+stime

    watch = {}  # pid -> "srv" or "cli"

    def scan():
        every = {}
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    every[p] = stat(p)
                except (OSError, ValueError):
                    pass
        watch.clear()
        for p, (comm, pgrp, _) in every.items():
            if pgrp in pgids:
                watch[p] = "srv"
            elif comm == "pxed-storm":
                watch[p] = "cli"
        return every

    def procs():
        s = {"srv": 0, "cli": 0}
        for p, side in list(watch.items()):
            try:
                s[side] += stat(p)[2]
            except (OSError, ValueError):
                pass
        return s

    every0, ta = scan(), time.monotonic()
    t0, c0, p0 = time.monotonic(), cpus(), procs()
    while True:
        time.sleep(0.1)
        if time.monotonic() - ta >= 1:
            every1, tb = scan(), time.monotonic()
            top = sorted(((t - every0.get(p, (c, g, t))[2], c) for p, (c, g, t) in every1.items()), reverse=True)[:3]
            f.write(json.dumps({"t": round(time.time(), 3), "top": [f"{c} {round(100 * d / hz / (tb - ta))}%" for d, c in top if d > 0]}) + "\n")
            every0, ta = every1, tb
            t0, c0, p0 = time.monotonic(), cpus(), procs()
            continue
        t, c, p = time.monotonic(), cpus(), procs()
        row = {"t": round(time.time(), 3)}
        for k in c:
            d = [c[k][i] - c0[k][i] for i in range(4)]
            tot = sum(d) or 1
            row[k] = [round(100 * d[i] / tot) for i in range(3)]
        for side in ("srv", "cli"):
            row[side] = max(0, round(100 * (p[side] - p0[side]) / hz / (t - t0)))
        f.write(json.dumps(row) + "\n")
        f.flush()
        t0, c0, p0 = t, c, p


def show(trace, machines, bucket):
    rows, tops = [], []
    for line in open(trace):
        r = json.loads(line)
        (tops if "top" in r else rows).append(r)
    ms = json.load(open(machines))
    t0 = float(open(machines.replace(".machines.json", ".tracestart")).read())  # wall clock when the storm client started
    ncpu = len([k for k in rows[0] if k.startswith("cpu")])

    def stage_at(t):
        n = {}
        for m in ms:
            for s in m["steps"]:
                if s["start_s"] <= t < s["start_s"] + s["seconds"]:
                    st = "kernel" if s["stage"] in ("kernel", "initrd", "script") else s["stage"]
                    n[st] = n.get(st, 0) + 1
        return n

    hdr = "  t(s) " + " ".join(f"cpu{i} usr/sys/si" for i in range(ncpu)) + "  server% client% other%  machines in"
    print(hdr)
    buckets = {}
    for r in rows:
        k = int((r["t"] - t0) // bucket)
        if k >= 0:
            buckets.setdefault(k, []).append(r)
    phase = {}
    for k in sorted(buckets):
        rs = buckets[k]
        avg = lambda f: sum(f(r) for r in rs) / len(rs)
        cs = [[avg(lambda r, i=i, j=j: r[f"cpu{i}"][j]) for j in range(3)] for i in range(ncpu)]
        srv, cli = avg(lambda r: r["srv"]), avg(lambda r: r["cli"])
        other = sum(map(sum, cs)) - srv - cli
        n = stage_at(k * bucket + bucket / 2)
        print(f"{k * bucket:6.1f} " + " ".join(f"  {c[0]:3.0f}/{c[1]:3.0f}/{c[2]:3.0f}  " for c in cs)
              + f"  {srv:6.0f} {cli:7.0f} {other:6.0f}  " + ", ".join(f"{a} {b}" for a, b in sorted(n.items())))
        # The NBP stage: most machines in flight fetch their NBP; HTTP: most fetch the kernel.
        main = max(n, key=n.get) if n else None
        if main in ("nbp", "kernel"):
            phase.setdefault(main, []).append((cs, srv, cli))
    for name, v in phase.items():
        cs = [[sum(x[0][i][j] for x in v) / len(v) for j in range(3)] for i in range(ncpu)]
        print(f"{name} stage ({len(v) * bucket:.1f} s): " + ", ".join(f"cpu{i} {sum(c):.0f}% busy" for i, c in enumerate(cs))
              + f"; server {sum(x[1] for x in v) / len(v):.0f}%, client {sum(x[2] for x in v) / len(v):.0f}% of a core")
    for r in tops:
        if t0 - 1 <= r["t"] <= t0 + max(k for k in buckets) * bucket + bucket:
            print(f"{r['t'] - t0:6.1f} busiest: {', '.join(r['top'])}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "show":
        show(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) == 5 else 0.5)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
