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

import os

import numpy as np
import torch
from torch import nn

import common
from common import Block, Items, Verbatim, f32

SCRIPT = "cnn.py"


def torch_layer(layer, shape):
    """The torch module of a graphc layer mapping, given one sample's input ``shape``."""
    t = layer["type"]
    kw = {k: v for k, v in layer.items() if k != "type"}
    for k, v in kw.items():
        if isinstance(v, list):
            kw[k] = tuple(v)
    if t == "linear":
        return nn.Linear(shape[-1], kw["out"], bias=kw.get("bias", True))
    if t in ("conv1d", "conv2d"):
        cls = nn.Conv1d if t == "conv1d" else nn.Conv2d
        return cls(shape[0], **kw)
    simple = {
        "max_pool1d": nn.MaxPool1d, "max_pool2d": nn.MaxPool2d,
        "avg_pool1d": nn.AvgPool1d, "avg_pool2d": nn.AvgPool2d,
        "adaptive_avg_pool1d": nn.AdaptiveAvgPool1d,
        "adaptive_avg_pool2d": nn.AdaptiveAvgPool2d,
        "adaptive_max_pool2d": nn.AdaptiveMaxPool2d,
        "flatten": nn.Flatten,
    }
    if t in simple:
        return simple[t](**kw)
    return common.ACTIVATIONS[t]()


def build_model(input_shape, layers):
    """The ``nn.Sequential`` of the layers, each sized by running a sample through."""
    mods = []
    probe = torch.zeros(1, *input_shape)
    for layer in layers:
        m = torch_layer(layer, list(probe.shape[1:]))
        probe = m(probe)
        mods.append(m)
    return nn.Sequential(*mods)


def spec_layers(layers):
    """The layers as spec text writes them: Python's ``None`` as YAML's ``null``."""
    def value(v):
        if isinstance(v, list):
            return [value(x) for x in v]
        return Verbatim("null") if v is None else v
    return [{k: value(v) for k, v in layer.items()} for layer in layers]


def run_case(out_root, name, *, seed, input_shape, layers, loss, optimizer, rows,
             batch_size, epochs, classes=3):
    """A case trained on random images with labels from a random teacher."""
    rng = np.random.default_rng(seed)
    features = int(np.prod(input_shape))
    x = f32(rng.standard_normal((rows, features)))
    case_dir = common.make_case_dir(out_root, name)
    if loss["type"] == "mse":
        w = rng.standard_normal((features, classes))
        y = f32(x.astype(np.float64) @ w / np.sqrt(features))
        header = common.names("x", features) + common.names("y", classes)
        target = common.names("y", classes)
    else:
        y = common.teacher_classes(rng, x, classes)
        header = common.names("x", features) + ["label"]
        target = "label"
    common.write_csv(os.path.join(case_dir, "data.csv"), header, x, y)
    common.write_spec(case_dir, SCRIPT, {
        "data": common.data_section(target, batch_size, shuffle=False, drop_last=False),
        "model": Block(input=list(input_shape), layers=Items(spec_layers(layers)),
                       init={"from": Verbatim("init.safetensors")}),
        "loss": loss,
        "optimizer": Block(optimizer),
        "train": Block(epochs=epochs),
    })
    torch.manual_seed(seed)
    model = build_model(input_shape, layers)
    common.save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                     os.path.join(case_dir, "init.safetensors"))
    opt = common.model_optimizer(model, optimizer)
    images = x.reshape(rows, *input_shape)
    losses = common.train(name, model, opt, common.build_loss(loss), images, y,
                          batch_size=batch_size, epochs=epochs)
    common.write_expected(case_dir, model, losses=losses)
    print(f"{name}: {len(losses)} steps, loss {losses[0]:.5f} -> {losses[-1]:.5f}")


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
