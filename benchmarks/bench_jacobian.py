"""Whole Jacobians and Hessians against closed-form NumPy, measured in the same run, one thread.

(a) J of f(x) = tanh(W x), x in R^256, W 256x256: closed form (1 - tanh(Wx)^2)[:, None] * W
    (reverse and forward mode, vectorized and looped);
(b) J of C = A * B with respect to A, 30x30 (a 900x900 Jacobian): closed form diag(vec(B));
(c) Hessian of log-sum-exp in R^100: closed form diag(p) - p p^T, p = softmax(x).

Contenders are interleaved (one sample of each in turn), each sample times enough calls to last
>= 20 ms, and the median of the repeats is reported as a multiple of the closed form's median,
with the minor page faults per call (memory the allocator had given back to the OS and touches
again). Targets (issue 4): vectorized (a) <= 8x, (b) <= 3x, vectorized >= 10x faster than looped
on (a). For context, the floors: (a) one 256x256x256 matrix product, which any dense vectorized
pass performs (I * tanh' then @ W in reverse mode, I @ W^T in forward mode); (b) the dense
product I * B that the mul rule's formula performs on the identity batch.

    python benchmarks/bench_jacobian.py [--repeats 9] [--profile] [--no-malloc-trim]

``--no-malloc-trim`` (diagnostic only, Linux/glibc) keeps freed memory in the process
(``mallopt``), to show what the page faults cost; the targets are judged without it.
"""

from __future__ import annotations

import os

# Before NumPy loads OpenBLAS: one thread, and OpenBLAS's own choice of kernel. This machine
# sets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE to force an old kernel; dropping them here, in this
# process only, is the sanctioned way to measure current NumPy.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import ctypes  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

import matgrad as mg  # noqa: E402
from matgrad import func as mf  # noqa: E402
from matgrad.autograd.functional import (  # noqa: E402
    BatchingFallbackWarning,
    hessian,
    jacobian,
)

Contender = tuple[str, Callable[[], object]]
CLOSED = "closed form (NumPy)"


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: threadpoolctl not installed"
    libs = [
        f"{i.get('internal_api')} {i.get('version')} kernel {i.get('architecture')}, "
        f"{i.get('num_threads')} thread(s)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return "BLAS: " + ("; ".join(libs) or "none found")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _calibrate(fn: Callable[[], object], min_time: float) -> int:
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= min_time or number >= 1 << 20:
            return number
        number *= 2


def measure(contenders: list[Contender], repeats: int, min_time: float = 0.02) -> dict:
    """Per contender: (median seconds per call, median page faults per call), sampled in turn
    (interleaved)."""
    numbers = {name: _calibrate(fn, min_time) for name, fn in contenders}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in contenders}
    for _ in range(repeats):
        for name, fn in contenders:
            n = numbers[name]
            faults, start = _faults(), time.perf_counter()
            for _ in range(n):
                fn()
            elapsed = time.perf_counter() - start
            samples[name].append((elapsed / n, (_faults() - faults) / n))
    return {
        name: (statistics.median(t for t, _ in s), statistics.median(f for _, f in s))
        for name, s in samples.items()
    }


