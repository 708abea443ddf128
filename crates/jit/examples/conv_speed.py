"""PyTorch's side of `conv_speed.rs`: the same convolutions (forward
`F.conv2d`; input and weight gradients through `aten.convolution_backward`,
the function autograd calls for it), best of many runs, in µs, on 1 and 2
threads.

/work/venv/bin/python crates/jit/examples/conv_speed.py
"""

import time

import torch
import torch.nn.functional as F

LAYERS = [
    ("lenet conv1", (64, 1, 28, 28), 6, 5, 2),
    ("lenet conv2", (64, 6, 14, 14), 16, 5, 0),
    ("convnet conv1", (32, 3, 32, 32), 32, 3, 1),
    ("convnet conv2", (32, 32, 32, 32), 32, 3, 1),
    ("convnet conv3", (32, 32, 16, 16), 64, 3, 1),
    ("convnet conv4", (32, 64, 16, 16), 64, 3, 1),
]


def best(f, reps=200):
    for _ in range(20):
        f()
    t = float("inf")
    for _ in range(reps):
        s = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - s)
    return t * 1e6


def main():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__}, threads: {threads}")
        print(f"{'layer':<15} {'forward':>10} {'input grad':>12} {'weight grad':>12}")
        for name, shape, out, k, pad in LAYERS:
            x = torch.randn(shape, requires_grad=True)
            w = torch.randn(out, shape[1], k, k, requires_grad=True)
            with torch.no_grad():
                fwd = best(lambda: F.conv2d(x, w, padding=pad))
            y = F.conv2d(x, w, padding=pad)
            dy = torch.randn_like(y)
            # What autograd runs for F.conv2d's backward, one gradient at a time
            # (checked against torch.autograd.grad below).
            back = torch.ops.aten.convolution_backward

            def grads(mask):
                return back(dy, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)

            dx_ref, dw_ref = torch.autograd.grad(y, (x, w), dy)
            with torch.no_grad():
                assert torch.allclose(grads([True, False, False])[0], dx_ref, atol=1e-4)
                assert torch.allclose(grads([False, True, False])[1], dw_ref, atol=1e-3)
                ig = best(lambda: grads([True, False, False]))
                wg = best(lambda: grads([False, True, False]))
            print(f"{name:<15} {fwd:>10.1f} {ig:>12.1f} {wg:>12.1f}")


if __name__ == "__main__":
    main()
