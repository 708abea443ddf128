#!/usr/bin/env python3
"""PyTorch golden cases for objective specs (issue #14 item 1): ``params`` + ``objective``.

What it generates
-----------------
One folder per case under ``tests/goldens/objectives/<case>/``: ``spec.yaml`` (``params``,
``objective``, ``optimizer``, maybe ``scheduler``, ``train.steps``) and ``expected.json``:
``losses`` (the objective's value at each step, before that step's update), ``values`` (each
scalar parameter's value at each step, as ``metrics.jsonl`` records it) and ``final`` (every
parameter after the last update; scalars as 0-d tensors).

Each case writes the same expression twice: in graphc's syntax for the spec and as the torch
code it means, evaluated on float32 tensors that require grad, then the usual loop
(``zero_grad``, ``backward``, ``step``, and the scheduler's ``step`` after every update, as an
objective's epoch is one step). The cases cover the chapter's experiments (gradient descent on
``4x²`` with lr 1, 0.01 and 0.2, momentum 0 and 0.9 at lr 0.01 and 0.03), every function and
operator of the expression language, vector parameters, a parameter exponent, and several
optimizers and a scheduler.

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/objectives.py [--out DIR]

Everything runs on one thread with deterministic algorithms: two runs write the same bytes.
"""

import json
import os

import torch

import common
from common import Block, Verbatim

SCRIPT = "objectives.py"


def sgd(lr, **kw):
    return dict({"type": "sgd", "lr": lr}, **kw)


# name, params, objective (graphc), the same in torch, optimizer, scheduler, steps
CASES = [
    ("quadratic_lr_1_diverges", {"x": 2.0}, "4 * x^2",
     lambda p: 4 * p["x"] ** 2, sgd(1.0), None, 6),
    ("quadratic_lr_0.01_crawls", {"x": 2.0}, "4 * x^2",
     lambda p: 4 * p["x"] ** 2, sgd(0.01), None, 30),
    ("quadratic_lr_0.2", {"x": 2.0}, "4 * x**2",
     lambda p: 4 * p["x"] ** 2, sgd(0.2), None, 10),
    ("quadratic_momentum_0.9_lr_0.01", {"x": 2.0}, "4 * x^2",
     lambda p: 4 * p["x"] ** 2, sgd(0.01, momentum=0.9), None, 40),
    ("quadratic_momentum_0.9_lr_0.03", {"x": 2.0}, "4 * x^2",
     lambda p: 4 * p["x"] ** 2, sgd(0.03, momentum=0.9), None, 40),
    ("rosenbrock_adam", {"a": -1.5, "b": 2.0}, "(1 - a)^2 + 100 * (b - a^2)^2",
     lambda p: (1 - p["a"]) ** 2 + 100 * (p["b"] - p["a"] ** 2) ** 2,
     {"type": "adam", "lr": 0.05}, None, 60),
    ("vector_adamw", {"w": [1.0, -2.0, 0.5], "s": 0.3},
     "sum((w - 3)^2) / 2 + mean(exp(-w * s)) + s^2",
     lambda p: ((p["w"] - 3) ** 2).sum() / 2 + torch.exp(-p["w"] * p["s"]).mean() + p["s"] ** 2,
     {"type": "adamw", "lr": 0.1, "weight_decay": 0.05}, None, 25),
    ("every_function_rmsprop", {"x": 0.7, "y": 1.3},
     "sin(x) * cos(y) + tanh(x * y) - sigmoid(x - y) + relu(y - 1) + sqrt(abs(x) + 1)"
     " + log(y^2 + 1) + exp(-x^2) / (1 + y^2) - -x",
     lambda p: (torch.sin(p["x"]) * torch.cos(p["y"]) + torch.tanh(p["x"] * p["y"])
                - torch.sigmoid(p["x"] - p["y"]) + torch.relu(p["y"] - 1)
                + torch.sqrt(torch.abs(p["x"]) + 1) + torch.log(p["y"] ** 2 + 1)
                + torch.exp(-p["x"] ** 2) / (1 + p["y"] ** 2) - -p["x"]),
     {"type": "rmsprop", "lr": 0.01}, None, 30),
    ("powers_sgd_step_lr", {"x": -1.5, "y": 2.0},
     "x^4 / 4 + (x + 0.5)^3 / 3 + y^-2 + 2^y / 8 + y^0.5 + (x + 2)^y / 10",
     lambda p: (p["x"] ** 4 / 4 + (p["x"] + 0.5) ** 3 / 3 + p["y"] ** -2 + 2 ** p["y"] / 8
                + p["y"] ** 0.5 + (p["x"] + 2) ** p["y"] / 10),
     sgd(0.02, momentum=0.5), {"type": "step_lr", "step_size": 5, "gamma": 0.5}, 20),
    ("precedence_adagrad", {"x": 1.2},
     "-x^2 + 2^3^0.5 * x - 3 * -x / 2 + (x - 1) * (x + 1) ^ 2 / 4",
     lambda p: (-p["x"] ** 2 + 2 ** 3 ** 0.5 * p["x"] - 3 * -p["x"] / 2
                + (p["x"] - 1) * (p["x"] + 1) ** 2 / 4),
     {"type": "adagrad", "lr": 0.1}, None, 15),
]

