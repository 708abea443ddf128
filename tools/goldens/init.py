#!/usr/bin/env python3
"""PyTorch's arithmetic of ``torch.nn.init`` (issue #13 item 4): fans, gains and the bounds and
standard deviations the schemes derive from them, and which tensors each scheme refuses.

What it generates
-----------------
``tests/goldens/init/fans_gains.json``:

* ``fans``: for each shape, ``torch.nn.init._calculate_fan_in_and_fan_out`` of a tensor of
  that shape (``{"shape", "fan_in", "fan_out"}``), or ``"error": true`` where it raises;
* ``gains``: ``calculate_gain(nonlinearity, param)`` for every nonlinearity, ``param`` absent
  (``null``) or given;
* ``schemes``: for each (scheme, arguments, shape) the ``std`` (normal schemes) or ``bound``
  (uniform schemes) PyTorch computes, from the formulas of ``torch/nn/init.py`` evaluated
  with PyTorch's own helpers, and ``"error": true`` where the scheme raises on a tensor of
  that shape (checked by calling it). ``bound`` is ``√3·std``.

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/init.py [--out DIR]

No randomness: two runs write the same bytes.
"""

import json
import math
import os

import torch
from torch.nn import init

import common

SHAPES = [[3], [7], [4, 3], [16, 8], [1, 1], [5, 2, 3], [8, 4, 3, 3], [6, 3, 5, 1], [2, 3, 2, 2, 2]]

NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]

SCHEMES = [
    ("xavier_uniform", {}),
    ("xavier_uniform", {"gain": 2.5}),
    ("xavier_normal", {}),
    ("xavier_normal", {"gain": 0.5}),
    ("kaiming_uniform", {}),
    ("kaiming_uniform", {"a": 0.2, "mode": "fan_out", "nonlinearity": "leaky_relu"}),
    ("kaiming_uniform", {"a": math.sqrt(5)}),
    ("kaiming_normal", {}),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal", {"nonlinearity": "tanh"}),
    ("kaiming_normal", {"nonlinearity": "selu", "mode": "fan_in"}),
    ("eye", {}),
    ("orthogonal", {}),
    ("orthogonal", {"gain": 2.0}),
]


def raises(fn):
    try:
        fn()
        return False
    except (ValueError, RuntimeError):
        return True


def scheme_numbers(name, kw, shape):
    """PyTorch's std / bound for ``name(**kw)`` on a tensor of ``shape``, or an error flag."""
    t = torch.empty(shape)
    if raises(lambda: getattr(init, name + "_")(t, **kw)):
        return {"error": True}
    if name in ("eye", "orthogonal"):
        return {}
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(t)
    if name.startswith("xavier"):
        std = kw.get("gain", 1.0) * math.sqrt(2.0 / float(fan_in + fan_out))
    else:
        fan = init._calculate_correct_fan(t, kw.get("mode", "fan_in"))
        gain = init.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0))
        std = gain / math.sqrt(fan)
    if name.endswith("uniform"):
        return {"bound": math.sqrt(3.0) * std}
    return {"std": std}


def main():
    out = common.setup(__doc__, "init")
    fans = []
    for shape in SHAPES:
        t = torch.empty(shape)
        if raises(lambda: init._calculate_fan_in_and_fan_out(t)):
            fans.append({"shape": shape, "error": True})
        else:
            fan_in, fan_out = init._calculate_fan_in_and_fan_out(t)
            fans.append({"shape": shape, "fan_in": fan_in, "fan_out": fan_out})
    gains = []
    for nl in NONLINEARITIES:
        for param in [None, 0, 0.2, 3.0]:
            if param is not None and nl != "leaky_relu":
                continue
            gains.append({"nonlinearity": nl, "param": param, "gain": init.calculate_gain(nl, param)})
    schemes = []
    for name, kw in SCHEMES:
        for shape in SHAPES:
            schemes.append(dict({"type": name, "args": kw, "shape": shape},
                                **scheme_numbers(name, kw, shape)))
    result = {"fans": fans, "gains": gains, "schemes": schemes}
    path = os.path.join(out, "fans_gains.json")
    lines = ["{"]
    for i, (key, rows) in enumerate(result.items()):
        lines.append(f' "{key}": [')
        lines.append(",\n".join("  " + json.dumps(r) for r in rows))
        lines.append(" ]" + ("," if i + 1 < len(result) else ""))
    lines.append("}")
    common.write_text(path, "\n".join(lines) + "\n")
    common.done(out)


if __name__ == "__main__":
    main()
