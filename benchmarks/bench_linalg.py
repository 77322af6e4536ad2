"""Linear-algebra gradient benchmarks (issue 3), as ratios to hand-written NumPy gradients.

Each case times one gradient evaluation (forward + backward) of a scalar loss of a 200x200
float64 matrix, for matgrad and for the NumPy code one would write by hand (which calls
``slogdet``/``det`` and then ``inv``, etc.), measured in the same run, one thread, contenders
interleaved, medians of the repeats, the garbage collector paused while timing (as ``timeit``
does):

  logdet         log det A                       NumPy: slogdet(A); inv(A).T
  det            det A                           NumPy: det(A); det * inv(A).T
  inv            sum(inv(A) * D)                 NumPy: Ai = inv(A); -Ai.T @ D @ Ai.T
  svdvals        svdvals(A).sum()                NumPy: U, s, Vh = svd(A); U @ Vh
  eigvalsh       sum(eigvalsh(S)^2)              NumPy: w, Q = eigh(S); Q diag(2w) Q^T
  eigh-proj      sum(w * c) + sum(P_k * D), P_k the projector onto the top-k eigenspace
                                                 NumPy: the eigh VJP written out
  einsum-3       sum(einsum('ij,jk,kl->il', A, B, C) * D)
                                                 NumPy: np.einsum(..., optimize=True) for the
                                                 value and each operand's gradient

Run: ``python benchmarks/bench_linalg.py [--repeats N] [--n N]``. PyTorch joins when
importable (optional), timed against NumPy in a separate interleaved run.
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
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

import matgrad as mg  # noqa: E402
from matgrad import linalg as la  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # PyTorch is an optional comparison
    torch = None

TARGETS = {  # issue 3's targets; eigh-proj is an extra case (9 graph ops around one eigh)
    "logdet": 0.75,
    "det": 0.75,
    "inv": 1.05,
    "svdvals": 1.05,
    "eigvalsh": 1.05,
    "eigh-proj": 1.05,
}


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per contender, running them in turn so load spikes hit all alike. The
    cyclic garbage collector is paused while timing (as ``timeit`` does): its pauses land on
    whichever contender happens to cross its allocation threshold."""
    for fn in contenders.values():  # warm up
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    finally:
        gc.enable()
    return {name: statistics.median(ts) for name, ts in times.items()}


def _mg_grad(loss: Callable[..., mg.Tensor], *arrays: np.ndarray) -> Callable[[], object]:
    leaves = [mg.Tensor(a, requires_grad=True) for a in arrays]  # no copy of the data

    def run() -> object:
        return mg.autograd.grad(loss(*leaves), leaves)

    return run


def _torch_grad(loss: Callable[..., object], *arrays: np.ndarray) -> Callable[[], object] | None:
    if torch is None:
        return None
    leaves = [torch.tensor(a, requires_grad=True) for a in arrays]

    def run() -> object:
        return torch.autograd.grad(loss(*leaves), leaves)

    return run


# -- hand-written NumPy gradients -------------------------------------------------------------
def np_logdet(A: np.ndarray) -> tuple:
    _, logabs = np.linalg.slogdet(A)
    return logabs, np.linalg.inv(A).T


def np_det(A: np.ndarray) -> tuple:
    d = np.linalg.det(A)
    return d, d * np.linalg.inv(A).T


def np_inv(A: np.ndarray, D: np.ndarray) -> tuple:
    Ai = np.linalg.inv(A)
    return np.sum(Ai * D), -(Ai.T @ D @ Ai.T)


def np_svdvals(A: np.ndarray) -> tuple:
    U, s, Vh = np.linalg.svd(A, full_matrices=False)
    return s.sum(), U @ Vh


def np_eigvalsh(S: np.ndarray) -> tuple:
    w, Q = np.linalg.eigh(S)
    return np.sum(w**2), (Q * (2 * w)) @ Q.T


def np_eigh_proj(S: np.ndarray, c: np.ndarray, D: np.ndarray, k: int) -> tuple:
    w, Q = np.linalg.eigh(S)
    Qk = Q[:, -k:]
    loss = np.sum(w * c) + np.sum((Qk @ Qk.T) * D)
    gQ = np.zeros_like(Q)
    gQ[:, -k:] = (D + D.T) @ Qk
    X = Q.T @ gQ
    E = w[None, :] - w[:, None]
    np.fill_diagonal(E, 1.0)
    inner = (X - X.T) / (2 * E)
    np.fill_diagonal(inner, c)
    return loss, Q @ inner @ Q.T


def np_einsum3(A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray) -> tuple:
    out = np.einsum("ij,jk,kl->il", A, B, C, optimize=True)
    return (
        np.sum(out * D),
        np.einsum("il,jk,kl->ij", D, B, C, optimize=True),
        np.einsum("ij,il,kl->jk", A, D, C, optimize=True),
        np.einsum("ij,jk,il->kl", A, B, D, optimize=True),
    )


