"""Helpers shared by the PyTorch golden generators in ``tools/goldens/``.

Not a script: ``skeleton.py``, ``losses.py``, ``optimizers.py``, ``schedulers.py`` and
``accumulate_clip.py`` import it (Python puts the running script's folder on
``sys.path``, so ``import common`` works when they are run as their headers say).

What lives here, in the order of a training case:

* command line and torch setup (``setup``, ``done``);
* seeded data (``f32``, ``teacher_classes``, ``class_data``, ``names``) and a
  case's folder (``make_case_dir``);
* ``data.csv`` (``write_csv``: float cells exact float32, class columns as integers);
* ``spec.yaml`` (``write_spec`` of a mapping built with ``Block``, ``Items`` and
  ``Verbatim``; ``data_section`` and ``model_section`` for the shared parts);
* the model, its ``init.safetensors``, the loss and the optimizer (``mlp``, ``init_model``,
  ``build_loss``, ``group_params``, ``torch_optimizer``);
* the plain training loop (``batches``, ``update``, ``train``);
* JSON output (``number``, ``flat``, ``tensor_json``, ``write_expected``, ``write_cases``);
* ``run_plain_case``: all of the above for a case without scheduler, accumulation or
  clipping, as ``skeleton.py`` and ``optimizers.py`` write them.

Every helper writes exactly the bytes the scripts wrote before they shared it: the
goldens must not change when this module does.
"""

import argparse
import fnmatch
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --------------------------------------------------------------------------
# command line and setup

def setup(description, subdir, *, deterministic=True):
    """Parses ``--out`` (default ``tests/goldens/<subdir>``), runs torch on one thread
    (with deterministic algorithms unless told otherwise) and creates the folder."""
    ap = argparse.ArgumentParser(description=description.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "goldens", subdir))
    args = ap.parse_args()
    torch.set_num_threads(1)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    return args.out


def done(out):
    """The closing line on stderr: the versions the goldens were made with."""
    print(f"torch {torch.__version__}, numpy {np.__version__}, wrote {out}", file=sys.stderr)


# --------------------------------------------------------------------------
# data

def f32(a):
    return np.asarray(a, dtype=np.float32)


def teacher_classes(rng, x, k, noise=0.3):
    """Class indices from a random linear teacher with noise: argmax of ``x @ w + noise``."""
    w = rng.standard_normal((x.shape[1], k))
    logits = x.astype(np.float64) @ w + noise * rng.standard_normal((x.shape[0], k))
    return np.argmax(logits, axis=1).astype(np.int64)


def class_data(rng, rows, features=4, classes=3):
    """Standard normal float32 features and their teacher classes (int64)."""
    x = f32(rng.standard_normal((rows, features)))
    return x, teacher_classes(rng, x, classes)


def names(prefix, n):
    """Column names ``prefix0 .. prefix{n-1}``."""
    return [f"{prefix}{i}" for i in range(n)]


def f32_cell(v):
    """Exact text of a float32 value (repr of the float32 widened to a double)."""
    return repr(float(np.float32(v)))


def xy_columns(x, y):
    """The feature columns of ``x`` [N, D], then the target column(s) of ``y`` ([N] or [N, k])."""
    cols = [x[:, i] for i in range(x.shape[1])]
    if y.ndim == 1:
        cols.append(y)
    else:
        cols += [y[:, i] for i in range(y.shape[1])]
    return cols


def write_csv(path, header, x, y):
    """Header row, then one row per sample: float cells exact, integer cells as ints."""
    columns = xy_columns(x, y)
    with open(path, "w", newline="\n") as f:
        f.write(",".join(header) + "\n")
        for i in range(len(columns[0])):
            cells = []
            for col in columns:
                v = col[i]
                if np.issubdtype(col.dtype, np.integer):
                    cells.append(str(int(v)))
                else:
                    cells.append(f32_cell(v))
            f.write(",".join(cells) + "\n")


def make_case_dir(out_root, name):
    """Creates ``<out_root>/<name>/`` (a case's folder) and returns its path."""
    path = os.path.join(out_root, name)
    os.makedirs(path, exist_ok=True)
    return path


def write_text(path, text):
    with open(path, "w", newline="\n") as f:
        f.write(text)


# --------------------------------------------------------------------------
# spec.yaml

class Block(dict):
    """A mapping written in block style, one key per line; other mappings are flow style."""


class Items(list):
    """A list of mappings: ``- {...}`` lines under a block key, ``[{...}, ...]`` in flow style."""


