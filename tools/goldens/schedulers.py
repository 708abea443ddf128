#!/usr/bin/env python3
"""PyTorch golden cases for graphc's learning-rate schedulers.

What it generates (under ``tests/goldens/schedulers/``, relative to the repository root)
------------------------------------------------------------------------------------------

``lr_sequences.json``
    ``{"cases": [{"name", "spec", "steps", "metrics", "lr", "momentum"}, ...]}``: for each
    case a complete graphc spec (YAML text; its data is never read) whose ``optimizer``
    (with ``param_groups``) and ``scheduler`` are built in PyTorch with dummy parameters,
    one per group, groups in graphc's order (``param_groups`` first, the top-level group
    last). ``lr[k][g]`` is ``optimizer.param_groups[g]["lr"]`` after the scheduler's
    constructor (``k = 0``) and after its ``k``-th ``step()`` (``step(metrics[k-1])`` for
    ReduceLROnPlateau); ``momentum[k][g]`` is ``momentum`` (or ``betas[0]``) at the same
    points when the case cycles it, else ``null``. Values are Python floats (doubles).

``<case>/`` (training runs)
    ``spec.yaml``, ``data.csv`` (and ``valid.csv``), ``init.safetensors`` as in
    ``tools/goldens/skeleton.py``, and ``expected.json`` with ``losses`` (``loss.item()``
    of every update), ``lrs`` (``lrs[k][g]``: the learning rate of group ``g`` that update
    ``k+1`` used) and ``final`` (every ``state_dict`` tensor after training). The loop is::

        for epoch in range(E):
            for x, y in batches:                  # file order, last partial batch kept
                opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()
                if interval == "step": sched.step()
            if interval == "epoch":
                sched.step(valid_loss if valid else mean(batch losses))  # plateau
                sched.step()                                             # the others

How to rerun
------------
From the repository root::

    venv/bin/python tools/goldens/schedulers.py [--out DIR]

Deterministic: seeded data and init; a rerun with the same torch writes the same bytes.
"""

import os
import warnings

import numpy as np
import torch
from torch import nn

import common
from common import Block, Verbatim

SCHEDULERS = {
    "step_lr": torch.optim.lr_scheduler.StepLR,
    "multi_step_lr": torch.optim.lr_scheduler.MultiStepLR,
    "exponential_lr": torch.optim.lr_scheduler.ExponentialLR,
    "cosine_annealing_lr": torch.optim.lr_scheduler.CosineAnnealingLR,
    "cosine_annealing_warm_restarts": torch.optim.lr_scheduler.CosineAnnealingWarmRestarts,
    "linear_lr": torch.optim.lr_scheduler.LinearLR,
    "constant_lr": torch.optim.lr_scheduler.ConstantLR,
    "one_cycle_lr": torch.optim.lr_scheduler.OneCycleLR,
    "reduce_lr_on_plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
}
SCHEDULERS.update({cls.__name__: cls for cls in list(SCHEDULERS.values())})


# --------------------------------------------------------------------------
# spec text

def spec_text(*, optimizer, param_groups, scheduler):
    """A complete spec around the optimizer and scheduler of an lr sequence (its data is never read)."""
    return common.spec_text("schedulers.py", {
        "data": Verbatim("{train: {csv: unused.csv, target: y}}"),
        "model": Verbatim("{input: [1], layers: [{type: linear, out: 1}]}"),
        "loss": {"type": "mse"},
        "optimizer": Block(common.with_groups(optimizer, param_groups)),
        "scheduler": scheduler,
        "train": {"epochs": 1},
    })


def torch_scheduler(opt, s):
    s = {k: v for k, v in s.items() if k != "interval"}
    t = s.pop("type")
    if t in ("sequential_lr", "SequentialLR"):
        subs = [torch_scheduler(opt, sub) for sub in s["schedulers"]]
        return torch.optim.lr_scheduler.SequentialLR(opt, subs, milestones=s["milestones"])
    return SCHEDULERS[t](opt, **s)


def momentum_of(group):
    if "betas" in group:
        return group["betas"][0]
    return group.get("momentum")


def cycles_momentum(s):
    if s["type"] in ("one_cycle_lr", "OneCycleLR"):
        return s.get("cycle_momentum", True)
    if s["type"] in ("sequential_lr", "SequentialLR"):
        return any(cycles_momentum(x) for x in s["schedulers"])
    return False


