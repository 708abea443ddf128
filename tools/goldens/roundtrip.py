#!/usr/bin/env python3
"""The round trip with PyTorch (issue #13 item 7): a residual MLP with layer norm and GELU
on the wine data, trained in PyTorch and used by graphc, and trained by graphc and loaded
by PyTorch.

What it generates
-----------------
``tests/goldens/roundtrip/wine_resmlp/``:

* ``data.csv``: the 178 wines of ``specs/data/wine.csv``, each feature standardized with
  the population statistics of all rows (float32), then ``class``;
* ``spec.yaml``: ``specs/wine_resmlp.yaml``'s model on that file, with
  ``init: {from: torch_trained.safetensors}``;
* ``torch_trained.safetensors``: the ``state_dict`` of the PyTorch module after training
  it (Adam, lr 0.01, 5 epochs of batches of 16 in file order), saved with
  ``safetensors.torch.save_file`` as a user would;
* ``expected.json``: ``probabilities``, the softmax of the trained module's outputs on
  every row in evaluation mode (what ``graphc predict --proba`` must print with the torch
  weights), and ``state_dict``, every tensor's name, shape and dtype: what
  ``load_state_dict(strict=True)`` requires of graphc's ``model.safetensors``.

The torch module is built by ``graph_models.py``'s builder from the same layer list, so its
``state_dict`` names are PyTorch's module names (``stem.weight``, ``block.body.0.weight``).

``--check DIR`` loads graphc's ``DIR/model.safetensors`` into the module with
``strict=True`` and prints how many predictions of the two agree on the data.

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/roundtrip.py
    /work/venv/bin/python tools/goldens/roundtrip.py --check runs/roundtrip
"""

import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import common
import graph_models
from common import Block, Verbatim, f32

SCRIPT = "roundtrip.py"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
LAYERS = [
    {"type": "linear", "out": 32, "name": "stem"},
    {"type": "layer_norm", "name": "norm"},
    {"type": "gelu"},
    {"type": "residual", "name": "block", "layers": [
        {"type": "linear", "out": 32}, {"type": "layer_norm"}, {"type": "gelu"},
        {"type": "linear", "out": 32}]},
    {"type": "gelu"},
    {"type": "linear", "out": 3, "name": "head"},
]


def wine():
    """Standardized features (population std, float32) and classes of every wine."""
    path = os.path.join(ROOT, "specs", "data", "wine.csv")
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    x, y = raw[:, :-1], raw[:, -1].astype(np.int64)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return f32(x), y


def module():
    torch.manual_seed(0)
    model, _ = graph_models.Builder(0).chain(LAYERS, [13])
    return model


def main():
    out = common.setup(__doc__, "roundtrip")
    x, y = wine()
    case_dir = common.make_case_dir(out, "wine_resmlp")
    common.write_csv(os.path.join(case_dir, "data.csv"),
                     common.names("x", 13) + ["class"], x, y)
    common.write_spec(case_dir, SCRIPT, {
        "seed": 0,
        "data": common.data_section("class", 16, shuffle=False, drop_last=False),
        "model": Block(input=[13], layers=common.spec_value(LAYERS),
                       init={"from": Verbatim("torch_trained.safetensors")}),
        "loss": {"type": "cross_entropy"},
        "optimizer": Block({"type": "adam", "lr": 0.01}),
        "train": Block(epochs=1),
    })
    model = module()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = common.train("wine_resmlp", model, opt, torch.nn.CrossEntropyLoss(), x, y,
                          batch_size=16, epochs=5)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(case_dir, "torch_trained.safetensors"))
    model.eval()
    with torch.no_grad():
        proba = torch.softmax(model(torch.from_numpy(x)), dim=1)
    expected = {
        "probabilities": [[common.number(v) for v in row] for row in proba.tolist()],
        "state_dict": {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
                       for k, v in state.items()},
    }
    common.write_text(os.path.join(case_dir, "expected.json"), json.dumps(expected) + "\n")
    accuracy = (proba.argmax(1).numpy() == y).mean()
    print(f"wine_resmlp: loss {losses[0]:.4f} -> {losses[-1]:.4f}, accuracy {accuracy:.3f}")
    common.done(out)


def check(run_dir):
    """graphc's model.safetensors into the torch module, strictly; predictions compared."""
    model = module()
    state = load_file(os.path.join(run_dir, "model.safetensors"))
    model.load_state_dict(state, strict=True)
    model.eval()
    x, y = wine()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    print(f"load_state_dict(strict=True) took {len(state)} tensors; "
          f"accuracy of graphc's weights in PyTorch on standardized wine: {(pred == y).mean():.3f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    else:
        main()