class Verbatim(str):
    """Text written as it is (never quoted)."""


def yaml_scalar(v):
    """YAML text of a leaf value. A mapping inside a plain list comes out as Python's repr
    (``{'type': 'linear_lr'}``, which YAML also reads): the goldens were written that way."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(yaml_scalar(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str) and not v.replace("_", "a").isalnum():
        return json.dumps(v)  # e.g. "0.*": quoted so YAML reads it as a plain string
    return str(v)


def yaml_value(v):
    """YAML flow text of a value: mappings as ``{k: v, ...}``, recursively."""
    if isinstance(v, Verbatim):
        return str(v)
    if isinstance(v, Items):
        return "[" + ", ".join(yaml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(x)}" for k, x in v.items()) + "}"
    return yaml_scalar(v)


def yaml_block(mapping, indent=""):
    """Lines of a block-style mapping: ``Block`` values nest, ``Items`` become ``- `` lines."""
    lines = []
    for k, v in mapping.items():
        if isinstance(v, Block):
            lines += [f"{indent}{k}:"] + yaml_block(v, indent + "  ")
        elif isinstance(v, Items):
            lines += [f"{indent}{k}:"] + [f"{indent}  - {yaml_value(x)}" for x in v]
        else:
            lines.append(f"{indent}{k}: {yaml_value(v)}")
    return lines


def spec_text(script, spec):
    """A graphc spec: a do-not-edit line naming ``tools/goldens/<script>``, then ``spec``."""
    head = f"# Generated by tools/goldens/{script} -- do not edit; rerun the script."
    return "\n".join([head] + yaml_block(spec)) + "\n"


def write_spec(case_dir, script, spec):
    write_text(os.path.join(case_dir, "spec.yaml"), spec_text(script, spec))


def data_section(target, batch_size, *, valid=False, **options):
    """``data:`` with ``train`` (and ``valid``) CSV files, ``batch_size``, then ``options``."""
    data = Block(train={"csv": Verbatim("data.csv"), "target": target})
    if valid:
        data["valid"] = {"csv": Verbatim("valid.csv"), "target": target}
    data["batch_size"] = batch_size
    data.update(options)
    return data


def model_section(input_dim, layers):
    """``model:`` with its layers one per line and ``init: {from: init.safetensors}``."""
    return Block(input=[input_dim], layers=Items(layers),
                 init={"from": Verbatim("init.safetensors")})


def with_groups(optimizer, param_groups):
    """The optimizer mapping, with ``param_groups`` as its last key when there are any."""
    return dict(optimizer, param_groups=Items(param_groups)) if param_groups else dict(optimizer)


# --------------------------------------------------------------------------
# model, loss, optimizer

LOSSES = {
    "cross_entropy": nn.CrossEntropyLoss, "nll": nn.NLLLoss, "bce": nn.BCELoss,
    "bce_with_logits": nn.BCEWithLogitsLoss, "mse": nn.MSELoss, "l1": nn.L1Loss,
    "smooth_l1": nn.SmoothL1Loss, "huber": nn.HuberLoss, "kl_div": nn.KLDivLoss,
    "poisson_nll": nn.PoissonNLLLoss, "soft_margin": nn.SoftMarginLoss,
    "multilabel_soft_margin": nn.MultiLabelSoftMarginLoss, "multi_margin": nn.MultiMarginLoss,
}

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
}
OPTIMIZERS.update({cls.__name__: cls for cls in list(OPTIMIZERS.values())})


def mlp(hidden, activation, out):
    """graphc layers ``linear(hidden), activation, linear(out)``."""
    return [{"type": "linear", "out": hidden}, {"type": activation}, {"type": "linear", "out": out}]


def build_model(input_dim, layers):
    """The ``nn.Sequential`` of graphc's layer list (linear weights [out, in]); a layer with
    ``requires_grad: false`` frozen as ``module.requires_grad_(False)``."""
    mods, d = [], input_dim
    for layer in layers:
        t = layer["type"]
        if t == "linear":
            mods.append(nn.Linear(d, layer["out"]))
            d = layer["out"]
        else:
            mods.append(MODULES[t]())
        mods[-1].requires_grad_(layer.get("requires_grad", True))
    return nn.Sequential(*mods)


def init_model(case_dir, seed, input_dim, layers):
    """Seeds torch, builds the model and saves its ``state_dict`` as ``init.safetensors``."""
    torch.manual_seed(seed)
    model = build_model(input_dim, layers)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(case_dir, "init.safetensors"))
    return model


# graphc's layer types -> torch modules built from the mapping's other keys (nn's own
# constructor arguments); the layers whose sizes graphc infers are in ``torch_layer``.
MODULES = {
    "identity": nn.Identity, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU,
    "celu": nn.CELU, "gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish,
    "softplus": nn.Softplus, "hardtanh": nn.Hardtanh, "relu6": nn.ReLU6,
    "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish, "logsigmoid": nn.LogSigmoid,
    "softsign": nn.Softsign, "tanhshrink": nn.Tanhshrink, "prelu": nn.PReLU,
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "log_softmax": lambda: nn.LogSoftmax(dim=-1),
    "max_pool1d": nn.MaxPool1d, "max_pool2d": nn.MaxPool2d,
    "avg_pool1d": nn.AvgPool1d, "avg_pool2d": nn.AvgPool2d,
    "adaptive_avg_pool1d": nn.AdaptiveAvgPool1d, "adaptive_avg_pool2d": nn.AdaptiveAvgPool2d,
    "adaptive_max_pool2d": nn.AdaptiveMaxPool2d, "flatten": nn.Flatten,
    "embedding": nn.Embedding,
}


def torch_layer(layer, shape):
    """The torch module of one graphc layer mapping (not dropout, not a block), given one
    sample's input ``shape``: what graphc infers (in_features, in_channels, num_features,
    num_channels, normalized_shape) comes from ``shape``; list values become tuples."""
    t = layer["type"]
    kw = {k: tuple(v) if isinstance(v, list) else v
          for k, v in layer.items() if k not in ("type", "name", "requires_grad")}
    if t == "linear":
        return nn.Linear(shape[-1], kw["out"], bias=kw.get("bias", True))
    if t in ("conv1d", "conv2d"):
        return (nn.Conv1d if t == "conv1d" else nn.Conv2d)(shape[0], **kw)
    if t in ("batch_norm1d", "batch_norm2d"):
        assert len(shape) in ((3,) if t == "batch_norm2d" else (1, 2)), (t, shape)
        return (nn.BatchNorm2d if t == "batch_norm2d" else nn.BatchNorm1d)(shape[0], **kw)
    if t == "layer_norm":
        return nn.LayerNorm(kw.pop("normalized_shape", shape[-1]), **kw)
    if t == "group_norm":
        kw.pop("num_channels", None)
        return nn.GroupNorm(num_channels=shape[0], **kw)
    return MODULES[t](**kw)


def sequential(input_shape, layers, probe=None):
    """The ``nn.Sequential`` of the layers, each sized by running ``probe`` (by default one
    zero sample of ``input_shape``) through the layers before it."""
    probe = torch.zeros(1, *input_shape) if probe is None else probe
    mods = []
    for layer in layers:
        m = torch_layer(layer, list(probe.shape[1:]))
        probe = m(probe)
        mods.append(m)
    return nn.Sequential(*mods)


def spec_value(v):
    """Layer mappings as spec text writes them: lists of mappings as ``Items`` (flow YAML),
    ``None`` as ``null``."""
    if isinstance(v, list) and v and isinstance(v[0], dict):
        return Items([spec_value(x) for x in v])
    if isinstance(v, dict):
        return {k: spec_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [spec_value(x) for x in v]
    return Verbatim("null") if v is None else v


def build_loss(loss):
    """The torch loss module of graphc's loss mapping (lists become float32 tensors)."""
    kw = {k: (torch.tensor(v, dtype=torch.float32) if isinstance(v, list) else v)
          for k, v in loss.items() if k != "type"}
    return LOSSES[loss["type"]](**kw)