# --------------------------------------------------------------------------
# lr sequences

def sequence_case(name, *, scheduler, steps, optimizer=None, param_groups="default",
                  metrics=None):
    optimizer = optimizer or {"type": "sgd", "lr": 0.1, "momentum": 0.9}
    if param_groups == "default":
        param_groups = [{"params": ["0.*"], "lr": 0.025}]
    n_groups = len(param_groups or []) + 1
    params = [[nn.Parameter(torch.zeros(1))] for _ in range(n_groups)]
    opt = common.torch_optimizer(params, optimizer, param_groups)
    sched = torch_scheduler(opt, scheduler)
    cyc = cycles_momentum(scheduler)
    lrs = [[g["lr"] for g in opt.param_groups]]
    moms = [[momentum_of(g) for g in opt.param_groups]] if cyc else None
    for k in range(steps):
        opt.step()  # no gradients: parameters untouched; keeps PyTorch's order check quiet
        if scheduler["type"] in ("reduce_lr_on_plateau", "ReduceLROnPlateau"):
            sched.step(metrics[k])
        else:
            sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
        if cyc:
            moms.append([momentum_of(g) for g in opt.param_groups])
    return {
        "name": name,
        "spec": spec_text(optimizer=optimizer, param_groups=param_groups, scheduler=scheduler),
        "steps": steps,
        "metrics": metrics,
        "lr": [[float(x) for x in row] for row in lrs],
        "momentum": moms,
    }


