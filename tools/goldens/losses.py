#!/usr/bin/env python3
"""PyTorch golden values and input gradients of every graphc loss.

What it generates
-----------------
One JSON file per loss under ``tests/goldens/losses/<loss>.json`` (relative to
the repository root)::

    {"loss": "cross_entropy", "torch": "2.15.0+cu132",
     "cases": [
       {"name": "weight_mean",
        "loss": {"type": "cross_entropy", "weight": [0.5, 2.0, 1.5], "reduction": "mean"},
        "input":  {"shape": [5, 3], "data": [...]},
        "target": {"dtype": "int64", "shape": [5], "data": [...]},
        "value":  {"shape": [], "data": [...]},
        "grad":   {"shape": [5, 3], "data": [...]}},
       ...]}

* ``loss`` is the graphc loss mapping (a spec's ``loss:``, written as JSON,
  which is YAML); every key is PyTorch's keyword argument of the same name.
* ``input`` is the loss's first argument (logits, probabilities, log-probabilities
  or predictions), float32; ``target`` is int64 class indices or float32 values.
* ``value`` is ``loss_fn(input, target)`` (a scalar, or the per-sample /
  per-element losses for ``reduction: none``); ``grad`` is ``input.grad`` after
  ``value.sum().backward()`` (``sum`` of a scalar is the scalar itself).
* ``data`` is row-major. Floats are exactly the float32 values, written as
  doubles; non-finite values are the strings ``"NaN"``, ``"Infinity"`` and
  ``"-Infinity"`` (plain JSON has no literal for them).

Every option combination of each loss is a case, on small seeded random inputs,
plus hand-written extremes: logits of +-1e4, probabilities of exactly 0 and 1,
a batch whose targets are all ``ignore_index`` (NaN mean), hinge and Huber
boundaries hit exactly, and overflow where PyTorch itself overflows.

Training runs
-------------
``tests/goldens/losses/training/<case>/`` holds one short training run per loss
(options included), as ``tools/goldens/skeleton.py`` writes its cases:
``spec.yaml`` (``shuffle: false``, ``init: {from: init.safetensors}``, SGD with
momentum), ``data.csv`` (exact float32 cells; class columns as integers, -100
marks an ignored sample), ``init.safetensors`` (the initial ``state_dict``) and
``expected.json`` with ``{"losses": [...]}``: ``loss.item()`` of every update
step, computed before the update, in PyTorch's plain loop::

    for epoch in range(E):
        for x, y in batches_in_file_order(B):  # the last partial batch is a step of its own
            opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()

How to rerun
------------
From the repository root::

    venv/bin/python tools/goldens/losses.py            # rewrites tests/goldens/losses/
    venv/bin/python tools/goldens/losses.py --out /tmp/l && diff -r /tmp/l tests/goldens/losses

Everything is seeded (``numpy.random.default_rng``), computations run in
float32 on the CPU with one thread, so a rerun on the same torch version
rewrites the same bytes.
"""

import functools
import itertools
import json
import os
import shutil
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import common

REDUCTIONS = ["none", "sum", "mean"]


# --------------------------------------------------------------------------
# helpers

def f32(a):
    return torch.tensor(np.asarray(a, dtype=np.float32))


def i64(a):
    return torch.tensor(np.asarray(a, dtype=np.int64))


def case(name, spec, fn, x, target):
    """Runs `fn(input, target)` and records the value and the input gradient."""
    x = x.detach().clone().requires_grad_(True)
    value = fn(x, target)
    value.sum().backward()
    dtype = "int64" if target.dtype == torch.int64 else "float32"
    return {
        "name": name,
        "loss": spec,
        "input": common.tensor_json(x),
        "target": {"dtype": dtype, **common.tensor_json(target)},
        "value": common.tensor_json(value),
        "grad": common.tensor_json(x.grad),
    }


def options_name(opts):
    parts = []
    for k, v in opts.items():
        if k == "type":
            continue
        if isinstance(v, list):
            v = "list" if len(v) > 1 else "one"
        parts.append(f"{k}_{v}".replace(".", "p").replace("-", "m"))
    return "_".join(parts) or "default"


def spec_of(kind, opts):
    spec = {"type": kind}
    spec.update({k: v for k, v in opts.items() if v is not None})
    return spec


def torch_kwargs(opts):
    kw = {}
    for k, v in opts.items():
        if v is None:
            continue
        kw[k] = torch.tensor(v, dtype=torch.float32) if isinstance(v, list) else v
    return kw


