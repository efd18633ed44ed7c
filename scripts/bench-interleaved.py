#!/usr/bin/env python3
"""Times shell commands interleaved (run 1 of each, then run 2 of each, ...),
so a change in the machine's load hits every contender alike. Prints, per
command, the median wall time and the median CPU time (user+sys of the
command and its children), and writes them as JSON for the caller.

    bench-interleaved.py RUNS OUT.json NAME CMD [NAME CMD ...]

Before each run it calls `sync` (no cache dropping: the contenders read with
O_DIRECT). A command that fails stops the benchmark.
"""
import json, os, resource, statistics, subprocess, sys, time

runs, out = int(sys.argv[1]), sys.argv[2]
pairs = list(zip(sys.argv[3::2], sys.argv[4::2]))
wall = {n: [] for n, _ in pairs}
cpu = {n: [] for n, _ in pairs}
for i in range(runs + 1):           # run 0 is a warm-up, not counted
    for name, cmd in pairs:
        os.sync()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        subprocess.run(["bash", "-c", cmd], check=True)
        t1 = time.monotonic()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i > 0:
            wall[name].append(t1 - t0)
            cpu[name].append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
result = {n: {"wall": statistics.median(wall[n]), "cpu": statistics.median(cpu[n]), "walls": wall[n]} for n, _ in pairs}
json.dump(result, open(out, "w"))
