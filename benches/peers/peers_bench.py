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

def torch_bench(name, sizes, batch, loss, opt, threads, compiled=False, bf16=False):
    """bf16: the forward under torch.autocast("cpu", dtype=torch.bfloat16), the loss of
    its output cast back to float32 (graphc's train.precision: bf16)."""
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
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fwd(x)
        l = lf(out.float(), y)
        l.backward()
        ostep()
    return timeit(step)

def jax_bench(name, sizes, batch, loss, opt, bf16=False):
    """bf16: each product of bf16 operands with preferred_element_type float32 (f32 sums
    and result; parameters, gradients and optimizer state f32)."""
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
            if bf16:
                x = jnp.dot(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16),
                            preferred_element_type=jnp.float32) + b
            else:
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

# The convolutional workloads of issue 12 (specs/bench/lenet.yaml, convnet.yaml).
# Every layer is listed as graphc's spec lists it; both peers build their model
# from this one list, so the two cannot drift apart.
#   ("conv", out_channels, kernel, padding) | ("bn",) | ("relu",) | ("pool", 2)
#   | ("flatten",) | ("linear", out)
def _conv_bn_relu(out):
    return [("conv", out, 3, 1), ("bn",), ("relu",)]

CNN_WORKLOADS = {
    # name: (input [C, H, W], layers, batch, optimizer); the loss is cross-entropy over 10 classes
    "lenet": ([1, 28, 28],
              [("conv", 6, 5, 2), ("relu",), ("pool", 2), ("conv", 16, 5, 0), ("relu",), ("pool", 2),
               ("flatten",), ("linear", 120), ("relu",), ("linear", 84), ("relu",), ("linear", 10)],
              64, "sgd_momentum"),
    "convnet": ([3, 32, 32],
                _conv_bn_relu(32) + _conv_bn_relu(32) + [("pool", 2)]
                + _conv_bn_relu(64) + _conv_bn_relu(64) + [("pool", 2), ("flatten",), ("linear", 10)],
                32, "adam"),
}

def timeit_cpu(step):
    """timeit's steps/s, and the CPUs the process used meanwhile (its CPU time,
    all threads, over wall time): on a shared machine, what the peer really got."""
    c0, w0 = time.process_time(), time.perf_counter()
    r = timeit(step)
    return r, (time.process_time() - c0) / (time.perf_counter() - w0)

