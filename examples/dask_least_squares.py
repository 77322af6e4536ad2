"""The gradient of a least-squares loss over a data matrix larger than the cluster's memory,
with the parameters in memory.

The data matrix ``X`` (``n_rows x n_features``) and targets ``y`` are generated chunk by chunk
by Dask and never materialized whole; the parameter ``w`` is an ordinary NumPy-backed tensor.
``X @ w`` runs in Dask (as ``dask_array @ numpy_array`` does), so matgrad records the forward
pass and the backward pass as lazy Dask graphs, and one ``matgrad.compute`` call runs both on a
``dask.distributed`` LocalCluster (127.0.0.1 only) whose workers have a memory limit; after it,
``w.grad`` holds NumPy values, ready for an optimizer step. The same gradient written by hand in
Dask, with the same NumPy ``w``, is computed in the same run for comparison:

    loss(w)      = mean((X w - y)^2)
    d loss / dw  = 2 X^T (X w - y) / n_rows

Run: ``python examples/dask_least_squares.py --rows 4000000 --features 100 --chunk-rows 125000
--repeats 3`` (3 GiB of data against 2 x 1 GiB of workers); the defaults are small enough for a
test. Times are wall-clock and CPU seconds (summed over the workers and this process, which
also runs the scheduler); on a loaded machine the CPU ratio is the steadier one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import matgrad as mg


def make_data(n_rows: int, n_features: int, chunk_rows: int, seed: int = 0) -> tuple:
    import dask.array as da

    rng = da.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), chunks=(chunk_rows, n_features))
    true_w = np.linspace(-1.0, 1.0, n_features)
    y = X @ da.from_array(true_w, chunks=n_features) + rng.standard_normal(
        n_rows, chunks=chunk_rows
    )
    return X, y


def gradient_matgrad(X, y, w0: np.ndarray) -> tuple:
    """Loss and gradient, recorded by matgrad as lazy Dask graphs (nothing computed here).
    The parameter ``w`` is an ordinary NumPy-backed tensor; the op with the Dask data runs in
    Dask (as ``dask_array @ numpy_array`` does), so ``loss`` and ``w.grad`` are lazy."""
    w = mg.tensor(w0, requires_grad=True)
    loss = ((mg.asarray(X) @ w - mg.asarray(y)) ** 2).mean()
    loss.backward()
    return loss, w.grad


def gradient_by_hand(X, y, w0: np.ndarray) -> tuple:
    """The same loss and gradient written directly in Dask, with the same NumPy ``w``."""
    residual = X @ w0 - y
    return (residual**2).mean(), 2.0 * (X.T @ residual) / X.shape[0]


def _cpu_seconds(client) -> float:
    """CPU seconds used so far by the workers and by this process (client and scheduler)."""
    return time.process_time() + sum(client.run(time.process_time).values())


def run(
    n_rows: int = 200_000,
    n_features: int = 20,
    chunk_rows: int = 50_000,
    workers: int = 2,
    memory_limit: str = "1GiB",
    repeats: int = 1,
) -> dict:
    """Both gradients on a LocalCluster, interleaved; returns median wall and CPU times, peak
    cluster memory and the largest difference between the two gradients."""
    import dask
    import distributed
    from distributed.diagnostics import MemorySampler

    X, y = make_data(n_rows, n_features, chunk_rows)
    w0 = np.zeros(n_features)
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=memory_limit,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        sampler = MemorySampler()
        times: dict[str, list[float]] = {"matgrad": [], "dask": []}
        cpu: dict[str, list[float]] = {"matgrad": [], "dask": []}
        results = {}
        for _ in range(repeats):  # interleaved
            for name in ("matgrad", "dask"):
                cpu_start = _cpu_seconds(client)
                start = time.perf_counter()
                with sampler.sample(name, client=client, interval=0.1):
                    if name == "matgrad":
                        loss, grad = mg.compute(*gradient_matgrad(X, y, w0))
                        results[name] = (loss.item(), grad.numpy())
                    else:
                        loss, grad = dask.compute(*gradient_by_hand(X, y, w0))
                        results[name] = (float(loss), np.asarray(grad))
                times[name].append(time.perf_counter() - start)
                cpu[name].append(_cpu_seconds(client) - cpu_start)
        peaks = {name: max(v for _, v in sampler.samples[name]) for name in times}
    return {
        "data_bytes": n_rows * n_features * 8,
        "time": {k: float(np.median(v)) for k, v in times.items()},
        "cpu": {k: float(np.median(v)) for k, v in cpu.items()},
        "peak_cluster_memory": peaks,
        "max_grad_difference": float(np.max(np.abs(results["matgrad"][1] - results["dask"][1]))),
        "loss": results["matgrad"][0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    out = run(
        args.rows, args.features, args.chunk_rows, args.workers, args.memory_limit, args.repeats
    )
    gib = 2**30
    print(
        f"data: {out['data_bytes'] / gib:.2f} GiB in chunks of "
        f"{args.chunk_rows * args.features * 8 / 2**20:.0f} MiB; workers: {args.workers} x "
        f"{args.memory_limit}"
    )
    for name in ("matgrad", "dask"):
        print(
            f"{name:>8}: {out['time'][name]:7.2f} s wall, {out['cpu'][name]:7.2f} s CPU, peak "
            f"cluster memory {out['peak_cluster_memory'][name] / gib:.2f} GiB"
        )
    ratio = out["time"]["matgrad"] / out["time"]["dask"]
    cpu_ratio = out["cpu"]["matgrad"] / out["cpu"]["dask"]
    print(f"ratio matgrad / hand-written Dask: {ratio:.2f} (wall), {cpu_ratio:.2f} (CPU)")
    print(f"largest gradient difference: {out['max_grad_difference']:.2e}")


if __name__ == "__main__":
    main()
