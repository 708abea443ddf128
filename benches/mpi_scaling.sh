#!/usr/bin/env bash
# Data-parallel scaling on this machine: mlp_l (specs/bench/mlp_l.yaml, batch 256, 2 steps an
# epoch) and convnet (specs/bench/convnet.yaml, batch 32, 10 steps an epoch; its batch norms per
# rank, and once more with train.sync_batch_norm) at one rank with one thread, one rank with two
# threads, and two MPI ranks with one thread each. A step's time is the
# difference between runs of 20 and 4 epochs over the extra steps, so compilation and data
# loading cancel; the ranks' time in their sums (gradients and loss) is what `graphc train`
# reports per step. Needs a release build with the feature:
# cargo build --release -p graphc-cli --features mpi.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/graphc}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
sed 's/^train: *{/train: {sync_batch_norm: true, /' specs/bench/convnet.yaml >"$scratch/convnet_sync.yaml"

# seconds LAUNCH... : the run's wall-clock seconds as its summary line reports them.
seconds() {
    "$@" train "$SPEC" --out "$scratch/run" --overwrite --quiet --set "train.epochs=$EPOCHS" |
        tee "$scratch/line" | sed -E 's/.* in ([0-9.]+) s.*/\1/'
}

measure() { # LABEL THREADS LAUNCH...
    local label=$1 threads=$2
    shift 2
    local short long
    EPOCHS=4 short=$(GRAPHC_THREADS=$threads seconds "$@")
    EPOCHS=20 long=$(GRAPHC_THREADS=$threads seconds "$@")
    local summing
    summing=$(grep -oE '[0-9.]+ ms a step summing' "$scratch/line" || echo "-")
    echo "$label: $(echo "($long - $short) * 1000 / (16 * $STEPS)" | bc -l | xargs printf '%.1f') ms a step; $summing"
}

for round in ${ROUNDS:-1 2 3}; do
    echo "round $round ($(uptime | sed 's/.*load/load/'))"
    for workload in mlp_l:specs/bench/mlp_l.yaml:2 convnet:specs/bench/convnet.yaml:10 \
        convnet_sync:$scratch/convnet_sync.yaml:10; do
        IFS=: read -r name SPEC STEPS <<<"$workload"
        measure "$name, 1 rank, 1 thread " 1 "$BIN"
        measure "$name, 1 rank, 2 threads" 2 "$BIN"
        measure "$name, 2 ranks, 1 thread each" 1 mpirun -n 2 --bind-to none "$BIN"
    done
done