def sequence_cases():
    plateau_metrics = [1.0, 0.9, 0.95, 0.95, 0.89, 0.9, 0.9, 0.9, 0.5, 0.6, 0.7, 0.8, 0.4,
                       0.41, 0.42, 0.43, 0.44, 0.45]
    rising = [0.1, 0.2, 0.2, 0.19, 0.3, 0.3, 0.3, 0.31, 0.29, 0.5, 0.5, 0.5]
    c = [
        sequence_case("step_lr", scheduler={"type": "step_lr", "step_size": 3, "gamma": 0.5},
                      steps=12),
        sequence_case("step_lr_default_gamma", scheduler={"type": "StepLR", "step_size": 1},
                      steps=5, param_groups=None),
        sequence_case("multi_step_lr_repeated_milestone",
                      scheduler={"type": "multi_step_lr", "milestones": [2, 5, 5, 8],
                                 "gamma": 0.3}, steps=10),
        sequence_case("exponential_lr", scheduler={"type": "exponential_lr", "gamma": 0.9},
                      steps=15),
        sequence_case("cosine_annealing_lr_past_t_max",
                      scheduler={"type": "cosine_annealing_lr", "T_max": 5, "eta_min": 0.001},
                      steps=23),
        sequence_case("cosine_annealing_lr_default_eta_min",
                      scheduler={"type": "CosineAnnealingLR", "T_max": 7}, steps=10),
        sequence_case("cosine_annealing_warm_restarts",
                      scheduler={"type": "cosine_annealing_warm_restarts", "T_0": 3},
                      steps=10),
        sequence_case("cosine_annealing_warm_restarts_t_mult",
                      scheduler={"type": "cosine_annealing_warm_restarts", "T_0": 2,
                                 "T_mult": 2, "eta_min": 0.001}, steps=16),
        sequence_case("linear_lr_default", scheduler={"type": "linear_lr"}, steps=8),
        sequence_case("linear_lr_decay",
                      scheduler={"type": "linear_lr", "start_factor": 1.0, "end_factor": 0.1,
                                 "total_iters": 4}, steps=7),
        sequence_case("constant_lr_default", scheduler={"type": "constant_lr"}, steps=8),
        sequence_case("constant_lr_half", scheduler={"type": "ConstantLR", "factor": 0.5,
                                                     "total_iters": 3}, steps=5),
        sequence_case("one_cycle_lr_cos_sgd_momentum",
                      scheduler={"type": "one_cycle_lr", "max_lr": 1.0, "total_steps": 20},
                      steps=20),
        sequence_case("one_cycle_lr_linear_per_group",
                      scheduler={"type": "one_cycle_lr", "max_lr": [0.5, 2.0],
                                 "total_steps": 12, "anneal_strategy": "linear",
                                 "pct_start": 0.25, "base_momentum": [0.8, 0.7],
                                 "max_momentum": 0.9}, steps=12),
        sequence_case("one_cycle_lr_three_phase",
                      scheduler={"type": "OneCycleLR", "max_lr": 0.3, "epochs": 3,
                                 "steps_per_epoch": 5, "three_phase": True,
                                 "div_factor": 10.0, "final_div_factor": 100.0}, steps=15),
        sequence_case("one_cycle_lr_without_momentum",
                      scheduler={"type": "one_cycle_lr", "max_lr": 0.2, "total_steps": 9,
                                 "cycle_momentum": False}, steps=9),
        sequence_case("one_cycle_lr_adam_beta1",
                      optimizer={"type": "adam", "lr": 0.001, "betas": [0.9, 0.999]},
                      scheduler={"type": "one_cycle_lr", "max_lr": 0.01, "total_steps": 10},
                      steps=10),
        sequence_case("one_cycle_lr_sgd_without_momentum_starts_cycling",
                      optimizer={"type": "sgd", "lr": 0.1},
                      scheduler={"type": "one_cycle_lr", "max_lr": 0.1, "total_steps": 6},
                      steps=6, param_groups=None),
        sequence_case("reduce_lr_on_plateau_default", scheduler={"type": "reduce_lr_on_plateau",
                                                                 "patience": 2},
                      steps=len(plateau_metrics), metrics=plateau_metrics),
        sequence_case("reduce_lr_on_plateau_cooldown_min_lr",
                      scheduler={"type": "ReduceLROnPlateau", "factor": 0.5, "patience": 0,
                                 "cooldown": 2, "min_lr": [0.01, 0.03], "threshold": 0.05},
                      steps=len(plateau_metrics), metrics=plateau_metrics),
        sequence_case("reduce_lr_on_plateau_abs_threshold",
                      scheduler={"type": "reduce_lr_on_plateau", "factor": 0.2, "patience": 1,
                                 "threshold": 0.05, "threshold_mode": "abs"},
                      steps=len(plateau_metrics), metrics=plateau_metrics),
        sequence_case("reduce_lr_on_plateau_max_mode",
                      scheduler={"type": "reduce_lr_on_plateau", "mode": "max", "factor": 0.5,
                                 "patience": 1, "eps": 0.004},
                      steps=len(rising), metrics=rising),
        sequence_case("reduce_lr_on_plateau_max_abs",
                      scheduler={"type": "reduce_lr_on_plateau", "mode": "max",
                                 "threshold_mode": "abs", "threshold": 0.05, "patience": 0},
                      steps=len(rising), metrics=rising),
        sequence_case("sequential_lr_warm_up_then_cosine",
                      scheduler={"type": "sequential_lr", "milestones": [3],
                                 "schedulers": [
                                     {"type": "linear_lr", "start_factor": 0.1,
                                      "total_iters": 3},
                                     {"type": "cosine_annealing_lr", "T_max": 6,
                                      "eta_min": 0.0001}]}, steps=14),
        sequence_case("sequential_lr_three_stages",
                      scheduler={"type": "SequentialLR", "milestones": [2, 5],
                                 "schedulers": [
                                     {"type": "constant_lr", "factor": 0.5, "total_iters": 2},
                                     {"type": "exponential_lr", "gamma": 0.8},
                                     {"type": "step_lr", "step_size": 2, "gamma": 0.5}]},
                      steps=11),
        sequence_case("sequential_lr_warm_up_then_restarts",
                      scheduler={"type": "sequential_lr", "milestones": [2],
                                 "schedulers": [
                                     {"type": "linear_lr", "start_factor": 0.5,
                                      "total_iters": 2},
                                     {"type": "cosine_annealing_warm_restarts", "T_0": 3,
                                      "T_mult": 2}]}, steps=12),
        sequence_case("sequential_lr_multi_step_after_warm_up",
                      scheduler={"type": "sequential_lr", "milestones": [1],
                                 "schedulers": [
                                     {"type": "constant_lr", "factor": 0.1, "total_iters": 1},
                                     {"type": "multi_step_lr", "milestones": [0, 3],
                                      "gamma": 0.5}]}, steps=6),
        sequence_case("sequential_lr_one_scheduler",
                      scheduler={"type": "sequential_lr", "milestones": [],
                                 "schedulers": [{"type": "exponential_lr", "gamma": 0.5}]},
                      steps=4),
    ]
    return c


