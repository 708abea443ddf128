#!/usr/bin/env python3
"""PyTorch golden cases for graphc's activation layers (``identity``, ``leaky_relu``,
``elu``, ``selu``, ``celu``, ``gelu``, ``silu``, ``mish``, ``softplus``, ``hardtanh``,
``relu6``, ``hardsigmoid``, ``hardswish``, ``logsigmoid``, ``softsign``, ``tanhshrink``,
``prelu``), in training and op by op at their kinks.

What it generates
-----------------
Under ``tests/goldens/activations/``:

* One folder per training case, in the skeleton's layout (``tools/goldens/skeleton.py``):
  ``spec.yaml``, ``data.csv``, ``init.safetensors`` (the ``nn.Sequential``'s ``state_dict``)
  and ``expected.json`` (``losses`` per update, ``final`` state_dict). Most cases are small
  MLPs ``linear, ACTIVATION, linear`` trained a few epochs in float32 on one thread.
  The ``kinks_*`` cases start from weights chosen so that every pre-activation of the first
  update is exactly a feature value, and the features hold the kinks and boundaries
  (0, -0, +-1, +-3, 6, the softplus threshold, hardtanh's bounds): the first linear is the
  identity with zero bias. They train one full-batch SGD step, so ``final`` is the update
  made with the activation's gradient at exactly those points (the bias gradient is the
  activation's derivative there times the upstream gradient).
  ``prelu_channels`` runs ``prelu`` with one slope per channel on ``[C, L]`` samples
  (axis 1 of the batched input).
* ``ops/<op>.json``: each activation alone, forward and gradient, in the format of
  ``tests/goldens/nan/`` (see ``tools/goldens/nan_semantics.py``): NaN, +-inf, +-0,
  subnormals, the kinks (0, +-1, +-3, 6, 20, ...) and ordinary values, with ordinary and
  special (NaN, +-inf, +-0) upstream gradients. ``gelu``, ``gelu_tanh`` and ``mish`` leave
  out +inf: there PyTorch's gradient is NaN (its formula's ``inf * 0``), which graphc's
  attached-formula gradient cannot give (it is 0 at infinite inputs), and ``gelu``'s own
  value at +inf is inf or NaN depending on where the element lies in the tensor.
  ``gelu_tanh`` also leaves out +-1e30, where ``x**3`` overflows and PyTorch's gradient is
  NaN (``0 * inf``); graphc keeps the value finite there and gives the gradient 0.

How to rerun
------------
From the repository root::

    venv/bin/python tools/goldens/activations.py     # rewrites tests/goldens/activations/

Everything is seeded, so a rerun on the same torch version rewrites the same bytes.
"""

import os

import numpy as np
import torch

import common
import nan_semantics
from common import Items, f32

SCRIPT = "activations.py"

def run_case(out_root, name, *, seed, input_shape, layers, loss, optimizer, x, batch_size,
             epochs, classes=3, prepare=None):
    """A case trained on the features ``x`` with targets from a random teacher;
    ``prepare(model)`` may set the initial weights."""
    y = common.teacher_targets(np.random.default_rng(seed), x, loss, classes)
    case_dir = common.write_case(SCRIPT, out_root, name, x=x, y=y, input_shape=input_shape,
                                 model={"layers": Items(layers)}, loss=loss,
                                 optimizer=optimizer, batch_size=batch_size, epochs=epochs)
    torch.manual_seed(seed)
    model = common.sequential(input_shape, layers)
    if prepare is not None:
        with torch.no_grad():
            prepare(model)
    common.fit_case(name, case_dir, model, loss=loss, optimizer=optimizer,
                    samples=x.reshape(len(x), *input_shape), y=y, batch_size=batch_size,
                    epochs=epochs)


CE = {"type": "cross_entropy"}
MSE = {"type": "mse"}
SGD = {"type": "sgd", "lr": 0.1, "momentum": 0.9}
ADAM = {"type": "adam", "lr": 0.01}

# Every activation with its keys, as the training cases and op goldens use them.
ACTIVATIONS = [
    ("identity", {"type": "identity"}),
    ("leaky_relu", {"type": "leaky_relu"}),
    ("leaky_relu_slope", {"type": "leaky_relu", "negative_slope": 0.2}),
    ("elu", {"type": "elu"}),
    ("elu_alpha", {"type": "elu", "alpha": 0.5}),
    ("selu", {"type": "selu"}),
    ("celu", {"type": "celu"}),
    ("celu_alpha", {"type": "celu", "alpha": 2.0}),
    ("gelu", {"type": "gelu"}),
    ("gelu_tanh", {"type": "gelu", "approximate": "tanh"}),
    ("silu", {"type": "silu"}),
    ("mish", {"type": "mish"}),
    ("softplus", {"type": "softplus"}),
    ("softplus_beta", {"type": "softplus", "beta": 2.0, "threshold": 4.0}),
    ("hardtanh", {"type": "hardtanh"}),
    ("hardtanh_bounds", {"type": "hardtanh", "min_val": -2.0, "max_val": 0.5}),
    ("relu6", {"type": "relu6"}),
    ("hardsigmoid", {"type": "hardsigmoid"}),
    ("hardswish", {"type": "hardswish"}),
    ("logsigmoid", {"type": "logsigmoid"}),
    ("softsign", {"type": "softsign"}),
    ("tanhshrink", {"type": "tanhshrink"}),
    ("prelu", {"type": "prelu"}),
    ("prelu_init", {"type": "prelu", "init": -0.5}),
]

