#!/usr/bin/env python3
"""PyTorch golden cases for graphc's walking skeleton.

What it generates
-----------------
One folder per case under ``tests/goldens/skeleton/<case>/`` (relative to the
repository root), each holding:

* ``spec.yaml``        -- a graphc training spec (see /work/shared/SPEC.md):
                          ``init: {from: init.safetensors}``, ``shuffle: false``,
                          ``drop_last: false``, ``train: {epochs: E}``; no
                          ``scheduler``, no ``valid``.
* ``data.csv``         -- header row, feature columns, then the target
                          column(s). Float cells are ``repr(float(np.float32(v)))``:
                          the exact float32 value used (it reads back to the same
                          float32 whether parsed as f32 or as f64 then cast).
                          Class columns are plain integers. ``iris_mlp`` copies
                          /work/shared/data/iris.csv unchanged (text ``species``,
                          mapped to indices in sorted order: setosa=0,
                          versicolor=1, virginica=2).
* ``init.safetensors`` -- ``safetensors.torch.save_file(model.state_dict(), ...)``
                          of the initial ``nn.Sequential`` (names ``0.weight``,
                          ``0.bias``, ``2.weight``, ...; linear weight is [out, in]).
* ``expected.json``    -- ``{"losses": [...], "final": {name: {"shape": [...],
                          "data": [...]}}}``: ``losses[k]`` is ``loss.item()`` of
                          update step k+1 (the batch loss computed before that
                          step's update); ``final`` holds every state_dict tensor
                          after training, flattened row-major, as floats that are
                          exactly the float32 values.

The training loop is exactly PyTorch's plain loop, float32, one thread::

    for epoch in range(E):
        for x, y in batches_in_file_order(batch_size=B, drop_last=False):
            opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()

How to rerun
------------
From the repository root::

    python3 -m venv venv && venv/bin/pip install torch safetensors numpy   # once
    venv/bin/python tools/goldens/skeleton.py

Everything is seeded (numpy ``default_rng`` for data, ``torch.manual_seed`` for
the initial weights), so a rerun on the same torch version rewrites the same
bytes. Pass ``--out DIR`` to write elsewhere (e.g. to diff against the tree).
"""

import numpy as np

import common
from common import f32

IRIS_CSV = "/work/shared/data/iris.csv"


