#!/usr/bin/env python3
"""PyTorch golden cases for graphc's optimizers (torch.optim, single-tensor path).

What it generates (under ``tests/goldens/optimizers/``, relative to the repository root)
------------------------------------------------------------------------------------------

``fixed_gradients.json``
    ``{"cases": [...]}``, one case per optimizer and option combination. Each case is::

        {"name": ..., "optimizer": "<YAML flow mapping: graphc's optimizer: section>",
         "params": [{"name": "0.weight", "shape": [3, 4], "init": [...]}, ...],
         "grads": [[g_param0, g_param1, ...] for each step],        # flat, row-major
         "schedule": [[[group, key, value], ...] for each step],    # set before that step
         "trajectory": [[p_param0, p_param1, ...] after each step],
         "state": {"0.weight.exp_avg": [...], ...}}                # opt.state after the last step

    PyTorch runs ``opt = torch.optim.<Class>(groups, ..., foreach=False)`` on leaf tensors
    holding ``init``; before step ``k`` it sets ``param_groups[group][key] = value`` for each
    entry of ``schedule[k]`` (``lr``, ``momentum``, or ``betas`` as a pair: what a scheduler
    changes; groups numbered as graphc numbers them: ``param_groups`` in order, then the
    parameters no pattern matched), sets ``p.grad = grads[k][i]`` and calls ``opt.step()``;
    ``trajectory[k]`` is every parameter after that step; ``state`` holds every tensor of
    ``opt.state[p]`` but ``step`` after the last step, keyed ``PARAM.KEY`` (0-d tensors as
    one-element lists). All floats are exactly float32
    values (the gradients and initial values are rounded to float32 before use).

``<case>/`` (training runs)
    ``spec.yaml``, ``data.csv``, ``init.safetensors`` and ``expected.json`` exactly as
    ``tools/goldens/skeleton.py`` writes them (``losses``: ``loss.item()`` of every update;
    ``final``: every ``state_dict`` tensor after training), with the optimizer built as
    ``torch.optim.<Class>(groups, **options, foreach=False)``. The loop::

        for epoch in range(E):
            for x, y in batches:                  # file order, last partial batch kept
                opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()

How to rerun
------------
From the repository root::

    venv/bin/python tools/goldens/optimizers.py [--out DIR]

Deterministic: seeded data, gradients and init; a rerun with the same torch writes the
same bytes. Made with torch 2.15.0+cu132 on CPU, one thread.
"""

import argparse
import fnmatch
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skeleton  # noqa: E402  (helpers: write_csv, build_model, build_loss, tensor_json, ...)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CLASSES = {
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
CLASSES.update({cls.__name__: cls for cls in list(CLASSES.values())})

STEPS = 12


# --------------------------------------------------------------------------
# building torch optimizers from graphc's optimizer section

def torch_kwargs(options):
    out = {}
    for k, v in options.items():
        out[k] = tuple(v) if k == "betas" else v
    return out


def torch_optimizer(named_params, optimizer, param_groups):
    """named_params: [(name, tensor)]; groups in graphc's order (param_groups, then the rest)."""
    cls = CLASSES[optimizer["type"]]
    top = {k: v for k, v in optimizer.items() if k != "type"}
    groups = []
    taken = set()
    for g in param_groups or []:
        members = [p for name, p in named_params
                   if name not in taken and any(fnmatch.fnmatchcase(name, pat) for pat in g["params"])]
        names = [name for name, p in named_params
                 if name not in taken and any(fnmatch.fnmatchcase(name, pat) for pat in g["params"])]
        assert members, f"group {g} matches nothing"
        taken.update(names)
        groups.append(dict(torch_kwargs({k: v for k, v in g.items() if k != "params"}),
                           params=members))
    rest = [p for name, p in named_params if name not in taken]
    if rest:
        groups.append({"params": rest})
    return cls(groups, **torch_kwargs(top), foreach=False)


