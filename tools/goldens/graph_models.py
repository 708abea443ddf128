#!/usr/bin/env python3
"""PyTorch golden cases for models beyond a chain: nested ``sequential`` and ``residual``
blocks in ``model.layers``, and ``model.nodes`` graphs with every combinator (issue #13).

What it generates
-----------------
One folder per case under ``tests/goldens/graph_models/<case>/``, in the layout of
``tools/goldens/cnn.py``: ``spec.yaml``, ``data.csv``, ``init.safetensors`` (the torch
module's ``state_dict``, whose names graphc must give its parameters: ``features.0.weight``,
``2.body.0.weight``, ``2.shortcut.0.weight``, ``layer1.0.fc.weight``) and ``expected.json``
(``losses`` per update, ``final`` state_dict).

The torch model
---------------
* a list of layers is an ``nn.Sequential`` named by each layer's ``name`` or index;
* ``sequential`` is a nested ``nn.Sequential``;
* ``residual`` is a module with ``body`` (and ``shortcut``) ``nn.Sequential`` children,
  computing ``body(x) + shortcut(x)`` (``x`` without a shortcut);
* ``model.nodes`` is a module whose children are the nodes' modules, registered under their
  dotted names as nested modules (``layer1.0.fc`` is ``model.layer1[0].fc``), evaluated in
  the listed order; combinators are torch functions (``torch.add`` folded over the inputs,
  ``torch.sub``, ``torch.mul``, ``torch.cat(dim)``, ``torch.mean/sum(dim, keepdim)``,
  ``x.reshape(N, *shape)``). A node the output does not use is never called: its
  parameters get no gradient and keep their initial values.

Dropout masks are graphc's (``norm_dropout.py``'s ``PhiloxDropout``): a dropout's stream is
its position in graphc's flattened model — layers in order, a block's own position right
after its contents (a residual's body, then its shortcut) — which for a chain without
blocks is the layer index.

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/graph_models.py

Everything is seeded, one thread: two runs write the same bytes.
"""

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

import common
import norm_dropout
from common import f32

SCRIPT = "graph_models.py"