# --------------------------------------------------------------------------
# the losses

def cross_entropy(rng):
    n, c = 6, 4
    x = f32(rng.normal(0, 1.5, (n, c)))
    t = i64([0, 3, 1, 1, 2, 3])
    t_ignored = i64([0, -100, 1, 3, -100, 2])
    t_in_range = i64([0, 1, 1, 3, 2, 1])  # ignore_index 1 drops rows 1, 2, 5
    weight = [0.5, 2.0, 1.5, 0.25]
    cases = []
    for w, (ii, tt, tag), ls, r in itertools.product(
        [None, weight],
        [(-100, t, "none_ignored"), (-100, t_ignored, "default_ignored"), (1, t_in_range, "in_range")],
        [0.0, 0.1, 1.0],
        REDUCTIONS,
    ):
        opts = {"weight": w, "ignore_index": ii, "label_smoothing": ls, "reduction": r}
        name = f"indices_{tag}_{options_name({'weight': w, 'label_smoothing': ls, 'reduction': r})}"
        cases.append(case(name, spec_of("cross_entropy", opts),
                          lambda a, b, o=opts: F.cross_entropy(a, b, **torch_kwargs(o)), x, tt))
    probs = torch.softmax(f32(rng.normal(0, 1, (n, c))), dim=1)
    for w, ls, r in itertools.product([None, weight], [0.0, 0.2], REDUCTIONS):
        opts = {"weight": w, "label_smoothing": ls, "reduction": r}
        cases.append(case(f"probabilities_{options_name(opts)}", spec_of("cross_entropy", opts),
                          lambda a, b, o=opts: F.cross_entropy(a, b, **torch_kwargs(o)), x, probs))
    # extremes: logits of +-1e4, one-hot probabilities (exactly 0 and 1), all ignored
    big = f32([[1e4, -1e4, 0.0, 1.0], [-1e4, 1e4, -1e4, 1e4], [0.0, 0.0, 0.0, 0.0],
               [1e4, 1e4, 1e4, -1e4]])
    onehot = f32([[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]])
    for w, ls, r in itertools.product([None, weight], [0.0, 0.1], REDUCTIONS):
        opts = {"weight": w, "label_smoothing": ls, "reduction": r}
        fn = lambda a, b, o=opts: F.cross_entropy(a, b, **torch_kwargs(o))
        cases.append(case(f"extreme_logits_indices_{options_name(opts)}",
                          spec_of("cross_entropy", opts), fn, big, i64([1, 0, 3, 2])))
        cases.append(case(f"extreme_logits_probabilities_{options_name(opts)}",
                          spec_of("cross_entropy", opts), fn, big, onehot))
        cases.append(case(f"all_ignored_{options_name(opts)}",
                          spec_of("cross_entropy", opts), fn, x[:3], i64([-100, -100, -100])))
    return cases


def nll(rng):
    n, c = 5, 3
    x = torch.log_softmax(f32(rng.normal(0, 1.5, (n, c))), dim=1)
    weight = [2.0, 0.5, 1.25]
    cases = []
    for w, (ii, tt, tag), r in itertools.product(
        [None, weight],
        [(-100, i64([0, 2, 1, 1, 0]), "none_ignored"),
         (-100, i64([0, -100, 1, -100, 2]), "default_ignored"),
         (2, i64([0, 2, 1, 2, 0]), "in_range"),
         (-100, i64([-100, -100, -100, -100, -100]), "all_ignored")],
        REDUCTIONS,
    ):
        opts = {"weight": w, "ignore_index": ii, "reduction": r}
        name = f"{tag}_{options_name({'weight': w, 'reduction': r})}"
        cases.append(case(name, spec_of("nll", opts),
                          lambda a, b, o=opts: F.nll_loss(a, b, **torch_kwargs(o)), x, tt))
    # extremes: log-probabilities of -1e4 and exactly 0; a zero weight total (NaN mean)
    ext = f32([[0.0, -1e4, -1e4], [-1e4, 0.0, -1e4], [-1e4, -1e4, 0.0]])
    for r in REDUCTIONS:
        opts = {"reduction": r}
        cases.append(case(f"extreme_log_probabilities_{options_name(opts)}", spec_of("nll", opts),
                          lambda a, b, o=opts: F.nll_loss(a, b, **torch_kwargs(o)), ext,
                          i64([1, 1, 2])))
        opts = {"weight": [0.0, 0.0, 1.0], "reduction": r}
        cases.append(case(f"zero_weight_total_{options_name(opts)}", spec_of("nll", opts),
                          lambda a, b, o=opts: F.nll_loss(a, b, **torch_kwargs(o)), x[:3],
                          i64([0, 1, -100])))
    return cases


