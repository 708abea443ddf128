#!/usr/bin/env python3
"""PyTorch golden values for graphc's windowed ops (convolution, max pooling) alone.

What it generates (under ``tests/goldens/windowed_ops/``, relative to the repository root)
------------------------------------------------------------------------------------------

``conv.json``
    ``{"cases": [...]}``, one case per line: ``torch.nn.functional.conv1d``/``conv2d``
    (no bias) over strides, paddings (symmetric, ``padding="same"``'s uneven split, and an
    explicit ``F.pad`` on one side), dilations and groups. Each case holds ``window`` (the
    graphc geometry, one mapping per spatial axis: ``input``, ``output``, ``kernel``,
    ``stride``, ``dilation``, ``pad_lo``), ``groups``, and the tensors ``x`` [N, C, *in],
    ``w`` [O, C/groups, *k], ``y`` = conv(x, w), ``dy`` (a seeded upstream gradient),
    ``dx`` and ``dw`` (``y.backward(dy)``).

``max_pool.json``
    The same layout for ``F.max_pool1d``/``max_pool2d`` (padding, dilation, ``ceil_mode``,
    overlapping windows; ties, NaN and -inf inputs) and ``F.adaptive_max_pool2d`` (an
    adaptive axis is ``{"input", "output", "adaptive": true}``): ``x``, ``y``,
    ``indices`` (PyTorch's flat argmax within each ``[*spatial]`` plane, from
    ``return_indices=True``), ``dy`` and ``dx`` (``y.backward(dy)``).

A tensor is ``{"shape": [...], "data": [...]}``, row-major; floats are float32 values
written as doubles, NaN and infinities as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"`` (``common.number``).

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/windowed_ops.py            # rewrites tests/goldens/windowed_ops/
    /work/venv/bin/python tools/goldens/windowed_ops.py --out /tmp/w && diff -r /tmp/w tests/goldens/windowed_ops

Deterministic: data from seeded ``numpy.random.default_rng``, float32 on the CPU with one
thread, so a rerun with the same torch writes the same bytes.
"""

import json
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import common

SCRIPT = "windowed_ops.py"


def tensor(rng, shape):
    return torch.from_numpy(common.f32(rng.standard_normal(shape)))


def strided_axis(input, output, kernel, stride, dilation, pad_lo):
    return {"input": input, "output": output, "kernel": kernel, "stride": stride,
            "dilation": dilation, "pad_lo": pad_lo}


def per_axis(v, dims):
    return list(v) if isinstance(v, (list, tuple)) else [v] * dims


# --------------------------------------------------------------------------
# convolution

