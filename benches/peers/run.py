"""Side-by-side training-step benchmark: graphc (`graphc bench`, JIT) against
PyTorch eager (1 and 2 threads) and JAX jit on the workloads of specs/bench/
(the JIT issue's five MLPs and issue 12's lenet and convnet), in one run on one
machine. Prints a Markdown table: steps/s per
framework, graphc's ratio to the best peer, and first-step latency (graphc:
compile + first step; JAX: its first jit call, which traces, compiles and runs
one step), then the step time and first step graphc needs to meet its targets.
A workload graphc cannot run yet (the CNN layers are still being added, or no
release binary) gets a "graphc: not available (reason)" cell and the peers are
measured all the same. Run through run.sh, which makes the venv and builds graphc.

With --bf16, also graphc under `--set train.precision=bf16` and the peers' bf16
modes (PyTorch autocast bf16, JAX with bf16 operands and f32 results) on the MLP,
lenet and convnet workloads, in a second table beside fp32.

usage: run.py [--min-time SECONDS] [--json FILE] [--bf16] [WORKLOAD ...]
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
# GRAPHC_BIN runs another graphc binary than this checkout's release build
# (run.sh builds that one).
GRAPHC = os.environ.get("GRAPHC_BIN") or os.path.join(ROOT, "target", "release", "graphc")
WORKLOADS = ["linreg", "logreg", "mlp_s", "mlp_m", "mlp_l", "lenet", "convnet"]
# The target ratio of graphc's steps/s to the best peer's: issue 7 (the MLPs)
# and issue 12 (the CNNs).
TARGET = {"linreg": 20, "logreg": 20, "mlp_s": 3, "mlp_m": 1.5, "mlp_l": 1.0, "lenet": 2, "convnet": 1.2}
# Both issues: graphc's first step including compile ≤ this fraction of JAX's first jit call.
FIRST_STEP_TARGET = 0.1


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


def graphc_bench(workload, min_time, precision=None):
    """One `graphc bench` process timed for at least `min_time` seconds, or
    {"unavailable": reason} when graphc cannot run the workload (a layer it
    does not parse yet, no release binary): the peers are measured anyway."""
    spec = os.path.join(ROOT, "specs", "bench", workload + ".yaml")
    if not os.path.exists(GRAPHC):
        return {"unavailable": f"no graphc binary at {GRAPHC}"}
    steps = 20
    while True:
        extra = ["--set", f"train.precision={precision}"] if precision else []
        run = subprocess.run([GRAPHC, "bench", spec, "--steps", str(steps)] + extra,
                             capture_output=True, text=True)
        if run.returncode != 0:
            said = [l.strip() for l in run.stderr.splitlines() if l.strip()]
            reason = said[-1] if said else f"graphc bench exited with {run.returncode}"
            # graphc's one-line error, without its prefix and its list of valid choices.
            reason = reason.removeprefix("error: ").split("; valid:")[0].replace(ROOT + os.sep, "")
            return {"unavailable": reason if len(reason) <= 160 else reason[:157] + "..."}
        line = json.loads(run.stdout.strip().splitlines()[-1])
        seconds = steps * line["step_us"] / 1e6
        if seconds >= min_time:
            return line
        steps = max(steps + 1, math.ceil(steps * min_time * 1.1 / max(seconds, 1e-9)))


def rate(v):
    """Steps/s to three significant figures below 100 (the CNN workloads), whole above."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def duration_us(us):
    return f"{us:,.1f} µs" if us < 10_000 else f"{us / 1e3:,.2f} ms"


def cell(r, peer):
    """A peer's steps/s, with the CPUs it got when peers_bench measured them."""
    v = f"{rate(r.get(peer, 0))}/s"
    if peer + "_cpus" in r:
        v += f" ({r[peer + '_cpus']:.2f} CPU)"
    return v