def bce(rng):
    n, c = 4, 3
    x = torch.sigmoid(f32(rng.normal(0, 2, (n, c))))
    y = f32(rng.uniform(0, 1, (n, c)))
    y_hard = f32(rng.integers(0, 2, (n, c)))
    cases = []
    for w, (tt, tag), r in itertools.product(
        [None, [0.5, 2.0, 1.5], [3.0]], [(y, "soft"), (y_hard, "hard")], REDUCTIONS
    ):
        opts = {"weight": w, "reduction": r}
        cases.append(case(f"{tag}_{options_name(opts)}", spec_of("bce", opts),
                          lambda a, b, o=opts: F.binary_cross_entropy(a, b, **torch_kwargs(o)),
                          x, tt))
    # extremes: probabilities of exactly 0 and 1 (log clamped at -100, gradient
    # (x - y) / max(x (1 - x), 1e-12)), and below 1e-12
    ext_x = f32([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1e-20, 1e-44, 0.99999994], [0.5, 1e-7, 1e-13]])
    ext_y = f32([[0.0, 1.0, 0.5], [0.0, 1.0, 0.25], [1.0, 1.0, 0.0], [0.5, 0.0, 1.0]])
    for w, r in itertools.product([None, [0.5, 2.0, 1.5]], REDUCTIONS):
        opts = {"weight": w, "reduction": r}
        cases.append(case(f"extreme_{options_name(opts)}", spec_of("bce", opts),
                          lambda a, b, o=opts: F.binary_cross_entropy(a, b, **torch_kwargs(o)),
                          ext_x, ext_y))
    return cases


def bce_with_logits(rng):
    n, c = 4, 3
    x = f32(rng.normal(0, 2, (n, c)))
    y = f32(rng.integers(0, 2, (n, c)))
    y_soft = f32(rng.uniform(0, 1, (n, c)))
    cases = []
    for w, pw, r in itertools.product(
        [None, [0.5, 2.0, 1.5], [3.0]], [None, [4.0, 0.5, 1.0], [2.0]], REDUCTIONS
    ):
        opts = {"weight": w, "pos_weight": pw, "reduction": r}
        fn = lambda a, b, o=opts: F.binary_cross_entropy_with_logits(a, b, **torch_kwargs(o))
        cases.append(case(f"hard_{options_name(opts)}", spec_of("bce_with_logits", opts), fn, x, y))
        if w is None or len(w) > 1:
            cases.append(case(f"soft_{options_name(opts)}", spec_of("bce_with_logits", opts),
                              fn, x, y_soft))
    # extremes: logits of +-1e4 (stable in PyTorch: no overflow), and 0
    ext_x = f32([[1e4, -1e4, 0.0], [-1e4, 1e4, 100.0], [-100.0, 1e4, -1e4]])
    ext_y = f32([[1.0, 1.0, 1.0], [0.0, 0.0, 0.5], [1.0, 0.25, 0.0]])
    for pw, r in itertools.product([None, [4.0, 0.5, 1.0]], REDUCTIONS):
        opts = {"pos_weight": pw, "reduction": r}
        cases.append(case(f"extreme_{options_name(opts)}", spec_of("bce_with_logits", opts),
                          lambda a, b, o=opts: F.binary_cross_entropy_with_logits(a, b, **torch_kwargs(o)),
                          ext_x, ext_y))
    # one logit per sample, as a logistic regression outputs [batch, 1]
    for r in REDUCTIONS:
        opts = {"reduction": r}
        cases.append(case(f"one_column_{options_name(opts)}", spec_of("bce_with_logits", opts),
                          lambda a, b, o=opts: F.binary_cross_entropy_with_logits(a, b, **torch_kwargs(o)),
                          x[:, :1], y[:, :1]))
    return cases


