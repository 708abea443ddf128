"""Side-by-side training-step benchmark: graphc (`graphc bench`, JIT) against
PyTorch eager (1 and 2 threads) and JAX jit on the five workloads of
specs/bench/, in one run on one machine. Prints a Markdown table: steps/s per
framework, graphc's ratio to the best peer, and first-step latency (graphc:
compile + first step; JAX: its first jit call, which traces, compiles and runs
one step). Run through run.sh, which makes the venv and builds graphc.

usage: run.py [--min-time SECONDS] [--json FILE] [WORKLOAD ...]
"""
import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GRAPHC = os.path.join(ROOT, "target", "release", "graphc")
WORKLOADS = ["linreg", "logreg", "mlp_s", "mlp_m", "mlp_l"]
# Issue 7's target ratio of graphc's steps/s to the best peer's.
TARGET = {"linreg": 20, "logreg": 20, "mlp_s": 3, "mlp_m": 1.5, "mlp_l": 1.0}


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "system": platform.platform()}


def graphc_bench(workload, min_time):
    """One `graphc bench` process timed for at least `min_time` seconds."""
    spec = os.path.join(ROOT, "specs", "bench", workload + ".yaml")
    steps = 20
    while True:
        out = subprocess.run([GRAPHC, "bench", spec, "--steps", str(steps)],
                             check=True, capture_output=True, text=True).stdout
        line = json.loads(out.strip().splitlines()[-1])
        seconds = steps * line["step_us"] / 1e6
        if seconds >= min_time:
            return line
        steps = max(steps + 1, math.ceil(steps * min_time * 1.1 / max(seconds, 1e-9)))


def peers(args):
    """JSON lines of peers_bench.py run with `args` in its own process."""
    cmd = [sys.executable, os.path.join(HERE, "peers_bench.py")] + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--min-time", type=float, default=2.0)
    p.add_argument("--json", help="also write every measurement to this file")
    p.add_argument("workloads", nargs="*", default=WORKLOADS)
    a = p.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()[0]
    rows = {w: {} for w in a.workloads}
    for w in a.workloads:
        line = graphc_bench(w, a.min_time)
        rows[w]["graphc"] = line["steps_per_s"]
        rows[w]["graphc_first_ms"] = line["first_step_latency_ms"]
        rows[w]["graphc_compile_ms"] = line["compile_ms"]
        print(f"graphc {w}: {line['steps_per_s']:.1f} steps/s", file=sys.stderr, flush=True)
    for peer_args in (["torch", "1"], ["torch", "2"], ["jax"]):
        for r in peers(peer_args + a.workloads):
            rows[r["workload"]][r["peer"]] = r["steps_per_s"]
            if "compile_s" in r:
                rows[r["workload"]]["jax_first_ms"] = r["compile_s"] * 1e3
            print(f"{r['peer']} {r['workload']}: {r['steps_per_s']} steps/s", file=sys.stderr, flush=True)

    m = machine()
    load_after = os.getloadavg()[0]
    print(f"Measured {started:%Y-%m-%d %H:%M} UTC on {m['cpus']} CPUs, {m['cpu']} ({m['system']});"
          f" each figure timed for at least {a.min_time:g} s; 1-minute load average"
          f" {load_before:.2f} before, {load_after:.2f} after (other work on a shared"
          f" machine skews the figures).\n")
    print("| workload | graphc (JIT) | PyTorch eager 1t | PyTorch eager 2t | JAX jit | graphc ÷ best peer (target) "
          "| graphc first step incl. compile | JAX first jit call | JAX ÷ graphc |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in a.workloads:
        r = rows[w]
        best = max(r.get("torch-eager-1t", 0), r.get("torch-eager-2t", 0), r.get("jax-jit", 0))
        ratio = r["graphc"] / best if best else float("nan")
        first = r["graphc_first_ms"]
        jax_first = r.get("jax_first_ms", float("nan"))
        print(f"| {w} | {r['graphc']:,.0f}/s | {r.get('torch-eager-1t', 0):,.0f}/s | {r.get('torch-eager-2t', 0):,.0f}/s "
              f"| {r.get('jax-jit', 0):,.0f}/s | **{ratio:.2f}×** (≥ {TARGET.get(w, '?')}) "
              f"| {first:.1f} ms | {jax_first:.0f} ms | {jax_first / first:.1f}× |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"date": started.isoformat(), "machine": m, "rows": rows,
                       "load": [load_before, load_after]}, f, indent=1)


if __name__ == "__main__":
    main()