def optimizer_yaml(optimizer, param_groups):
    items = [f"{k}: {skeleton.yaml_scalar(v)}" for k, v in optimizer.items()]
    if param_groups:
        items.append("param_groups: [" + ", ".join(skeleton.yaml_flow(g) for g in param_groups) + "]")
    return "{" + ", ".join(items) + "}"


# --------------------------------------------------------------------------
# (a) fixed gradients

def f32_list(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def fixed_case(name, optimizer, param_groups=None, schedule=None, seed=0, grad_scale=1.0):
    rng = np.random.default_rng(seed)
    shapes = [("0.weight", [3, 4]), ("0.bias", [4])]
    params = [(n, torch.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True))
              for n, s in shapes]
    init = [f32_list(p) for _, p in params]
    grads = []
    for k in range(STEPS):
        step_grads = []
        for _, p in params:
            g = (grad_scale * rng.standard_normal(p.shape)).astype(np.float32)
            # Some exact zeros, and one step of exactly zero gradient for the bias.
            g[rng.random(p.shape) < 0.1] = 0.0
            if k == 3 and p.dim() == 1:
                g[:] = 0.0
            step_grads.append(g)
        grads.append(step_grads)
    opt = torch_optimizer(params, optimizer, param_groups)
    trajectory = []
    schedule = schedule or [[] for _ in range(STEPS)]
    for k in range(STEPS):
        for group, key, value in schedule[k]:
            opt.param_groups[group][key] = tuple(value) if key == "betas" else value
        for (_, p), g in zip(params, grads[k]):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        trajectory.append([f32_list(p) for _, p in params])
        for row in trajectory[-1]:
            if not all(np.isfinite(row)):
                raise RuntimeError(f"{name}: non-finite parameter")
    state = {}
    for n, p in params:
        for key, value in opt.state[p].items():
            if key != "step" and value is not None:
                state[f"{n}.{key}"] = f32_list(value)
    return {
        "name": name,
        "optimizer": optimizer_yaml(optimizer, param_groups),
        "params": [{"name": n, "shape": s, "init": i} for (n, s), i in zip(shapes, init)],
        "grads": [[[float(v) for v in g.reshape(-1)] for g in step] for step in grads],
        "schedule": schedule,
        "trajectory": trajectory,
        "state": state,
    }


