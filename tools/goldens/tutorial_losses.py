#!/usr/bin/env python3
"""PyTorch goldens for docs/tutorial.md's loss section (issue #14 item 5).

What it generates
-----------------
``tests/goldens/tutorial/losses.json``: a list of ``{"command", "expected"}``, where
``command`` is a ``graphc loss`` command line exactly as docs/tutorial.md shows it and
``expected`` the value PyTorch gives for the same loss on the same numbers (a number, or the
list of per-sample losses for ``reduction: none``). ``crates/cli/tests/it/tutorial.rs``
checks that the page shows these commands and that each prints these values.

The batch is the chapter's: logits ``[[1, 2], [1, 3], [1, 3]]`` for the classes
``[0, 1, 1]``, with class weights ``[1, 2]`` for the weighted mean (1.821 / 5 = 0.3642); the
negative log-likelihood reads the same batch's log-softmax; the binary losses read three
probabilities (BCELoss) or logits (BCEWithLogitsLoss with ``pos_weight``).

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/tutorial_losses.py [--out DIR]
"""

import json
import os

import torch
from torch import nn

import common

LOGITS = [[1.0, 2.0], [1.0, 3.0], [1.0, 3.0]]
CLASSES = [0, 1, 1]
PROBS = [0.8, 0.3, 0.6]
BINARY = [1.0, 0.0, 1.0]
BIN_LOGITS = [1.5, -0.5, 0.4]


def cmd(kind, input_, target, *flags):
    parts = ["graphc", "loss", "--type", kind, "--input", f"'{input_}'", "--target", f"'{target}'"]
    return " ".join(parts + list(flags))


def value(t):
    return [common.number(v) for v in t.tolist()] if t.dim() else common.number(t.item())


def main():
    out = common.setup(__doc__, "tutorial")
    x = torch.tensor(LOGITS)
    y = torch.tensor(CLASSES)
    log_probs = torch.log_softmax(x, dim=1)
    # The log-probabilities as the page writes them: 4 decimals.
    lp_text = json.dumps([[round(v, 4) for v in row] for row in log_probs.tolist()])
    lp = torch.tensor(json.loads(lp_text))
    w = torch.tensor([1.0, 2.0])
    p, b, z = torch.tensor(PROBS), torch.tensor(BINARY), torch.tensor(BIN_LOGITS)
    logits, classes = "[[1,2],[1,3],[1,3]]", "[0,1,1]"
    cases = [
        (cmd("cross_entropy", logits, classes, "--reduction", "none"),
         nn.CrossEntropyLoss(reduction="none")(x, y)),
        (cmd("cross_entropy", logits, classes, "--reduction", "sum"),
         nn.CrossEntropyLoss(reduction="sum")(x, y)),
        (cmd("cross_entropy", logits, classes), nn.CrossEntropyLoss()(x, y)),
        (cmd("cross_entropy", logits, classes, "--weight", "'[1,2]'", "--reduction", "none"),
         nn.CrossEntropyLoss(weight=w, reduction="none")(x, y)),
        (cmd("cross_entropy", logits, classes, "--weight", "'[1,2]'"),
         nn.CrossEntropyLoss(weight=w)(x, y)),
        (cmd("nll", lp_text.replace(" ", ""), classes), nn.NLLLoss()(lp, y)),
        (cmd("bce", "[0.8,0.3,0.6]", "[1,0,1]"), nn.BCELoss()(p, b)),
        (cmd("bce_with_logits", "[1.5,-0.5,0.4]", "[1,0,1]"), nn.BCEWithLogitsLoss()(z, b)),
        (cmd("bce_with_logits", "[1.5,-0.5,0.4]", "[1,0,1]", "--pos-weight", "'[2]'"),
         nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))(z, b)),
    ]
    lines = [json.dumps({"command": c, "expected": value(v)}) for c, v in cases]
    common.write_text(os.path.join(out, "losses.json"), "[\n" + ",\n".join(lines) + "\n]\n")
    common.done(out)


if __name__ == "__main__":
    main()