def conv_case(rng, name, *, n, c, o, spatial, kernel, stride=1, padding=0, dilation=1,
              groups=1, pad=None):
    """One convolution case. ``padding`` is conv's own (an int, a list or "same");
    ``pad`` an ``F.pad`` tuple applied first (last axis first, as ``F.pad`` reads it),
    for an uneven split with strides, which ``padding="same"`` does not allow."""
    dims = len(spatial)
    kernel, stride, dilation = (per_axis(v, dims) for v in (kernel, stride, dilation))
    x = tensor(rng, [n, c, *spatial]).requires_grad_()
    w = tensor(rng, [o, c // groups, *kernel]).requires_grad_()
    conv = F.conv1d if dims == 1 else F.conv2d
    xin = F.pad(x, pad) if pad is not None else x
    y = conv(xin, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    dy = tensor(rng, list(y.shape))
    y.backward(dy)
    if padding == "same":
        # PyTorch puts the odd element of an uneven total on the far side.
        pad_lo = [d * (k - 1) // 2 for d, k in zip(dilation, kernel)]
    else:
        pad_lo = per_axis(padding, dims)
    if pad is not None:
        # F.pad lists (lo, hi) pairs from the last axis backwards.
        pad_lo = [p + pad[2 * (dims - 1 - a)] for a, p in enumerate(pad_lo)]
    window = [strided_axis(spatial[a], y.shape[2 + a], kernel[a], stride[a], dilation[a],
                           pad_lo[a]) for a in range(dims)]
    return {"name": name, "window": window, "groups": groups,
            "x": common.tensor_json(x), "w": common.tensor_json(w),
            "y": common.tensor_json(y), "dy": common.tensor_json(dy),
            "dx": common.tensor_json(x.grad), "dw": common.tensor_json(w.grad)}


def conv_cases(rng):
    c = conv_case
    return [
        c(rng, "conv1d_plain", n=2, c=3, o=4, spatial=[7], kernel=3),
        c(rng, "conv1d_stride2_pad1", n=2, c=3, o=2, spatial=[8], kernel=3, stride=2, padding=1),
        c(rng, "conv1d_dilation2_pad2", n=1, c=2, o=3, spatial=[9], kernel=3, dilation=2,
          padding=2),
        c(rng, "conv1d_groups2_stride2", n=2, c=4, o=6, spatial=[9], kernel=3, stride=2, groups=2),
        c(rng, "conv1d_depthwise", n=2, c=3, o=6, spatial=[6], kernel=2, padding=1, groups=3),
        c(rng, "conv1d_same_even_kernel", n=2, c=2, o=3, spatial=[7], kernel=4, padding="same"),
        c(rng, "conv1d_same_dilated", n=1, c=2, o=2, spatial=[8], kernel=3, dilation=3,
          padding="same"),
        c(rng, "conv1d_uneven_pad_stride3", n=2, c=2, o=2, spatial=[10], kernel=3, stride=3,
          pad=(2, 0)),
        c(rng, "conv1d_padding_past_kernel", n=1, c=2, o=2, spatial=[4], kernel=2, padding=3),
        c(rng, "conv1d_stride_skips_tail", n=2, c=1, o=2, spatial=[10], kernel=3, stride=4),
        c(rng, "conv2d_plain", n=2, c=2, o=3, spatial=[5, 6], kernel=3),
        c(rng, "conv2d_mixed_geometry", n=2, c=3, o=2, spatial=[7, 8], kernel=[3, 2],
          stride=[2, 1], padding=[1, 2], dilation=[1, 2]),
        c(rng, "conv2d_groups2", n=2, c=4, o=4, spatial=[6, 7], kernel=[2, 3], stride=2,
          padding=1, groups=2),
        c(rng, "conv2d_groups3_depthwise_multiplier", n=1, c=3, o=6, spatial=[5, 5], kernel=3,
          padding=1, groups=3),
        c(rng, "conv2d_same_uneven", n=2, c=2, o=2, spatial=[6, 5], kernel=[4, 2],
          dilation=[1, 2], padding="same"),
        c(rng, "conv2d_dilated_strided", n=1, c=2, o=3, spatial=[9, 8], kernel=3, stride=3,
          dilation=2),
        c(rng, "conv2d_uneven_pad", n=2, c=2, o=2, spatial=[5, 6], kernel=3, stride=2,
          pad=(0, 1, 2, 0)),
        c(rng, "conv2d_1x1_stride2", n=2, c=3, o=4, spatial=[5, 4], kernel=1, stride=2),
    ]


# --------------------------------------------------------------------------
# max pooling

def pool_case(name, x, *, kernel=None, stride=None, padding=0, dilation=1, ceil_mode=False,
              adaptive=None, rng):
    """One max-pooling case on ``x`` (a float32 array [N, C, *spatial]); ``adaptive``, if
    given, is the output size of ``F.adaptive_max_pool2d``."""
    dims = x.ndim - 2
    spatial = list(x.shape[2:])
    xt = torch.from_numpy(common.f32(x)).requires_grad_()
    if adaptive is not None:
        assert dims == 2
        y, indices = F.adaptive_max_pool2d(xt, adaptive, return_indices=True)
        window = [{"input": spatial[a], "output": y.shape[2 + a], "adaptive": True}
                  for a in range(dims)]
    else:
        stride = kernel if stride is None else stride
        kernel, stride, padding, dilation = (per_axis(v, dims)
                                             for v in (kernel, stride, padding, dilation))
        pool = F.max_pool1d if dims == 1 else F.max_pool2d
        y, indices = pool(xt, kernel, stride=stride, padding=padding, dilation=dilation,
                          ceil_mode=ceil_mode, return_indices=True)
        # The values must not depend on whether indices were asked for (PyTorch has a
        # separate kernel without them).
        with torch.no_grad():
            plain = pool(xt, kernel, stride=stride, padding=padding, dilation=dilation,
                         ceil_mode=ceil_mode)
        assert torch.equal(plain.isnan(), y.isnan())
        assert torch.equal(torch.nan_to_num(plain), torch.nan_to_num(y))
        window = [strided_axis(spatial[a], y.shape[2 + a], kernel[a], stride[a], dilation[a],
                               padding[a]) for a in range(dims)]
    dy = tensor(rng, list(y.shape))
    y.backward(dy)
    return {"name": name, "window": window,
            "x": common.tensor_json(xt), "y": common.tensor_json(y),
            "indices": common.tensor_json(indices), "dy": common.tensor_json(dy),
            "dx": common.tensor_json(xt.grad)}


def with_values(x, positions, value):
    """``x`` with ``value`` at each ``(n, c, *spatial)`` position."""
    x = x.copy()
    for p in positions:
        x[p] = value
    return x


def max_pool_cases(rng):
    normal = lambda shape: common.f32(rng.standard_normal(shape))
    # Small integers: most windows hold ties.
    ties = lambda shape: common.f32(rng.integers(0, 3, shape))
    p = pool_case
    return [
        p("max_pool1d_k3_s2", normal([2, 3, 9]), kernel=3, stride=2, rng=rng),
        p("max_pool1d_pad_dilation_ceil", normal([2, 2, 10]), kernel=3, stride=2, padding=1,
          dilation=2, ceil_mode=True, rng=rng),
        p("max_pool1d_ceil_partial_window", normal([1, 2, 8]), kernel=3, stride=3,
          ceil_mode=True, rng=rng),
        p("max_pool1d_ties_overlapping", ties([2, 2, 9]), kernel=3, stride=1, rng=rng),
        p("max_pool1d_nan", with_values(normal([1, 2, 8]),
                                        [(0, 0, 1), (0, 0, 2), (0, 1, 5)], np.nan),
          kernel=4, stride=2, padding=1, rng=rng),
        p("max_pool1d_neg_inf_padding", with_values(normal([1, 2, 7]),
                                                    [(0, 0, 0), (0, 0, 1), (0, 1, 6)], -np.inf),
          kernel=3, stride=2, padding=1, rng=rng),
        p("max_pool2d_k2", normal([2, 3, 6, 6]), kernel=2, rng=rng),
        p("max_pool2d_k3_s2_p1_ceil", normal([2, 2, 7, 8]), kernel=3, stride=2, padding=1,
          ceil_mode=True, rng=rng),
        p("max_pool2d_mixed_geometry", normal([1, 2, 9, 7]), kernel=[3, 2], stride=[1, 2],
          padding=[1, 0], dilation=[2, 1], rng=rng),
        p("max_pool2d_dilation_ceil", normal([2, 1, 8, 9]), kernel=2, stride=3, dilation=2,
          padding=1, ceil_mode=True, rng=rng),
        p("max_pool2d_ties_overlapping", ties([2, 2, 6, 5]), kernel=3, stride=1, padding=1,
          rng=rng),
        p("max_pool2d_nan", with_values(normal([1, 2, 6, 6]),
                                        [(0, 0, 0, 1), (0, 0, 1, 0), (0, 1, 3, 3),
                                         (0, 1, 5, 4)], np.nan),
          kernel=3, stride=2, padding=1, rng=rng),
        p("max_pool2d_neg_inf", with_values(normal([1, 1, 6, 6]),
                                            [(0, 0, i, j) for i in range(3) for j in range(3)]
                                            + [(0, 0, 5, 5)], -np.inf),
          kernel=3, stride=2, padding=1, ceil_mode=True, rng=rng),
        p("adaptive_max_pool2d_shrink", normal([2, 2, 5, 7]), adaptive=(3, 4), rng=rng),
        p("adaptive_max_pool2d_overlap", normal([1, 2, 6, 6]), adaptive=(4, 4), rng=rng),
        p("adaptive_max_pool2d_identity", normal([1, 1, 3, 4]), adaptive=(3, 4), rng=rng),
        p("adaptive_max_pool2d_global", normal([2, 3, 4, 5]), adaptive=(1, 1), rng=rng),
        p("adaptive_max_pool2d_ties", ties([2, 2, 7, 5]), adaptive=(3, 2), rng=rng),
        p("adaptive_max_pool2d_nan_neg_inf",
          with_values(with_values(normal([1, 2, 5, 5]), [(0, 0, 0, 0), (0, 0, 1, 1)], np.nan),
                      [(0, 1, i, j) for i in range(3) for j in range(3)], -np.inf),
          adaptive=(2, 2), rng=rng),
    ]


def main():
    out = common.setup(__doc__, "windowed_ops")
    # padding="same" with an even kernel pads a copy of the input: what it computes is
    # what this script records, so the performance warning is noise here.
    warnings.filterwarnings("ignore", message="Using padding='same'")
    rng = np.random.default_rng(20261201)
    common.write_cases(os.path.join(out, "conv.json"), conv_cases(rng))
    common.write_cases(os.path.join(out, "max_pool.json"), max_pool_cases(rng))
    for name in ("conv.json", "max_pool.json"):
        with open(os.path.join(out, name)) as f:
            assert json.load(f)["cases"]
    common.done(out)


if __name__ == "__main__":
    main()