class Residual(nn.Module):
    """``body(x) + shortcut(x)``; without a shortcut, ``body(x) + x``."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        if shortcut is not None:
            self.shortcut = shortcut
        self.has_shortcut = shortcut is not None

    def forward(self, x):
        return self.body(x) + (self.shortcut(x) if self.has_shortcut else x)


class Builder:
    """Builds torch modules for graphc layer mappings, numbering entries as graphc's
    flattening does (the dropout streams)."""

    def __init__(self, seed):
        self.seed = seed
        self.entries = 0

    def probe(self, module, shape):
        module.eval()
        with torch.no_grad():
            out = module(torch.zeros(2, *shape))
        return list(out.shape[1:])

    def chain(self, layers, shape):
        """An ``nn.Sequential`` of ``layers`` and the output shape of one sample."""
        mods = OrderedDict()
        for i, layer in enumerate(layers):
            m, shape = self.layer(layer, shape)
            mods[layer.get("name", str(i))] = m
        return nn.Sequential(mods), shape

    def layer(self, layer, shape):
        """One layer (a block after its contents) and its output shape."""
        t = layer["type"]
        if t == "sequential":
            m, shape = self.chain(layer["layers"], shape)
        elif t == "residual":
            body, out = self.chain(layer["layers"], shape)
            shortcut = None
            if "shortcut" in layer:
                shortcut, _ = self.chain(layer["shortcut"], shape)
            m = Residual(body, shortcut)
            shape = out
        else:
            m = norm_dropout.torch_layer(layer, shape, self.entries, self.seed, None)
            shape = self.probe(m, shape)
        self.entries += 1
        return m, shape


def put(root, dotted, module):
    """Registers ``module`` under ``root`` at the dotted name, making containers on the way."""
    parts = dotted.split(".")
    cur = root
    for p in parts[:-1]:
        if p not in cur._modules:
            cur.add_module(p, nn.Module())
        cur = cur._modules[p]
    cur.add_module(parts[-1], module)


def get(root, dotted):
    cur = root
    for p in dotted.split("."):
        cur = cur._modules[p]
    return cur


COMBINATORS = ("add", "sub", "mul", "concat", "mean", "sum", "reshape")


class Graph(nn.Module):
    """``model.nodes``: modules under dotted names, evaluated in order."""

    def __init__(self, builder, input_shape, nodes, output):
        super().__init__()
        self.nodes = nodes
        self.output = output or nodes[-1]["name"]
        shapes = {"input": list(input_shape)}
        for i, node in enumerate(nodes):
            ins = self.inputs_of(i)
            if node["type"] in COMBINATORS:
                builder.entries += 1
                probes = [torch.zeros(2, *shapes[n]) for n in ins]
                shapes[node["name"]] = list(self.combine(node, probes).shape[1:])
            else:
                layer = {k: v for k, v in node.items() if k not in ("name", "inputs")}
                m, shapes[node["name"]] = builder.layer(layer, shapes[ins[0]])
                put(self, node["name"], m)

    def inputs_of(self, i):
        node = self.nodes[i]
        ins = node.get("inputs")
        if ins is None:
            return ["input"] if i == 0 else [self.nodes[i - 1]["name"]]
        return [ins] if isinstance(ins, str) else list(ins)

    @staticmethod
    def combine(node, xs):
        t = node["type"]
        if t == "add":
            out = xs[0]
            for x in xs[1:]:
                out = torch.add(out, x)
            return out
        if t == "sub":
            return torch.sub(xs[0], xs[1])
        if t == "mul":
            out = xs[0]
            for x in xs[1:]:
                out = torch.mul(out, x)
            return out
        if t == "concat":
            return torch.cat(xs, dim=node.get("dim", 1))
        if t in ("mean", "sum"):
            f = torch.mean if t == "mean" else torch.sum
            return f(xs[0], dim=node["dim"], keepdim=node.get("keepdim", False))
        if t == "reshape":
            return xs[0].reshape(xs[0].shape[0], *node["shape"])
        raise ValueError(t)

    def forward(self, x):
        values = {"input": x}
        needed = self.needed()
        for i, node in enumerate(self.nodes):
            name = node["name"]
            if name not in needed:
                continue
            xs = [values[n] for n in self.inputs_of(i)]
            if node["type"] in COMBINATORS:
                values[name] = self.combine(node, xs)
            else:
                values[name] = get(self, name)(xs[0])
        return values[self.output]

    def needed(self):
        """The nodes the output depends on."""
        by_name = {n["name"]: i for i, n in enumerate(self.nodes)}
        seen, stack = set(), [self.output]
        while stack:
            n = stack.pop()
            if n == "input" or n in seen:
                continue
            seen.add(n)
            stack.extend(self.inputs_of(by_name[n]))
        return seen


class Stepped(nn.Module):
    """Hands the training forward's index to every dropout, as graphc's step input."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.forwards = 0

    def forward(self, x):
        if self.training:
            for m in self.modules():
                if isinstance(m, norm_dropout.PhiloxDropout):
                    m.step = self.forwards
            self.forwards += 1
        return self.inner(x)


def run_case(out_root, name, *, seed, input_shape, loss, optimizer, rows, batch_size,
             epochs, layers=None, nodes=None, output=None, classes=3):
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((rows, int(np.prod(input_shape)))))
    y = common.teacher_classes(rng, x, classes)
    if layers is not None:
        model_spec = {"layers": common.spec_value(layers)}
    else:
        model_spec = {"nodes": common.spec_value(nodes)}
        if output is not None:
            model_spec["output"] = output
    case_dir = common.write_case(SCRIPT, out_root, name, x=x, y=y, input_shape=input_shape,
                                 model=model_spec, loss=loss, optimizer=optimizer,
                                 batch_size=batch_size, epochs=epochs, seed=seed)
    torch.manual_seed(seed)
    builder = Builder(seed)
    if layers is not None:
        inner, _ = builder.chain(layers, list(input_shape))
    else:
        inner = Graph(builder, input_shape, nodes, output)
    model = Stepped(inner)
    model.train()
    common.fit_case(name, case_dir, model, loss=loss, optimizer=optimizer,
                    samples=x.reshape(rows, *input_shape), y=y, batch_size=batch_size,
                    epochs=epochs, state=inner)


CE = {"type": "cross_entropy"}
SGD = {"type": "sgd", "lr": 0.05, "momentum": 0.9}
ADAM = {"type": "adam", "lr": 0.01}


