#!/usr/bin/env python3
"""PyTorch golden cases for graphc's convolution, pooling and flatten layers.

What it generates
-----------------
One folder per case under ``tests/goldens/cnn/<case>/``, in the skeleton's layout
(``tools/goldens/skeleton.py``): ``spec.yaml`` (``model.input`` has several axes,
``[C, L]`` or ``[C, H, W]``), ``data.csv`` (one row of ``C·L`` or ``C·H·W`` features in
row-major order, then the target), ``init.safetensors`` (the ``nn.Sequential``'s
``state_dict``: conv weights ``[out, in/groups, *k]``) and ``expected.json`` (``losses``
per update, ``final`` state_dict).

Each data row is viewed as the sample's shape exactly as ``x.view(-1, *input)`` does; the
torch model is the ``nn.Sequential`` of the layers, in float32 on one thread.

How to rerun
------------
From the repository root::

    venv/bin/python tools/goldens/cnn.py          # rewrites tests/goldens/cnn/

Everything is seeded, so a rerun on the same torch version rewrites the same bytes.
"""


import numpy as np
import torch

import common
from common import f32

SCRIPT = "cnn.py"


def run_case(out_root, name, *, seed, input_shape, layers, loss, optimizer, rows,
             batch_size, epochs, classes=3):
    """A case trained on random images with labels from a random teacher."""
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((rows, int(np.prod(input_shape)))))
    y = common.teacher_targets(rng, x, loss, classes)
    case_dir = common.write_case(SCRIPT, out_root, name, x=x, y=y, input_shape=input_shape,
                                 model={"layers": common.spec_value(layers)}, loss=loss,
                                 optimizer=optimizer, batch_size=batch_size, epochs=epochs)
    torch.manual_seed(seed)
    model = common.sequential(input_shape, layers)
    common.fit_case(name, case_dir, model, loss=loss, optimizer=optimizer,
                    samples=x.reshape(rows, *input_shape), y=y, batch_size=batch_size,
                    epochs=epochs)


CE = {"type": "cross_entropy"}
SGD = {"type": "sgd", "lr": 0.05, "momentum": 0.9}
ADAM = {"type": "adam", "lr": 0.01}


def main():
    out = common.setup(__doc__, "cnn")
    flat_linear = [{"type": "flatten"}, {"type": "linear", "out": 3}]

    # --- average pooling, adaptive average pooling, flatten, linear on several axes ---
    run_case(out, "avg_pool2d_flatten", seed=301, input_shape=[2, 6, 6],
             layers=[{"type": "avg_pool2d", "kernel_size": 2}] + flat_linear,
             loss=CE, optimizer=SGD, rows=24, batch_size=8, epochs=2)
    run_case(out, "avg_pool2d_ceil_exclude_pad", seed=302, input_shape=[1, 7, 7],
             layers=[{"type": "avg_pool2d", "kernel_size": 3, "stride": 2, "padding": 1,
                      "ceil_mode": True, "count_include_pad": False}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "avg_pool2d_ceil_include_pad", seed=303, input_shape=[2, 6, 5],
             layers=[{"type": "avg_pool2d", "kernel_size": [3, 2], "stride": [2, 3],
                      "padding": [1, 1], "ceil_mode": True}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "avg_pool2d_divisor_override", seed=304, input_shape=[2, 5, 6],
             layers=[{"type": "avg_pool2d", "kernel_size": [2, 3], "stride": [2, 1],
                      "padding": [1, 1], "divisor_override": 5}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "avg_pool1d_options", seed=305, input_shape=[3, 10],
             layers=[{"type": "avg_pool1d", "kernel_size": 3, "stride": 2, "padding": 1,
                      "ceil_mode": True, "count_include_pad": False},
                     {"type": "tanh"}] + flat_linear,
             loss=CE, optimizer=ADAM, rows=20, batch_size=8, epochs=2)
    run_case(out, "adaptive_avg_pool2d", seed=306, input_shape=[2, 7, 5],
             layers=[{"type": "adaptive_avg_pool2d", "output_size": [3, None]}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "adaptive_avg_pool1d", seed=307, input_shape=[2, 9],
             layers=[{"type": "adaptive_avg_pool1d", "output_size": 4}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "flatten_dims_linear_last_axis", seed=308, input_shape=[2, 3, 4],
             layers=[{"type": "flatten", "start_dim": 2},
                     {"type": "linear", "out": 5}, {"type": "relu"},
                     {"type": "flatten", "start_dim": 1, "end_dim": -1},
                     {"type": "linear", "out": 3}],
             loss={"type": "mse"}, optimizer=SGD, rows=20, batch_size=8, epochs=2)

    # --- convolution and max pooling ---
    run_case(out, "conv2d_relu_max_pool2d", seed=311, input_shape=[1, 8, 8],
             layers=[{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
                     {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2}] + flat_linear,
             loss=CE, optimizer=SGD, rows=24, batch_size=8, epochs=2)
    run_case(out, "conv2d_stride_groups_no_bias", seed=312, input_shape=[4, 9, 8],
             layers=[{"type": "conv2d", "out_channels": 6, "kernel_size": [3, 2],
                      "stride": [2, 1], "padding": [1, 2], "groups": 2, "bias": False},
                     {"type": "tanh"}] + flat_linear,
             loss=CE, optimizer=ADAM, rows=20, batch_size=8, epochs=2)
    run_case(out, "conv2d_same_dilation", seed=313, input_shape=[2, 7, 6],
             layers=[{"type": "conv2d", "out_channels": 3, "kernel_size": [4, 3],
                      "padding": "same", "dilation": [1, 2]},
                     {"type": "relu"}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "conv2d_valid_dilation_stride", seed=314, input_shape=[3, 10, 9],
             layers=[{"type": "conv2d", "out_channels": 4, "kernel_size": 3,
                      "padding": "valid", "stride": 2, "dilation": 2},
                     {"type": "sigmoid"}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "conv1d_max_pool1d", seed=315, input_shape=[2, 12],
             layers=[{"type": "conv1d", "out_channels": 4, "kernel_size": 3, "stride": 2,
                      "padding": 1, "groups": 2},
                     {"type": "relu"},
                     {"type": "max_pool1d", "kernel_size": 3, "stride": 2, "padding": 1,
                      "ceil_mode": True}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "max_pool2d_dilation_padding_ceil", seed=316, input_shape=[2, 9, 8],
             layers=[{"type": "max_pool2d", "kernel_size": [3, 2], "stride": 2,
                      "padding": 1, "dilation": 2, "ceil_mode": True}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "conv2d_adaptive_max_pool2d", seed=317, input_shape=[1, 7, 9],
             layers=[{"type": "conv2d", "out_channels": 3, "kernel_size": 2},
                     {"type": "adaptive_max_pool2d", "output_size": [3, 4]}] + flat_linear,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "lenet_mixed", seed=318, input_shape=[1, 12, 12],
             layers=[{"type": "conv2d", "out_channels": 4, "kernel_size": 3},
                     {"type": "relu"},
                     {"type": "max_pool2d", "kernel_size": 2},
                     {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1},
                     {"type": "relu"},
                     {"type": "avg_pool2d", "kernel_size": 2, "ceil_mode": True},
                     {"type": "adaptive_avg_pool2d", "output_size": 2},
                     {"type": "flatten"},
                     {"type": "linear", "out": 8}, {"type": "relu"},
                     {"type": "linear", "out": 3}],
             loss=CE, optimizer=ADAM, rows=24, batch_size=8, epochs=3)
    common.done(out)


if __name__ == "__main__":
    main()
