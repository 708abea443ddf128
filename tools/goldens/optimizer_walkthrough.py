#!/usr/bin/env python3
"""PyTorch golden for the optimizer walkthrough (issue #14 item 5, docs/tutorial.md).

What it generates
-----------------
``tests/goldens/tutorial/optimizer_walkthrough.json``: the numbers the chapter's optimizer
walkthrough prints, made with ``torch.optim.SGD``, which
``crates/graphc/examples/optimizer_tutorial.rs`` prints with graphc's ``Optimizer`` and
``crates/graphc/tests/it/optimizer_tutorial.rs`` compares:

* ``lr_1``: ``w = [1, -2, 0.5]`` after one step of ``SGD(lr=1)`` with every gradient 1;
* ``lr_0_1``: then one more step after ``param_groups[0]["lr"] = 0.1``;
* ``zero_grad``: then ``zero_grad()`` and a step (PyTorch skips a parameter whose ``.grad``
  is ``None``; graphc's gradients are zeros, which plain SGD turns into no move either);
* ``ten_steps``: a fresh ``SGD([w], lr=0.1, momentum=0.9)`` plus
  ``add_param_group({"params": [b], "lr": 0.01})`` with ``b = [3]``, ten steps with gradient
  1 on both: ``w``, ``b`` and both ``momentum_buffer``s;
* ``reloaded``: its ``state_dict()`` loaded into a third optimizer over copies of the
  parameters, and one more step on both: the two agree (``w``, ``b``).

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/optimizer_walkthrough.py [--out DIR]
"""

import copy
import json
import os

import torch

import common


def values(t):
    return [common.number(v) for v in t.detach().flatten().tolist()]


def step_with_ones(opt, params):
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()


def main():
    out = common.setup(__doc__, "tutorial")
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = torch.optim.SGD([w], lr=1.0)
    step_with_ones(opt, [w])
    lr_1 = values(w)
    opt.param_groups[0]["lr"] = 0.1
    step_with_ones(opt, [w])
    lr_0_1 = values(w)
    opt.zero_grad()
    opt.step()
    zero_grad = values(w)

    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    b = torch.nn.Parameter(torch.tensor([3.0]))
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [b], "lr": 0.01})
    for _ in range(10):
        step_with_ones(opt, [w, b])
    ten_steps = {"w": values(w), "b": values(b),
                 "w.momentum_buffer": values(opt.state[w]["momentum_buffer"]),
                 "b.momentum_buffer": values(opt.state[b]["momentum_buffer"])}
    # As saved to a file and read back: a deep copy (a live state_dict shares its tensors).
    saved = copy.deepcopy(opt.state_dict())
    w2 = torch.nn.Parameter(w.detach().clone())
    b2 = torch.nn.Parameter(b.detach().clone())
    opt2 = torch.optim.SGD([w2], lr=0.5, momentum=0.9)
    opt2.add_param_group({"params": [b2], "lr": 0.5})
    opt2.load_state_dict(saved)
    step_with_ones(opt, [w, b])
    step_with_ones(opt2, [w2, b2])
    assert torch.equal(w, w2) and torch.equal(b, b2)
    reloaded = {"w": values(w2), "b": values(b2)}

    golden = {"lr_1": lr_1, "lr_0_1": lr_0_1, "zero_grad": zero_grad,
              "ten_steps": ten_steps, "reloaded": reloaded}
    common.write_text(os.path.join(out, "optimizer_walkthrough.json"),
                      json.dumps(golden, indent=1) + "\n")
    common.done(out)


if __name__ == "__main__":
    main()