def torch_options(options):
    """graphc options as torch keyword arguments (``betas`` as a tuple)."""
    return {k: (tuple(v) if k == "betas" else v) for k, v in options.items()}


def group_params(named_params, param_groups):
    """One list of tensors per graphc group: each ``param_groups`` entry (a parameter goes
    to the first entry with a matching pattern), then the parameters no pattern matched."""
    groups = param_groups or []
    per_group = [[] for _ in range(len(groups) + 1)]
    for name, p in named_params:
        i = next((i for i, g in enumerate(groups)
                  if any(fnmatch.fnmatchcase(name, pat) for pat in g["params"])), len(groups))
        per_group[i].append(p)
    for g, members in zip(groups, per_group):
        assert members, f"group {g} matches nothing"
    return per_group


def torch_optimizer(per_group, optimizer, param_groups):
    """``torch.optim.<Class>(groups, **options, foreach=False)``: one torch group per
    non-empty graphc group, with that group's options."""
    groups = []
    for params, spec_g in zip(per_group, (param_groups or []) + [{}]):
        if params:
            groups.append(dict(params=params, **torch_options(
                {k: v for k, v in spec_g.items() if k != "params"})))
    top = {k: v for k, v in optimizer.items() if k != "type"}
    return OPTIMIZERS[optimizer["type"]](groups, **torch_options(top), foreach=False)


