#!/usr/bin/env python3
"""PyTorch golden cases for ``layer_norm``, ``group_norm`` and ``embedding`` (issue #13, item 3).

What it generates
-----------------
One folder per case under ``tests/goldens/norm_embed/<case>/``, in the skeleton's layout
(``tools/goldens/skeleton.py``): ``spec.yaml``, ``data.csv`` (one row of the flattened
sample's features, then the target), ``init.safetensors`` (the ``nn.Sequential``'s
``state_dict``) and ``expected.json`` (``losses``: ``loss.item()`` of every update, before it;
``final``: the final ``state_dict``). Each case trains a few epochs of mini-batches in float32
on one thread, in file order.

* ``layer_norm``: the default (the last axis), ``normalized_shape`` over both axes of a
  ``[C, L]`` sample, ``elementwise_affine: false``, ``bias: false``, another ``eps``. Features
  have a mean far from zero in some cases, where a one-pass variance would lose digits.
* ``group_norm``: 1 group, one group per channel, and in between, on ``[C, L]`` and
  ``[C, H, W]`` samples (after a convolution) and on features ``[C]``, ``affine: false``, and
  ``num_channels`` given. No group holds only 2 values: normalised, those are +-1 whatever
  the input, so the gradient into the layer below is rounding noise (in PyTorch too); for
  the same reason a convolution whose channels are each normalised on their own has no bias
  (its gradient is 0 in exact arithmetic, rounding noise in floats, which Adam scales up).
* ``embedding``: whole-number features in ``[0, num_embeddings)`` (every index used, the
  padding index among them), without and with ``padding_idx`` (also negative, resolved from
  the end as PyTorch does), followed by ``flatten`` and ``linear``. The initial embedding
  weights are PyTorch's default init (N(0, 1), the padding row zeroed); with SGD and no weight
  decay the padding row stays exactly zero, and a case with Adam and a nonzero padding row
  (set before saving ``init.safetensors``) checks that the row gets no gradient at all.

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/norm_embed.py     # rewrites tests/goldens/norm_embed/

Everything is seeded, so a rerun on the same torch version rewrites the same bytes.
"""


import numpy as np
import torch

import common
from common import Items, f32

SCRIPT = "norm_embed.py"


def run_case(out_root, name, *, seed, input_shape, layers, loss, optimizer, x, batch_size,
             epochs, classes=3, prepare=None):
    """A case trained on the features ``x`` (rows of flattened samples) with targets from a
    random teacher; ``prepare(model)`` may change the initial weights."""
    rng = np.random.default_rng(seed)
    rows, features = x.shape
    if loss["type"] == "mse":
        w = rng.standard_normal((features, classes))
        y = f32(np.tanh(x.astype(np.float64) @ w / np.sqrt(features) / (1 + np.abs(x).mean())))
    else:
        y = common.teacher_classes(rng, x - x.mean(axis=0), classes)
    case_dir = common.write_case(SCRIPT, out_root, name, x=x, y=y, input_shape=input_shape,
                                 model={"layers": Items(layers)}, loss=loss,
                                 optimizer=optimizer, batch_size=batch_size, epochs=epochs)
    torch.manual_seed(seed)
    samples = torch.from_numpy(x.reshape(rows, *input_shape))
    if layers[0]["type"] == "embedding":
        samples = samples.to(torch.int64)
    model = common.sequential(input_shape, layers, samples[:2])
    if prepare is not None:
        with torch.no_grad():
            prepare(model)
    common.fit_case(name, case_dir, model, loss=loss, optimizer=optimizer, samples=samples,
                    y=y, batch_size=batch_size, epochs=epochs)


CE = {"type": "cross_entropy"}
MSE = {"type": "mse"}
SGD = {"type": "sgd", "lr": 0.1, "momentum": 0.9}
PLAIN_SGD = {"type": "sgd", "lr": 0.2}
ADAM = {"type": "adam", "lr": 0.01}


def normal(rng, rows, features, scale=1.0, shift=0.0):
    return f32(scale * rng.standard_normal((rows, features)) + shift)


def indices(rng, rows, features, num_embeddings):
    """Whole-number features in ``[0, num_embeddings)``, every index used at least once."""
    x = rng.integers(0, num_embeddings, size=(rows, features))
    x.reshape(-1)[:num_embeddings] = rng.permutation(num_embeddings)
    return f32(x)