def check(name: str, fn: Callable[[], object], expected: np.ndarray) -> None:
    """Run once: the result must equal the closed form, without a fallback warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", BatchingFallbackWarning)
        got = fn()
    got = got.numpy() if isinstance(got, mg.Tensor) else np.asarray(got)
    np.testing.assert_allclose(
        got.reshape(expected.shape), expected, rtol=1e-10, atol=1e-12, err_msg=name
    )


def run_case(title: str, contenders: list[Contender], expected: np.ndarray, repeats: int) -> dict:
    for name, fn in contenders:
        if name != CLOSED and not name.startswith("floor"):
            check(name, fn, expected)
    times = measure(contenders, repeats)
    print(f"\n{title}")
    t0 = times[CLOSED][0]
    for name, (t, faults) in times.items():
        print(f"  {name:<40s} {t * 1e3:9.3f} ms {t / t0:8.1f}x {faults:8.0f} faults/call")
    return {name: t for name, (t, _) in times.items()}


def bench_a(repeats: int) -> dict:
    rng = np.random.default_rng(0)
    n = 256
    W, x = rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal(n)
    Wt, xt = mg.tensor(W), mg.tensor(x)
    M = rng.standard_normal((n, n))
    eye = np.eye(n)

    def closed() -> np.ndarray:
        return (1.0 - np.tanh(W @ x) ** 2)[:, None] * W

    def dense_reverse() -> np.ndarray:  # what the vectorized reverse pass computes
        return (eye * (1.0 - np.tanh(W @ x) ** 2)) @ W

    def f(v: mg.Tensor) -> mg.Tensor:
        return mg.tanh(Wt @ v)

    contenders: list[Contender] = [
        (CLOSED, closed),
        ("floor: one 256^3 matmul (M @ W)", lambda: M @ W),
        ("floor: NumPy dense reverse (I*tanh') @ W", dense_reverse),
        ("reverse, vectorized", lambda: jacobian(f, xt, vectorize=True)),
        ("forward, vectorized", lambda: jacobian(f, xt, vectorize=True, strategy="forward-mode")),
        ("func.jacrev", lambda: mf.jacrev(f)(xt)),
        ("func.jacfwd", lambda: mf.jacfwd(f)(xt)),
        ("reverse, looped", lambda: jacobian(f, xt, vectorize=False)),
        ("forward, looped", lambda: jacobian(f, xt, vectorize=False, strategy="forward-mode")),
    ]
    title = f"(a) Jacobian of tanh(W x), x in R^{n}  [{n}x{n}]"
    return run_case(title, contenders, closed(), repeats)


def bench_b(repeats: int) -> dict:
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((30, 30)), rng.standard_normal((30, 30))
    At, Bt = mg.tensor(A), mg.tensor(B)
    eye = np.eye(900).reshape(900, 30, 30)

    def closed() -> np.ndarray:
        return np.diag(B.ravel())

    def f(a: mg.Tensor) -> mg.Tensor:
        return a * Bt

    contenders: list[Contender] = [
        (CLOSED, closed),
        ("floor: NumPy I * B (I made before)", lambda: eye * B),
        ("reverse, vectorized", lambda: jacobian(f, At, vectorize=True)),
        ("forward, vectorized", lambda: jacobian(f, At, vectorize=True, strategy="forward-mode")),
        ("func.jacrev", lambda: mf.jacrev(f)(At)),
        ("func.jacfwd", lambda: mf.jacfwd(f)(At)),
        ("reverse, looped", lambda: jacobian(f, At, vectorize=False)),
        ("forward, looped", lambda: jacobian(f, At, vectorize=False, strategy="forward-mode")),
    ]
    title = "(b) Jacobian of C = A * B w.r.t. A, 30x30  [900x900]"
    return run_case(title, contenders, closed(), repeats)


def bench_c(repeats: int) -> dict:
    rng = np.random.default_rng(2)
    n = 100
    x = rng.standard_normal(n)
    xt = mg.tensor(x)

    def closed() -> np.ndarray:
        p = np.exp(x - x.max())
        p /= p.sum()
        return np.diag(p) - np.outer(p, p)

    def f(v: mg.Tensor) -> mg.Tensor:
        return mg.logsumexp(v, 0)

    contenders: list[Contender] = [
        (CLOSED, closed),
        ("hessian, vectorized (rev-over-rev)", lambda: hessian(f, xt, vectorize=True)),
        (
            "hessian, vectorized (fwd-over-rev)",
            lambda: hessian(f, xt, vectorize=True, outer_jacobian_strategy="forward-mode"),
        ),
        ("func.hessian = jacrev(jacrev)", lambda: mf.hessian(f)(xt)),
        ("func.jacfwd(func.jacrev)", lambda: mf.jacfwd(mf.jacrev(f))(xt)),
        ("hessian, looped (rev-over-rev)", lambda: hessian(f, xt, vectorize=False)),
    ]
    title = f"(c) Hessian of log-sum-exp, x in R^{n}  [{n}x{n}]"
    return run_case(title, contenders, closed(), repeats)


def no_malloc_trim() -> None:
    """glibc: serve large blocks from the heap and never give freed memory back to the OS."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not (libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)):
        raise RuntimeError("mallopt failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--profile", action="store_true", help="cProfile the vectorized contenders")
    parser.add_argument(
        "--no-malloc-trim",
        action="store_true",
        help="diagnostic: keep freed memory in the process (glibc mallopt)",
    )
    args = parser.parse_args()
    if args.no_malloc_trim:
        no_malloc_trim()
    repeats = max(args.repeats, 7)
    print(
        f"matgrad {mg.__version__}, numpy {np.__version__}, one thread, medians of "
        f"{repeats} interleaved repeats"
        + (", glibc trim OFF (diagnostic)" if args.no_malloc_trim else "")
    )
    print(blas_info())
    a, b = bench_a(repeats), bench_b(repeats)
    c = bench_c(repeats)
    base_a, base_b = a[CLOSED], b[CLOSED]
    print("\ntargets (vectorized, as multiples of the closed form in this run)")
    rows = [
        ("(a) reverse vectorized <= 8x", a["reverse, vectorized"] / base_a, 8.0),
        ("(a) forward vectorized <= 8x", a["forward, vectorized"] / base_a, 8.0),
        ("(b) reverse vectorized <= 3x", b["reverse, vectorized"] / base_b, 3.0),
        ("(b) forward vectorized <= 3x", b["forward, vectorized"] / base_b, 3.0),
    ]
    for label, ratio, limit in rows:
        print(f"  {label:<36s} {ratio:7.1f}x   {'met' if ratio <= limit else 'MISSED'}")
    for mode in ("reverse", "forward"):
        speedup = a[f"{mode}, looped"] / a[f"{mode}, vectorized"]
        label = f"(a) {mode} vectorized >= 10x looped"
        print(f"  {label:<36s} {speedup:7.1f}x   {'met' if speedup >= 10 else 'MISSED'}")
    matmul = a["floor: one 256^3 matmul (M @ W)"]
    dense = a["floor: NumPy dense reverse (I*tanh') @ W"]
    floor_b = b["floor: NumPy I * B (I made before)"]
    print(
        "\nfloors: (a) one 256x256x256 matmul = "
        f"{matmul / base_a:.1f}x the closed form, NumPy's dense reverse pass {dense / base_a:.1f}x"
        f"; (b) I * B = {floor_b / base_b:.1f}x"
    )
    print(
        "vectorized over floor: "
        f"(a) reverse {a['reverse, vectorized'] / dense:.2f}, "
        f"forward {a['forward, vectorized'] / dense:.2f} (of the dense reverse pass); "
        f"(b) reverse {b['reverse, vectorized'] / floor_b:.2f}, "
        f"forward {b['forward, vectorized'] / floor_b:.2f}"
    )
    print(
        "(c) vectorized Hessian: "
        f"rev-over-rev {c['hessian, vectorized (rev-over-rev)'] / c[CLOSED]:.1f}x, "
        f"fwd-over-rev {c['hessian, vectorized (fwd-over-rev)'] / c[CLOSED]:.1f}x the closed form"
    )
    if args.profile:
        profile()


