"""``matgrad.nn`` benchmarks (issue #12), as ratios to hand-written NumPy in the same run.

(1) an MLP training step, 784-512-512-10 with ReLU, batch 256, cross-entropy loss: forward,
    backward and an Adam step; matgrad (``nn.Sequential`` + ``nn.CrossEntropyLoss`` +
    ``optim.Adam``) against the same step written by hand in NumPy (target: <= 1.10x);
(2) a Conv2d forward + backward (gradients of input, weight and bias), batch 32, 3 -> 32
    channels, 32x32, 3x3, padding 1; matgrad's ``F.conv2d`` against a hand-written NumPy
    im2col (target: <= 1.2x); (2') the same without the input gradient (a first layer).

float32 (PyTorch's default dtype) unless ``--dtype float64``. Run: ``python
benchmarks/bench_nn.py [--repeats N] [--dtype float32|float64]``. One thread (set below,
before NumPy loads), contenders interleaved, medians reported on two clocks: wall time and
the process's CPU time (the steadier one on a shared, loaded machine). PyTorch CPU joins when
importable. Freed memory stays in the process for all contenders (see :func:`steady_malloc`;
``--default-malloc`` leaves glibc's default).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
# as bench_core: drop a forced old OpenBLAS kernel, so all contenders use this CPU's kernel
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import ctypes  # noqa: E402
import ctypes.util  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

import matgrad as mg  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # PyTorch is an optional comparison
    torch = None


Medians = dict[str, dict[str, float]]  # clock ("wall", "cpu") -> contender -> seconds


def steady_malloc() -> bool:
    """Keep freed memory in the process (glibc's malloc: no mmap for arrays of these sizes,
    no trimming of the heap), for every contender alike. By default glibc gives large freed
    blocks back to the OS and the next allocation pays a page fault per 4 KiB (about 3 us
    each on this machine): 500 to 1,100 faults per MLP step, a 20% swing in a contender's
    time that depends on which contenders ran before it, not on its own code. Returns
    whether the setting took (False off glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, 1 << 31))


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int) -> Medians:
    """Median seconds per contender on two clocks, running the contenders in turn so load
    spikes hit all alike. ``wall`` is elapsed time; ``cpu`` is this process's CPU time
    (user + system, all threads), which a loaded machine inflates far less: time spent
    descheduled while other processes run does not count."""
    for fn in contenders.values():  # warm up
        fn()
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            c1, w1 = time.process_time(), time.perf_counter()
            wall[name].append(w1 - w0)
            cpu[name].append(c1 - c0)
    return {
        clock: {name: statistics.median(ts) for name, ts in times.items()}
        for clock, times in (("wall", wall), ("cpu", cpu))
    }


def report(title: str, medians: Medians, target: float) -> dict[str, float]:
    """Print both clocks' medians as multiples of NumPy; returns matgrad/numpy per clock."""
    print(f"\n{title}")
    print(f"  {'':<10} {'wall':>10} {'':>13}  {'cpu':>10}")
    names = list(medians["wall"])
    for name in names:
        cells = []
        for clock in ("wall", "cpu"):
            t, base = medians[clock][name], medians[clock]["numpy"]
            cells.append(f"{t * 1e3:9.3f} ms {t / base:6.2f}x")
        print(f"  {name:<10} {cells[0]}   {cells[1]}")
    ratios = {clock: medians[clock]["matgrad"] / medians[clock]["numpy"] for clock in medians}
    verdicts = ", ".join(
        f"{clock} {r:.2f} ({'met' if r <= target else 'MISSED'})" for clock, r in ratios.items()
    )
    print(f"  matgrad / numpy (target <= {target:.2f}): {verdicts}")
    if "torch" in names:
        print(
            "  matgrad / torch: "
            + ", ".join(
                f"{clock} {medians[clock]['matgrad'] / medians[clock]['torch']:.2f}"
                for clock in medians
            )
        )
    return ratios


# -- (1) MLP training step -------------------------------------------------------------------
SIZES = (784, 512, 512, 10)
BATCH = 256
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