def cnn_data(shape, batch):
    """Fixed random images [batch, C, H, W] (standard normal) and class labels in 0..9."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    return x, y

def torch_cnn_model(shape, layers):
    """The workload as torch.nn modules with PyTorch's default init, in training mode."""
    import torch
    nn = torch.nn
    mods, c, hw, feat = [], shape[0], shape[1:], None
    for l in layers:
        if l[0] == "conv":
            mods.append(nn.Conv2d(c, l[1], l[2], padding=l[3]))
            c = l[1]
            hw = [s + 2 * l[3] - l[2] + 1 for s in hw]
        elif l[0] == "bn":
            mods.append(nn.BatchNorm2d(c))
        elif l[0] == "relu":
            mods.append(nn.ReLU())
        elif l[0] == "pool":
            mods.append(nn.MaxPool2d(l[1]))
            hw = [s // l[1] for s in hw]
        elif l[0] == "flatten":
            mods.append(nn.Flatten())
            feat = c * hw[0] * hw[1]
        else:
            mods.append(nn.Linear(feat, l[1]))
            feat = l[1]
    return nn.Sequential(*mods).train()

def torch_cnn(name, threads, steps_only=False, bf16=False):
    """Steps/s of the workload in PyTorch eager; with steps_only, the step itself.
    bf16: the forward under torch.autocast("cpu", dtype=torch.bfloat16), the loss of its
    output cast back to float32 (as torch_bench's bf16 mode)."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    shape, layers, batch, opt = CNN_WORKLOADS[name]
    model = torch_cnn_model(shape, layers)
    x, y = cnn_data(shape, batch)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    lf = torch.nn.CrossEntropyLoss()
    o = (torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if opt == "sgd_momentum"
         else torch.optim.Adam(model.parameters(), lr=1e-3))
    def step():
        o.zero_grad(set_to_none=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        l = lf(out.float(), y)
        l.backward()
        o.step()
    if steps_only:
        return step
    return timeit_cpu(step)

def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; the *_mb fields are MiB

def current_rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def torch_cnn_rss(name, threads):
    """RSS of a PyTorch process around the workload's steps: after building the
    model, data and optimizer (state allocated by a first step would otherwise
    be counted as the step's), and its peak over 50 more steps."""
    step = torch_cnn(name, threads, steps_only=True)
    before = current_rss_mb()
    step()
    after_first = current_rss_mb()
    peak_first = peak_rss_mb()
    for _ in range(50):
        step()
    return {"rss_before_mb": round(before, 1), "rss_after_first_step_mb": round(after_first, 1),
            "peak_rss_first_step_mb": round(peak_first, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}

def jax_cnn_model(shape, layers, bf16=False):
    """The workload in JAX: its parameters (PyTorch's init schemes), batch-norm
    running statistics, and a training-mode forward pass that returns the
    logits and the updated running statistics. bf16: each convolution and
    product of bf16 operands with preferred_element_type float32 (f32 sums and
    result), as jax_bench's bf16 mode."""
    import jax, jax.numpy as jnp
    lax = jax.lax
    key = jax.random.PRNGKey(0)
    def uniform(k, shp, fan_in):  # PyTorch's default init of conv and linear: U(±1/sqrt(fan_in))
        b = 1 / np.sqrt(fan_in)
        return jax.random.uniform(k, shp, minval=-b, maxval=b)
    params, bn_state, c, hw, feat = [], [], shape[0], shape[1:], None
    for l in layers:
        if l[0] == "conv":
            key, kw, kb = jax.random.split(key, 3)
            fan = c * l[2] * l[2]
            params.append({"w": uniform(kw, (l[1], c, l[2], l[2]), fan), "b": uniform(kb, (l[1],), fan)})
            c = l[1]
            hw = [s + 2 * l[3] - l[2] + 1 for s in hw]
        elif l[0] == "bn":
            params.append({"w": jnp.ones(c), "b": jnp.zeros(c)})
            bn_state.append({"mean": jnp.zeros(c), "var": jnp.ones(c), "n": jnp.zeros((), jnp.int32)})
        elif l[0] == "pool":
            hw = [s // l[1] for s in hw]
        elif l[0] == "flatten":
            feat = c * hw[0] * hw[1]
        elif l[0] == "linear":
            key, kw, kb = jax.random.split(key, 3)
            params.append({"w": uniform(kw, (feat, l[1]), feat), "b": uniform(kb, (l[1],), feat)})
            feat = l[1]

    def operands(*xs):
        return tuple(v.astype(jnp.bfloat16) for v in xs) if bf16 else xs

    def forward(ps, bns, x):
        """Training-mode forward: returns the logits and the updated running statistics."""
        pi, bi, new_bns = 0, 0, []
        for l in layers:
            if l[0] == "conv":
                p = ps[pi]; pi += 1
                x = lax.conv_general_dilated(*operands(x, p["w"]), (1, 1), [(l[3], l[3])] * 2,
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                             preferred_element_type=jnp.float32)
                x = x + p["b"][None, :, None, None]
            elif l[0] == "bn":
                p, s = ps[pi], bns[bi]; pi += 1; bi += 1
                mean = jnp.mean(x, axis=(0, 2, 3))
                var = jnp.mean(jnp.square(x - mean[None, :, None, None]), axis=(0, 2, 3))  # biased
                x = (x - mean[None, :, None, None]) * lax.rsqrt(var + 1e-5)[None, :, None, None]
                x = x * p["w"][None, :, None, None] + p["b"][None, :, None, None]
                m = x.shape[0] * x.shape[2] * x.shape[3]
                # PyTorch's running update: momentum 0.1, the unbiased batch variance.
                new_bns.append({"mean": 0.9 * s["mean"] + 0.1 * lax.stop_gradient(mean),
                                "var": 0.9 * s["var"] + 0.1 * lax.stop_gradient(var) * m / (m - 1),
                                "n": s["n"] + 1})
            elif l[0] == "relu":
                x = jax.nn.relu(x)
            elif l[0] == "pool":
                k = l[1]
                x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, k, k), "VALID")
            elif l[0] == "flatten":
                x = x.reshape(x.shape[0], -1)
            else:
                p = ps[pi]; pi += 1
                x = jnp.dot(*operands(x, p["w"]), preferred_element_type=jnp.float32) + p["b"]
        return x, new_bns

    return params, bn_state, forward

def jax_cnn(name, bf16=False):
    """Steps/s of the workload under jax.jit, and its first call (trace, compile, one step);
    bf16 as in jax_cnn_model."""
    import jax, jax.numpy as jnp
    shape, layers, batch, opt = CNN_WORKLOADS[name]
    params, bn_state, forward = jax_cnn_model(shape, layers, bf16)
    x, y = cnn_data(shape, batch)
    x, y = jnp.asarray(x), jnp.asarray(y)

    def lossf(ps, bns, x, y):
        out, new_bns = forward(ps, bns, x)
        lse = jax.nn.log_softmax(out)
        return -jnp.mean(jnp.take_along_axis(lse, y[:, None], axis=1)), new_bns

    tmap = jax.tree_util.tree_map
    state = tmap(jnp.zeros_like, params)
    state2 = tmap(jnp.zeros_like, params)
    t = jnp.zeros(())
    @jax.jit
    def step(ps, s, s2, t, bns, x, y):
        g, bns = jax.grad(lossf, has_aux=True)(ps, bns, x, y)
        if opt == "sgd_momentum":
            s = tmap(lambda b, g: 0.9 * b + g, s, g)
            return tmap(lambda p, b: p - 0.01 * b, ps, s), s, s2, t, bns
        t = t + 1
        s = tmap(lambda m, g: 0.9 * m + 0.1 * g, s, g)
        s2 = tmap(lambda v, g: 0.999 * v + 0.001 * g * g, s2, g)
        ps = tmap(lambda p, m, v: p - 1e-3 * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8), ps, s, s2)
        return ps, s, s2, t, bns
    t0 = time.perf_counter()
    out = step(params, state, state2, t, bn_state, x, y)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - t0
    cur = [out]
    def run():
        cur[0] = step(*cur[0], x, y)
    r, cpus = timeit_cpu(run)
    jax.block_until_ready(cur[0])
    return r, compile_s, cpus

if __name__ == "__main__":
    # peers_bench.py torch THREADS [WORKLOAD...] | jax [WORKLOAD...] | rss THREADS WORKLOAD,
    # torch-bf16 and jax-bf16 as torch and jax with bf16 products and convolutions
    which = sys.argv[1]
    bf16 = which.endswith("-bf16")
    which = which.removesuffix("-bf16")
    tag = "-bf16" if bf16 else ""
    if which == "rss":
        r = torch_cnn_rss(sys.argv[3], int(sys.argv[2]))
        print(json.dumps({"peer": f"torch-eager-{sys.argv[2]}t", "workload": sys.argv[3], **r}), flush=True)
        sys.exit(0)
    if which == "torch":
        threads = int(sys.argv[2])
        names = sys.argv[3:] or list(WORKLOADS)
    else:
        names = sys.argv[2:] or list(WORKLOADS)
    for n in names:
        if n in CNN_WORKLOADS:
            if which == "torch":
                sps, cpus = torch_cnn(n, threads, bf16=bf16)
                print(json.dumps({"peer": f"torch-eager-{threads}t{tag}", "workload": n, "steps_per_s": round(sps, 2),
                                  "cpus": round(cpus, 2)}), flush=True)
            else:
                sps, c, cpus = jax_cnn(n, bf16=bf16)
                print(json.dumps({"peer": f"jax-jit{tag}", "workload": n, "steps_per_s": round(sps, 2),
                                  "compile_s": round(c, 4), "cpus": round(cpus, 2)}), flush=True)
            continue
        sizes, batch, loss, opt = WORKLOADS[n]
        if which == "torch":
            sps = torch_bench(n, sizes, batch, loss, opt, threads, bf16=bf16)
            print(json.dumps({"peer": f"torch-eager-{threads}t{tag}", "workload": n, "steps_per_s": round(sps, 1)}), flush=True)
        else:
            sps, c = jax_bench(n, sizes, batch, loss, opt, bf16=bf16)
            print(json.dumps({"peer": f"jax-jit{tag}", "workload": n, "steps_per_s": round(sps, 1), "compile_s": round(c, 4)}), flush=True)
