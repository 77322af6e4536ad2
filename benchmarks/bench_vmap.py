"""Per-sample gradients (issue #11, func.vmap): a small tanh MLP (32-64-64-10, squared loss),
batch 64, the gradient of each sample's loss with respect to every parameter:

    matgrad vmap      matgrad.func.vmap(matgrad.func.grad(loss), in_dims=(None, 0, 0))
    matgrad loop      matgrad.func.grad(loss) once per sample, stacked (a Python loop)
    torch vmap        torch.func.vmap(torch.func.grad(loss), ...) on the same data

All three are checked to agree first. Run: ``python benchmarks/bench_vmap.py [--repeats N]
[--batch B]``. One thread (set before NumPy loads), contenders interleaved, medians reported
(house style of bench_core.py).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # see bench_core.py
    os.environ.pop(_var, None)

import argparse  # noqa: E402
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

SIZES = (32, 64, 64, 10)


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per contender, running them in turn so load spikes hit all alike."""
    for fn in contenders.values():  # warm up
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def data(batch: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    params = {}
    for i in range(len(SIZES) - 1):
        params[f"W{i}"] = rng.standard_normal((SIZES[i], SIZES[i + 1])) / np.sqrt(SIZES[i])
        params[f"b{i}"] = np.zeros(SIZES[i + 1])
    return params, rng.standard_normal((batch, SIZES[0])), rng.standard_normal((batch, SIZES[-1]))


def loss(p: dict, x: object, y: object) -> object:
    """One sample: x of shape (32,), y of shape (10,)."""
    h = (x @ p["W0"] + p["b0"]).tanh()
    h = (h @ p["W1"] + p["b1"]).tanh()
    diff = h @ p["W2"] + p["b2"] - y
    return (diff * diff).sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    params, X, Y = data(args.batch)
    mp = {k: mg.from_numpy(v) for k, v in params.items()}
    mX, mY = mg.from_numpy(X), mg.from_numpy(Y)
    per_sample = mg.func.vmap(mg.func.grad(loss), in_dims=(None, 0, 0))
    grad_one = mg.func.grad(loss)

    def matgrad_vmap() -> dict:
        return per_sample(mp, mX, mY)

    def matgrad_loop() -> dict:
        gs = [grad_one(mp, mX[i], mY[i]) for i in range(args.batch)]
        return {k: mg.stack([g[k] for g in gs]) for k in mp}

    got, looped = matgrad_vmap(), matgrad_loop()
    for k in mp:
        np.testing.assert_allclose(got[k].numpy(), looped[k].numpy(), rtol=1e-10, atol=1e-12)
    contenders = {"matgrad vmap": matgrad_vmap, "matgrad loop": matgrad_loop}
    if torch is not None:
        tp = {k: torch.from_numpy(v) for k, v in params.items()}
        tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
        t_per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))

        def torch_vmap() -> dict:
            return t_per_sample(tp, tX, tY)

        ref = torch_vmap()
        for k in mp:
            np.testing.assert_allclose(got[k].numpy(), ref[k].numpy(), rtol=1e-10, atol=1e-12)
        contenders["torch vmap"] = torch_vmap
    medians = interleaved(contenders, args.repeats)
    base = medians["matgrad vmap"]
    sizes = "-".join(map(str, SIZES))
    print(f"per-sample gradients, tanh MLP {sizes}, batch {args.batch}, float64 (one thread)")
    for name, t in medians.items():
        print(f"  {name:<14} {t * 1e3:9.3f} ms   {t / base:6.2f}x matgrad vmap")


if __name__ == "__main__":
    main()
