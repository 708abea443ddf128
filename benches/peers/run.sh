#!/usr/bin/env bash
# graphc against PyTorch eager and JAX jit, side by side, in one run:
#   benches/peers/run.sh [--min-time SECONDS] [--json FILE] [WORKLOAD ...]
# Makes a Python venv for the peers in benches/peers/.venv on first use (torch
# CPU, jax, numpy: ~6 GB, a few minutes; set PEERS_PYTHON to reuse an
# interpreter that already has them), builds graphc in release, runs
# benches/peers/run.py (the table), then where graphc's step time goes
# (`--example breakdown`) and the JIT's own targets (`--example jit_targets`).
# PyTorch and JAX are dependencies of this benchmark only, never of graphc.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

python="${PEERS_PYTHON:-}"
if [[ -z "$python" ]]; then
    venv="$here/.venv"
    if [[ ! -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv"
    fi
    python="$venv/bin/python"
    if ! "$python" -c 'import torch, jax, numpy' 2>/dev/null; then
        echo "installing torch, jax and numpy into $venv (first run only)" >&2
        "$python" -m pip install --quiet numpy torch jax jaxlib
    fi
fi

(cd "$root" && cargo build --release --quiet -p graphc-cli && cargo build --release --quiet -p graphc-benches --examples)
echo "## graphc vs PyTorch and JAX (training steps per second)"
"$python" "$here/run.py" "$@"
echo
echo "## Where graphc's step time goes"
"$root/target/release/examples/breakdown" "$root/specs/bench"
echo
echo "## JIT targets (issue 3)"
"$root/target/release/examples/jit_targets" "$root/specs/bench"