# --------------------------------------------------------------------------
# training runs

def targets(yt):
    """Float targets as the model's [N, 1] output; class indices as they are."""
    return yt.reshape(-1, 1) if yt.dtype == torch.float32 and yt.ndim == 1 else yt


def run_case(out_root, name, *, seed, header, x, y, xv=None, yv=None, input_dim, layers,
             loss, optimizer, scheduler, batch_size, epochs, param_groups=None):
    case_dir = common.make_case_dir(out_root, name)
    common.write_csv(os.path.join(case_dir, "data.csv"), header, x, y)
    if xv is not None:
        common.write_csv(os.path.join(case_dir, "valid.csv"), header, xv, yv)
    assert len(header) == input_dim + 1, "one target column"
    common.write_spec(case_dir, "schedulers.py", {
        "data": common.data_section(header[input_dim], batch_size, valid=xv is not None,
                                    shuffle=False),
        "model": common.model_section(input_dim, layers),
        "loss": loss,
        "optimizer": Block(common.with_groups(optimizer, param_groups)),
        "scheduler": scheduler,
        "train": {"epochs": epochs},
    })

    model = common.init_model(case_dir, seed, input_dim, layers)
    opt = common.model_optimizer(model, optimizer, param_groups)
    sched = torch_scheduler(opt, scheduler)
    interval = scheduler.get("interval", "step" if scheduler["type"] == "one_cycle_lr"
                             else "epoch")
    loss_fn = common.build_loss(loss)

    xt, yt = common.as_tensors(x, y)
    yt = targets(yt)
    losses, lrs = [], []
    valid_losses = []
    for _epoch in range(epochs):
        batch_losses = []
        for xb, yb in common.batches(xt, yt, batch_size):
            lrs.append([g["lr"] for g in opt.param_groups])
            v = common.update(model, opt, loss_fn, xb, yb)
            losses.append(v)
            batch_losses.append(v)
            if interval == "step":
                sched.step()
        if xv is not None:
            with torch.no_grad():
                xvt, yvt = common.as_tensors(xv, yv)
                vl = loss_fn(model(xvt), targets(yvt)).item()
            valid_losses.append(vl)
        if interval == "epoch":
            if scheduler["type"] == "reduce_lr_on_plateau":
                metric = vl if xv is not None else sum(batch_losses) / len(batch_losses)
                sched.step(metric)
            else:
                sched.step()
        assert all(np.isfinite(losses)), name

    common.write_expected(case_dir, model, losses=losses,
                          lrs=[[float(v) for v in row] for row in lrs],
                          valid_losses=valid_losses)
    print(f"{name}: steps={len(losses)} loss {losses[0]:.5f} -> {losses[-1]:.5f} "
          f"lr {lrs[0]} -> {lrs[-1]}")