def model_optimizer(model, optimizer, param_groups=None):
    """``torch_optimizer`` over the model's parameters, grouped as graphc groups them."""
    return torch_optimizer(group_params(model.named_parameters(), param_groups),
                           optimizer, param_groups)


# --------------------------------------------------------------------------
# training

def as_tensors(x, y):
    """float32 features and the targets as they are (int64 classes or float32 values)."""
    return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(y)))


def batches(xt, yt, batch_size):
    """Batches in file order; the last partial batch is kept."""
    for start in range(0, len(xt), batch_size):
        yield xt[start:start + batch_size], yt[start:start + batch_size]


def update(model, opt, loss_fn, xb, yb):
    """One plain step; returns ``loss.item()``, the loss before the update."""
    opt.zero_grad()
    loss = loss_fn(model(xb), yb)
    loss.backward()
    opt.step()
    return loss.item()


def train(name, model, opt, loss_fn, x, y, *, batch_size, epochs):
    """PyTorch's plain loop; returns the loss of every update. ``x`` as a tensor is used as
    it is (e.g. int64 indices for an embedding), as an array it becomes float32."""
    xt, yt = as_tensors(x, y)
    if isinstance(x, torch.Tensor):
        xt = x
    losses = []
    for _epoch in range(epochs):
        for xb, yb in batches(xt, yt, batch_size):
            v = update(model, opt, loss_fn, xb, yb)
            if not math.isfinite(v):
                raise RuntimeError(f"{name}: non-finite loss {v}")
            losses.append(v)
    return losses


# --------------------------------------------------------------------------
# JSON

def number(v):
    """A float32 value as JSON: a double, or a string for NaN and infinities."""
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def flat(t):
    """A tensor's values, row-major: ints for int64, else ``number``s."""
    t = t.detach()
    data = t.reshape(-1).tolist()
    if t.dtype == torch.int64:
        return [int(v) for v in data]
    return [number(v) for v in data]


def tensor_json(t):
    return {"shape": list(t.shape), "data": flat(t)}


def write_expected(case_dir, model, **series):
    """``expected.json``: each of ``series`` on one line, then ``final`` (every tensor of the
    model's ``state_dict``, one per line). Returns what it wrote, as a dict."""
    expected = dict(series, final={k: tensor_json(v) for k, v in model.state_dict().items()})
    out = ["{"] + [f" {json.dumps(k)}: " + json.dumps(v) + "," for k, v in series.items()]
    out.append(' "final": {')
    items = list(expected["final"].items())
    for i, (k, v) in enumerate(items):
        out.append(f"  {json.dumps(k)}: " + json.dumps(v) + ("," if i + 1 < len(items) else ""))
    out += [" }", "}"]
    write_text(os.path.join(case_dir, "expected.json"), "\n".join(out) + "\n")
    return expected


def write_cases(path, cases, *, head=None, indent="", dumps=json.dumps):
    """``{<head keys>, "cases": [...]}`` with one case per line (after ``indent``), so a
    regeneration diffs case by case."""
    start = json.dumps(head)[:-1] + ", " if head else "{"
    body = ",\n".join(indent + dumps(c) for c in cases)
    write_text(path, start + '"cases": [\n' + body + "\n]}\n")


# --------------------------------------------------------------------------
# a plain training case (skeleton.py's layout)

def teacher_targets(rng, x, loss, classes):
    """Targets from a random teacher of the features ``x``: ``classes`` values of a random
    linear map for ``mse``, else class labels."""
    if loss["type"] == "mse":
        w = rng.standard_normal((x.shape[1], classes))
        return f32(x.astype(np.float64) @ w / np.sqrt(x.shape[1]))
    return teacher_classes(rng, x, classes)


