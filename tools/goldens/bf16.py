#!/usr/bin/env python3
"""PyTorch golden cases for ``train.precision: bf16`` (``torch.autocast`` on the CPU).

What it generates
-----------------
One folder per case under ``tests/goldens/bf16/<case>/`` in the skeleton's layout
(``tools/goldens/skeleton.py``): ``spec.yaml`` (with ``train.precision: bf16``),
``data.csv``, ``init.safetensors`` and ``expected.json`` (``losses`` per update of the
autocast run, ``fp32_losses`` of the same run in float32, ``final`` state_dict).

The loop, one thread, parameters float32: the forward runs under
``torch.autocast("cpu", dtype=torch.bfloat16)`` (linear and convolution layers take bf16
operands), the loss is taken of the output cast back to float32 outside autocast, and the
backward and the update run as usual::

    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    loss = loss_fn(out.float(), y); loss.backward(); opt.step()

graphc's products return f32 where autocast's return bf16, so the goldens are checked
with a 2 % relative tolerance on the losses, not the fp32 goldens' 2e-4.

How to rerun
------------
From the repository root::

    venv/bin/python tools/goldens/bf16.py          # rewrites tests/goldens/bf16/

Everything is seeded, so a rerun on the same torch version rewrites the same bytes.
"""

import copy
import math
import os

import numpy as np
import torch

import common
from common import f32

SCRIPT = "bf16.py"


def train(name, model, opt, loss_fn, x, y, *, batch_size, epochs, autocast):
    """The plain loop, with the forward under bf16 autocast when asked."""
    xt, yt = common.as_tensors(x, y)
    losses = []
    for _epoch in range(epochs):
        for xb, yb in common.batches(xt, yt, batch_size):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                out = model(xb)
            loss = loss_fn(out.float(), yb)
            loss.backward()
            opt.step()
            v = loss.item()
            if not math.isfinite(v):
                raise RuntimeError(f"{name}: non-finite loss {v}")
            losses.append(v)
    return losses


def run_case(out_root, name, *, seed, input_shape, layers, loss, optimizer, rows,
             batch_size, epochs, classes):
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((rows, int(np.prod(input_shape)))))
    y = common.teacher_classes(rng, x, classes)
    case_dir = common.write_case(SCRIPT, out_root, name, x=x, y=y, input_shape=input_shape,
                                 model={"layers": common.spec_value(layers)}, loss=loss,
                                 optimizer=optimizer, batch_size=batch_size, epochs=epochs,
                                 precision="bf16")
    torch.manual_seed(seed)
    model = common.sequential(input_shape, layers)
    common.save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                     os.path.join(case_dir, "init.safetensors"))
    images = x.reshape(rows, *input_shape)
    runs = {}
    for autocast in (False, True):
        m = copy.deepcopy(model)
        opt = common.model_optimizer(m, optimizer)
        runs[autocast] = (m, train(name, m, opt, common.build_loss(loss), images, y,
                                   batch_size=batch_size, epochs=epochs, autocast=autocast))
    final, losses = runs[True]
    common.write_expected(case_dir, final, losses=losses, fp32_losses=runs[False][1])
    gap = max(abs(a - b) / abs(b) for a, b in zip(losses, runs[False][1]))
    print(f"{name}: {len(losses)} steps, loss {losses[0]:.5f} -> {losses[-1]:.5f}, "
          f"largest relative gap to fp32 {gap:.2e}")


CE = {"type": "cross_entropy"}


def main():
    out = common.setup(__doc__, "bf16")
    run_case(out, "mlp", seed=1701, input_shape=[16],
             layers=[{"type": "linear", "out": 64}, {"type": "relu"},
                     {"type": "linear", "out": 32}, {"type": "tanh"},
                     {"type": "linear", "out": 4}],
             loss=CE, optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.9},
             rows=96, batch_size=16, epochs=3, classes=4)
    run_case(out, "cnn", seed=1702, input_shape=[2, 8, 8],
             layers=[{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
                     {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2},
                     {"type": "conv2d", "out_channels": 8, "kernel_size": 3},
                     {"type": "relu"}, {"type": "flatten"}, {"type": "linear", "out": 3}],
             loss=CE, optimizer={"type": "adam", "lr": 0.01},
             rows=48, batch_size=16, epochs=3, classes=3)
    common.done(out)


if __name__ == "__main__":
    main()