def training_cases(out):
    f32 = common.f32
    mlp = common.mlp(8, "relu", 3)
    class_header = common.names("f", 4) + ["label"]

    x, lab = common.class_data(np.random.default_rng(301), 40)
    run_case(out, "one_cycle_sgd_momentum", seed=301,
             header=class_header, x=x, y=lab, input_dim=4, layers=mlp,
             loss={"type": "cross_entropy"},
             optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.9},
             scheduler={"type": "one_cycle_lr", "max_lr": 0.5, "total_steps": 15},
             batch_size=8, epochs=3)

    rng = np.random.default_rng(302)
    x = f32(rng.standard_normal((30, 3)))
    yv = f32(x.astype(np.float64) @ [1.0, -2.0, 0.5] + 0.2 + 0.1 * rng.standard_normal(30))
    run_case(out, "warm_up_then_cosine_per_epoch", seed=302,
             header=["x0", "x1", "x2", "y"], x=x, y=yv, input_dim=3,
             layers=[{"type": "linear", "out": 1}], loss={"type": "mse"},
             optimizer={"type": "sgd", "lr": 0.05},
             scheduler={"type": "sequential_lr", "milestones": [2], "schedulers": [
                 {"type": "linear_lr", "start_factor": 0.2, "total_iters": 2},
                 {"type": "cosine_annealing_lr", "T_max": 4}]},
             batch_size=8, epochs=6)

    x, lab = common.class_data(np.random.default_rng(303), 36)
    run_case(out, "step_lr_per_group", seed=303,
             header=class_header, x=x, y=lab, input_dim=4, layers=mlp,
             loss={"type": "cross_entropy"},
             optimizer={"type": "sgd", "lr": 0.2, "momentum": 0.5},
             param_groups=[{"params": ["0.*"], "lr": 0.02}],
             scheduler={"type": "step_lr", "step_size": 2, "gamma": 0.5},
             batch_size=12, epochs=5)

    rng = np.random.default_rng(304)
    x, lab = common.class_data(rng, 32)
    xv, labv = common.class_data(rng, 12)
    run_case(out, "plateau_on_valid_loss", seed=304,
             header=class_header, x=x, y=lab, xv=xv, yv=labv,
             input_dim=4, layers=mlp, loss={"type": "cross_entropy"},
             optimizer={"type": "sgd", "lr": 0.5, "momentum": 0.9},
             scheduler={"type": "reduce_lr_on_plateau", "factor": 0.5, "patience": 0,
                        "threshold": 0.05},
             batch_size=8, epochs=6)

    rng = np.random.default_rng(305)
    x = f32(rng.standard_normal((24, 2)))
    yy = f32(x.astype(np.float64) @ [0.7, -1.3] + 0.4 + 0.3 * rng.standard_normal(24))
    run_case(out, "plateau_on_train_loss", seed=305,
             header=["x0", "x1", "y"], x=x, y=yy, input_dim=2,
             layers=[{"type": "linear", "out": 1}], loss={"type": "mse"},
             optimizer={"type": "sgd", "lr": 0.3},
             scheduler={"type": "reduce_lr_on_plateau", "factor": 0.3, "patience": 1,
                        "threshold": 0.2, "cooldown": 1},
             batch_size=6, epochs=7)

    rng = np.random.default_rng(306)
    x = f32(rng.standard_normal((20, 3)))
    yy = f32(x.astype(np.float64) @ [1.5, 0.5, -1.0] + 0.1 * rng.standard_normal(20))
    run_case(out, "warm_restarts_per_step", seed=306,
             header=["x0", "x1", "x2", "y"], x=x, y=yy, input_dim=3,
             layers=[{"type": "linear", "out": 1}], loss={"type": "mse"},
             optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.5, "nesterov": True},
             scheduler={"type": "cosine_annealing_warm_restarts", "T_0": 2, "T_mult": 2,
                        "eta_min": 0.01, "interval": "step"},
             batch_size=4, epochs=3)

    # SGD without momentum: OneCycleLR sets momentum 0.95, and PyTorch's SGD then uses it.
    x, lab = common.class_data(np.random.default_rng(308), 24)
    run_case(out, "one_cycle_sgd_starts_momentum", seed=308,
             header=class_header, x=x, y=lab, input_dim=4, layers=mlp,
             loss={"type": "cross_entropy"}, optimizer={"type": "sgd", "lr": 0.1},
             scheduler={"type": "one_cycle_lr", "max_lr": 0.3, "epochs": 3, "steps_per_epoch": 4,
                        "anneal_strategy": "linear"},
             batch_size=6, epochs=3)

    x, lab = common.class_data(np.random.default_rng(307), 30)
    run_case(out, "one_cycle_adam_beta1", seed=307,
             header=class_header, x=x, y=lab, input_dim=4, layers=mlp,
             loss={"type": "cross_entropy"},
             optimizer={"type": "adam", "lr": 0.01},
             scheduler={"type": "one_cycle_lr", "max_lr": 0.05, "total_steps": 12,
                        "three_phase": True},
             batch_size=10, epochs=4)


def main():
    out = common.setup(__doc__, "schedulers")
    warnings.simplefilter("ignore")

    cases = sequence_cases()
    common.write_cases(os.path.join(out, "lr_sequences.json"), cases)
    print(f"lr_sequences.json: {len(cases)} cases")
    training_cases(out)
    common.done(out)


if __name__ == "__main__":
    main()