def run_case(out_root, name, *, batch_size, epochs, x, **case):
    """One case in this script's layout (``common.run_plain_case``), with SGD only."""
    assert case["optimizer"]["type"] == "sgd"
    losses = common.run_plain_case("skeleton.py", out_root, name, batch_size=batch_size,
                                   epochs=epochs, x=x, **case)
    n = len(x)
    nb = -(-n // batch_size)
    last = n - (nb - 1) * batch_size
    print(f"{name}: rows={n} batch={batch_size} last_batch={last} epochs={epochs} "
          f"steps={len(losses)} loss {losses[0]:.5f} -> {losses[-1]:.5f}")


def main():
    out = common.setup(__doc__, "skeleton")

    # linreg_mse_sgd: linear 3->1, mse, sgd lr 0.05. 40 rows, batch 16 (16,16,8), 3 epochs.
    rng = np.random.default_rng(101)
    x = f32(rng.standard_normal((40, 3)))
    yv = f32(x.astype(np.float64) @ [1.5, -2.0, 0.5] + 0.3 + 0.1 * rng.standard_normal(40))
    run_case(out, "linreg_mse_sgd", seed=101, header=["x0", "x1", "x2", "y"],
             x=x, y=yv.reshape(-1, 1), input_dim=3,
             layers=[{"type": "linear", "out": 1}],
             loss={"type": "mse"},
             optimizer={"type": "sgd", "lr": 0.05},
             batch_size=16, epochs=3)

    # linreg_mse_sum_weight_decay: linear 2->2, two targets, mse sum, sgd lr 0.01 wd 0.1.
    # 30 rows, batch 10 (full batches), 2 epochs.
    rng = np.random.default_rng(102)
    x = f32(rng.standard_normal((30, 2)))
    w = np.array([[0.8, -1.2], [2.0, 0.4]])
    yy = f32(x.astype(np.float64) @ w.T + [0.5, -0.25] + 0.1 * rng.standard_normal((30, 2)))
    run_case(out, "linreg_mse_sum_weight_decay", seed=102, header=["x0", "x1", "y0", "y1"],
             x=x, y=yy, input_dim=2,
             layers=[{"type": "linear", "out": 2}],
             loss={"type": "mse", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.01, "weight_decay": 0.1},
             batch_size=10, epochs=2)

    # mlp_ce_momentum: 4->8 relu ->3, ce, sgd lr 0.1 momentum 0.9. 48 rows, batch 12 (full), 3 epochs.
    x, lab = common.class_data(np.random.default_rng(103), 48)
    run_case(out, "mlp_ce_momentum", seed=103, header=common.names("f", 4) + ["label"],
             x=x, y=lab, input_dim=4,
             layers=common.mlp(8, "relu", 3),
             loss={"type": "cross_entropy"},
             optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.9},
             batch_size=12, epochs=3)

    # mlp_ce_nesterov_weighted: 5->6 tanh ->4, ce weight [1,2,0.5,1.5] ignore_index 3,
    # sgd lr 0.05 momentum 0.8 nesterov. 50 rows, batch 16 (16,16,16,2), 3 epochs.
    # Some rows have label 3 (ignored); every batch keeps at least one counted row.
    x, lab = common.class_data(np.random.default_rng(104), 50, features=5)
    # classes 0..2; class 3 only where set below
    lab[[3, 11, 20, 27, 33, 40, 49]] = 3
    for s in range(0, 50, 16):
        assert (lab[s:s + 16] != 3).any() and (lab[s:s + 16] == 3).any(), lab[s:s + 16]
    assert set(lab[lab != 3].tolist()) == {0, 1, 2}
    run_case(out, "mlp_ce_nesterov_weighted", seed=104, header=common.names("f", 5) + ["label"],
             x=x, y=lab, input_dim=5,
             layers=common.mlp(6, "tanh", 4),
             loss={"type": "cross_entropy", "weight": [1.0, 2.0, 0.5, 1.5], "ignore_index": 3},
             optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.8, "nesterov": True},
             batch_size=16, epochs=3)

    # mlp_ce_dampening_sigmoid: 4->6 sigmoid ->3, ce sum, sgd lr 0.01 momentum 0.5
    # dampening 0.3 wd 0.01. 36 rows, batch 8 (8,8,8,8,4), 2 epochs.
    x, lab = common.class_data(np.random.default_rng(105), 36)
    run_case(out, "mlp_ce_dampening_sigmoid", seed=105, header=common.names("f", 4) + ["label"],
             x=x, y=lab, input_dim=4,
             layers=common.mlp(6, "sigmoid", 3),
             loss={"type": "cross_entropy", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.01, "momentum": 0.5, "dampening": 0.3,
                        "weight_decay": 0.01},
             batch_size=8, epochs=2)

    # logreg_bce_with_logits: linear 2->1, bce_with_logits, sgd lr 0.1. 60 rows, batch 20 (full), 4 epochs.
    rng = np.random.default_rng(106)
    x = f32(rng.standard_normal((60, 2)))
    p = 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ [2.0, -1.0] + 0.5)))
    t = f32((rng.random(60) < p).astype(np.float64))
    run_case(out, "logreg_bce_with_logits", seed=106, header=["x0", "x1", "t"],
             x=x, y=t.reshape(-1, 1), input_dim=2,
             layers=[{"type": "linear", "out": 1}],
             loss={"type": "bce_with_logits"},
             optimizer={"type": "sgd", "lr": 0.1},
             batch_size=20, epochs=4)

    # iris_mlp: iris.csv unchanged, 4->16 relu ->3, ce, sgd lr 0.05 momentum 0.9,
    # batch 16 (9x16 + 6), 3 epochs. Classes in sorted order.
    with open(IRIS_CSV) as f:
        lines = f.read().splitlines()
    header = lines[0].strip().split(",")
    rows = [line.strip().split(",") for line in lines[1:] if line.strip()]
    classes = sorted({r[-1] for r in rows})
    assert classes == ["setosa", "versicolor", "virginica"], classes
    # float(cell) then float32: these short decimals round the same as a direct f32 parse.
    x = f32([[float(c) for c in r[:-1]] for r in rows])
    lab = np.array([classes.index(r[-1]) for r in rows], dtype=np.int64)
    run_case(out, "iris_mlp", seed=107, header=header, csv_copy=IRIS_CSV,
             x=x, y=lab, input_dim=4,
             layers=common.mlp(16, "relu", 3),
             loss={"type": "cross_entropy"},
             optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.9},
             batch_size=16, epochs=3)

    # param_groups_sgd: 4->8 relu ->3, ce, sgd lr 0.1 momentum 0.9, layer 0 at lr 0.01.
    # 44 rows, batch 16 (16,16,12), 3 epochs.
    x, lab = common.class_data(np.random.default_rng(108), 44)
    run_case(out, "param_groups_sgd", seed=108, header=common.names("f", 4) + ["label"],
             x=x, y=lab, input_dim=4,
             layers=common.mlp(8, "relu", 3),
             loss={"type": "cross_entropy"},
             optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.9},
             param_groups=[{"params": ["0.*"], "lr": 0.01}],
             batch_size=16, epochs=3)

    common.done(out)


if __name__ == "__main__":
    main()
