#!/usr/bin/env python3
"""PyTorch golden cases for gradient accumulation and clipping (``train.accumulate``,
``train.clip_grad_norm``, ``train.clip_grad_value``).

What it generates
-----------------
One folder per case under ``tests/goldens/accumulate_clip/<case>/`` with ``spec.yaml``,
``data.csv``, ``init.safetensors`` and ``expected.json`` as ``tools/goldens/skeleton.py``
writes them, except that ``losses[k]`` is the mean of the ``loss.item()`` of the batches
whose gradients update ``k+1`` summed (what graphc writes as that step's ``loss``).

The loop, float32, one thread: gradients of ``accumulate`` batches are summed (PyTorch's
``.grad`` accumulation between ``zero_grad`` calls); an epoch's last batches update even
when fewer than ``accumulate`` remain; clipping runs on the summed gradients, the value
clip first::

    for epoch in range(E):
        opt.zero_grad(); pending = []
        for i, (x, y) in enumerate(batches):          # file order, last partial batch kept
            loss = loss_fn(model(x), y); loss.backward(); pending.append(loss.item())
            if len(pending) == accumulate or i == len(batches) - 1:
                clip_grad_value_(params, v)            # when train.clip_grad_value
                clip_grad_norm_(params, max_norm, p)   # when train.clip_grad_norm
                opt.step(); opt.zero_grad(); losses.append(mean(pending)); pending = []

How to rerun
------------
From the repository root::

    venv/bin/python tools/goldens/accumulate_clip.py [--out DIR]
"""

import os

import numpy as np
import torch

import common
from common import Block


def run_case(out_root, name, *, seed, header, x, y, input_dim, layers, loss, optimizer,
             batch_size, epochs, accumulate=1, clip_norm=None, clip_value=None):
    case_dir = common.make_case_dir(out_root, name)
    common.write_csv(os.path.join(case_dir, "data.csv"), header, x, y)

    train = Block(epochs=epochs)
    if accumulate != 1:
        train["accumulate"] = accumulate
    if clip_norm is not None:
        train["clip_grad_norm"] = clip_norm
    if clip_value is not None:
        train["clip_grad_value"] = clip_value
    common.write_spec(case_dir, "accumulate_clip.py", {
        "data": common.data_section(header[-1], batch_size),
        "model": common.model_section(input_dim, layers),
        "loss": loss,
        "optimizer": optimizer,
        "train": train,
    })

    model = common.init_model(case_dir, seed, input_dim, layers)
    opt = common.model_optimizer(model, optimizer)
    loss_fn = common.build_loss(loss)

    xt, yt = common.as_tensors(x, y)
    batches = list(common.batches(xt, yt, batch_size))
    losses, clipped = [], 0
    for _epoch in range(epochs):
        opt.zero_grad()
        pending = []
        for i, (xb, yb) in enumerate(batches):
            l = loss_fn(model(xb), yb)
            l.backward()
            pending.append(l.item())
            if len(pending) == accumulate or i == len(batches) - 1:
                if clip_value is not None:
                    torch.nn.utils.clip_grad_value_(model.parameters(), clip_value)
                if clip_norm is not None:
                    max_norm, p = clip_norm["max_norm"], clip_norm.get("norm_type", 2.0)
                    total = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm, p)
                    clipped += int(total.item() > max_norm)
                opt.step()
                opt.zero_grad()
                losses.append(sum(pending) / len(pending))
                pending = []
    assert all(np.isfinite(losses)), name

    common.write_expected(case_dir, model, losses=losses)
    print(f"{name}: updates={len(losses)} clipped={clipped} "
          f"loss {losses[0]:.5f} -> {losses[-1]:.5f}")