def mlp_init(dtype: np.dtype) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """PyTorch-layout parameters [W0 (out, in), b0, W1, b1, W2, b2], inputs and labels."""
    rng = np.random.default_rng(0)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        bound = 1 / math.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(dtype))
        params.append(rng.uniform(-bound, bound, fan_out).astype(dtype))
    x = rng.standard_normal((BATCH, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], BATCH)
    return params, x, y


class NumpyMLP:
    """Forward, backward and Adam written by hand (in place where NumPy allows)."""

    def __init__(self, params: list[np.ndarray]) -> None:
        self.p = [a.copy() for a in params]
        self.m = [np.zeros_like(a) for a in params]
        self.v = [np.zeros_like(a) for a in params]
        self.t = 0

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        W0, b0, W1, b1, W2, b2 = self.p
        h0 = np.maximum(x @ W0.T + b0, 0)
        h1 = np.maximum(h0 @ W1.T + b1, 0)
        z = h1 @ W2.T + b2
        z_max = z.max(1, keepdims=True)
        e = np.exp(z - z_max)
        s = e.sum(1, keepdims=True)
        rows = np.arange(len(y))
        loss = float(np.mean(np.log(s[:, 0]) + z_max[:, 0] - z[rows, y]))
        g = e / s  # d loss / d z: (softmax - onehot) / batch
        g[rows, y] -= 1
        g /= len(y)
        grads = [None] * 6
        grads[4], grads[5] = g.T @ h1, g.sum(0)
        g1 = g @ W2
        g1 *= h1 > 0
        grads[2], grads[3] = g1.T @ h0, g1.sum(0)
        g0 = g1 @ W1
        g0 *= h0 > 0
        grads[0], grads[1] = g0.T @ x, g0.sum(0)
        self.t += 1
        b1_, b2_ = BETAS
        step_size = LR / (1 - b1_**self.t)
        root_bc2 = math.sqrt(1 - b2_**self.t)
        for p, gr, m, v in zip(self.p, grads, self.m, self.v, strict=True):
            m *= b1_
            m += (1 - b1_) * gr
            v *= b2_
            v += (1 - b2_) * (gr * gr)
            p -= step_size * (m / (np.sqrt(v) / root_bc2 + EPS))
        return loss


def mlp_model(lib: object, params: list[np.ndarray]) -> tuple[object, object, object]:
    nn = lib.nn
    model = nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    )
    make = mg.from_numpy if lib is mg else torch.from_numpy
    for p, a in zip(model.parameters(), params, strict=True):
        p.data = make(a.copy())
    return model, nn.CrossEntropyLoss(), lib.optim.Adam(model.parameters(), lr=LR)


def autodiff_step(model: object, loss_fn: object, opt: object, x: object, y: object) -> float:
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


# -- (2) Conv2d forward + backward ---------------------------------------------------------
def conv_data(dtype: np.dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    bound = 1 / math.sqrt(3 * 9)
    return {
        "x": rng.standard_normal((32, 3, 32, 32)).astype(dtype),
        "w": rng.uniform(-bound, bound, (32, 3, 3, 3)).astype(dtype),
        "b": rng.uniform(-bound, bound, 32).astype(dtype),
        "g": rng.standard_normal((32, 32, 32, 32)).astype(dtype),
    }


def conv_numpy(d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """im2col by 9 strided slices, one matmul; backward: two matmuls, col2im by slice-adds."""
    x, w, b, g = d["x"], d["w"], d["b"], d["g"]
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, :, i : i + h, j : j + wd] for i in range(kh) for j in range(kw)], 2)
    cols = cols.reshape(n, c * kh * kw, h * wd)
    w2 = w.reshape(o, -1)
    out = (w2 @ cols + b[:, None]).reshape(n, o, h, wd)
    g2 = g.reshape(n, o, h * wd)
    gb = g2.sum((0, 2))
    gw = (g2 @ cols.transpose(0, 2, 1)).sum(0).reshape(w.shape)
    gcols = (w2.T @ g2).reshape(n, c, kh * kw, h, wd)
    gxp = np.zeros_like(xp)
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        gxp[:, :, i : i + h, j : j + wd] += gcols[:, :, k]
    return out, gxp[:, :, 1:-1, 1:-1], gw, gb