def fixed_cases():
    cases = []
    add = lambda *a, **k: cases.append(fixed_case(*a, seed=len(cases) + 1, **k))  # noqa: E731
    # SGD
    add("sgd_plain", {"type": "sgd", "lr": 0.1})
    add("sgd_momentum", {"type": "sgd", "lr": 0.05, "momentum": 0.9})
    add("sgd_momentum_dampening", {"type": "sgd", "lr": 0.05, "momentum": 0.8, "dampening": 0.3})
    add("sgd_nesterov_weight_decay", {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                                      "weight_decay": 0.01})
    add("sgd_maximize", {"type": "SGD", "lr": 0.02, "momentum": 0.5, "maximize": True})
    add("sgd_param_groups", {"type": "sgd", "lr": 0.1, "momentum": 0.9},
        param_groups=[{"params": ["0.bias"], "lr": 0.01, "momentum": 0.5, "nesterov": True}])
    # Adam / AdamW
    add("adam_default", {"type": "adam"})
    add("adam_lr_betas_eps", {"type": "adam", "lr": 0.01, "betas": [0.8, 0.95], "eps": 1e-6})
    add("adam_amsgrad", {"type": "adam", "lr": 0.01, "amsgrad": True})
    add("adam_weight_decay_maximize", {"type": "Adam", "lr": 0.01, "weight_decay": 0.1,
                                       "maximize": True})
    add("adam_decoupled_weight_decay", {"type": "adam", "lr": 0.01, "weight_decay": 0.1,
                                        "decoupled_weight_decay": True, "amsgrad": True})
    add("adam_param_groups_lr_betas", {"type": "adam", "lr": 0.01},
        param_groups=[{"params": ["0.bias"], "lr": 0.05, "betas": [0.5, 0.9]}])
    add("adam_large_beta1_weight", {"type": "adam", "lr": 0.01, "betas": [0.3, 0.999]})
    add("adamw_default", {"type": "AdamW", "lr": 0.01})
    add("adamw_amsgrad_maximize", {"type": "adamw", "lr": 0.01, "weight_decay": 0.1,
                                   "amsgrad": True, "maximize": True})
    # RMSprop
    add("rmsprop_default", {"type": "rmsprop"})
    add("rmsprop_momentum", {"type": "rmsprop", "lr": 0.01, "momentum": 0.9})
    add("rmsprop_centered", {"type": "RMSprop", "lr": 0.01, "centered": True, "alpha": 0.9})
    add("rmsprop_centered_momentum_weight_decay", {"type": "rmsprop", "lr": 0.01, "centered": True,
                                                   "momentum": 0.5, "weight_decay": 0.1})
    add("rmsprop_maximize_small_alpha", {"type": "rmsprop", "lr": 0.01, "alpha": 0.3,
                                         "maximize": True, "eps": 1e-4})
    # Adagrad
    add("adagrad_default", {"type": "adagrad"})
    add("adagrad_lr_decay", {"type": "Adagrad", "lr": 0.1, "lr_decay": 0.05})
    add("adagrad_initial_accumulator_weight_decay", {"type": "adagrad", "lr": 0.1,
                                                     "initial_accumulator_value": 0.5,
                                                     "weight_decay": 0.1, "eps": 1e-6})
    add("adagrad_maximize", {"type": "adagrad", "lr": 0.05, "maximize": True})
    # Adadelta
    add("adadelta_default", {"type": "adadelta"})
    add("adadelta_rho_weight_decay", {"type": "Adadelta", "lr": 0.5, "rho": 0.5,
                                      "weight_decay": 0.1, "eps": 1e-4})
    add("adadelta_maximize", {"type": "adadelta", "maximize": True})
    # Adamax
    add("adamax_default", {"type": "adamax"})
    add("adamax_weight_decay_betas", {"type": "Adamax", "lr": 0.01, "betas": [0.8, 0.9],
                                      "weight_decay": 0.1})
    add("adamax_maximize", {"type": "adamax", "lr": 0.01, "maximize": True, "eps": 1e-3})
    # NAdam
    add("nadam_default", {"type": "nadam"})
    add("nadam_weight_decay", {"type": "NAdam", "lr": 0.01, "weight_decay": 0.1})
    add("nadam_decoupled_weight_decay", {"type": "nadam", "lr": 0.01, "weight_decay": 0.1,
                                         "decoupled_weight_decay": True})
    add("nadam_momentum_decay_maximize", {"type": "nadam", "lr": 0.01, "momentum_decay": 0.1,
                                          "betas": [0.8, 0.99], "maximize": True})
    # RAdam (rho_t > 5 from step 6 on with beta2 = 0.999; from step 3 with beta2 = 0.9)
    add("radam_default", {"type": "radam"})
    add("radam_beta2_weight_decay", {"type": "RAdam", "lr": 0.01, "betas": [0.9, 0.9],
                                     "weight_decay": 0.1})
    add("radam_decoupled_weight_decay_maximize", {"type": "radam", "lr": 0.01, "weight_decay": 0.1,
                                                  "decoupled_weight_decay": True, "maximize": True})

    # Hyperparameters changed between steps (what a scheduler does), without a recompile.
    def per_step(f):
        return [f(k) for k in range(STEPS)]
    add("scheduled_sgd_lr_momentum", {"type": "sgd", "lr": 0.1, "momentum": 0.9},
        param_groups=[{"params": ["0.bias"], "lr": 0.01}],
        schedule=per_step(lambda k: [[0, "lr", 0.01 * (k + 1)], [1, "momentum", 0.95 - 0.01 * k]]))
    add("scheduled_adam_lr_beta1", {"type": "adam", "lr": 0.01, "amsgrad": True},
        schedule=per_step(lambda k: [[0, "lr", 0.001 * (k + 1)], [0, "betas", [0.95 - 0.01 * k, 0.999]]]))
    add("scheduled_rmsprop_momentum", {"type": "rmsprop", "lr": 0.01, "momentum": 0.9},
        schedule=per_step(lambda k: [[0, "momentum", 0.85 + 0.01 * k]]))
    add("scheduled_nadam_beta1", {"type": "nadam", "lr": 0.01},
        schedule=per_step(lambda k: [[0, "betas", [0.85 + 0.01 * k, 0.999]]]))
    add("scheduled_radam_lr", {"type": "radam", "lr": 0.01},
        schedule=per_step(lambda k: [[0, "lr", 0.02 / (k + 1)]]))
    add("scheduled_adagrad_lr", {"type": "adagrad", "lr": 0.1, "lr_decay": 0.01},
        schedule=per_step(lambda k: [[0, "lr", 0.1 * 0.9 ** k]]))
    return cases


