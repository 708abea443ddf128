# Adapted from /work/shared/bench/peers_bench.py (the project's shared peers benchmark,
# same workloads and timed loop); changes: a fixed thread count per process for
# PyTorch, JAX compile time as its first call, and CLI selection of one peer.
"""Training-step throughput of the peers (PyTorch eager, JAX jit) on the
workloads that the project's own benchmarks use. Prints one JSON line per
(framework, workload). Data are random, fixed, in memory; the timed loop is
forward + loss + backward + optimizer step, as graphc's fused step."""
import json, os, sys, time
import numpy as np

WORKLOADS = {
    # name: (layer sizes, batch, loss, optimizer)
    "linreg":   ([1, 1], 20, "mse", "sgd"),
    "logreg":   ([2, 1], 100, "bce_logits", "sgd"),
    "mlp_s":    ([64, 128, 10], 64, "ce", "sgd_momentum"),
    "mlp_m":    ([784, 256, 256, 10], 128, "ce", "adam"),
    "mlp_l":    ([1024, 2048, 2048, 10], 256, "ce", "sgd_momentum"),
}

def timeit(step, min_time=2.0):
    for _ in range(20):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(10):
            step()
        n += 10
        dt = time.perf_counter() - t0
        if dt > min_time:
            return n / dt

def data(sizes, batch, loss):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    if loss == "ce":
        y = rng.integers(0, sizes[-1], batch)
    else:
        y = rng.random((batch, sizes[-1]), dtype=np.float32).round().astype(np.float32)
    return x, y

def torch_bench(name, sizes, batch, loss, opt, threads, compiled=False):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    x, y = data(sizes, batch, loss)
    x = torch.from_numpy(x)
    y = torch.from_numpy(y)
    lf = {"mse": torch.nn.MSELoss(), "bce_logits": torch.nn.BCEWithLogitsLoss(), "ce": torch.nn.CrossEntropyLoss()}[loss]
    o = {"sgd": lambda p: torch.optim.SGD(p, lr=0.01),
         "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
         "adam": lambda p: torch.optim.Adam(p, lr=1e-3)}[opt](model.parameters())
    fwd, ostep = model, o.step
    if compiled:
        fwd = torch.compile(model)
        ostep = torch.compile(o.step)
    def step():
        o.zero_grad(set_to_none=False)
        l = lf(fwd(x), y)
        l.backward()
        ostep()
    return timeit(step)

def jax_bench(name, sizes, batch, loss, opt):
    import jax, jax.numpy as jnp
    key = jax.random.PRNGKey(0)
    params = []
    for i in range(len(sizes) - 1):
        key, k1 = jax.random.split(key)
        bound = 1 / np.sqrt(sizes[i])
        params.append((jax.random.uniform(k1, (sizes[i], sizes[i + 1]), minval=-bound, maxval=bound),
                       jnp.zeros(sizes[i + 1])))
    x, y = data(sizes, batch, loss)
    x, y = jnp.asarray(x), jnp.asarray(y)
    def fwd(ps, x):
        for i, (w, b) in enumerate(ps):
            x = x @ w + b
            if i < len(ps) - 1:
                x = jax.nn.relu(x)
        return x
    def lossf(ps, x, y):
        out = fwd(ps, x)
        if loss == "mse":
            return jnp.mean((out - y) ** 2)
        if loss == "bce_logits":
            return jnp.mean(jnp.maximum(out, 0) - out * y + jnp.log1p(jnp.exp(-jnp.abs(out))))
        lse = jax.nn.log_softmax(out)
        return -jnp.mean(jnp.take_along_axis(lse, y[:, None], axis=1))
    state = jax.tree_util.tree_map(jnp.zeros_like, params)
    state2 = jax.tree_util.tree_map(jnp.zeros_like, params)
    t = jnp.zeros(())
    @jax.jit
    def step(ps, s, s2, t, x, y):
        g = jax.grad(lossf)(ps, x, y)
        if opt == "sgd":
            return jax.tree_util.tree_map(lambda p, g: p - 0.01 * g, ps, g), s, s2, t
        if opt == "sgd_momentum":
            s = jax.tree_util.tree_map(lambda b, g: 0.9 * b + g, s, g)
            return jax.tree_util.tree_map(lambda p, b: p - 0.01 * b, ps, s), s, s2, t
        t = t + 1
        s = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, s, g)
        s2 = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, s2, g)
        ps = jax.tree_util.tree_map(lambda p, m, v: p - 1e-3 * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8), ps, s, s2)
        return ps, s, s2, t
    t0 = time.perf_counter()
    out = step(params, state, state2, t, x, y)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - t0
    cur = [out]
    def run():
        cur[0] = step(*cur[0], x, y)
    r = timeit(run)
    jax.block_until_ready(cur[0])
    return r, compile_s

if __name__ == "__main__":
    # peers_bench.py torch THREADS [WORKLOAD...] | jax [WORKLOAD...]
    which = sys.argv[1]
    if which == "torch":
        threads = int(sys.argv[2])
        names = sys.argv[3:] or list(WORKLOADS)
    else:
        names = sys.argv[2:] or list(WORKLOADS)
    for n in names:
        sizes, batch, loss, opt = WORKLOADS[n]
        if which == "torch":
            sps = torch_bench(n, sizes, batch, loss, opt, threads)
            print(json.dumps({"peer": f"torch-eager-{threads}t", "workload": n, "steps_per_s": round(sps, 1)}), flush=True)
        else:
            sps, c = jax_bench(n, sizes, batch, loss, opt)
            print(json.dumps({"peer": "jax-jit", "workload": n, "steps_per_s": round(sps, 1), "compile_s": round(c, 4)}), flush=True)