def profile() -> None:
    rng = np.random.default_rng(0)
    Wt, xt = mg.tensor(rng.standard_normal((256, 256))), mg.tensor(rng.standard_normal(256))
    At, Bt = mg.tensor(rng.standard_normal((30, 30))), mg.tensor(rng.standard_normal((30, 30)))
    ct = mg.tensor(rng.standard_normal(100))

    def tanh_layer(v: mg.Tensor) -> mg.Tensor:
        return mg.tanh(Wt @ v)

    def lse(v: mg.Tensor) -> mg.Tensor:
        return mg.logsumexp(v, 0)

    cases = {
        "(a) reverse vectorized": lambda: jacobian(tanh_layer, xt, vectorize=True),
        "(a) forward vectorized": lambda: jacobian(
            tanh_layer, xt, vectorize=True, strategy="forward-mode"
        ),
        "(b) reverse vectorized": lambda: jacobian(lambda a: a * Bt, At, vectorize=True),
        "(b) forward vectorized": lambda: jacobian(
            lambda a: a * Bt, At, vectorize=True, strategy="forward-mode"
        ),
        "(c) rev-over-rev vectorized": lambda: hessian(lse, ct, vectorize=True),
        "(c) fwd-over-rev vectorized": lambda: hessian(
            lse, ct, vectorize=True, outer_jacobian_strategy="forward-mode"
        ),
    }
    for name, fn in cases.items():
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(200):
            fn()
        prof.disable()
        print(f"\nprofile {name} (200 calls), by own time")
        pstats.Stats(prof).sort_stats("tottime").print_stats(10)


if __name__ == "__main__":
    main()