def regression(rng, kind, fn, param=None, values=()):
    shapes = {"matrix": (4, 3), "vector": (5,), "cube": (2, 2, 3)}
    cases = []
    for (tag, shape), v, r in itertools.product(shapes.items(), values or [None], REDUCTIONS):
        if tag != "matrix" and (r != "mean" or v not in (None, values[0] if values else None)):
            continue
        x = f32(rng.normal(0, 1.5, shape))
        y = f32(rng.normal(0, 1.5, shape))
        opts = {param: v, "reduction": r} if param else {"reduction": r}
        kw = {param: v} if param else {}
        cases.append(case(f"{tag}_{options_name(opts)}", spec_of(kind, opts),
                          lambda a, b, k=kw, rr=r: fn(a, b, reduction=rr, **k), x, y))
    # exact ties: differences of exactly 0 and, for the piecewise losses, exactly +-threshold
    x = f32([[0.5, 1.0, -2.0, 3.0], [0.0, 0.25, 4.0, -1.0]])
    y = f32([[0.5, 0.0, -1.0, 0.5], [0.0, 0.0, 4.5, -1.0]])
    for v, r in itertools.product(values or [None], REDUCTIONS):
        opts = {param: v, "reduction": r} if param else {"reduction": r}
        kw = {param: v} if param else {}
        cases.append(case(f"ties_{options_name(opts)}", spec_of(kind, opts),
                          lambda a, b, k=kw, rr=r: fn(a, b, reduction=rr, **k), x, y))
    # extremes
    x = f32([[1e4, -1e4, 0.0], [3e4, 1.0, -3e4]])
    y = f32([[-1e4, 1e4, 1e4], [0.0, 1.0, 2.0]])
    opts = {param: (values or [None])[0], "reduction": "mean"} if param else {"reduction": "mean"}
    kw = {param: (values or [None])[0]} if param else {}
    cases.append(case(f"extreme_{options_name(opts)}", spec_of(kind, opts),
                      lambda a, b, k=kw: fn(a, b, reduction="mean", **k), x, y))
    return cases


def kl_div(rng):
    n, c = 4, 3
    x = torch.log_softmax(f32(rng.normal(0, 1, (n, c))), dim=1)
    p = torch.softmax(f32(rng.normal(0, 1, (n, c))), dim=1)
    p_zeros = f32([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.25, 0.25, 0.5], [0.0, 1.0, 0.0]])
    cases = []
    for lt, r in itertools.product([False, True], REDUCTIONS + ["batchmean"]):
        opts = {"log_target": lt, "reduction": r}
        t = torch.log(p) if lt else p
        cases.append(case(f"{options_name(opts)}", spec_of("kl_div", opts),
                          lambda a, b, o=opts: F.kl_div(a, b, **o), x, t))
        # exact zeros: xlogy(0, 0) = 0; with log_target, log 0 = -inf gives NaN as in PyTorch
        t = torch.log(p_zeros) if lt else p_zeros
        cases.append(case(f"zero_targets_{options_name(opts)}", spec_of("kl_div", opts),
                          lambda a, b, o=opts: F.kl_div(a, b, **o), x, t))
    return cases


def poisson_nll(rng):
    n, c = 4, 3
    log_rate = f32(rng.normal(0, 1, (n, c)))
    rate = f32(rng.uniform(0.05, 4, (n, c)))
    counts = f32([[0, 1, 2], [5, 0, 3], [1, 7, 0], [2, 4, 1]])
    cases = []
    for li, full, eps, r in itertools.product([True, False], [False, True], [1e-8, 0.5], REDUCTIONS):
        if li and eps != 1e-8:
            continue  # eps only matters for rates
        opts = {"log_input": li, "full": full, "eps": eps, "reduction": r}
        x = log_rate if li else rate
        cases.append(case(options_name(opts), spec_of("poisson_nll", opts),
                          lambda a, b, o=opts: F.poisson_nll_loss(a, b, **o), x, counts))
    # a rate of exactly 0 (log(eps)), and large log rates
    ext = f32([[0.0, 0.0, 1e-3], [20.0, -20.0, 0.0]])
    counts = f32([[0, 3, 2], [1, 0, 10]])
    for li in [True, False]:
        opts = {"log_input": li, "full": True, "eps": 1e-8, "reduction": "sum"}
        cases.append(case(f"extreme_{options_name(opts)}", spec_of("poisson_nll", opts),
                          lambda a, b, o=opts: F.poisson_nll_loss(a, b, **o), ext, counts))
    return cases


def soft_margin(rng):
    x = f32(rng.normal(0, 2, (4, 3)))
    y = f32(rng.choice([-1.0, 1.0], (4, 3)))
    cases = []
    for r in REDUCTIONS:
        opts = {"reduction": r}
        cases.append(case(options_name(opts), spec_of("soft_margin", opts),
                          lambda a, b, o=opts: F.soft_margin_loss(a, b, **o), x, y))
        # PyTorch computes log1p(exp(-x y)): finite up to -x y = 88, infinite (NaN gradient) beyond
        ext = f32([[1e4, -1e4, 50.0, -80.0], [1e4, -1e4, 0.0, 100.0]])
        ey = f32([[1.0, -1.0, -1.0, 1.0], [-1.0, 1.0, 1.0, -1.0]])
        cases.append(case(f"extreme_{options_name(opts)}", spec_of("soft_margin", opts),
                          lambda a, b, o=opts: F.soft_margin_loss(a, b, **o), ext, ey))
    return cases