def write_case(script, out_root, name, *, x, y, input_shape, model, loss, optimizer,
               batch_size, epochs, seed=None, **train):
    """Makes ``<out_root>/<name>/`` with ``data.csv`` (the rows ``x``, then the targets:
    ``label`` for class labels, ``y0, y1, ...`` for float32 [N, k]) and ``spec.yaml``, whose
    ``model`` has ``input``, the ``model`` mapping's keys (``layers``, or ``nodes`` and
    ``output``) and ``init.safetensors``; ``train`` holds more keys of ``train:``. Returns
    the folder."""
    case_dir = make_case_dir(out_root, name)
    target = names("y", y.shape[1]) if y.ndim == 2 else "label"
    header = names("x", x.shape[1]) + (target if y.ndim == 2 else [target])
    write_csv(os.path.join(case_dir, "data.csv"), header, x, y)
    spec = {} if seed is None else {"seed": seed}
    spec.update({
        "data": data_section(target, batch_size, shuffle=False, drop_last=False),
        "model": Block(input=list(input_shape), **model,
                       init={"from": Verbatim("init.safetensors")}),
        "loss": loss,
        "optimizer": Block(optimizer),
        "train": Block(epochs=epochs, **train),
    })
    write_spec(case_dir, script, spec)
    return case_dir


def fit_case(name, case_dir, model, *, loss, optimizer, samples, y, batch_size, epochs,
             state=None):
    """Saves the initial parameters (``state``'s ``state_dict``, by default ``model``'s) as
    ``init.safetensors``, trains ``model`` with PyTorch's plain loop and writes
    ``expected.json``."""
    state = model if state is None else state
    save_file({k: v.contiguous() for k, v in state.state_dict().items()},
              os.path.join(case_dir, "init.safetensors"))
    opt = model_optimizer(model, optimizer)
    losses = train(name, model, opt, build_loss(loss), samples, y, batch_size=batch_size,
                   epochs=epochs)
    write_expected(case_dir, state, losses=losses)
    print(f"{name}: {len(losses)} steps, loss {losses[0]:.5f} -> {losses[-1]:.5f}")


def run_plain_case(script, out_root, name, *, seed, header, x, y, input_dim, layers, loss,
                   optimizer, batch_size, epochs, param_groups=None, csv_copy=None):
    """Writes ``<out_root>/<name>/`` (``spec.yaml``, ``data.csv``, ``init.safetensors``,
    ``expected.json``) for a run of PyTorch's plain loop, checks the files read back, and
    returns the losses. ``x``: float32 [N, input_dim]; ``y``: float32 [N, k] or int64 [N];
    ``csv_copy``: a CSV file to copy as ``data.csv`` instead of writing ``header``, x, y."""
    case_dir = make_case_dir(out_root, name)
    if csv_copy is not None:
        shutil.copyfile(csv_copy, os.path.join(case_dir, "data.csv"))
    else:
        write_csv(os.path.join(case_dir, "data.csv"), header, x, y)
    target = header[input_dim:]
    target = target[0] if len(target) == 1 else list(target)
    write_spec(case_dir, script, {
        "data": data_section(target, batch_size, shuffle=False, drop_last=False),
        "model": model_section(input_dim, layers),
        "loss": loss,
        "optimizer": Block(with_groups(optimizer, param_groups)),
        "train": Block(epochs=epochs),
    })
    model = init_model(case_dir, seed, input_dim, layers)
    opt = model_optimizer(model, optimizer, param_groups)
    losses = train(name, model, opt, build_loss(loss), x, y, batch_size=batch_size, epochs=epochs)
    expected = write_expected(case_dir, model, losses=losses)
    check_files(case_dir, x, y, input_dim, expected)
    return losses


def check_files(case_dir, x, y, input_dim, expected):
    """Self-check: the written files read back to exactly what was trained on."""
    with open(os.path.join(case_dir, "data.csv")) as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    assert len(rows) == len(x)
    feats = np.array([[np.float32(float(c)) for c in r[:input_dim]] for r in rows], dtype=np.float32)
    assert np.array_equal(feats.view(np.uint32), np.asarray(x, np.float32).view(np.uint32))
    if np.issubdtype(y.dtype, np.floating):
        tg = np.array([[np.float32(float(c)) for c in r[input_dim:]] for r in rows], dtype=np.float32)
        assert np.array_equal(tg.view(np.uint32), y.reshape(len(rows), -1).view(np.uint32))
    init = load_file(os.path.join(case_dir, "init.safetensors"))
    assert set(init) == set(expected["final"]), sorted(init)
    for k, v in expected["final"].items():
        assert list(init[k].shape) == v["shape"] and init[k].dtype == torch.float32, k
    with open(os.path.join(case_dir, "expected.json")) as f:
        back = json.load(f)
    assert back == expected
    for v in back["final"].values():
        a = np.array(v["data"], dtype=np.float64)
        assert np.array_equal(a, a.astype(np.float32).astype(np.float64))