# --------------------------------------------------------------------------
# (b) training runs

def run_case(out_root, name, *, seed, header, columns, x, y, input_dim, layers, loss, optimizer,
             batch_size, epochs, param_groups=None):
    case_dir = os.path.join(out_root, name)
    os.makedirs(case_dir, exist_ok=True)
    skeleton.write_csv(os.path.join(case_dir, "data.csv"), header, columns)
    target = header[input_dim:]
    target = target[0] if len(target) == 1 else list(target)
    skeleton.write_spec(os.path.join(case_dir, "spec.yaml"), target=target, batch_size=batch_size,
                        input_dim=input_dim, layers=layers, loss=loss, optimizer=optimizer,
                        epochs=epochs, param_groups=param_groups)
    spec_path = os.path.join(case_dir, "spec.yaml")
    with open(spec_path) as f:
        text = f.read().replace("tools/goldens/skeleton.py", "tools/goldens/optimizers.py")
    with open(spec_path, "w", newline="\n") as f:
        f.write(text)

    torch.manual_seed(seed)
    model = skeleton.build_model(input_dim, layers)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(case_dir, "init.safetensors"))
    opt = torch_optimizer(list(model.named_parameters()), optimizer, param_groups)
    loss_fn = skeleton.build_loss(loss)

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y))
    n = xt.shape[0]
    losses = []
    for _epoch in range(epochs):
        for start in range(0, n, batch_size):
            xb, yb = xt[start:start + batch_size], yt[start:start + batch_size]
            opt.zero_grad()
            l = loss_fn(model(xb), yb)
            l.backward()
            opt.step()
            v = l.item()
            if not np.isfinite(v):
                raise RuntimeError(f"{name}: non-finite loss {v}")
            losses.append(v)
    expected = {
        "losses": [float(v) for v in losses],
        "final": {k: skeleton.tensor_json(v) for k, v in model.state_dict().items()},
    }
    with open(os.path.join(case_dir, "expected.json"), "w", newline="\n") as f:
        f.write(skeleton.format_expected(expected))
    skeleton.check_files(case_dir, x, y, input_dim, expected)
    print(f"{name}: steps={len(losses)} loss {losses[0]:.5f} -> {losses[-1]:.5f}")


