#!/usr/bin/env python3
"""PyTorch golden cases for ``requires_grad: false`` (issue #13 item 5): frozen layers.

What it generates
-----------------
One folder per case under ``tests/goldens/freeze/<case>/``, in the layout of
``tools/goldens/norm_dropout.py`` (whose ``run_case`` writes them): ``spec.yaml``,
``data.csv`` (``valid.csv``), ``init.safetensors`` (the whole initial ``state_dict``) and
``expected.json`` (``losses`` per update, ``valid_losses`` per epoch when there is a
validation set, ``final``: the final ``state_dict``).

A layer with ``requires_grad: false`` is built in torch and then ``module.requires_grad_(False)``;
the optimizer is given every parameter, frozen ones included (grouped by ``param_groups`` as
graphc groups them), so they take PyTorch's "no ``.grad``" path: no state, no update, no weight
decay. Their ``final`` values are their initial ones, bit for bit. A batch norm whose affine
parameters are frozen still updates its running statistics in training mode.

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/freeze.py [--out DIR]

Everything is seeded and runs on one thread with deterministic algorithms: two runs write the
same bytes.
"""

import torch

import common
import norm_dropout
from norm_dropout import CE, MSE, run_case

SGD_WD = {"type": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}
ADAM_WD = {"type": "adam", "lr": 0.01, "weight_decay": 0.05}
ADAMW = {"type": "adamw", "lr": 0.01}

FROZEN = {"requires_grad": False}


def linear(out, **kw):
    return dict({"type": "linear", "out": out}, **kw)


def main():
    out = common.setup(__doc__, "freeze")
    norm_dropout.SCRIPT = "freeze.py"
    mlp = dict(input_shape=[6], rows=48, batch_size=8, epochs=2)
    # The first layer frozen: nothing upstream of it needs a gradient.
    run_case(out, "mlp_frozen_first_sgd_weight_decay", seed=701, layers=[
        linear(8, **FROZEN), {"type": "relu"}, linear(3)], loss=CE, optimizer=SGD_WD, **mlp)
    run_case(out, "mlp_frozen_first_adam_weight_decay", seed=702, layers=[
        linear(8, **FROZEN), {"type": "tanh"}, linear(3)], loss=CE, optimizer=ADAM_WD, **mlp)
    # The last layer frozen: the gradient flows through it to the layers before.
    run_case(out, "mlp_frozen_head_adamw_mse", seed=703, layers=[
        linear(8), {"type": "relu"}, linear(2, **FROZEN)], loss=MSE, optimizer=ADAMW,
        classes=2, **mlp)
    # A frozen batch norm still updates its running statistics; validation in eval mode.
    run_case(out, "bn1d_frozen_running_stats_valid", seed=704, layers=[
        linear(8), {"type": "batch_norm1d", **FROZEN}, {"type": "relu"}, linear(3)],
        loss=CE, optimizer=SGD_WD, valid_rows=16, **mlp)
    # A param group of frozen parameters only, and one mixing frozen and trainable ones.
    run_case(out, "group_of_frozen_only_adam", seed=705, layers=[
        linear(8, name="features", **FROZEN), {"type": "relu"}, linear(3, name="head")],
        loss=CE, optimizer={"type": "adam", "lr": 0.01},
        param_groups=[{"params": ["features.*"], "lr": 0.5}], **mlp)
    run_case(out, "group_mixed_frozen_accumulate_2", seed=706, layers=[
        linear(8, **FROZEN), {"type": "tanh"}, linear(6), {"type": "relu"}, linear(3)],
        loss=CE, optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.9},
        param_groups=[{"params": ["0.*", "2.weight"], "lr": 0.02, "momentum": 0.5}],
        accumulate=2, **mlp)
    # A frozen convolution feeding a batch norm.
    run_case(out, "conv2d_frozen_bn2d_adam", seed=707, input_shape=[1, 6, 6], layers=[
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3, **FROZEN},
        {"type": "batch_norm2d"}, {"type": "relu"}, {"type": "flatten"}, linear(3)],
        loss=CE, optimizer={"type": "adam", "lr": 0.01}, rows=32, batch_size=8, epochs=2)
    common.done(out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
