"""Core engine benchmarks (issue: core), as ratios to hand-written NumPy in the same run.

(a) a chain of 1,000 elementwise ops on a 10x10 array (333 x ``x = (x * 1.0001 + 0.1).tanh()``,
    then ``.sum()``), forward + backward;
(b) a 3-layer tanh MLP (batch 256, 784-512-512-10), squared loss, forward + backward, float64
    and float32, with peak memory (tracemalloc) against the hand-written version;
(c) ``sum((A @ B @ C) * D)`` with 1000x1000 float64 matrices, forward + backward.

Run: ``python benchmarks/bench_core.py [--repeats N] [--quick]``. One thread (set below, before
NumPy loads), contenders interleaved, medians reported. PyTorch CPU joins when importable.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
# this workplace forces an old OpenBLAS kernel (OPENBLAS_CORETYPE) that slows current NumPy;
# the benchmark process drops it, so all contenders use the kernel made for this CPU
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

import matgrad as mg  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # PyTorch is an optional comparison
    torch = None


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per contender, running them in turn so load spikes hit all alike."""
    for fn in contenders.values():  # warm up
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated while ``fn`` runs (NumPy reports its buffers to tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


# -- (a) elementwise chain -------------------------------------------------------------------
def chain_numpy(x0: np.ndarray) -> np.ndarray:
    ys, y = [], x0
    for _ in range(333):
        y = np.tanh(y * 1.0001 + 0.1)
        ys.append(y)
    g = np.ones_like(y)
    for y in reversed(ys):
        g = g * (1 - y * y) * 1.0001
    return g


def chain_matgrad(x0: np.ndarray) -> np.ndarray:
    x = mg.tensor(x0, requires_grad=True)
    y = x
    for _ in range(333):
        y = (y * 1.0001 + 0.1).tanh()
    y.sum().backward()
    return x.grad.numpy()


def chain_torch(x0: np.ndarray) -> object:
    x = torch.tensor(x0, requires_grad=True)
    y = x
    for _ in range(333):
        y = (y * 1.0001 + 0.1).tanh()
    y.sum().backward()
    return x.grad


# -- (b) MLP ---------------------------------------------------------------------------------
def mlp_data(dtype: type) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    sizes = [784, 512, 512, 10]
    data = {"X": rng.standard_normal((256, 784)), "Y": rng.standard_normal((256, 10))}
    for i in range(3):
        data[f"W{i}"] = rng.standard_normal((sizes[i], sizes[i + 1])) / np.sqrt(sizes[i])
        data[f"b{i}"] = np.zeros(sizes[i + 1])
    return {k: v.astype(dtype) for k, v in data.items()}


def mlp_numpy(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    h0 = np.tanh(d["X"] @ d["W0"] + d["b0"])
    h1 = np.tanh(h0 @ d["W1"] + d["b1"])
    out = h1 @ d["W2"] + d["b2"]
    diff = out - d["Y"]
    _loss = (diff * diff).sum()
    g_out = 2 * diff
    grads = {"W2": h1.T @ g_out, "b2": g_out.sum(0)}
    g_h1 = (g_out @ d["W2"].T) * (1 - h1 * h1)
    grads["W1"], grads["b1"] = h0.T @ g_h1, g_h1.sum(0)
    g_h0 = (g_h1 @ d["W1"].T) * (1 - h0 * h0)
    grads["W0"], grads["b0"] = d["X"].T @ g_h0, g_h0.sum(0)
    return grads


def mlp_params(d: dict[str, np.ndarray], lib: object) -> dict[str, object]:
    if lib is mg:
        return {k: mg.from_numpy(v).requires_grad_(k[0] in "Wb") for k, v in d.items()}
    return {k: torch.from_numpy(v).requires_grad_(k[0] in "Wb") for k, v in d.items()}


def mlp_autodiff(p: dict[str, object]) -> dict[str, object]:
    h0 = (p["X"] @ p["W0"] + p["b0"]).tanh()
    h1 = (h0 @ p["W1"] + p["b1"]).tanh()
    out = h1 @ p["W2"] + p["b2"]
    diff = out - p["Y"]
    (diff * diff).sum().backward()
    grads = {k: v.grad for k, v in p.items() if k[0] in "Wb"}
    for k in grads:
        p[k].grad = None
    return grads


# -- (c) matrix chain ------------------------------------------------------------------------
def matrices(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.standard_normal((n, n)) for _ in range(4)]


def matchain_numpy(A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray) -> tuple:
    AB = A @ B
    _loss = ((AB @ C) * D).sum()
    G = D  # d loss / d (ABC)
    gAB = G @ C.T
    return gAB @ B.T, A.T @ gAB, AB.T @ G


def matchain_autodiff(lib: object, arrays: list[np.ndarray]) -> tuple:
    make = mg.from_numpy if lib is mg else torch.from_numpy
    A, B, C = (make(a).requires_grad_() for a in arrays[:3])
    D = make(arrays[3])
    ((A @ B @ C) * D).sum().backward()
    return A.grad, B.grad, C.grad


def report(title: str, medians: dict[str, float], baseline: str = "numpy") -> None:
    base = medians[baseline]
    print(f"\n{title}")
    for name, t in medians.items():
        print(f"  {name:<22} {t * 1e3:9.3f} ms   {t / base:6.2f}x numpy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="smaller (c): 400x400")
    args = parser.parse_args()

    x0 = np.random.default_rng(0).standard_normal((10, 10))
    np.testing.assert_allclose(chain_matgrad(x0), chain_numpy(x0), rtol=1e-10)
    contenders = {"numpy": lambda: chain_numpy(x0), "matgrad": lambda: chain_matgrad(x0)}
    if torch is not None:
        contenders["torch"] = lambda: chain_torch(x0)
    report(
        "(a) chain of 1,000 elementwise ops, 10x10 float64",
        interleaved(contenders, 4 * args.repeats),
    )

    for dtype in (np.float64, np.float32):
        d = mlp_data(dtype)
        p = mlp_params(d, mg)
        reference = mlp_numpy(d)
        got = mlp_autodiff(p)
        for k in reference:
            np.testing.assert_allclose(got[k].numpy(), reference[k], rtol=1e-3, atol=1e-3)
        contenders = {"numpy": lambda d=d: mlp_numpy(d), "matgrad": lambda p=p: mlp_autodiff(p)}
        if torch is not None:
            tp = mlp_params(d, torch)
            contenders["torch"] = lambda tp=tp: mlp_autodiff(tp)
        medians = interleaved(contenders, args.repeats)
        report(f"(b) 3-layer tanh MLP, batch 256, 784-512-512-10, {np.dtype(dtype).name}", medians)
        mem_np = peak_memory(lambda d=d: mlp_numpy(d))
        mem_mg = peak_memory(lambda p=p: mlp_autodiff(p))
        print(
            f"  peak memory: numpy {mem_np / 2**20:.1f} MiB, matgrad {mem_mg / 2**20:.1f} MiB "
            f"({mem_mg / mem_np:.2f}x)"
        )

    n = 400 if args.quick else 1000
    arrays = matrices(n)
    contenders = {
        "numpy": lambda: matchain_numpy(*arrays),
        "matgrad": lambda: matchain_autodiff(mg, arrays),
    }
    if torch is not None:
        contenders["torch"] = lambda: matchain_autodiff(torch, arrays)
    report(
        f"(c) sum((A @ B @ C) * D), {n}x{n} float64",
        interleaved(contenders, max(5, args.repeats // 3)),
    )


if __name__ == "__main__":
    main()