def training_cases(out):
    f32 = skeleton.f32
    mlp = [{"type": "linear", "out": 8}, {"type": "relu"}, {"type": "linear", "out": 3}]

    def classification(name, seed, optimizer, param_groups=None, layers=mlp, rows=48, batch=16,
                       epochs=3):
        rng = np.random.default_rng(seed)
        x = f32(rng.standard_normal((rows, 4)))
        lab = skeleton.teacher_classes(rng, x, 3)
        run_case(out, name, seed=seed, header=["f0", "f1", "f2", "f3", "label"],
                 columns=[x[:, i] for i in range(4)] + [lab], x=x, y=lab, input_dim=4,
                 layers=layers, loss={"type": "cross_entropy"}, optimizer=optimizer,
                 batch_size=batch, epochs=epochs, param_groups=param_groups)

    def regression(name, seed, optimizer, param_groups=None, epochs=3):
        rng = np.random.default_rng(seed)
        x = f32(rng.standard_normal((40, 3)))
        yv = f32(np.tanh(x.astype(np.float64) @ [1.5, -2.0, 0.5]) + 0.1 * rng.standard_normal(40))
        run_case(out, name, seed=seed, header=["x0", "x1", "x2", "y"],
                 columns=[x[:, 0], x[:, 1], x[:, 2], yv], x=x, y=yv.reshape(-1, 1), input_dim=3,
                 layers=[{"type": "linear", "out": 6}, {"type": "tanh"}, {"type": "linear", "out": 1}],
                 loss={"type": "mse"}, optimizer=optimizer, batch_size=12, epochs=epochs,
                 param_groups=param_groups)

    # 48 rows / batch 16 / 3 epochs = 9 steps; 44 rows / batch 12 (12, 12, 12, 8) = 12 steps.
    classification("mlp_sgd_nesterov_weight_decay", 201,
                   {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
                   rows=44, batch=12)
    classification("mlp_sgd_groups_momentum", 202, {"type": "SGD", "lr": 0.1, "momentum": 0.9},
                   param_groups=[{"params": ["2.*"], "lr": 0.05, "momentum": 0.5, "dampening": 0.1},
                                 {"params": ["0.bias"], "nesterov": True}], rows=44, batch=12)
    classification("mlp_adam", 203, {"type": "adam", "lr": 0.01}, rows=44, batch=12)
    classification("mlp_adam_amsgrad_weight_decay", 204,
                   {"type": "adam", "lr": 0.01, "amsgrad": True, "weight_decay": 0.01}, rows=44, batch=12)
    classification("mlp_adamw", 205, {"type": "AdamW", "lr": 0.01}, rows=44, batch=12)
    classification("mlp_adam_param_groups_lr_betas", 206, {"type": "adam", "lr": 0.01},
                   param_groups=[{"params": ["0.*"], "lr": 0.001, "betas": [0.8, 0.99]},
                                 {"params": ["2.bias"], "amsgrad": True}], rows=44, batch=12)
    classification("mlp_rmsprop_centered_momentum", 207,
                   {"type": "rmsprop", "lr": 0.01, "centered": True, "momentum": 0.9, "weight_decay": 0.01},
                   rows=44, batch=12)
    classification("mlp_rmsprop", 208, {"type": "RMSprop", "lr": 0.01}, rows=44, batch=12)
    classification("mlp_adagrad_lr_decay", 209,
                   {"type": "adagrad", "lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
                   rows=44, batch=12)
    classification("mlp_adadelta", 210, {"type": "adadelta", "weight_decay": 0.01}, rows=44, batch=12)
    classification("mlp_adamax", 211, {"type": "Adamax", "lr": 0.01}, rows=44, batch=12)
    classification("mlp_nadam", 212, {"type": "nadam", "lr": 0.01}, rows=44, batch=12)
    classification("mlp_nadam_decoupled_weight_decay", 213,
                   {"type": "NAdam", "lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
                   rows=44, batch=12)
    classification("mlp_radam", 214, {"type": "radam", "lr": 0.01, "betas": [0.9, 0.99]},
                   rows=44, batch=12)
    classification("mlp_radam_decoupled_weight_decay", 215,
                   {"type": "RAdam", "lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
                   rows=44, batch=12)
    regression("regression_adam_maximize_groups", 216, {"type": "adam", "lr": 0.001, "maximize": True},
               param_groups=[{"params": ["2.*"], "maximize": False, "lr": 0.01}])
    regression("regression_sgd_momentum_dampening", 217,
               {"type": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.5})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "goldens", "optimizers"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    cases = fixed_cases()
    with open(os.path.join(args.out, "fixed_gradients.json"), "w", newline="\n") as f:
        f.write('{"cases": [\n')
        for i, c in enumerate(cases):
            f.write(" " + json.dumps(c) + (",\n" if i + 1 < len(cases) else "\n"))
        f.write("]}\n")
    print(f"fixed_gradients.json: {len(cases)} cases x {STEPS} steps")
    training_cases(args.out)
    print(f"torch {torch.__version__}, numpy {np.__version__}, wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
