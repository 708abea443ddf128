#!/usr/bin/env python3
"""PyTorch's NaN, infinity and signed-zero semantics: every activation graphc builds, the
elementwise ``torch.maximum``/``torch.minimum``, ``torch.amax`` and cross entropy (whose
log-softmax shifts by the row's maximum), forward and gradient, on inputs holding NaN,
+-inf, +-0, subnormals and ordinary values.

What it generates
-----------------
One JSON file per op under ``tests/goldens/nan/<op>.json`` (relative to the repository
root)::

    {"op": "maximum", "torch": "2.x", "exact": true,
     "cases": [
       {"name": "pairs",
        "inputs": [{"shape": [144], "data": [...]}, {"shape": [144], "data": [...]}],
        "upstream": {"shape": [144], "data": [...]},
        "value": {"shape": [144], "data": [...]},
        "value_sign_free": [12, 13],
        "grads": [{"shape": [144], "data": [...]}, {"shape": [144], "data": [...]}]},
       ...]}

* ``op``: ``relu``, ``sigmoid``, ``tanh``, ``softmax``, ``log_softmax`` (graphc's layers of
  those names; softmax and log_softmax over the last axis of ``[rows, 4]``), ``maximum``,
  ``minimum`` (two operands), ``amax`` (over the last axis, kept), ``cross_entropy``
  (``reduction: none`` then ``mean``, upstream all ones; its second input is the int64 class
  targets and its case carries the graphc ``loss`` mapping).
* ``value`` is ``op(*inputs)``; ``grads[i]`` is ``inputs[i].grad`` after
  ``value.backward(upstream)`` (``upstream`` holds ordinary values in one case and NaN,
  +-inf and +-0 in another, so a rule that multiplies a zero by the upstream gradient where
  PyTorch's masks it shows up).
* ``exact``: the forward value only selects among its inputs (relu, maximum, minimum, amax),
  so every backend must give it bit for bit; otherwise values are rounded results.
* ``value_sign_free``: indices of zero results whose sign PyTorch itself does not fix:
  the same operands give +0 at one position of a tensor and -0 at another (``torch.maximum``
  returns the second of two equal operands in its vectorized loop, the first in its scalar
  tail), or a row-wise op gives another zero for the same row reversed (``torch.amax`` keeps
  the first of equal zeros). Every other zero's sign is PyTorch's and must be reproduced.
* ``data`` is row-major. Floats are exactly the float32 values, written as doubles;
  non-finite values are the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; a
  negative zero is written ``-0.0``.

How to rerun
------------
From the repository root::

    venv/bin/python tools/goldens/nan_semantics.py            # rewrites tests/goldens/nan/
    venv/bin/python tools/goldens/nan_semantics.py --out /tmp/n && diff -r /tmp/n tests/goldens/nan

Nothing is random; computations run in float32 on the CPU with one thread, so a rerun on the
same torch version rewrites the same bytes.
"""

import itertools
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

import common

NAN = float("nan")
INF = float("inf")

# Every kind of value an activation or a comparison can meet: NaN, both infinities, both
# zeros, a subnormal, values that saturate sigmoid/tanh or overflow exp, and ordinary ones.
SPECIAL = [NAN, INF, -INF, 0.0, -0.0, 1e-40, -1e-40, 1.0, -1.0, 2.5, -3.0, 100.0, -100.0]

# Upstream gradients: ordinary values, and one pattern that holds NaN, infinities and zeros.
ORDINARY_UP = [1.0, -2.0, 0.5, 3.0, -0.25, 1.5]
SPECIAL_UP = [1.0, INF, -2.0, NAN, 0.0, -0.0, -INF, 0.5]

# Rows of four logits for the row-wise ops (softmax, log_softmax, amax, cross entropy).
ROWS = [
    [1.0, 2.0, 3.0, 4.0],
    [NAN, 1.0, 2.0, 3.0],
    [INF, 1.0, 2.0, 3.0],
    [-INF, 1.0, 2.0, 3.0],
    [INF, INF, 1.0, 2.0],
    [-INF, -INF, -INF, -INF],
    [INF, -INF, 0.0, 0.0],
    [-0.0, 0.0, -0.0, 0.0],
    [-0.0, -0.0, -1.0, -2.0],
    [1e30, -1e30, 0.0, 1.0],
    [NAN, INF, -INF, 0.0],
    [5.0, 5.0, 1.0, 5.0],
    [1e-40, -1e-40, 0.0, -0.0],
]


def f32(values):
    return torch.tensor(values, dtype=torch.float32)


def number(v):
    """``common.number``, keeping the sign of a zero (``-0.0``)."""
    v = float(v)
    if v == 0.0:
        return -0.0 if math.copysign(1.0, v) < 0 else 0.0
    return common.number(v)


def tensor_json(t):
    t = t.detach()
    data = t.reshape(-1).tolist()
    if t.dtype == torch.int64:
        return {"shape": list(t.shape), "dtype": "int64", "data": [int(v) for v in data]}
    return {"shape": list(t.shape), "data": [number(v) for v in data]}


def bits(t):
    return t.detach().contiguous().numpy().view(np.uint32)


def upstream_like(shape, pattern):
    n = int(np.prod(shape)) if shape else 1
    return f32([pattern[i % len(pattern)] for i in range(n)]).reshape(shape)


