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

import os

import numpy as np
import torch

import common

STEPS = 12


def optimizer_yaml(optimizer, param_groups):
    """graphc's ``optimizer:`` section (with its ``param_groups``) as one YAML flow mapping."""
    return common.yaml_value(common.with_groups(optimizer, param_groups))


# --------------------------------------------------------------------------
# (a) fixed gradients

def fixed_case(name, optimizer, param_groups=None, schedule=None, seed=0, grad_scale=1.0):
    rng = np.random.default_rng(seed)
    shapes = [("0.weight", [3, 4]), ("0.bias", [4])]
    params = [(n, torch.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True))
              for n, s in shapes]
    init = [common.flat(p) for _, p in params]
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
    opt = common.torch_optimizer(common.group_params(params, param_groups), optimizer, param_groups)
    trajectory = []
    schedule = schedule or [[] for _ in range(STEPS)]
    for k in range(STEPS):
        for group, key, value in schedule[k]:
            opt.param_groups[group][key] = tuple(value) if key == "betas" else value
        for (_, p), g in zip(params, grads[k]):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        if not all(torch.isfinite(p).all() for _, p in params):
            raise RuntimeError(f"{name}: non-finite parameter")
        trajectory.append([common.flat(p) for _, p in params])
    state = {}
    for n, p in params:
        for key, value in opt.state[p].items():
            if key != "step" and value is not None:
                state[f"{n}.{key}"] = common.flat(value)
    return {
        "name": name,
        "optimizer": optimizer_yaml(optimizer, param_groups),
        "params": [{"name": n, "shape": s, "init": i} for (n, s), i in zip(shapes, init)],
        "grads": [[common.flat(torch.from_numpy(g)) for g in step] for step in grads],
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

def run_case(out_root, name, **case):
    """One case in ``skeleton.py``'s layout (``common.run_plain_case``), any optimizer."""
    losses = common.run_plain_case("optimizers.py", out_root, name, **case)
    print(f"{name}: steps={len(losses)} loss {losses[0]:.5f} -> {losses[-1]:.5f}")


def training_cases(out):
    def classification(name, seed, optimizer, param_groups=None, rows=48, batch=16, epochs=3):
        x, lab = common.class_data(np.random.default_rng(seed), rows)
        run_case(out, name, seed=seed, header=common.names("f", 4) + ["label"],
                 x=x, y=lab, input_dim=4, layers=common.mlp(8, "relu", 3), loss={"type": "cross_entropy"}, optimizer=optimizer,
                 batch_size=batch, epochs=epochs, param_groups=param_groups)

    def regression(name, seed, optimizer, param_groups=None, epochs=3):
        rng = np.random.default_rng(seed)
        x = common.f32(rng.standard_normal((40, 3)))
        yv = common.f32(np.tanh(x.astype(np.float64) @ [1.5, -2.0, 0.5])
                        + 0.1 * rng.standard_normal(40))
        run_case(out, name, seed=seed, header=common.names("x", 3) + ["y"],
                 x=x, y=yv.reshape(-1, 1), input_dim=3, layers=common.mlp(6, "tanh", 1),
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
    out = common.setup(__doc__, "optimizers")
    cases = fixed_cases()
    common.write_cases(os.path.join(out, "fixed_gradients.json"), cases, indent=" ")
    print(f"fixed_gradients.json: {len(cases)} cases x {STEPS} steps")
    training_cases(out)
    common.done(out)


if __name__ == "__main__":
    main()