def cases(n: int, rng: np.random.Generator) -> dict[str, dict[str, Callable[[], object]]]:
    A = rng.standard_normal((n, n)) / np.sqrt(n) + 3.0 * np.eye(n)  # det > 0, cond ~ 2
    D = rng.standard_normal((n, n))
    M = rng.standard_normal((n, n))
    S = (M + M.T) / 2
    c = rng.standard_normal(n)
    k = 5
    B, C = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    Dt = mg.tensor(D)
    ct = mg.tensor(c)

    def mg_eigh_proj(s: mg.Tensor) -> mg.Tensor:
        w, Q = la.eigh(s)
        Qk = Q[:, -k:]
        return (w * ct).sum() + ((Qk @ Qk.mT) * Dt).sum()

    table: dict[str, dict[str, Callable[[], object] | None]] = {
        "logdet": {
            "matgrad": _mg_grad(la.logdet, A),
            "numpy": lambda: np_logdet(A),
            "torch": _torch_grad(lambda a: torch.logdet(a), A),
        },
        "det": {
            "matgrad": _mg_grad(la.det, A),
            "numpy": lambda: np_det(A),
            "torch": _torch_grad(lambda a: torch.linalg.det(a), A),
        },
        "inv": {
            "matgrad": _mg_grad(lambda a: (la.inv(a) * Dt).sum(), A),
            "numpy": lambda: np_inv(A, D),
            "torch": _torch_grad(lambda a: (torch.linalg.inv(a) * torch.tensor(D)).sum(), A),
        },
        "svdvals": {
            "matgrad": _mg_grad(lambda a: la.svdvals(a).sum(), A),
            "numpy": lambda: np_svdvals(A),
            "torch": _torch_grad(lambda a: torch.linalg.svdvals(a).sum(), A),
        },
        "eigvalsh": {
            "matgrad": _mg_grad(lambda s: (la.eigvalsh(s) ** 2).sum(), S),
            "numpy": lambda: np_eigvalsh(S),
            "torch": _torch_grad(lambda s: (torch.linalg.eigvalsh(s) ** 2).sum(), S),
        },
        "eigh-proj": {
            "matgrad": _mg_grad(mg_eigh_proj, S),
            "numpy": lambda: np_eigh_proj(S, c, D, k),
            "torch": None,
        },
        "einsum-3": {
            "matgrad": _mg_grad(
                lambda a, b, cc: (mg.einsum("ij,jk,kl->il", a, b, cc) * Dt).sum(), A, B, C
            ),
            "numpy": lambda: np_einsum3(A, B, C, D),
            "torch": _torch_grad(
                lambda a, b, cc: (torch.einsum("ij,jk,kl->il", a, b, cc) * torch.tensor(D)).sum(),
                A,
                B,
                C,
            ),
        },
    }
    return {name: {k: f for k, f in row.items() if f is not None} for name, row in table.items()}


def check(n: int, rng: np.random.Generator) -> None:
    """The contenders compute the same gradients (sanity check before timing)."""
    A = rng.standard_normal((n, n)) / np.sqrt(n) + 3.0 * np.eye(n)
    x = mg.Tensor(A, requires_grad=True)
    (g,) = mg.autograd.grad(la.logdet(x), [x])
    np.testing.assert_allclose(g.numpy(), np_logdet(A)[1], rtol=1e-8, atol=1e-12)
    (g,) = mg.autograd.grad(la.det(x), [x])
    np.testing.assert_allclose(g.numpy(), np_det(A)[1], rtol=1e-8)
    (g,) = mg.autograd.grad(la.svdvals(x).sum(), [x])
    np.testing.assert_allclose(g.numpy(), np_svdvals(A)[1], rtol=1e-8, atol=1e-10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=51)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    check(args.n, rng)
    print(
        f"gradient time, {args.n}x{args.n} float64, 1 thread, median of {args.repeats} "
        f"(interleaved); ratio = contender / hand-written NumPy"
    )
    header = f"{'case':<10} {'numpy ms':>9} {'matgrad ms':>11} {'ratio':>7} {'target':>7}"
    if torch is not None:
        header += f" {'torch ms':>9} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for name, contenders in cases(args.n, rng).items():
        # matgrad against NumPy, then PyTorch against NumPy in a run of its own: PyTorch's
        # thread pool would otherwise slow down whichever contender runs after it
        t = interleaved({k: contenders[k] for k in ("numpy", "matgrad")}, args.repeats)
        target = TARGETS.get(name)
        line = (
            f"{name:<10} {t['numpy'] * 1e3:>9.3f} {t['matgrad'] * 1e3:>11.3f} "
            f"{t['matgrad'] / t['numpy']:>7.2f} "
            f"{f'<= {target:.2f}' if target else '':>7}"
        )
        if "torch" in contenders:
            tt = interleaved({k: contenders[k] for k in ("numpy", "torch")}, args.repeats)
            line += f" {tt['torch'] * 1e3:>9.3f} {tt['torch'] / tt['numpy']:>7.2f}"
        print(line)


if __name__ == "__main__":
    main()