def main():
    out = common.setup(__doc__, "accumulate_clip")
    mlp = common.mlp(8, "tanh", 3)
    header = common.names("f", 4) + ["label"]

    def classes(seed, rows):
        return common.class_data(np.random.default_rng(seed), rows)

    # 30 rows, batch 4: 8 batches (7 x 4 + 2); accumulate 3: updates after 3, 6, 8 batches.
    x, y = classes(401, 30)
    run_case(out, "accumulate_3_partial_last", seed=401, header=header, x=x, y=y,
             input_dim=4, layers=mlp, loss={"type": "cross_entropy"},
             optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.9}, batch_size=4, epochs=2,
             accumulate=3)

    x, y = classes(402, 24)
    run_case(out, "accumulate_2_sum_reduction", seed=402, header=header, x=x, y=y,
             input_dim=4, layers=mlp, loss={"type": "cross_entropy", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.01}, batch_size=6, epochs=2, accumulate=2)

    x, y = classes(403, 32)
    run_case(out, "clip_norm_2", seed=403, header=header, x=x, y=y, input_dim=4,
             layers=mlp, loss={"type": "cross_entropy", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.5}, batch_size=8, epochs=3,
             clip_norm={"max_norm": 0.5})

    x, y = classes(404, 32)
    run_case(out, "clip_norm_inf", seed=404, header=header, x=x, y=y, input_dim=4,
             layers=mlp, loss={"type": "cross_entropy", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.05}, batch_size=8, epochs=2,
             clip_norm={"max_norm": 0.2, "norm_type": float("inf")})

    x, y = classes(405, 32)
    run_case(out, "clip_norm_1", seed=405, header=header, x=x, y=y, input_dim=4,
             layers=mlp, loss={"type": "cross_entropy", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.05}, batch_size=8, epochs=2,
             clip_norm={"max_norm": 1.0, "norm_type": 1.0})

    x, y = classes(406, 32)
    run_case(out, "clip_norm_3", seed=406, header=header, x=x, y=y, input_dim=4,
             layers=mlp, loss={"type": "cross_entropy", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.05}, batch_size=8, epochs=2,
             clip_norm={"max_norm": 0.3, "norm_type": 3.0})

    x, y = classes(407, 32)
    run_case(out, "clip_norm_not_reached", seed=407, header=header, x=x, y=y, input_dim=4,
             layers=mlp, loss={"type": "cross_entropy"},
             optimizer={"type": "sgd", "lr": 0.1}, batch_size=8, epochs=2,
             clip_norm={"max_norm": 100.0})

    x, y = classes(408, 32)
    run_case(out, "clip_value", seed=408, header=header, x=x, y=y, input_dim=4,
             layers=mlp, loss={"type": "cross_entropy", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.9}, batch_size=8, epochs=2,
             clip_value=0.1)

    x, y = classes(409, 27)
    run_case(out, "accumulate_and_both_clips", seed=409, header=header, x=x, y=y,
             input_dim=4, layers=mlp, loss={"type": "cross_entropy", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.01},
             batch_size=5, epochs=2, accumulate=2, clip_value=0.3,
             clip_norm={"max_norm": 1.0})

    x, y = classes(410, 24)
    run_case(out, "accumulate_adam_clip_norm", seed=410, header=header, x=x, y=y,
             input_dim=4, layers=mlp, loss={"type": "cross_entropy"},
             optimizer={"type": "adam", "lr": 0.01}, batch_size=4, epochs=2, accumulate=4,
             clip_norm={"max_norm": 0.25})

    # A frozen first layer has no gradient: the norm is over the trainable parameters'.
    x, y = classes(411, 24)
    frozen = [dict(mlp[0], requires_grad=False)] + mlp[1:]
    run_case(out, "frozen_first_accumulate_clip_norm", seed=411, header=header, x=x, y=y,
             input_dim=4, layers=frozen, loss={"type": "cross_entropy", "reduction": "sum"},
             optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.9}, batch_size=4, epochs=2,
             accumulate=2, clip_norm={"max_norm": 0.3})
    common.done(out)


if __name__ == "__main__":
    main()