def main():
    out = common.setup(__doc__, "graph_models")
    lin = lambda n, **kw: {"type": "linear", "out": n, **kw}  # noqa: E731

    run_case(out, "residual_mlp", seed=401, input_shape=[6], loss=CE, optimizer=SGD,
             rows=24, batch_size=8, epochs=2, layers=[
                 lin(8), {"type": "relu"},
                 {"type": "residual", "layers": [lin(8), {"type": "tanh"}, lin(8)]},
                 {"type": "residual", "layers": [lin(5)], "shortcut": [lin(5)]},
                 {"type": "relu"}, lin(3)])
    run_case(out, "nested_sequential_named", seed=402, input_shape=[5], loss=CE,
             optimizer=ADAM, rows=24, batch_size=8, epochs=2, layers=[
                 {"type": "sequential", "name": "features",
                  "layers": [lin(6), {"type": "relu", "name": "act"}, lin(6, name="proj")]},
                 {"type": "sequential",
                  "layers": [{"type": "sequential", "layers": [lin(4)]}, {"type": "tanh"}]},
                 lin(3)])
    conv = lambda n, k, **kw: {"type": "conv2d", "out_channels": n, "kernel_size": k, **kw}  # noqa: E731
    run_case(out, "residual_conv_dropout", seed=403, input_shape=[2, 6, 6], loss=CE,
             optimizer=SGD, rows=20, batch_size=8, epochs=2, layers=[
                 conv(4, 3, padding=1),
                 {"type": "residual", "layers": [conv(4, 3, padding=1), {"type": "relu"},
                                                 {"type": "dropout", "p": 0.3},
                                                 conv(4, 3, padding=1)]},
                 {"type": "relu"},
                 {"type": "residual", "layers": [conv(6, 1)],
                  "shortcut": [conv(6, 1, bias=False)]},
                 {"type": "dropout2d", "p": 0.25},
                 {"type": "flatten"}, lin(3)])
    run_case(out, "graph_add_sub_mul", seed=404, input_shape=[5], loss=CE, optimizer=ADAM,
             rows=24, batch_size=8, epochs=2, nodes=[
                 {"name": "fc1", **lin(8)},
                 {"name": "a", "type": "tanh"},
                 {"name": "fc2", **lin(8), "inputs": "fc1"},
                 {"name": "skip", "type": "add", "inputs": ["fc2", "fc1", "a"]},
                 {"name": "d", "type": "sub", "inputs": ["skip", "a"]},
                 {"name": "m", "type": "mul", "inputs": ["d", "fc1"]},
                 {"name": "head", **lin(3)}])
    run_case(out, "graph_concat_reduce_reshape", seed=405, input_shape=[2, 6], loss=CE,
             optimizer=SGD, rows=20, batch_size=8, epochs=2, nodes=[
                 {"name": "c1", "type": "conv1d", "out_channels": 3, "kernel_size": 3,
                  "padding": 1},
                 {"name": "c2", "type": "conv1d", "out_channels": 5, "kernel_size": 1,
                  "inputs": "input"},
                 {"name": "cat", "type": "concat", "inputs": ["c1", "c2"]},
                 {"name": "act", "type": "relu"},
                 {"name": "s", "type": "sum", "dim": 2, "keepdim": True},
                 {"name": "scaled", "type": "mul", "inputs": ["act", "s"]},
                 {"name": "wide", "type": "concat", "dim": -1, "inputs": ["act", "scaled"]},
                 {"name": "m", "type": "mean", "dim": [-1]},
                 {"name": "flat", "type": "reshape", "shape": [-1], "inputs": "s"},
                 {"name": "both", "type": "add", "inputs": ["m", "flat"]},
                 {"name": "grid", "type": "reshape", "shape": [2, 4], "inputs": "both"},
                 {"name": "rows", "type": "sum", "dim": [1, 2], "keepdim": True},
                 {"name": "spread", "type": "mul", "inputs": ["grid", "rows"]},
                 {"name": "f", "type": "flatten"},
                 {"name": "head", **lin(3)}])
    run_case(out, "graph_dotted_names_unused_output", seed=406, input_shape=[4], loss=CE,
             optimizer=SGD, rows=24, batch_size=8, epochs=2, output="head.fc", nodes=[
                 {"name": "layer1.0.fc", **lin(6)},
                 {"name": "layer1.0.act", "type": "relu"},
                 {"name": "layer1.1.fc", **lin(6)},
                 {"name": "sum", "type": "add", "inputs": ["layer1.1.fc", "layer1.0.fc"]},
                 {"name": "head.fc", **lin(3)},
                 {"name": "unused.fc", **lin(2), "inputs": "input"}])
    common.done(out)


if __name__ == "__main__":
    main()