def peers(args):
    """JSON lines of peers_bench.py run with `args` in its own process."""
    cmd = [sys.executable, os.path.join(HERE, "peers_bench.py")] + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--min-time", type=float, default=2.0)
    p.add_argument("--json", help="also write every measurement to this file")
    p.add_argument("--bf16", action="store_true", help="also the bf16 table (MLP and CNN workloads)")
    p.add_argument("workloads", nargs="*", default=WORKLOADS)
    a = p.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    rows = {w: {} for w in a.workloads}
    for w in a.workloads:
        line = graphc_bench(w, a.min_time)
        if "unavailable" in line:
            rows[w]["graphc_unavailable"] = line["unavailable"]
            print(f"graphc {w}: not available ({line['unavailable']})", file=sys.stderr, flush=True)
            continue
        rows[w]["graphc"] = line["steps_per_s"]
        rows[w]["graphc_first_ms"] = line["first_step_latency_ms"]
        rows[w]["graphc_compile_ms"] = line["compile_ms"]
        print(f"graphc {w}: {line['steps_per_s']:.1f} steps/s", file=sys.stderr, flush=True)
    # The workloads whose time goes to products and convolutions.
    bf16s = [w for w in a.workloads if w.startswith("mlp") or w in ("lenet", "convnet")] if a.bf16 else []
    for w in bf16s:
        line = graphc_bench(w, a.min_time, "bf16")
        if "unavailable" not in line:
            rows[w]["graphc-bf16"] = line["steps_per_s"]
            print(f"graphc bf16 {w}: {line['steps_per_s']:.1f} steps/s", file=sys.stderr, flush=True)
    bf16_peers = [["torch-bf16", "1"], ["torch-bf16", "2"], ["jax-bf16"]] if bf16s else []
    for peer_args in [["torch", "1"], ["torch", "2"], ["jax"]] + bf16_peers:
        bf16_peer = peer_args[0].endswith("bf16")
        for r in peers(peer_args + (bf16s if bf16_peer else a.workloads)):
            rows[r["workload"]][r["peer"]] = r["steps_per_s"]
            if "cpus" in r:
                rows[r["workload"]][r["peer"] + "_cpus"] = r["cpus"]
            if "compile_s" in r and not bf16_peer:
                rows[r["workload"]]["jax_first_ms"] = r["compile_s"] * 1e3
            print(f"{r['peer']} {r['workload']}: {r['steps_per_s']} steps/s", file=sys.stderr, flush=True)
    # Issue 12's memory target is about a convnet step: PyTorch's RSS for reference.
    rss = []
    if "convnet" in a.workloads:
        print("PyTorch's RSS around convnet steps", file=sys.stderr, flush=True)
        for th in ("1", "2"):
            rss += peers(["rss", th, "convnet"])

    m = machine()
    load_after = os.getloadavg()
    print(f"Measured {started:%Y-%m-%d %H:%M} UTC on {m['cpus']} CPUs, {m['cpu']} ({m['system']});"
          f" each figure timed for at least {a.min_time:g} s; load average (1, 5, 15 min)"
          f" {' / '.join(f'{v:.2f}' for v in load_before)} before,"
          f" {' / '.join(f'{v:.2f}' for v in load_after)} after (other work on a shared"
          f" machine skews the figures)."
          + (" In brackets: the CPUs a peer's process used over its timed loop (its CPU time, all"
             " threads, ÷ wall time)." if any("_cpus" in k for r in rows.values() for k in r) else "")
          + "\n")
    print("| workload | graphc (JIT) | PyTorch eager 1t | PyTorch eager 2t | JAX jit | graphc ÷ best peer (target) "
          "| graphc first step incl. compile | JAX first jit call | JAX ÷ graphc |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in a.workloads:
        r = rows[w]
        best = max(r.get("torch-eager-1t", 0), r.get("torch-eager-2t", 0), r.get("jax-jit", 0))
        jax_first = r.get("jax_first_ms", float("nan"))
        peers_cells = (f"| {cell(r, 'torch-eager-1t')} | {cell(r, 'torch-eager-2t')} "
                       f"| {cell(r, 'jax-jit')} ")
        if "graphc" not in r:
            print(f"| {w} | graphc: not available ({r['graphc_unavailable']}) {peers_cells}"
                  f"| — (≥ {TARGET.get(w, '?')}) | — | {jax_first:.0f} ms | — |")
            continue
        ratio = r["graphc"] / best if best else float("nan")
        first = r["graphc_first_ms"]
        print(f"| {w} | {rate(r['graphc'])}/s {peers_cells}| **{ratio:.2f}×** (≥ {TARGET.get(w, '?')}) "
              f"| {first:.1f} ms | {jax_first:.0f} ms | {jax_first / first:.1f}× |")
    print("\nWhat graphc needs on this machine to meet the targets (from the peers above):\n")
    for w in a.workloads:
        r = rows[w]
        peer, best = max(((p, r.get(p, 0)) for p in ("torch-eager-1t", "torch-eager-2t", "jax-jit")),
                         key=lambda pb: pb[1])
        if not best or w not in TARGET:
            continue
        need = TARGET[w] * best
        jax_first = r.get("jax_first_ms", float("nan"))
        print(f"- {w}: ≥ {TARGET[w]:g} × {rate(best)}/s ({peer}) = {rate(need)} steps/s, i.e. ≤ {duration_us(1e6 / need)}"
              f" a step; first step incl. compile ≤ {FIRST_STEP_TARGET:g} × {jax_first:,.0f} ms"
              f" = {FIRST_STEP_TARGET * jax_first:,.1f} ms")
    if bf16s:
        print("\nfp32 and bf16 side by side (steps/s; bf16: graphc `train.precision: bf16`, PyTorch"
              " `torch.autocast(\"cpu\", dtype=torch.bfloat16)`, JAX bf16 operands with"
              " `preferred_element_type=float32`):\n")
        print("| workload | graphc fp32 | graphc bf16 | bf16 ÷ fp32 (≥ 1.8) | PyTorch bf16 1t | PyTorch bf16 2t "
              "| JAX bf16 | graphc bf16 ÷ best bf16 peer (≥ 1.2) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for w in bf16s:
            r = rows[w]
            fp32, bf16 = r.get("graphc", float("nan")), r.get("graphc-bf16", float("nan"))
            best = max(r.get(p, 0) for p in ("torch-eager-1t-bf16", "torch-eager-2t-bf16", "jax-jit-bf16"))
            print(f"| {w} | {rate(fp32)}/s | {rate(bf16)}/s | **{bf16 / fp32:.2f}×** "
                  f"| {cell(r, 'torch-eager-1t-bf16')} | {cell(r, 'torch-eager-2t-bf16')} "
                  f"| {cell(r, 'jax-jit-bf16')} | **{bf16 / best if best else float('nan'):.2f}×** |")
    for r in rss:
        print(f"- PyTorch eager {r['peer'][-2:]}, convnet: RSS {r['rss_before_mb']:,.0f} MiB after building the model,"
              f" data and optimizer; peak {r['peak_rss_first_step_mb']:,.0f} MiB over the first step and"
              f" {r['peak_rss_mb']:,.0f} MiB over 50 more (+{r['peak_rss_mb'] - r['rss_before_mb']:,.0f} MiB)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"date": started.isoformat(), "machine": m, "rows": rows,
                       "load": [load_before, load_after], "rss": rss}, f, indent=1)


if __name__ == "__main__":
    main()