def layer_norm_cases(out, rng):
    run_case(out, "layer_norm_default", seed=1501, input_shape=[6],
             layers=[{"type": "linear", "out": 8}, {"type": "layer_norm"}, {"type": "gelu"},
                     {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, x=normal(rng, 24, 6), batch_size=8, epochs=3)
    run_case(out, "layer_norm_first_shifted_mean", seed=1502, input_shape=[5],
             layers=[{"type": "layer_norm", "eps": 1e-3}, {"type": "linear", "out": 3}],
             loss=MSE, optimizer=ADAM, x=normal(rng, 20, 5, scale=0.5, shift=300.0),
             batch_size=8, epochs=3)
    run_case(out, "layer_norm_two_axes", seed=1503, input_shape=[3, 4],
             layers=[{"type": "layer_norm", "normalized_shape": [3, 4]}, {"type": "flatten"},
                     {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, x=normal(rng, 20, 12, scale=2.0, shift=1.0),
             batch_size=8, epochs=3)
    run_case(out, "layer_norm_last_axis_of_c_l", seed=1504, input_shape=[2, 5],
             layers=[{"type": "conv1d", "out_channels": 3, "kernel_size": 2, "bias": False},
                     {"type": "layer_norm", "normalized_shape": 4}, {"type": "relu"},
                     {"type": "flatten"}, {"type": "linear", "out": 2}],
             loss=MSE, optimizer=SGD, x=normal(rng, 18, 10), batch_size=6, epochs=2,
             classes=2)
    run_case(out, "layer_norm_no_affine", seed=1505, input_shape=[6],
             layers=[{"type": "linear", "out": 7},
                     {"type": "layer_norm", "elementwise_affine": False},
                     {"type": "tanh"}, {"type": "linear", "out": 3}],
             loss=CE, optimizer=ADAM, x=normal(rng, 24, 6), batch_size=8, epochs=3)
    run_case(out, "layer_norm_no_bias", seed=1506, input_shape=[6],
             layers=[{"type": "linear", "out": 7}, {"type": "layer_norm", "bias": False},
                     {"type": "relu"}, {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, x=normal(rng, 24, 6), batch_size=8, epochs=3)


def group_norm_cases(out, rng):
    run_case(out, "group_norm_one_group_c_l", seed=1511, input_shape=[2, 6],
             layers=[{"type": "conv1d", "out_channels": 4, "kernel_size": 3},
                     {"type": "group_norm", "num_groups": 1}, {"type": "relu"},
                     {"type": "flatten"}, {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, x=normal(rng, 20, 12), batch_size=8, epochs=3)
    run_case(out, "group_norm_per_channel_c_l", seed=1512, input_shape=[4, 5],
             layers=[{"type": "group_norm", "num_groups": 4, "num_channels": 4},
                     {"type": "flatten"}, {"type": "linear", "out": 2}],
             loss=MSE, optimizer=ADAM, x=normal(rng, 20, 20, scale=3.0, shift=-2.0),
             batch_size=8, epochs=3, classes=2)
    run_case(out, "group_norm_two_groups_c_h_w", seed=1513, input_shape=[1, 5, 5],
             layers=[{"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1},
                     {"type": "group_norm", "num_groups": 2}, {"type": "relu"},
                     {"type": "flatten"}, {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, x=normal(rng, 20, 25), batch_size=8, epochs=2)
    run_case(out, "group_norm_per_channel_c_h_w_no_affine", seed=1514, input_shape=[2, 4, 4],
             layers=[{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "bias": False},
                     {"type": "group_norm", "num_groups": 3, "affine": False, "eps": 0.01},
                     {"type": "tanh"}, {"type": "flatten"}, {"type": "linear", "out": 3}],
             loss=CE, optimizer=ADAM, x=normal(rng, 20, 32), batch_size=8, epochs=2)
    run_case(out, "group_norm_features", seed=1515, input_shape=[4],
             layers=[{"type": "linear", "out": 8}, {"type": "group_norm", "num_groups": 2},
                     {"type": "relu"}, {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, x=normal(rng, 24, 4), batch_size=8, epochs=3)


def embedding_cases(out, rng):
    tail = [{"type": "flatten"}, {"type": "linear", "out": 3}]
    run_case(out, "embedding_flatten_linear", seed=1521, input_shape=[4],
             layers=[{"type": "embedding", "num_embeddings": 7, "embedding_dim": 3}] + tail,
             loss=CE, optimizer=SGD, x=indices(rng, 24, 4, 7), batch_size=8, epochs=3)
    run_case(out, "embedding_padding_idx", seed=1522, input_shape=[5],
             layers=[{"type": "embedding", "num_embeddings": 6, "embedding_dim": 4,
                      "padding_idx": 0}] + tail,
             loss=CE, optimizer=PLAIN_SGD, x=indices(rng, 24, 5, 6), batch_size=8, epochs=3)
    run_case(out, "embedding_negative_padding_idx", seed=1523, input_shape=[3],
             layers=[{"type": "embedding", "num_embeddings": 5, "embedding_dim": 2,
                      "padding_idx": -2}, {"type": "flatten"}, {"type": "linear", "out": 4},
                     {"type": "tanh"}, {"type": "linear", "out": 2}],
             loss=MSE, optimizer=PLAIN_SGD, x=indices(rng, 20, 3, 5), batch_size=6,
             epochs=3, classes=2)

    def nonzero_padding_row(model):
        model[0].weight[1].copy_(torch.tensor([0.5, -1.5, 2.0]))

    run_case(out, "embedding_padding_row_nonzero_adam", seed=1524, input_shape=[2, 3],
             layers=[{"type": "embedding", "num_embeddings": 4, "embedding_dim": 3,
                      "padding_idx": 1}, {"type": "layer_norm"}] + tail,
             loss=CE, optimizer=ADAM, x=indices(rng, 20, 6, 4), batch_size=8, epochs=3,
             prepare=nonzero_padding_row)


def main():
    out = common.setup(__doc__, "norm_embed")
    rng = np.random.default_rng(1500)
    layer_norm_cases(out, rng)
    group_norm_cases(out, rng)
    embedding_cases(out, rng)
    common.done(out)


if __name__ == "__main__":
    main()
