"""Checks that the two peers' CNN workloads are the same model: builds each
workload in PyTorch, copies its parameters into the JAX model of
peers_bench.py, and compares one training-mode forward pass (the loss), the
gradients and batch norm's updated running statistics. Prints the largest
differences and exits non-zero when one is above its tolerance.

usage: benches/peers/.venv/bin/python benches/peers/check_cnn_peers.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers_bench as pb  # noqa: E402


def main():
    import jax, jax.numpy as jnp, torch
    bad = 0
    for name, (shape, layers, batch, _) in pb.CNN_WORKLOADS.items():
        torch.manual_seed(0)
        model = pb.torch_cnn_model(shape, layers)
        ps, bns, forward = pb.jax_cnn_model(shape, layers)
        mods = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear))]
        assert len(mods) == len(ps), (name, len(mods), len(ps))
        for m, p in zip(mods, ps):
            w = m.weight.detach().numpy()
            if isinstance(m, torch.nn.Linear):
                w = w.T  # the JAX model multiplies x @ w
            assert p["w"].shape == w.shape and p["b"].shape == tuple(m.bias.shape), (name, m)
            p["w"], p["b"] = jnp.asarray(w), jnp.asarray(m.bias.detach().numpy())
        x, y = pb.cnn_data(shape, batch)
        loss_t = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss_t.backward()
        xj, yj = jnp.asarray(x), jnp.asarray(y)

        def lossf(ps):
            out, new = forward(ps, bns, xj)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), yj[:, None], axis=1)), new

        (loss_j, new_bns), grads = jax.value_and_grad(lossf, has_aux=True)(ps)
        loss_rel = abs(loss_t.item() - float(loss_j)) / abs(loss_t.item())
        grad_rel = 0.0
        for m, g in zip(mods, grads):
            gw = m.weight.grad.numpy()
            if isinstance(m, torch.nn.Linear):
                gw = gw.T
            # Relative to the layer's largest weight gradient: a conv bias before batch
            # norm has a gradient of zero up to rounding, so its own scale means nothing.
            scale = np.abs(gw).max()
            grad_rel = max(grad_rel, float(np.abs(gw - np.asarray(g["w"])).max() / scale),
                           float(np.abs(m.bias.grad.numpy() - np.asarray(g["b"])).max() / scale))
        stats = 0.0
        for m, s in zip([m for m in mods if isinstance(m, torch.nn.BatchNorm2d)], new_bns):
            stats = max(stats, float(np.abs(m.running_mean.numpy() - np.asarray(s["mean"])).max()),
                        float(np.abs(m.running_var.numpy() - np.asarray(s["var"])).max()))
            assert int(m.num_batches_tracked) == int(s["n"])
        ok = loss_rel < 1e-5 and grad_rel < 1e-4 and stats < 1e-6
        bad += not ok
        print(f"{name}: loss {loss_t.item():.6f} (PyTorch) vs {float(loss_j):.6f} (JAX), relative {loss_rel:.1e};"
              f" largest relative gradient difference {grad_rel:.1e}; running statistics {stats:.1e}:"
              f" {'same model' if ok else 'DIFFERENT'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