def sign_free_elementwise(fn, inputs, value):
    """Indices of zero results whose sign depends on the position in the tensor: each
    element's operands are run alone (the scalar loop) and repeated 64 times (the vector
    loop), and the zero signs compared with the whole tensor's."""
    free = []
    flat = [x.reshape(-1) for x in inputs]
    out = value.reshape(-1)
    for i in range(out.numel()):
        if out[i].item() != 0.0:
            continue
        alone = fn(*[x[i:i + 1] for x in flat])
        many = fn(*[x[i:i + 1].repeat(64) for x in flat])
        signs = {int(bits(alone)[0]), int(bits(out[i:i + 1])[0])} | set(int(b) for b in bits(many))
        if len(signs) > 1:
            free.append(i)
    return free


def sign_free_rows(fn, x, value):
    """Indices of zero results of a row-wise ``fn`` whose sign depends on the order of the
    row: ``fn`` of each row reversed (the result reversed back) is compared with ``value``.
    ``torch.amax`` keeps the first of equal zeros in its scalar loop, so ``[-0, 0]`` gives -0
    and ``[0, -0]`` gives +0."""
    flipped = torch.flip(fn(torch.flip(x, [-1])), [-1]).reshape(-1)
    out = value.reshape(-1)
    return [i for i in range(out.numel())
            if out[i].item() == 0.0 and flipped[i].item() == 0.0
            and int(bits(out[i:i + 1])[0]) != int(bits(flipped[i:i + 1])[0])]


def run_case(name, fn, inputs, upstream, *, elementwise, differentiable=None):
    """One case: ``fn(*inputs)`` and the gradients of ``value.backward(upstream)`` with
    respect to every float input (``differentiable`` marks which inputs get one)."""
    differentiable = differentiable or [True] * len(inputs)
    leaves = [x.clone().requires_grad_(d) for x, d in zip(inputs, differentiable)]
    value = fn(*leaves)
    value.backward(upstream)
    case = {
        "name": name,
        "inputs": [tensor_json(x) for x in inputs],
        "upstream": tensor_json(upstream),
        "value": tensor_json(value),
    }
    with torch.no_grad():
        if elementwise:
            case["value_sign_free"] = sign_free_elementwise(fn, inputs, value.detach())
        elif len(inputs) == 1:
            case["value_sign_free"] = sign_free_rows(fn, inputs[0], value.detach())
        else:
            case["value_sign_free"] = []
    case["grads"] = [tensor_json(x.grad) for x, d in zip(leaves, differentiable) if d]
    return case


def write_op(out, op, cases, *, exact):
    head = {"op": op, "torch": torch.__version__, "exact": exact}
    common.write_cases(os.path.join(out, f"{op}.json"), cases, head=head)


def unary_cases(fn):
    x = f32(SPECIAL)
    return [
        run_case("special", fn, [x], upstream_like(x.shape, ORDINARY_UP), elementwise=True),
        run_case("special_upstream", fn, [x], upstream_like(x.shape, SPECIAL_UP),
                 elementwise=True),
    ]


def binary_cases(fn):
    pairs = list(itertools.product(SPECIAL, SPECIAL))
    a = f32([p[0] for p in pairs])
    b = f32([p[1] for p in pairs])
    return [
        run_case("pairs", fn, [a, b], upstream_like(a.shape, ORDINARY_UP), elementwise=True),
        run_case("pairs_special_upstream", fn, [a, b], upstream_like(a.shape, SPECIAL_UP),
                 elementwise=True),
    ]


def row_cases(fn):
    x = f32(ROWS)
    shape = fn(x).shape
    return [
        run_case("rows", fn, [x], upstream_like(shape, ORDINARY_UP), elementwise=False),
        run_case("rows_special_upstream", fn, [x], upstream_like(shape, SPECIAL_UP),
                 elementwise=False),
    ]


def cross_entropy_cases():
    """``reduction: none`` and ``mean``, the gradient of ``loss.sum()`` (as ``graphc loss``
    and the loss goldens take it)."""
    x = f32(ROWS)
    targets = torch.tensor([i % 4 for i in range(len(ROWS))], dtype=torch.int64)
    cases = []
    for reduction in ["none", "mean"]:
        fn = lambda logits, t, r=reduction: F.cross_entropy(logits, t, reduction=r)
        ones = torch.ones(fn(x, targets).shape)
        case = run_case(f"rows_{reduction}", fn, [x, targets], ones, elementwise=False,
                        differentiable=[True, False])
        case["loss"] = {"type": "cross_entropy", "reduction": reduction}
        cases.append(case)
    return cases


def main():
    out = common.setup(__doc__, os.path.join("nan"))
    write_op(out, "relu", unary_cases(torch.relu), exact=True)
    write_op(out, "sigmoid", unary_cases(torch.sigmoid), exact=False)
    write_op(out, "tanh", unary_cases(torch.tanh), exact=False)
    write_op(out, "softmax", row_cases(lambda x: torch.softmax(x, dim=-1)), exact=False)
    write_op(out, "log_softmax", row_cases(lambda x: torch.log_softmax(x, dim=-1)), exact=False)
    write_op(out, "maximum", binary_cases(torch.maximum), exact=True)
    write_op(out, "minimum", binary_cases(torch.minimum), exact=True)
    write_op(out, "amax", row_cases(lambda x: torch.amax(x, dim=-1, keepdim=True)), exact=True)
    write_op(out, "cross_entropy", cross_entropy_cases(), exact=False)
    common.done(out)


if __name__ == "__main__":
    main()
