#!/usr/bin/env python3
"""A model trained in PyTorch, for graphc's ``eval`` and ``predict`` on weights from elsewhere.

What it generates
-----------------
Under ``tests/goldens/pytorch_model/``:

* ``model.safetensors``: the ``state_dict`` of ``nn.Sequential(Linear(4, 8), ReLU(),
  Linear(8, 3))`` trained in float32 for 200 full-batch Adam steps on ``specs/data/iris.csv``,
  saved with ``safetensors.torch.save_file`` and nothing beside it (no ``labels.json``, no
  ``standardize.json``). The features are standardized as PyTorch users do,
  ``(X - X.mean(0)) / X.std(0)`` (the sample std), and the classes numbered in sorted order
  (setosa, versicolor, virginica), as graphc numbers text labels.
* ``expected.json``: ``class_names``, and for the first ``rows`` rows of iris.csv the model's
  ``probabilities`` (softmax of its outputs, computed in float64 from the float32 logits).

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/pytorch_model.py

Everything is seeded, so a rerun on the same torch version rewrites the same bytes.
"""

import csv
import json
import os

import torch
from safetensors.torch import save_file
from torch import nn

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "tests", "goldens", "pytorch_model")
ROWS = 12


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    with open(os.path.join(ROOT, "specs", "data", "iris.csv")) as f:
        rows = list(csv.DictReader(f))
    names = sorted({r["species"] for r in rows})
    x = torch.tensor([[float(r[k]) for k in list(r)[:4]] for r in rows])
    y = torch.tensor([names.index(r["species"]) for r in rows])
    z = (x - x.mean(0)) / x.std(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(z), y).backward()
        opt.step()
    os.makedirs(OUT, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(OUT, "model.safetensors"))
    with torch.no_grad():
        logits = model(z[:ROWS]).double()
    probs = torch.softmax(logits, dim=1)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"script": "tools/goldens/pytorch_model.py", "class_names": names,
                   "rows": ROWS, "probabilities": probs.tolist()}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
