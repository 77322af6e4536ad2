"""Dask backend benchmark (issue #12): the gradient of ``examples/dask_least_squares.py`` (a
least-squares loss over Dask data ``X``, ``y`` with a NumPy parameter ``w``) recorded and
computed by matgrad, as a ratio to the same loss and gradient written by hand with dask.array
in the same run.

(a) in process, Dask's threaded scheduler with one worker thread: wall and CPU seconds of
    recording + computing, medians of interleaved runs; the task counts of both graphs;
(b) with ``--cluster``: the example itself on a ``dask.distributed`` LocalCluster (127.0.0.1,
    2 workers x 1 thread, 1 GiB each), wall and CPU seconds summed over the workers.

Run: ``python benchmarks/bench_dask.py [--repeats N] [--quick] [--cluster]``. One thread (set
below, before NumPy loads), contenders interleaved, medians reported. CPU seconds are the
steadier figure on a loaded machine: other processes lengthen the wall time of both.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # as bench_core.py: this CPU's kernel
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import matgrad as mg  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dask_least_squares.py"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("dask_least_squares", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def interleaved(
    contenders: dict[str, Callable[[], object]], repeats: int
) -> dict[str, dict[str, Any]]:
    """Wall and CPU seconds per contender (medians), run in turn, the order reversed every
    round (A B, B A, ...) so that load spikes and after-effects of the previous run hit all
    alike; ``cpu_runs`` keeps the CPU seconds of every round, for paired ratios."""
    for fn in contenders.values():  # warm up
        fn()
    names = list(contenders)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            c0, t0 = time.process_time(), time.perf_counter()
            contenders[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        name: {
            "wall": statistics.median(wall[name]),
            "cpu": statistics.median(cpu[name]),
            "cpu_runs": cpu[name],
        }
        for name in names
    }


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a / b (each round's two runs saw about the same load)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated while ``fn`` runs (NumPy reports its buffers to tracemalloc; with
    the threaded scheduler the chunks are made in this process)."""
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def task_count(*arrays: Any) -> int:
    """Tasks of the optimized graph Dask runs for ``arrays`` together."""
    import dask

    expr = dask.base.collections_to_expr(list(arrays)).optimize()
    return len(dict(expr.__dask_graph__()))


def threaded(example: Any, rows: int, features: int, chunk_rows: int, repeats: int) -> None:
    import dask

    X, y = example.make_data(rows, features, chunk_rows)
    w0 = np.zeros(features)
    loss, grad = example.gradient_matgrad(X, y, w0)
    by_hand = example.gradient_by_hand(X, y, w0)
    tasks = {"matgrad": task_count(loss._data, grad._data), "dask": task_count(*by_hand)}
    with dask.config.set(scheduler="threads", num_workers=1):
        computed = mg.compute(loss, grad)  # w.grad (here `grad`) becomes NumPy in place
        reference = dask.compute(*by_hand)
        difference = float(np.max(np.abs(computed[1].numpy() - reference[1])))
        medians = interleaved(
            {
                "matgrad": lambda: mg.compute(*example.gradient_matgrad(X, y, w0)),
                "dask": lambda: dask.compute(*example.gradient_by_hand(X, y, w0)),
            },
            repeats,
        )
        record = interleaved(
            {
                "matgrad": lambda: example.gradient_matgrad(X, y, w0),
                "dask": lambda: example.gradient_by_hand(X, y, w0),
            },
            repeats,
        )
        peaks = {
            "matgrad": peak_memory(lambda: mg.compute(*example.gradient_matgrad(X, y, w0))),
            "dask": peak_memory(lambda: dask.compute(*example.gradient_by_hand(X, y, w0))),
        }
    print(
        f"(a) threaded scheduler, 1 thread: X {rows} x {features} float64 "
        f"({rows * features * 8 / 2**30:.2f} GiB) in chunks of {chunk_rows} rows, "
        f"medians of {repeats}"
    )
    for name in ("matgrad", "dask"):
        m = medians[name]
        print(
            f"    {name:>8}: {m['wall']:7.3f} s wall, {m['cpu']:7.3f} s CPU, "
            f"{tasks[name]} tasks, peak memory {peaks[name] / 2**20:.0f} MiB; recording the "
            f"graphs alone {record[name]['wall'] * 1e3:.1f} ms"
        )
    wall = medians["matgrad"]["wall"] / medians["dask"]["wall"]
    cpu = medians["matgrad"]["cpu"] / medians["dask"]["cpu"]
    paired = paired_ratio(medians["matgrad"]["cpu_runs"], medians["dask"]["cpu_runs"])
    print(
        f"    ratio matgrad / hand-written Dask: {wall:.3f} (wall), {cpu:.3f} (CPU), "
        f"{paired:.3f} (CPU, median of paired rounds)"
    )
    print(f"    largest gradient difference: {difference:.1e}")


def cluster(example: Any, rows: int, features: int, chunk_rows: int, repeats: int) -> None:
    out = example.run(rows, features, chunk_rows, repeats=repeats)
    print(
        f"(b) LocalCluster, 2 workers x 1 thread x 1 GiB: {out['data_bytes'] / 2**30:.2f} GiB "
        f"in chunks of {chunk_rows * features * 8 / 2**20:.0f} MiB, medians of {repeats}"
    )
    for name in ("matgrad", "dask"):
        print(
            f"    {name:>8}: {out['time'][name]:7.2f} s wall, {out['cpu'][name]:7.2f} s CPU, "
            f"peak cluster memory {out['peak_cluster_memory'][name] / 2**30:.2f} GiB"
        )
    wall = out["time"]["matgrad"] / out["time"]["dask"]
    cpu = out["cpu"]["matgrad"] / out["cpu"]["dask"]
    print(f"    ratio matgrad / hand-written Dask: {wall:.3f} (wall), {cpu:.3f} (CPU)")
    print(f"    largest gradient difference: {out['max_grad_difference']:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="(a) on 200k rows x 100")
    parser.add_argument("--cluster", action="store_true", help="also (b), on 4M rows x 100")
    parser.add_argument("--cluster-rows", type=int, default=4_000_000)
    args = parser.parse_args()
    example = load_example()
    rows = 200_000 if args.quick else 1_000_000
    threaded(example, rows, 100, 50_000 if args.quick else 125_000, args.repeats)
    if args.cluster:
        cluster(example, args.cluster_rows, 100, 125_000, max(1, args.repeats // 2))


if __name__ == "__main__":
    main()