SCHEDULERS = {
    "step_lr": lambda opt, s: torch.optim.lr_scheduler.StepLR(
        opt, step_size=s["step_size"], gamma=s["gamma"]),
}


def run(out, name, params, objective, torch_fn, optimizer, scheduler, steps):
    case_dir = common.make_case_dir(out, name)
    spec = Block()
    spec["params"] = Verbatim(json.dumps(params))
    spec["objective"] = Verbatim(json.dumps(objective))
    spec["optimizer"] = Block(optimizer)
    if scheduler is not None:
        spec["scheduler"] = Block(scheduler)
    spec["train"] = Block({"steps": steps})
    common.write_spec(case_dir, SCRIPT, spec)

    tensors = {k: torch.nn.Parameter(torch.tensor(v, dtype=torch.float32))
               for k, v in params.items()}
    opt = common.torch_optimizer([list(tensors.values())], optimizer, None)
    sched = SCHEDULERS[scheduler["type"]](opt, scheduler) if scheduler else None
    scalars = [k for k, v in params.items() if not isinstance(v, list)]
    losses, values = [], {k: [] for k in scalars}
    for _ in range(steps):
        for k in scalars:
            values[k].append(common.number(tensors[k].item()))
        loss = torch_fn(tensors)
        losses.append(common.number(loss.item()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()

    class State:
        def state_dict(self):
            return {k: t.detach() for k, t in tensors.items()}

    common.write_expected(case_dir, State(), losses=losses, values=values)


def sweep(out):
    """``sweep.json``: docs/tutorial.md's learning-rate sweep of ``specs/tutorial/quadratic.yaml``
    (``4x²`` from 2, SGD, 20 steps, lr in ``linspace(0.01, 0.2, 10)``): each run's final loss
    (the 20th step's) and the best run's index."""
    lrs = torch.linspace(0.01, 0.2, 10, dtype=torch.float64).tolist()
    finals = []
    for lr in lrs:
        x = torch.nn.Parameter(torch.tensor(2.0))
        opt = torch.optim.SGD([x], lr=lr)
        for _ in range(20):
            loss = 4 * x ** 2
            last = loss.item()
            opt.zero_grad()
            loss.backward()
            opt.step()
        finals.append(common.number(last))
    best = min(range(len(finals)), key=lambda i: finals[i])
    common.write_text(os.path.join(out, "sweep.json"),
                      json.dumps({"lrs": lrs, "final_losses": finals, "best": best}) + "\n")


def main():
    out = common.setup(__doc__, "objectives")
    for case in CASES:
        run(out, *case)
    sweep(out)
    common.done(out)


if __name__ == "__main__":
    main()
