#!/usr/bin/env python3
"""PyTorch golden cases for batch norm, dropout and the train/eval modes (issue #12 item 4).

What it generates
-----------------
One folder per case under ``tests/goldens/norm_dropout/<case>/``, in the layout of
``tools/goldens/cnn.py``: ``spec.yaml`` (with an explicit top-level ``seed``),
``data.csv`` (one row of ``C·L`` or ``C·H·W`` features in row-major order, then the
target), ``valid.csv`` when the case has a validation set, ``init.safetensors`` (the
``nn.Sequential``'s whole ``state_dict``: parameters *and* batch-norm buffers
``N.running_mean``, ``N.running_var`` (F32) and ``N.num_batches_tracked`` (I64, 0-d)) and
``expected.json``:

* ``losses``: one per update (``loss.item()`` before it; with ``train.accumulate`` the
  mean of the micro-batch losses the update summed, as ``accumulate_clip.py``);
* ``valid_losses`` (cases with ``valid.csv``): one per epoch, ``loss_fn(model.eval()(Xv),
  Yv).item()`` over the whole validation set after the epoch's last update;
* ``final``: the final ``state_dict``, buffers included; ``num_batches_tracked`` as an
  integer list (``{"shape": [], "data": [12]}``), compared exactly.

Beside the cases, ``philox.json`` holds draws of graphc's generator as this script
computes them (the known answers, and the draws of every dropout layer of every case
at training forwards 0 and 5) so that a Rust test can check them against ``graphc_ir::random``.

Modes
-----
Every training forward runs ``model.train()`` (batch statistics; running statistics updated
as PyTorch does, ``num_batches_tracked`` counting every forward, micro-batches included;
dropout active); validation runs ``model.eval()`` under ``torch.no_grad()`` and then goes
back to ``model.train()``.

Dropout
-------
The masks do not come from torch's RNG: graphc draws them with Philox4x32-10
(``crates/ir/src/random.rs``), reproduced here in numpy and checked against Random123's
known answers. For the dropout layer at index ``L`` of ``model.layers`` at training
forward ``t`` (0 for the run's first training batch, +1 for every training forward,
micro-batches included; validation forwards do not count)::

    u     = RandomUniform(seed=spec.seed, stream=L, step=t, shape=S)   # element i row-major
    S     = [B, *sample_shape]  (dropout)      [B, C]  (dropout1d, dropout2d)
    keep  = u >= float32(p)
    noise = keep.astype(float32) / float32(1 - p)      # a float32 division
    out   = input * noise        # noise [B, C, 1(, 1)] broadcast for the channel variants

``p == 0`` is the identity (no draw), ``p == 1`` is ``input * 0``; evaluation mode is the
identity. Element ``i`` of a draw is word ``i % 4`` of
``philox4x32_10(counter=[i // 4, stream, t mod 2^32, t >> 32], key=[seed mod 2^32, seed >> 32])``,
made an f32 as ``(word >> 8) * 2^-24``.

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/norm_dropout.py [--out DIR]

Everything is seeded (numpy ``default_rng`` data, ``torch.manual_seed`` init), one thread,
deterministic algorithms: two runs write the same bytes.
"""

import json
import math
import os
from collections import OrderedDict

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

import common
from common import Block, Verbatim, f32

SCRIPT = "norm_dropout.py"

# --------------------------------------------------------------------------
# graphc's counter-based generator (crates/ir/src/random.rs), in numpy

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10
U32 = 0xFFFFFFFF

# Random123's kat_vectors, the three `philox4x32 10` lines (counter, key, result), as
# crates/ir/src/random.rs's test asserts them.
KNOWN_ANSWERS = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([U32] * 4, [U32] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


def philox4x32_10(counter, key):
    """Philox4x32-10 of counters ``counter`` (4 arrays of equal shape, or ints) under
    ``key`` (two ints): four uint32 arrays. One round:
    ``[hi(M1·x2) ^ x1 ^ k0, lo(M1·x2), hi(M0·x0) ^ x3 ^ k1, lo(M0·x0)]`` with the round
    key ``key + r·(W0, W1)`` mod 2^32."""
    x0, x1, x2, x3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    mask = np.uint64(U32)
    for r in range(PHILOX_ROUNDS):
        k0 = np.uint64((key[0] + r * PHILOX_W0) & U32)
        k1 = np.uint64((key[1] + r * PHILOX_W1) & U32)
        p0 = np.uint64(PHILOX_M0) * x0  # < 2^64: exact
        p1 = np.uint64(PHILOX_M1) * x2
        x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ k0, p1 & mask,
                          (p0 >> np.uint64(32)) ^ x3 ^ k1, p0 & mask)
    return [x.astype(np.uint32) for x in (x0, x1, x2, x3)]