# Inputs that sit exactly on a kink or boundary of some activation (and nearby values).
KINKS = [0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0, 2.0, -2.0, 0.5, -0.5, 4.0, 20.0, -20.0]


def kink_prepare(features):
    """The first linear: the identity with zero bias, so pre-activations are the features."""
    def prepare(model):
        model[0].weight.copy_(torch.eye(features))
        model[0].bias.zero_()
    return prepare


def training_cases(out):
    rng = np.random.default_rng(1300)
    for i, (name, layer) in enumerate(ACTIVATIONS):
        loss = CE if i % 2 == 0 else MSE
        opt = SGD if i % 3 else ADAM
        x = f32(rng.standard_normal((24, 4)) * 2.0)
        run_case(out, name, seed=1310 + i, input_shape=[4],
                 layers=[{"type": "linear", "out": 8}, layer, {"type": "linear", "out": 3}],
                 loss=loss, optimizer=opt, x=x, batch_size=8, epochs=2)
        # The kinks: one full-batch SGD step from pre-activations that are exactly KINKS.
        k = len(KINKS)
        rows = [np.roll(np.array(KINKS, dtype=np.float32), r) for r in range(3)]
        run_case(out, f"kinks_{name}", seed=1340 + i, input_shape=[k],
                 layers=[{"type": "linear", "out": k}, layer, {"type": "linear", "out": 3}],
                 loss=loss, optimizer={"type": "sgd", "lr": 0.1}, x=f32(np.stack(rows)),
                 batch_size=3, epochs=1, prepare=kink_prepare(k))
    # prelu with one slope per channel: [C, L] samples, slopes on axis 1 of the batch.
    x = f32(rng.standard_normal((16, 2 * 6)))
    run_case(out, "prelu_channels", seed=1380, input_shape=[2, 6],
             layers=[{"type": "conv1d", "out_channels": 3, "kernel_size": 3},
                     {"type": "prelu", "num_parameters": 3},
                     {"type": "flatten"}, {"type": "linear", "out": 3}],
             loss=CE, optimizer=SGD, x=x, batch_size=8, epochs=2)
    run_case(out, "prelu_features", seed=1381, input_shape=[4],
             layers=[{"type": "linear", "out": 5}, {"type": "prelu", "num_parameters": 5,
                                                     "init": 0.1},
                     {"type": "linear", "out": 3}],
             loss=MSE, optimizer=SGD, x=f32(rng.standard_normal((16, 4))), batch_size=8,
             epochs=2)


def op_cases(out):
    """``ops/<op>.json`` in the NaN goldens' format, for every parameterless activation."""
    values = nan_semantics.SPECIAL + [v for v in KINKS if v not in nan_semantics.SPECIAL] + [
        -0.0, 1e-4, -1e-4, 10.0, -10.0, 15.0, 88.8, -88.8, 1e30, -1e30, 0.25, -2.5]
    exact_ops = {"identity", "hardtanh", "hardtanh_bounds", "relu6"}
    no_plus_inf = {"gelu", "gelu_tanh", "mish"}
    for name, layer in ACTIVATIONS:
        if layer["type"] == "prelu":
            continue  # a learned weight: its kinks are checked by the kinks_prelu* cases
        module = common.torch_layer(layer, [1])
        inputs = [v for v in values if not (name in no_plus_inf and v == float("inf"))
                  and not (name == "gelu_tanh" and abs(v) == 1e30)]
        x = nan_semantics.f32(inputs)
        cases = [
            nan_semantics.run_case("special", module, [x],
                                   nan_semantics.upstream_like(x.shape,
                                                               nan_semantics.ORDINARY_UP),
                                   elementwise=True),
            nan_semantics.run_case("special_upstream", module, [x],
                                   nan_semantics.upstream_like(x.shape,
                                                               nan_semantics.SPECIAL_UP),
                                   elementwise=True),
        ]
        head = {"op": name, "layer": layer, "torch": torch.__version__,
                "exact": name in exact_ops}
        common.write_cases(os.path.join(out, f"{name}.json"), cases, head=head)


def main():
    out = common.setup(__doc__, "activations")
    training_cases(out)
    ops = os.path.join(out, "ops")
    os.makedirs(ops, exist_ok=True)
    op_cases(ops)
    common.done(out)


if __name__ == "__main__":
    main()
