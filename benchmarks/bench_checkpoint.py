"""Activation checkpointing (issue #11): peak memory and time of a deep tanh MLP.

A stack of ``depth`` blocks ``Linear(width, width) -> Tanh`` (float64) on a batch of
``batch`` rows, forward and backward of ``out.square().sum()``, three ways:

- plain: every block's activations are kept for backward;
- ``checkpoint`` per block (``use_reentrant=False``): only each block's input is kept;
- ``checkpoint_sequential`` with ``round(sqrt(depth))`` segments: only each segment's input is
  kept, and one segment is recomputed at a time in backward.

Peak memory is the peak of ``tracemalloc`` (NumPy reports its buffers to it) during one
forward + backward, after a first pass has made every ``.grad`` (later passes add into them
in place), so it counts activations, recomputed values and transient gradients. It is also
shown in units of one activation (``batch * width * 8`` bytes). Times are medians of
interleaved runs, as ratios to the plain run. The gradients of all three are checked to be
bit-identical first.

Run: ``python benchmarks/bench_checkpoint.py`` (32 blocks, batch 1024, width 1024) or
``--small`` (width and batch 256), ``--repeats N``, ``--depth D``. One thread (set below).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # see bench_core.py
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

import matgrad as mg  # noqa: E402
from matgrad import nn  # noqa: E402
from matgrad.utils.checkpoint import checkpoint, checkpoint_sequential  # noqa: E402


def make_model(depth: int, width: int) -> nn.Sequential:
    mg.manual_seed(0)
    return nn.Sequential(*(nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(depth)))


def run_plain(model: nn.Sequential, x: mg.Tensor) -> None:
    model(x).square().sum().backward()


def run_per_block(model: nn.Sequential, x: mg.Tensor) -> None:
    h = x
    for block in model.children():
        h = checkpoint(block, h, use_reentrant=False)
    h.square().sum().backward()


def run_sequential(model: nn.Sequential, x: mg.Tensor, segments: int) -> None:
    checkpoint_sequential(model, segments, x, use_reentrant=False).square().sum().backward()


def peak_bytes(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="width and batch 256")
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width = batch = 256 if args.small else 1024
    depth = args.depth
    segments = max(1, round(math.sqrt(depth)))
    model = make_model(depth, width)
    x = mg.from_numpy(np.random.default_rng(1).standard_normal((batch, width)))
    params = list(model.parameters())

    contenders: dict[str, Callable[[], None]] = {
        "plain": lambda: run_plain(model, x),
        "checkpoint per block": lambda: run_per_block(model, x),
        f"checkpoint_sequential ({segments} segments)": lambda: run_sequential(model, x, segments),
    }
    # identical gradients (and the first pass, which makes every .grad)
    grads = {}
    for name, fn in contenders.items():
        model.zero_grad(set_to_none=True)
        fn()
        grads[name] = [p.grad.numpy().copy() for p in params]
    reference = grads["plain"]
    for name, gs in grads.items():
        same = all(np.array_equal(a, b) for a, b in zip(gs, reference, strict=True))
        print(f"gradients of {name}: {'identical to plain' if same else 'DIFFERENT'}")
        if not same:
            raise SystemExit(1)

    activation = batch * width * 8
    print(
        f"\n{depth} blocks Linear({width}, {width}) + Tanh, batch {batch}, float64; one "
        f"activation = {activation / 2**20:.1f} MiB"
    )
    peaks = {name: peak_bytes(fn) for name, fn in contenders.items()}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, fn in contenders.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base_t = statistics.median(times["plain"])
    print(f"  {'':<34} {'peak':>10} {'activations':>12} {'time':>9} {'vs plain':>9}")
    for name in contenders:
        t = statistics.median(times[name])
        print(
            f"  {name:<34} {peaks[name] / 2**20:>7.1f} MiB {peaks[name] / activation:>12.1f} "
            f"{t:>8.2f}s {t / base_t:>8.2f}x"
        )
    print(
        f"  (sqrt(depth) = {math.sqrt(depth):.1f}; peak memory of plain / sequential = "
        f"{peaks['plain'] / peaks[list(contenders)[2]]:.1f}x)"
    )


if __name__ == "__main__":
    main()