def multilabel_soft_margin(rng):
    x = f32(rng.normal(0, 2, (5, 4)))
    y = f32(rng.integers(0, 2, (5, 4)))
    weight = [0.5, 2.0, 1.0, 1.5]
    cases = []
    for w, r in itertools.product([None, weight], REDUCTIONS):
        opts = {"weight": w, "reduction": r}
        fn = lambda a, b, o=opts: F.multilabel_soft_margin_loss(a, b, **torch_kwargs(o))
        cases.append(case(options_name(opts), spec_of("multilabel_soft_margin", opts), fn, x, y))
        ext = f32([[1e4, -1e4, 100.0, -100.0], [-1e4, 1e4, 0.0, 1e4]])
        ey = f32([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
        cases.append(case(f"extreme_{options_name(opts)}", spec_of("multilabel_soft_margin", opts),
                          fn, ext, ey))
    return cases


def multi_margin(rng):
    x = f32(rng.normal(0, 1, (5, 4)))
    t = i64([0, 3, 1, 2, 3])
    weight = [0.5, 2.0, 1.0, 1.5]
    cases = []
    for p, m, w, r in itertools.product([1, 2], [1.0, 0.5], [None, weight], REDUCTIONS):
        opts = {"p": p, "margin": m, "weight": w, "reduction": r}
        fn = lambda a, b, o=opts: F.multi_margin_loss(a, b, **torch_kwargs(o))
        cases.append(case(options_name(opts), spec_of("multi_margin", opts), fn, x, t))
    # hinges at exactly 0 (gradient 0, as PyTorch's z > 0), and logits of +-1e4
    ties = f32([[2.0, 1.0, 0.5, -1.0], [0.0, 1.0, -1.0, 0.25], [1e4, -1e4, 0.0, 1e4]])
    for p, r in itertools.product([1, 2], REDUCTIONS):
        opts = {"p": p, "reduction": r}
        fn = lambda a, b, o=opts: F.multi_margin_loss(a, b, **torch_kwargs(o))
        cases.append(case(f"ties_and_extremes_{options_name(opts)}", spec_of("multi_margin", opts),
                          fn, ties, i64([0, 1, 3])))
    return cases


def all_losses():
    rng = lambda k: np.random.default_rng(1000 + k)
    return {
        "cross_entropy": cross_entropy(rng(0)),
        "nll": nll(rng(1)),
        "bce": bce(rng(2)),
        "bce_with_logits": bce_with_logits(rng(3)),
        "mse": regression(rng(4), "mse", F.mse_loss),
        "l1": regression(rng(5), "l1", F.l1_loss),
        "smooth_l1": regression(rng(6), "smooth_l1", F.smooth_l1_loss, "beta", [1.0, 0.5, 2.0, 0.0]),
        "huber": regression(rng(7), "huber", F.huber_loss, "delta", [1.0, 0.5, 2.5]),
        "kl_div": kl_div(rng(8)),
        "poisson_nll": poisson_nll(rng(9)),
        "soft_margin": soft_margin(rng(10)),
        "multilabel_soft_margin": multilabel_soft_margin(rng(11)),
        "multi_margin": multi_margin(rng(12)),
    }


# --------------------------------------------------------------------------
# training runs

def training_run(out, name, x, y, layers, loss, lr, batch_size=16, epochs=2):
    """Writes one training case; y is int64 [N] (class indices) or float32 [N, k]."""
    case_dir = common.make_case_dir(out, name)
    d = x.shape[1]
    targets = common.names("t", 1 if y.ndim == 1 else y.shape[1])
    common.write_csv(os.path.join(case_dir, "data.csv"), common.names("f", d) + targets, x, y)
    common.write_spec(case_dir, "losses.py", {
        "data": common.data_section(targets[0] if len(targets) == 1 else targets, batch_size,
                                    shuffle=False),
        "model": common.model_section(d, layers),
        "loss": loss,
        "optimizer": {"type": "sgd", "lr": lr, "momentum": 0.9},
        "train": {"epochs": epochs},
    })
    model = common.init_model(case_dir, 0, d, layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = common.train(name, model, opt, common.build_loss(loss), x, y,
                          batch_size=batch_size, epochs=epochs)
    common.write_text(os.path.join(case_dir, "expected.json"), json.dumps({"losses": losses}) + "\n")
    return len(losses)


def training_runs(out):
    """One short run per loss, options included; 40 rows, batches of 16 (last 8), 2 epochs."""
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(2000)
    n, d = 40, 4
    x = rng.normal(0, 1, (n, d)).astype(np.float32)
    classes = rng.integers(0, 3, n).astype(np.int64)
    ignored = classes.copy()
    ignored[[3, 17, 30]] = -100
    labels = rng.integers(0, 2, (n, 3)).astype(np.float32)
    values = rng.normal(0, 1, (n, 2)).astype(np.float32)
    counts = rng.integers(0, 5, (n, 2)).astype(np.float32)
    probs = rng.dirichlet([1, 1, 1], n).astype(np.float32)
    signs = (2 * rng.integers(0, 2, (n, 1)) - 1).astype(np.float32)
    three = [{"type": "linear", "out": 8}, {"type": "tanh"}, {"type": "linear", "out": 3}]
    two = [{"type": "linear", "out": 8}, {"type": "tanh"}, {"type": "linear", "out": 2}]
    log_softmax = three + [{"type": "log_softmax"}]
    runs = [
        ("cross_entropy_smoothing_weight_ignore", x, ignored, three,
         {"type": "cross_entropy", "weight": [1.0, 2.0, 0.5], "label_smoothing": 0.1}, 0.1),
        ("cross_entropy_probabilities", x, probs, three,
         {"type": "cross_entropy", "label_smoothing": 0.2}, 0.1),
        ("nll_weight_ignore", x, ignored, log_softmax, {"type": "nll", "weight": [1.0, 2.0, 0.5]}, 0.1),
        ("bce_weight", x, labels, three + [{"type": "sigmoid"}], {"type": "bce", "weight": [1.0, 2.0, 0.5]}, 0.1),
        ("bce_with_logits_pos_weight", x, labels, three,
         {"type": "bce_with_logits", "pos_weight": [1.0, 2.0, 0.5]}, 0.1),
        ("mse_sum", x, values, two, {"type": "mse", "reduction": "sum"}, 0.01),
        ("l1", x, values, two, {"type": "l1"}, 0.1),
        ("smooth_l1_beta", x, values, two, {"type": "smooth_l1", "beta": 0.5}, 0.1),
        ("huber_delta", x, values, two, {"type": "huber", "delta": 0.5}, 0.1),
        ("kl_div_batchmean", x, probs, log_softmax, {"type": "kl_div", "reduction": "batchmean"}, 0.1),
        ("poisson_nll", x, counts, two, {"type": "poisson_nll"}, 0.01),
        ("poisson_nll_rate_full", x, counts, two + [{"type": "sigmoid"}],
         {"type": "poisson_nll", "log_input": False, "full": True}, 0.01),
        ("soft_margin", x, signs, [{"type": "linear", "out": 1}], {"type": "soft_margin"}, 0.1),
        ("multilabel_soft_margin_weight", x, labels, three,
         {"type": "multilabel_soft_margin", "weight": [1.0, 2.0, 0.5]}, 0.1),
        ("multi_margin_p2_weight", x, classes, three,
         {"type": "multi_margin", "p": 2, "margin": 0.5, "weight": [1.0, 2.0, 0.5]}, 0.1),
    ]
    for name, xs, ys, layers, loss, lr in runs:
        steps = training_run(out, name, xs, ys, layers, loss, lr)
        print(f"training/{name}: {steps} steps")
    return len(runs)


def main():
    out = common.setup(__doc__, "losses", deterministic=False)
    # kl_div's reduction "mean" is a case on purpose (PyTorch warns that it differs from batchmean)
    warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss")
    total = 0
    dumps = functools.partial(json.dumps, separators=(",", ":"), allow_nan=False)
    for loss, cases in all_losses().items():
        names = [c["name"] for c in cases]
        assert len(names) == len(set(names)), f"{loss}: duplicate case names"
        common.write_cases(os.path.join(out, f"{loss}.json"), cases,
                           head={"loss": loss, "torch": torch.__version__}, dumps=dumps)
        total += len(cases)
        print(f"{loss}: {len(cases)} cases")
    runs = training_runs(os.path.join(out, "training"))
    print(f"{total} cases and {runs} training runs in {out}")


if __name__ == "__main__":
    main()