def conv_numpy_params(d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """As :func:`conv_numpy` for a first layer: no input gradient (no col2im)."""
    x, w, b, g = d["x"], d["w"], d["b"], d["g"]
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, :, i : i + h, j : j + wd] for i in range(kh) for j in range(kw)], 2)
    cols = cols.reshape(n, c * kh * kw, h * wd)
    w2 = w.reshape(o, -1)
    out = (w2 @ cols + b[:, None]).reshape(n, o, h, wd)
    g2 = g.reshape(n, o, h * wd)
    return out, (g2 @ cols.transpose(0, 2, 1)).sum(0).reshape(w.shape), g2.sum((0, 2))


def conv_autodiff_params(lib: object, d: dict[str, object]) -> tuple[object, ...]:
    w = d["w"].detach().requires_grad_()
    b = d["b"].detach().requires_grad_()
    out = lib.nn.functional.conv2d(d["x"], w, b, padding=1)
    out.backward(d["g"])
    return out, w.grad, b.grad


def conv_autodiff(lib: object, d: dict[str, object]) -> tuple[object, ...]:
    x = d["x"].detach().requires_grad_()
    w = d["w"].detach().requires_grad_()
    b = d["b"].detach().requires_grad_()
    out = lib.nn.functional.conv2d(x, w, b, padding=1)
    out.backward(d["g"])
    return out, x.grad, w.grad, b.grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc as it is (freed memory returned to the OS: page faults)",
    )
    args = parser.parse_args()
    dtype = np.dtype(args.dtype)
    steady = not args.default_malloc and steady_malloc()
    print(f"malloc: {'steady (no trimming, no mmap)' if steady else 'default'}")

    params, x, y = mlp_init(dtype)
    ref = NumpyMLP(params)
    mg_model = mlp_model(mg, params)
    mx, my = mg.from_numpy(x), mg.from_numpy(y)
    # the same first steps: the losses agree (a check that both train the same network)
    for _ in range(3):
        want, got = ref.step(x, y), autodiff_step(*mg_model, mx, my)
        assert abs(want - got) <= 1e-4 * max(1.0, abs(want)), (want, got)
    contenders = {
        "numpy": lambda: ref.step(x, y),
        "matgrad": lambda: autodiff_step(*mg_model, mx, my),
    }
    if torch is not None:
        t_model = mlp_model(torch, params)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        contenders["torch"] = lambda: autodiff_step(*t_model, tx, ty)
    r1 = report(
        f"(1) MLP training step (forward, backward, Adam), 784-512-512-10 ReLU, batch {BATCH}, "
        f"{dtype.name}",
        interleaved(contenders, args.repeats),
        1.10,
    )

    d = conv_data(dtype)
    md = {k: mg.from_numpy(v) for k, v in d.items()}
    want = conv_numpy(d)
    got = conv_autodiff(mg, md)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for a, b in zip(want, got, strict=True):
        np.testing.assert_allclose(b.detach().numpy(), a, rtol=tol, atol=tol * 10)
    contenders = {"numpy": lambda: conv_numpy(d), "matgrad": lambda: conv_autodiff(mg, md)}
    if torch is not None:
        td = {k: torch.from_numpy(v) for k, v in d.items()}
        contenders["torch"] = lambda: conv_autodiff(torch, td)
    r2 = report(
        f"(2) Conv2d forward + backward (input, weight, bias), batch 32, 3->32, 32x32, 3x3, "
        f"padding 1, {dtype.name}",
        interleaved(contenders, args.repeats),
        1.2,
    )
    contenders = {
        "numpy": lambda: conv_numpy_params(d),
        "matgrad": lambda: conv_autodiff_params(mg, md),
    }
    if torch is not None:
        contenders["torch"] = lambda: conv_autodiff_params(torch, td)
    r3 = report(
        f"(2') the same as a first layer: gradients of weight and bias only, {dtype.name}",
        interleaved(contenders, args.repeats),
        1.2,
    )
    for clock in ("wall", "cpu"):
        print(
            f"\nratios ({clock}): mlp {r1[clock]:.2f}x, conv2d {r2[clock]:.2f}x, "
            f"conv2d (first layer) {r3[clock]:.2f}x"
        )


if __name__ == "__main__":
    main()
