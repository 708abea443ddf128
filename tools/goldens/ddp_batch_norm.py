#!/usr/bin/env python3
"""PyTorch DDP golden cases for batch norm on several data-parallel ranks (issue #16).

What it generates
-----------------
One folder per case under ``tests/goldens/data_parallel/<case>/``, in
``norm_dropout.py``'s layout (``spec.yaml``, ``data.csv``, ``valid.csv``,
``init.safetensors`` with the batch-norm buffers), whose ``expected.json`` holds:

* ``ranks``: how many processes trained (``mpirun -n ranks``);
* ``losses``: one per update, the whole batch's loss: the mean of the ranks' losses
  (the shares are equal, so the mean of their means is the batch's mean);
* ``valid_losses``: one per epoch, rank 0's ``model.eval()`` loss over the whole
  validation set after the epoch's last update;
* ``final``: rank 0's final ``state_dict``, buffers included.

How it trains
-------------
Real ``torch.nn.parallel.DistributedDataParallel`` over the ``gloo`` backend, one
process per rank (``torch.multiprocessing``): every rank takes its contiguous share of
each batch (graphc's ``collective::share``; here the batch sizes divide by the rank
count, so DDP's mean of per-rank gradients is the batch's gradient), DDP averages the
gradients, and with its default ``broadcast_buffers=True`` it copies rank 0's buffers
(the running statistics) to every rank before each forward. So batch norm normalises
each share with its own statistics (plain ``BatchNorm``, not ``SyncBatchNorm``), and
the running statistics that count are rank 0's: updated from rank 0's shares only.

How to rerun
------------
From the repository root::

    /work/venv/bin/python tools/goldens/ddp_batch_norm.py [--out DIR]

Seeded data and init, one thread per rank: two runs write the same numbers.
"""

import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel

import common
import norm_dropout as nd
from common import Block, Verbatim

SCRIPT = "ddp_batch_norm.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank, world, port, case, result):
    """One rank of the DDP run of ``case``; rank 0 puts what it saw in ``result``."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = nd.build_model(case["input_shape"], case["layers"], case["seed"], None)
    model.load_state_dict(load_file(case["init"]))
    ddp = DistributedDataParallel(model)
    opt = common.model_optimizer(ddp.module, case["optimizer"])
    loss_fn = common.build_loss(case["loss"])
    xt, yt = case["train"]
    batch = case["batch_size"]
    losses, valid_losses = [], []
    for _epoch in range(case["epochs"]):
        for s in range(0, len(xt), batch):
            size = min(batch, len(xt) - s)
            assert size % world == 0, "DDP's mean of means is the batch mean for equal shares"
            share = size // world
            lo = s + rank * share
            loss = loss_fn(ddp(xt[lo:lo + share]), yt[lo:lo + share])
            loss.backward()
            opt.step()
            opt.zero_grad()
            total = loss.detach().clone()
            dist.all_reduce(total)
            losses.append(total.item() / world)
        ddp.eval()
        with torch.no_grad():
            valid_losses.append(loss_fn(ddp(case["valid"][0]), case["valid"][1]).item())
        ddp.train()
    if rank == 0:
        # As numpy arrays: a queued tensor's storage would go with this process.
        state = {k: v.detach().numpy().copy() for k, v in ddp.module.state_dict().items()}
        result.put((losses, valid_losses, state))
    dist.barrier()
    dist.destroy_process_group()


def run_case(out_root, name, *, ranks, seed, input_shape, layers, loss, optimizer, rows,
             batch_size, epochs, valid_rows, classes=3):
    rng = np.random.default_rng(seed)
    x, y = nd.make_data(rng, rows + valid_rows, input_shape, loss, classes, 1.5, 0.5)
    (x, xv), (y, yv) = (np.split(a, [rows]) for a in (x, y))
    features = int(np.prod(input_shape))
    header = common.names("x", features) + ["label"]
    case_dir = common.make_case_dir(out_root, name)
    common.write_csv(os.path.join(case_dir, "data.csv"), header, x, y)
    common.write_csv(os.path.join(case_dir, "valid.csv"), header, xv, yv)
    common.write_spec(case_dir, SCRIPT, {
        "seed": seed,
        "data": common.data_section("label", batch_size, valid=True, shuffle=False,
                                    drop_last=False),
        "model": Block(input=list(input_shape), layers=common.spec_value(layers),
                       init={"from": Verbatim("init.safetensors")}),
        "loss": loss,
        "optimizer": Block(optimizer),
        "train": Block(epochs=epochs),
    })
    torch.manual_seed(seed)
    model = nd.build_model(input_shape, layers, seed, None)
    init = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    init_path = os.path.join(case_dir, "init.safetensors")
    common.save_file(init, init_path)

    case = dict(input_shape=input_shape, layers=layers, seed=seed, init=init_path,
                optimizer=optimizer, loss=loss, batch_size=batch_size, epochs=epochs,
                train=nd.as_batch(x, y, input_shape), valid=nd.as_batch(xv, yv, input_shape))
    ctx = mp.get_context("spawn")
    result = ctx.SimpleQueue()
    mp.start_processes(rank_main, args=(ranks, free_port(), case, result), nprocs=ranks,
                       join=True, start_method="spawn")
    losses, valid_losses, state = result.get()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    common.write_expected(case_dir, model, ranks=ranks, losses=losses,
                          valid_losses=valid_losses)
    print(f"{name}: {ranks} ranks, {len(losses)} updates, loss {losses[0]:.5f} -> "
          f"{losses[-1]:.5f}, valid {valid_losses[0]:.5f} -> {valid_losses[-1]:.5f}")


def main():
    out = common.setup(__doc__, "data_parallel")
    run_case(out, "ddp_bn1d_2_ranks", ranks=2, seed=1601, input_shape=[5],
             layers=[{"type": "linear", "out": 8}, {"type": "batch_norm1d"}, {"type": "relu"},
                     {"type": "linear", "out": 3}],
             loss=nd.CE, optimizer=nd.SGD, rows=24, batch_size=8, epochs=3, valid_rows=10)
    run_case(out, "ddp_bn2d_momentum_null_3_ranks", ranks=3, seed=1602, input_shape=[2, 5, 5],
             # No bias before the norm: its gradient is rounding noise, which Adam makes steps of.
             layers=[{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "bias": False},
                     {"type": "batch_norm2d", "momentum": None}, {"type": "relu"},
                     {"type": "flatten"}, {"type": "linear", "out": 3}],
             loss=nd.CE, optimizer=nd.ADAM, rows=18, batch_size=6, epochs=2, valid_rows=9)
    common.done(out)


if __name__ == "__main__":
    main()