def check_known_answers():
    for counter, key, want in KNOWN_ANSWERS:
        got = [int(w) for w in philox4x32_10(counter, key)]
        assert got == want, (counter, key, [hex(w) for w in got])


def uniform_from_bits(bits):
    """The top 24 bits of each word times 2^-24: exact float32 values in [0, 1)."""
    return (np.asarray(bits, np.uint32) >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)


def random_uniform(seed, stream, step, shape):
    """graphc's ``RandomUniform { seed, stream, shape }`` at ``step``: element ``i``
    (row-major) is word ``i % 4`` of the Philox call on counter
    ``[i // 4, stream, step lo, step hi]`` under key ``[seed lo, seed hi]``."""
    n = int(np.prod(shape, dtype=np.int64))
    blocks = np.arange((n + 3) // 4, dtype=np.uint64)
    step = step & 0xFFFFFFFFFFFFFFFF  # an i64 step read as its two's complement
    words = philox4x32_10([blocks, stream, step & U32, step >> 32],
                          [seed & U32, (seed >> 32) & U32])
    flat = np.stack(words, axis=1).reshape(-1)[:n]
    return uniform_from_bits(flat).reshape(shape)


def check_generator():
    check_known_answers()
    assert uniform_from_bits(0) == 0.0 and uniform_from_bits(0xFF) == 0.0
    assert uniform_from_bits(0x100) == np.float32(2.0 ** -24)
    assert uniform_from_bits(U32) == np.float32(1.0 - 2.0 ** -24)
    # The layout of random.rs's test: seed in the key, (block, stream, step) in the counter.
    seed, step = 0x0123456789ABCDEF, 0x0000000500000009
    words = philox4x32_10([7, 3, 9, 5], [0x89ABCDEF, 0x01234567])
    block7 = random_uniform(seed, 3, step, [32])[28:32]
    assert np.array_equal(block7, uniform_from_bits(np.array(words, np.uint32)))
    # A partial last block takes the first words of its call.
    assert np.array_equal(random_uniform(seed, 3, step, [30]), random_uniform(seed, 3, step, [32])[:30])


# Draws written to philox.json for the Rust side to check against graphc_ir::random.
PHILOX_DRAWS = []


def record_draw(what, seed, stream, step, shape, u):
    PHILOX_DRAWS.append({"what": what, "seed": seed, "stream": stream, "step": step,
                         "shape": list(shape), "bits": [int(v) for v in u.view(np.uint32).reshape(-1)]})


# --------------------------------------------------------------------------
# the torch model

DROPOUTS = ("dropout", "dropout1d", "dropout2d")


class PhiloxDropout(nn.Module):
    """``nn.Dropout`` / ``Dropout1d`` / ``Dropout2d`` with graphc's masks (no state_dict
    entries, like torch's). ``step`` is set by ``Net`` before each training forward."""

    def __init__(self, kind, p, seed, stream, record=None):
        super().__init__()
        self.kind, self.p, self.seed, self.stream = kind, p, seed, stream
        self.step = None
        self.record = record  # the case name: record this layer's draws at forwards 0 and 5

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0.0
        if self.kind == "dropout":
            shape = list(x.shape)
        else:
            assert x.dim() == (3 if self.kind == "dropout1d" else 4), (self.kind, x.shape)
            shape = list(x.shape[:2])
        u = random_uniform(self.seed, self.stream, self.step, shape)
        if self.record is not None and self.step in (0, 5):
            record_draw(f"{self.record}: layer {self.stream} ({self.kind}, p {self.p}), "
                        f"training forward {self.step}", self.seed, self.stream, self.step,
                        shape, u)
        keep = u >= np.float32(self.p)
        noise = keep.astype(np.float32) / np.float32(1.0 - self.p)
        noise = torch.from_numpy(noise).reshape(shape + [1] * (x.dim() - len(shape)))
        return x * noise


class Net(nn.Sequential):
    """The layers as ``nn.Sequential`` (same ``state_dict`` names), counting training
    forwards: forward ``t`` hands ``t`` to every dropout layer."""

    def __init__(self, mods):
        super().__init__(mods)
        self.forwards = 0

    def forward(self, x):
        if self.training:
            for m in self:
                if isinstance(m, PhiloxDropout):
                    m.step = self.forwards
            self.forwards += 1
        return super().forward(x)


def torch_layer(layer, shape, index, seed, record):
    """The torch module of a graphc layer mapping at ``index``, given one sample's ``shape``."""
    if layer["type"] in DROPOUTS:
        return PhiloxDropout(layer["type"], layer.get("p", 0.5), seed, index, record)
    return common.torch_layer(layer, shape)


def build_model(input_shape, layers, seed, record):
    """``Net`` of the layers (named by ``name`` or index), sized by running a sample
    through (in eval mode: no running statistics move, no dropout draw)."""
    mods = OrderedDict()
    probe = torch.zeros(2, *input_shape)
    for i, layer in enumerate(layers):
        m = torch_layer(layer, list(probe.shape[1:]), i, seed, record)
        m.requires_grad_(layer.get("requires_grad", True))
        m.eval()
        with torch.no_grad():
            probe = m(probe)
        mods[layer.get("name", str(i))] = m
    net = Net(mods)
    net.train()
    return net


# --------------------------------------------------------------------------
# data and the loop

def make_data(rng, rows, input_shape, loss, classes, scale, shift):
    """Features ``scale·N(0,1) + shift`` (float32, rows of the flattened sample) and targets:
    teacher classes for cross_entropy, tanh of a random linear map of the features for mse
    (one teacher for all rows: the case splits them into training, validation and
    pretraining rows)."""
    features = int(np.prod(input_shape))
    x = f32(scale * rng.standard_normal((rows, features)) + shift)
    if loss["type"] == "mse":
        w = rng.standard_normal((features, classes))
        y = f32(np.tanh(x.astype(np.float64) @ w / np.sqrt(features)))
    else:
        y = common.teacher_classes(rng, x, classes)
    return x, y


def as_batch(x, y, input_shape):
    xt, yt = common.as_tensors(x, y)
    return xt.reshape(len(x), *input_shape), yt


def batch_sizes(rows, batch_size):
    return [min(batch_size, rows - s) for s in range(0, rows, batch_size)]


def check_batches(name, layers, input_shape, rows, batch_size):
    """No training batch may hold a single value per channel of a batch norm (PyTorch raises
    "Expected more than 1 value per channel when training")."""
    probe = torch.zeros(2, *input_shape)
    model = build_model(input_shape, layers, 0, None).eval()
    for layer, m in zip(layers, model):
        if layer["type"].startswith("batch_norm"):
            positions = int(np.prod(probe.shape[2:], dtype=np.int64))
            for b in batch_sizes(rows, batch_size):
                assert b * positions > 1, f"{name}: a batch of {b} at layer {layer}"
        with torch.no_grad():
            probe = m(probe)


def train_loop(name, model, opt, loss_fn, xt, yt, *, batch_size, epochs, accumulate, valid):
    """PyTorch's loop in train mode (accumulation as accumulate_clip.py: an epoch's last
    batches update even when fewer than ``accumulate`` remain); after each epoch, the whole
    validation set in eval mode. Returns the update losses and the validation losses."""
    n = len(xt)
    starts = list(range(0, n, batch_size))
    losses, valid_losses = [], []
    for _epoch in range(epochs):
        assert model.training
        opt.zero_grad()
        pending = []
        for i, s in enumerate(starts):
            xb, yb = xt[s:s + batch_size], yt[s:s + batch_size]
            loss = loss_fn(model(xb), yb)
            loss.backward()
            pending.append(loss.item())
            if len(pending) == accumulate or i == len(starts) - 1:
                opt.step()
                opt.zero_grad()
                losses.append(sum(pending) / len(pending))
                pending = []
        if valid is not None:
            model.eval()
            with torch.no_grad():
                valid_losses.append(loss_fn(model(valid[0]), valid[1]).item())
            model.train()
    for v in losses + valid_losses:
        if not math.isfinite(v):
            raise RuntimeError(f"{name}: non-finite loss {v}")
    return losses, valid_losses


# --------------------------------------------------------------------------
# a case

CE = {"type": "cross_entropy"}
MSE = {"type": "mse"}
SGD = {"type": "sgd", "lr": 0.05, "momentum": 0.9}
ADAM = {"type": "adam", "lr": 0.01}


def run_case(out_root, name, *, seed, input_shape, layers, loss, optimizer, rows,
             batch_size, epochs, valid_rows=0, accumulate=1, classes=3, scale=1.5,
             shift=0.5, pretrain=None, param_groups=None):
    """One case: data from ``seed``, init from ``torch.manual_seed(seed)`` (then ``pretrain``
    torch updates of SGD lr 0.05 on other data when given, so the saved running statistics
    and ``num_batches_tracked`` are not the fresh ones), PyTorch's loop, then the files."""
    assert rows + valid_rows < 4096
    check_batches(name, layers, input_shape, rows, batch_size)
    rng = np.random.default_rng(seed & U32)
    extra = pretrain["rows"] if pretrain else 0
    x, y = make_data(rng, rows + valid_rows + extra, input_shape, loss, classes, scale, shift)
    (x, xv, px), (y, yv, py) = (np.split(a, [rows, rows + valid_rows]) for a in (x, y))
    features = int(np.prod(input_shape))
    if loss["type"] == "mse":
        header = common.names("x", features) + common.names("y", classes)
        target = header[features] if classes == 1 else common.names("y", classes)
    else:
        header = common.names("x", features) + ["label"]
        target = "label"
    case_dir = common.make_case_dir(out_root, name)
    common.write_csv(os.path.join(case_dir, "data.csv"), header, x, y)
    valid = None
    if valid_rows:
        common.write_csv(os.path.join(case_dir, "valid.csv"), header, xv, yv)
        valid = as_batch(xv, yv, input_shape)

    train = Block(epochs=epochs)
    if accumulate != 1:
        train["accumulate"] = accumulate
    common.write_spec(case_dir, SCRIPT, {
        "seed": seed,
        "data": common.data_section(target, batch_size, valid=bool(valid_rows),
                                    shuffle=False, drop_last=False),
        "model": Block(input=list(input_shape), layers=common.spec_value(layers),
                       init={"from": Verbatim("init.safetensors")}),
        "loss": loss,
        "optimizer": Block(common.with_groups(optimizer, param_groups)),
        "train": train,
    })

    torch.manual_seed(seed & U32)
    model = build_model(input_shape, layers, seed, name)
    loss_fn = common.build_loss(loss)
    if pretrain is not None:
        pxt, pyt = as_batch(px, py, input_shape)
        popt = torch.optim.SGD(model.parameters(), lr=0.05)
        train_loop(name, model, popt, loss_fn, pxt, pyt, batch_size=pretrain["batch_size"],
                   epochs=1, accumulate=1, valid=None)
        assert not any(layer["type"] in DROPOUTS for layer in layers), name
        model.forwards = 0  # graphc's run starts at training forward 0
    init = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    common.save_file(init, os.path.join(case_dir, "init.safetensors"))

    opt = common.model_optimizer(model, optimizer, param_groups)
    xt, yt = as_batch(x, y, input_shape)
    losses, valid_losses = train_loop(name, model, opt, loss_fn, xt, yt, batch_size=batch_size,
                                      epochs=epochs, accumulate=accumulate, valid=valid)
    series = {"losses": losses}
    if valid_rows:
        series["valid_losses"] = valid_losses
    expected = common.write_expected(case_dir, model, **series)
    check_files(case_dir, x, input_shape, init, expected)
    bn = {k: v for k, v in expected["final"].items() if k.endswith("num_batches_tracked")}
    print(f"{name}: {len(losses)} updates, {model.forwards} training forwards, "
          f"loss {losses[0]:.5f} -> {losses[-1]:.5f}"
          + (f", valid {valid_losses[0]:.5f} -> {valid_losses[-1]:.5f}" if valid_rows else "")
          + "".join(f", {k} {v['data'][0]}" for k, v in bn.items()))
    return expected


def check_files(case_dir, x, input_shape, init, expected):
    """Self-check: the files read back to what was trained on and what was saved."""
    with open(os.path.join(case_dir, "data.csv")) as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    features = int(np.prod(input_shape))
    feats = np.array([[np.float32(float(c)) for c in r[:features]] for r in rows], np.float32)
    assert np.array_equal(feats.view(np.uint32), x.view(np.uint32))
    back = load_file(os.path.join(case_dir, "init.safetensors"))
    assert set(back) == set(init) == set(expected["final"]), sorted(back)
    for k, v in back.items():
        assert v.dtype == init[k].dtype and torch.equal(v, init[k]), k
        want = torch.int64 if k.endswith("num_batches_tracked") else torch.float32
        assert v.dtype == want, (k, v.dtype)
        assert list(v.shape) == expected["final"][k]["shape"], k
    with open(os.path.join(case_dir, "expected.json")) as f:
        assert json.load(f) == expected
    for k, v in expected["final"].items():
        if k.endswith("num_batches_tracked"):
            assert v["shape"] == [] and all(isinstance(d, int) for d in v["data"]), k


# --------------------------------------------------------------------------

def main():
    out = common.setup(__doc__, "norm_dropout")
    check_generator()
    flat3 = [{"type": "flatten"}, {"type": "linear", "out": 3}]

    # --- batch_norm2d ---
    run_case(out, "bn2d_conv_relu_max_pool", seed=601, input_shape=[1, 6, 6],
             layers=[{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
                     {"type": "batch_norm2d"}, {"type": "relu"},
                     {"type": "max_pool2d", "kernel_size": 2}] + flat3,
             loss=CE, optimizer=SGD, rows=22, batch_size=8, epochs=3, valid_rows=12)
    run_case(out, "bn2d_momentum_null_adam", seed=602, input_shape=[2, 5, 5],
             layers=[{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "bias": False},
                     {"type": "batch_norm2d", "momentum": None}, {"type": "tanh"}] + flat3,
             loss=MSE, optimizer=ADAM, rows=20, batch_size=6, epochs=3, valid_rows=10)
    run_case(out, "bn2d_affine_false_eps_momentum", seed=603, input_shape=[2, 6, 6],
             layers=[{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
                     {"type": "batch_norm2d", "affine": False, "eps": 0.001, "momentum": 0.3},
                     {"type": "relu"}, {"type": "avg_pool2d", "kernel_size": 2}] + flat3,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2, valid_rows=10)
    run_case(out, "bn2d_no_running_stats", seed=604, input_shape=[1, 6, 6],
             layers=[{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "bias": False},
                     {"type": "batch_norm2d", "track_running_stats": False}, {"type": "relu"},
                     {"type": "max_pool2d", "kernel_size": 2}] + flat3,
             loss=CE, optimizer=ADAM, rows=20, batch_size=8, epochs=3, valid_rows=10)

    # --- batch_norm1d on [C] and on [C, L] ---
    run_case(out, "bn1d_features_after_linear_named", seed=605, input_shape=[5],
             layers=[{"type": "linear", "out": 8, "name": "fc1"},
                     {"type": "batch_norm1d", "name": "bn1"}, {"type": "relu"},
                     {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, rows=27, batch_size=8, epochs=3, valid_rows=12)
    run_case(out, "bn1d_channels_after_conv1d_last_batch_1", seed=606, input_shape=[2, 10],
             layers=[{"type": "conv1d", "out_channels": 4, "kernel_size": 3, "padding": 1,
                      "bias": False},
                     {"type": "batch_norm1d"}, {"type": "relu"},
                     {"type": "max_pool1d", "kernel_size": 2},
                     {"type": "flatten"}, {"type": "linear", "out": 2}],
             loss=MSE, optimizer=ADAM, rows=17, batch_size=8, epochs=2, valid_rows=9,
             classes=2)
    run_case(out, "bn1d_no_affine_no_running_stats", seed=607, input_shape=[4],
             layers=[{"type": "linear", "out": 6},
                     {"type": "batch_norm1d", "affine": False, "track_running_stats": False},
                     {"type": "tanh"}, {"type": "linear", "out": 2}],
             loss=MSE, optimizer={"type": "sgd", "lr": 0.1}, rows=22, batch_size=5,
             epochs=2, valid_rows=8, classes=2)

    # --- accumulation: every micro-batch is a training forward (num_batches_tracked, t) ---
    run_case(out, "accumulate_2_bn1d_dropout", seed=608, input_shape=[6],
             layers=[{"type": "linear", "out": 10, "bias": False},
                     {"type": "batch_norm1d"}, {"type": "relu"},
                     {"type": "dropout", "p": 0.3}, {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, rows=28, batch_size=6, epochs=2, valid_rows=10,
             accumulate=2)

    # --- dropout ---
    run_case(out, "dropout_mlp_p025_named", seed=609, input_shape=[6],
             layers=[{"type": "linear", "out": 16}, {"type": "relu"},
                     {"type": "dropout", "p": 0.25, "name": "drop"},
                     {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, rows=30, batch_size=8, epochs=3, valid_rows=12)
    run_case(out, "dropout1d_conv1d", seed=610, input_shape=[3, 8],
             layers=[{"type": "conv1d", "out_channels": 4, "kernel_size": 3},
                     {"type": "relu"}, {"type": "dropout1d"},
                     {"type": "flatten"}, {"type": "linear", "out": 2}],
             loss=MSE, optimizer=ADAM, rows=20, batch_size=8, epochs=3, valid_rows=8,
             classes=2)
    run_case(out, "dropout2d_conv2d_seed_above_2_32", seed=(1 << 32) + 611, input_shape=[2, 5, 5],
             layers=[{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
                     {"type": "relu"}, {"type": "dropout2d", "p": 0.3}] + flat3,
             loss=CE, optimizer=SGD, rows=20, batch_size=8, epochs=2)
    run_case(out, "dropout_p0_then_default_p", seed=612, input_shape=[5],
             layers=[{"type": "linear", "out": 8}, {"type": "relu"},
                     {"type": "dropout", "p": 0.0},
                     {"type": "linear", "out": 8}, {"type": "tanh"}, {"type": "dropout"},
                     {"type": "linear", "out": 2}],
             loss=MSE, optimizer=SGD, rows=24, batch_size=8, epochs=2, valid_rows=8,
             classes=2)
    run_case(out, "dropout_p1", seed=613, input_shape=[5],
             layers=[{"type": "linear", "out": 8}, {"type": "relu"},
                     {"type": "dropout", "p": 1.0}, {"type": "linear", "out": 3}],
             loss=CE, optimizer=ADAM, rows=20, batch_size=8, epochs=2, valid_rows=8)

    # --- combined: a small convnet with both, validated in eval mode ---
    run_case(out, "convnet_bn_dropout_valid", seed=614, input_shape=[1, 8, 8],
             layers=[{"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1},
                     {"type": "batch_norm2d"}, {"type": "relu"},
                     {"type": "max_pool2d", "kernel_size": 2},
                     {"type": "dropout2d", "p": 0.25}, {"type": "flatten"},
                     {"type": "dropout", "p": 0.5}, {"type": "linear", "out": 4}],
             loss=CE, optimizer=SGD, rows=40, batch_size=16, epochs=3, valid_rows=24,
             classes=4)

    # --- init from a trained state: nonzero running statistics and num_batches_tracked ---
    run_case(out, "bn_momentum_null_from_trained_init", seed=615, input_shape=[2, 4, 4],
             layers=[{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
                     {"type": "batch_norm2d", "momentum": None}, {"type": "relu"},
                     {"type": "flatten"}, {"type": "linear", "out": 6},
                     {"type": "batch_norm1d"}, {"type": "relu"},
                     {"type": "linear", "out": 1}],
             loss=MSE, optimizer={"type": "sgd", "lr": 0.02, "momentum": 0.5},
             rows=18, batch_size=8, epochs=2, valid_rows=8, classes=1,
             pretrain={"rows": 37, "batch_size": 8})

    check_generator()
    # Draws beyond the cases: high seed, stream and step words, a partial last block.
    for seed, stream, step, shape in [(0, 0, 0, [4]), (7, 1, 1, [2, 3]),
                                      ((1 << 40) + 5, 9, (1 << 33) + 1, [3, 3]),
                                      (U32, 0xFFFFFFFF, (1 << 63) - 1, [5])]:
        record_draw("synthetic", seed, stream, step, shape,
                    random_uniform(seed, stream, step, shape))
    common.write_cases(os.path.join(out, "philox.json"), PHILOX_DRAWS, head={
        "generator": "Philox4x32-10, crates/ir/src/random.rs's layout; bits: the f32 values "
                     "of RandomUniform(seed, stream, step, shape), row-major, as u32 bits",
        "known_answers": [{"counter": c, "key": k, "result": r} for c, k, r in KNOWN_ANSWERS],
    })
    common.done(out)


if __name__ == "__main__":
    main()
