"""Sample inputs for every row of derivatives.yaml, used by the generic table test.

Each op maps to a list of samples: a function of tensors that exercises the op (through the
public API, so the op's node appears in the graph) and the float64 arrays to call it with.
Shapes cover broadcasting and batches. Inputs are drawn from each op's domain (``positive``
for log/sqrt, separated values for max/sort-like ops, well-conditioned matrices for linalg).
A meta-test fails when a row has no samples, or samples name no row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import matgrad as mg

rng = np.random.default_rng(1234)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(*shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def distinct(*shape: int) -> np.ndarray:
    """Values at least 0.1 apart (no ties: max/min/abs/relu are smooth there)."""
    n = int(np.prod(shape))
    vals = (rng.permutation(n) - n / 2) * 0.37 + 0.05
    return vals.reshape(shape)


def well_conditioned(*shape: int) -> np.ndarray:
    """Square matrices (batched) with singular values in [1, 3]."""
    q1, _ = np.linalg.qr(rng.standard_normal(shape))
    q2, _ = np.linalg.qr(rng.standard_normal(shape))
    s = rng.uniform(1.0, 3.0, shape[:-1])
    return q1 @ (s[..., :, None] * q2)


def spd(*shape: int) -> np.ndarray:
    """Symmetric positive definite matrices with eigenvalues in [1, 3]."""
    q, _ = np.linalg.qr(rng.standard_normal(shape))
    s = rng.uniform(1.0, 3.0, shape[:-1])
    return (q * s[..., None, :]) @ np.swapaxes(q, -1, -2)


@dataclass
class Sample:
    fn: Callable[..., mg.Tensor]
    inputs: list[np.ndarray]
    nondiff: list = field(default_factory=list)  # extra non-differentiable arguments
    gradgrad: bool = True
    atol: float = 1e-5
    rtol: float = 1e-3
    eps: float = 1e-6
    note: str = ""


S = Sample
_REM_Y = positive(4)
SPECS: dict[str, list[Sample]] = {
    # arithmetic, with broadcasting both ways and Python scalars
    "add": [
        S(lambda a, b: a + b, [randn(3, 4), randn(4)]),
        S(lambda a, b: a + b, [randn(2, 1, 3), randn(4, 1)]),
        S(lambda a: 2.0 + a, [randn(3)]),
    ],
    "sub": [S(lambda a, b: a - b, [randn(3, 4), randn(3, 1)]), S(lambda a: a - 1.0, [randn(2, 3)])],
    "rsub": [
        S(lambda a: 1.0 - a, [randn(2, 3)], note="the reflected operator"),
        S(lambda a, b: mg.rsub(a, b), [randn(3, 1), randn(3, 4)]),
    ],
    "mul": [S(lambda a, b: a * b, [randn(3, 4), randn(4)]), S(lambda a: a * 3.0, [randn(2, 2)])],
    "div": [
        S(lambda a, b: a / b, [randn(3, 4), positive(3, 1)]),
        S(lambda a: a / 2.0, [positive(4)]),
    ],
    "reciprocal": [
        S(lambda a: 2.0 / a, [positive(4)], note="the reflected operator: reciprocal(a) * 2"),
        S(lambda a: mg.reciprocal(a), [positive(2, 3)]),
    ],
    "neg": [S(lambda a: -a, [randn(2, 3)])],
    "pow": [
        S(lambda a, b: a**b, [positive(3, 2), randn(2)]),
        S(lambda a: a**3, [randn(4)]),
        S(lambda a: a**0.5, [positive(3)]),
    ],
    "rpow": [
        S(lambda b: 2.0**b, [randn(3)], note="the reflected operator"),
        S(lambda b, a: mg.ops.registry.PRIMITIVES.rpow(b, a), [randn(2, 3), positive(3)]),
    ],
    "exp": [S(mg.exp, [randn(2, 3)])],
    "log": [S(mg.log, [positive(2, 3)])],
    "log1p": [S(mg.log1p, [positive(4)])],
    "expm1": [S(mg.expm1, [randn(4)])],
    "sqrt": [S(mg.sqrt, [positive(2, 3)])],
    "abs": [S(mg.abs, [distinct(2, 3)])],
    "sign": [S(lambda a: mg.sign(a) * a, [distinct(5)])],
    "sin": [S(mg.sin, [randn(3)])],
    "cos": [S(mg.cos, [randn(3)])],
    "tan": [S(mg.tan, [rng.uniform(-1, 1, (3,))])],
    "tanh": [S(mg.tanh, [randn(2, 3)])],
    "sigmoid": [S(mg.sigmoid, [randn(2, 3)])],
    "relu": [S(mg.relu, [distinct(2, 3)])],
    # the Array API's elementwise functions
    "asin": [S(mg.asin, [rng.uniform(-0.8, 0.8, (2, 3))])],
    "acos": [S(mg.acos, [rng.uniform(-0.8, 0.8, (3,))])],
    "atan": [S(mg.atan, [randn(2, 3)])],
    "atan2": [
        S(mg.atan2, [randn(3, 4), positive(4)]),
        S(lambda a: mg.atan2(a, -1.5), [distinct(3)], note="second quadrant, scalar x"),
    ],
    "sinh": [S(mg.sinh, [randn(2, 3)])],
    "cosh": [S(mg.cosh, [randn(3)])],
    "asinh": [S(mg.asinh, [randn(2, 3)])],
    "acosh": [S(mg.acosh, [rng.uniform(1.5, 3.0, (3,))])],
    "atanh": [S(mg.atanh, [rng.uniform(-0.8, 0.8, (2, 2))])],
    "log2": [S(mg.log2, [positive(3)])],
    "log10": [S(mg.log10, [positive(2, 2)])],
    "square": [S(mg.square, [randn(2, 3)])],
    "hypot": [
        S(mg.hypot, [randn(3, 4), randn(4)]),
        S(lambda a: mg.hypot(a, 2.0), [randn(3)]),
    ],
    "logaddexp": [S(mg.logaddexp, [randn(3, 4), randn(4)])],
    "remainder": [
        S(
            mg.remainder,
            [_REM_Y * (np.array([-2.0, -1.0, 0.0, 3.0]) + rng.uniform(0.2, 0.8, (3, 4))), _REM_Y],
            note="quotients 0.2-0.8 away from an integer: no jump within eps",
        ),
        S(lambda a: a % -1.5, [-1.5 * (np.arange(4.0) - 1 + rng.uniform(0.2, 0.8, 4))]),
    ],
    "copysign": [S(mg.copysign, [distinct(2, 3), distinct(3) + 0.01])],
    "maximum": [S(mg.maximum, [distinct(3, 4), distinct(4) + 0.01])],
    "minimum": [S(mg.minimum, [distinct(3, 4), distinct(4) + 0.01])],
    "where": [
        S(lambda a, b: mg.where(mg.tensor([True, False, True]), a, b), [randn(2, 3), randn(3)])
    ],
    "clamp": [
        S(lambda a: mg.clamp(a, -0.5, 0.7), [distinct(2, 4)]),
        S(lambda a: mg.clamp(a, min=0.1), [distinct(5)]),
    ],
    "to_dtype": [
        S(
            lambda a: mg.to_dtype(a, np.float32).double() * 1.0,
            [randn(3)],
            eps=1e-2,
            atol=1e-3,
            rtol=1e-3,
            note="float32 round trip",
        )
    ],
    "clone": [S(mg.clone, [randn(2, 2)])],
    # reductions
    "sum": [
        S(lambda a: a.sum(), [randn(3, 4)]),
        S(lambda a: a.sum(1), [randn(2, 3, 4)]),
        S(lambda a: a.sum((0, 2), keepdim=True), [randn(2, 3, 4)]),
    ],
    "mean": [
        S(lambda a: a.mean(), [randn(3, 4)]),
        S(lambda a: a.mean(-1, keepdim=True), [randn(2, 3)]),
    ],
    "prod": [
        S(lambda a: a.prod(), [positive(5)]),
        S(lambda a: a.prod(1), [randn(2, 3, 2)]),
        S(
            lambda a: a.prod(0),
            [np.array([[0.0, 2.0], [3.0, 0.5], [1.5, 0.0]])],
            note="exact with zeros",
        ),
    ],
    "amax": [
        S(lambda a: a.amax(), [distinct(3, 4)]),
        S(lambda a: a.amax(0), [distinct(3, 4)]),
        S(lambda a: mg.amax(a, 1, keepdim=True), [distinct(2, 3)]),
    ],
    "amin": [S(lambda a: a.amin(-1), [distinct(3, 4)]), S(lambda a: mg.min(a), [distinct(5)])],
    "cumsum": [S(lambda a: mg.cumsum(a, 1), [randn(2, 3)]), S(lambda a: a.cumsum(0), [randn(4)])],
    "cumprod": [
        S(lambda a: mg.cumprod(a, -1), [randn(2, 4)]),
        S(
            lambda a: mg.cumprod(a, 0),
            [np.array([[0.5, 0.0], [0.0, 2.0], [1.5, 3.0], [2.0, 0.0]])],
            note="zeros (two in a column): the exact product table",
        ),
    ],
    # shapes
    "reshape": [
        S(lambda a: a.reshape(6, 2), [randn(3, 4)]),
        S(lambda a: a.view(-1), [randn(2, 3)]),
    ],
    "permute": [S(lambda a: a.permute(2, 0, 1), [randn(2, 3, 4)])],
    "transpose": [
        S(lambda a: a.transpose(0, 2), [randn(2, 3, 4)]),
        S(lambda a: a.mT, [randn(2, 3)]),
    ],
    "expand": [
        S(lambda a: a.expand(3, 4), [randn(1, 4)]),
        S(lambda a: a.expand(2, 3, 2), [randn(3, 1)]),
    ],
    "squeeze": [
        S(lambda a: a.squeeze(), [randn(3, 1, 2)]),
        S(lambda a: a.squeeze(1), [randn(3, 1)]),
    ],
    "unsqueeze": [
        S(lambda a: a.unsqueeze(1), [randn(3, 2)]),
        S(lambda a: a.unsqueeze(-1), [randn(3)]),
    ],
    "getitem": [
        S(lambda a: a[1:, ::2], [randn(3, 4)]),
        S(lambda a: a[..., 0], [randn(2, 3)]),
        S(lambda a: a[np.array([0, 2, 0])], [randn(3, 2)], note="repeated integer index"),
        S(lambda a: a[a > 0], [distinct(3, 3)], note="boolean mask"),
        S(lambda a: a[[1, 0], [0, 2]], [randn(2, 3)]),
    ],
    "take_along_axis": [
        S(
            lambda a: mg.take_along_axis(a, np.array([[0, 2, 0], [1, 1, 2]]), -1),
            [randn(2, 3)],
            note="repeated indices",
        ),
        S(lambda a: mg.take_along_axis(a, np.array([[2], [0]]), 0), [randn(3, 4)]),
        S(
            lambda a: mg.take_along_axis(a, np.array([[2, 0, 1, 1], [0, 0, 1, 2]]), 0),
            [randn(3, 1)],
            note="the input broadcasts against the indices",
        ),
        S(lambda a: mg.array_api.sort(a, axis=0, descending=True), [distinct(3, 2)]),
        S(lambda a: mg.array_api.take(a, mg.array_api.asarray([2, 0, 2]), axis=1), [randn(2, 3)]),
        S(
            lambda a: mg.max(a, 1, keepdim=True).values,
            [distinct(2, 3)],
            note="max with dim: a gather at the returned index",
        ),
    ],
    "zeros_scatter_along": [
        S(
            lambda a: mg.ops.composite.zeros_scatter_along(
                a, np.array([[0, 2, 0], [1, 1, 3]]), -1, (2, 4)
            ),
            [randn(2, 3)],
        )
    ],
    "zeros_scatter": [
        S(lambda a: mg.ops.composite.zeros_scatter(a, (4, 3), np.array([0, 2, 0])), [randn(3, 3)])
    ],
    "index_put": [
        S(lambda a, v: mg.index_put(a, v, (slice(None), 1)), [randn(3, 4), randn(3)]),
        S(lambda a, v: mg.index_put(a, v, np.array([True, False, True])), [randn(3, 2), randn(2)]),
    ],
    "cat": [
        S(lambda a, b: mg.cat([a, b], 1), [randn(2, 3), randn(2, 2)]),
        S(lambda a, b: mg.cat([a, b]), [randn(1, 2), randn(3, 2)]),
    ],
    "stack": [S(lambda a, b: mg.stack([a, b], 1), [randn(2, 3), randn(2, 3)])],
    "diagonal": [
        S(lambda a: a.diagonal(), [randn(3, 3)]),
        S(lambda a: mg.diagonal(a, 1, 0, 2), [randn(3, 2, 4)]),
        S(lambda a: mg.diagonal(a, -1, -2, -1), [randn(2, 4, 3)]),
    ],
    "diag_embed": [S(mg.diag_embed, [randn(2, 3)]), S(lambda a: mg.diag_embed(a, 1), [randn(3)])],
    "tril": [S(mg.tril, [randn(3, 3)]), S(lambda a: mg.tril(a, -1), [randn(2, 3, 4)])],
    "triu": [S(mg.triu, [randn(3, 4)]), S(lambda a: mg.triu(a, 1), [randn(3, 3)])],
    "flip": [S(lambda a: a.flip(0), [randn(3, 2)]), S(lambda a: a.flip((0, 1)), [randn(2, 3)])],
    "roll": [S(lambda a: a.roll(1, 0), [randn(3, 2)]), S(lambda a: a.roll(2), [randn(2, 3)])],
    "pad": [
        S(lambda a: mg.pad(a, (1, 2)), [randn(2, 3)]),
        S(lambda a: mg.pad(a, (0, -1, 1, 0), value=2.0), [randn(3, 3)], note="crop"),
    ],
    # products
    "mm": [S(lambda a, b: a @ b, [randn(3, 4), randn(4, 2)])],
    "bmm": [S(mg.bmm, [randn(2, 3, 4), randn(2, 4, 2)])],
    "matmul": [
        S(lambda a, b: a @ b, [randn(2, 3, 4), randn(4, 2)]),
        S(lambda a, b: a @ b, [randn(3, 1, 2, 3), randn(2, 3, 2)]),
        S(lambda a, b: a @ b, [randn(3), randn(2, 3, 4)]),
    ],
    "mv": [S(lambda a, b: a @ b, [randn(3, 4), randn(4)])],
    "dot": [S(lambda a, b: a @ b, [randn(4), randn(4)])],
    "outer": [S(mg.outer, [randn(3), randn(4)])],
}


# ---- linear algebra ---------------------------------------------------------------------------
from matgrad import linalg as la  # noqa: E402


def _sym(a):
    return (a + a.mT) * 0.5


def _triangular_input(*shape: int) -> np.ndarray:
    """Square matrices whose triangles are well conditioned (a strong diagonal)."""
    n = shape[-1]
    return 0.4 * rng.standard_normal(shape) + np.diag(rng.uniform(1.5, 2.5, n))


def _col_signs(x):
    """+-1 per column (the sign of its sum): fixes the sign freedom of singular/eigenvectors."""
    return mg.sign(x.sum(-2, keepdim=True))


def _eigh_fixed(a, uplo="L"):
    L, Q = la.eigh(_sym(a), UPLO=uplo)
    return L, Q * _col_signs(Q)


def _svd_fixed(a):
    U, S, Vh = la.svd(a, full_matrices=False)
    s = _col_signs(U)
    return U * s, S, Vh * s.mT


def _svd_full(a):
    """full_matrices=True: the trailing columns of U (rows of Vh) are an arbitrary basis, so
    they enter only through the projectors onto their span."""
    U, S, Vh = la.svd(a, full_matrices=True)
    k = S.shape[-1]
    U1, U2, Vh1, Vh2 = U[..., :k], U[..., k:], Vh[..., :k, :], Vh[..., k:, :]
    s = _col_signs(U1)
    return U1 * s, U2 @ U2.mT, S, Vh1 * s.mT, Vh2.mT @ Vh2


def _qr_fixed(a, mode="reduced"):
    Q, R = la.qr(a, mode)
    k = min(a.shape[-2:])
    d = mg.sign(mg.diagonal(R[..., :k, :k], 0, -2, -1))
    if mode == "complete" and a.shape[-2] > a.shape[-1]:
        Q1, Q2 = Q[..., :k], Q[..., k:]
        return Q1 * d.unsqueeze(-2), Q2 @ Q2.mT, R[..., :k, :] * d.unsqueeze(-1)
    return Q * d.unsqueeze(-2), R * d.unsqueeze(-1)


_B32 = randn(3, 2)

SPECS.update(
    {
        "linalg_inv": [
            S(la.inv, [well_conditioned(3, 3)]),
            S(lambda a: a.inverse(), [well_conditioned(2, 3, 3)]),
        ],
        "linalg_det": [S(la.det, [well_conditioned(3, 3)]), S(la.det, [well_conditioned(2, 3, 3)])],
        "linalg_slogdet": [
            S(lambda a: tuple(la.slogdet(a)), [well_conditioned(3, 3)]),
            S(la.logdet, [spd(2, 3, 3)]),
        ],
        "linalg_solve": [
            S(la.solve, [well_conditioned(3, 3), randn(3, 2)]),
            S(la.solve, [well_conditioned(2, 3, 3), randn(2, 3)], note="vector rhs"),
            S(la.solve, [well_conditioned(3, 3), randn(2, 3, 1)], note="broadcast"),
            S(lambda a, b: la.solve(a, b, left=False), [well_conditioned(3, 3), randn(2, 3)]),
        ],
        "linalg_solve_triangular": [
            S(lambda a, b: la.solve_triangular(a, b, upper=True), [_triangular_input(3, 3), _B32]),
            S(
                lambda a, b: la.solve_triangular(a, b, upper=False),
                [_triangular_input(2, 3, 3), randn(2, 3, 2)],
            ),
            S(
                lambda a, b: la.solve_triangular(a, b, upper=False, unitriangular=True, left=False),
                [_triangular_input(3, 3), randn(2, 3)],
            ),
        ],
        "linalg_cholesky": [
            S(lambda a: la.cholesky(_sym(a)), [spd(3, 3)]),
            S(lambda a: la.cholesky(_sym(a), upper=True), [spd(2, 3, 3)]),
        ],
        "linalg_qr": [
            S(_qr_fixed, [randn(3, 3)]),
            S(_qr_fixed, [randn(2, 4, 3)], note="tall, batched"),
            S(_qr_fixed, [randn(2, 2, 3)], note="wide, batched"),
            S(
                lambda a: _qr_fixed(a, "complete"),
                [randn(4, 2)],
                note="complete, tall: trailing columns of Q through Q2 Q2^T",
            ),
        ],
        "linalg_eigh": [
            S(_eigh_fixed, [randn(3, 3)]),
            S(
                lambda a: _eigh_fixed(a)[::-1],
                [randn(2, 3, 3)],
                note="eigenvectors first (batched cotangent test)",
            ),
            S(lambda a: _eigh_fixed(a, "U")[0], [randn(3, 3)]),
            S(lambda a: la.eigvalsh(_sym(a)), [randn(2, 3, 3)]),
        ],
        "linalg_svd": [
            S(_svd_fixed, [randn(3, 3)]),
            S(lambda a: _svd_fixed(a)[::-1], [randn(2, 4, 3)], note="tall, batched"),
            S(_svd_fixed, [randn(2, 3)], note="wide"),
            S(_svd_full, [randn(4, 2)], note="full_matrices, tall"),
            S(lambda a: _svd_full(a)[::-1], [randn(2, 2, 3)], note="full_matrices, wide"),
            S(la.svdvals, [randn(2, 3, 4)]),
        ],
        "linalg_pinv": [
            S(la.pinv, [randn(4, 3)]),
            S(la.pinv, [randn(2, 2, 3)], note="wide, batched"),
            S(lambda a: la.pinv(_sym(a), hermitian=True), [well_conditioned(3, 3)]),
        ],
        "linalg_matrix_exp": [
            S(la.matrix_exp, [0.5 * randn(3, 3)]),
            S(la.matrix_exp, [0.5 * randn(2, 2, 2)]),
        ],
        "linalg_vector_norm": [
            S(la.vector_norm, [randn(3, 4)]),
            S(lambda x: la.vector_norm(x, 1, dim=-1), [distinct(2, 3)]),
            S(lambda x: la.vector_norm(x, float("inf"), dim=0, keepdim=True), [distinct(3, 2)]),
            S(lambda x: la.vector_norm(x, -float("inf"), dim=-1), [distinct(2, 3)]),
            S(lambda x: la.vector_norm(x, 3, dim=(0, 2)), [randn(2, 3, 2)]),
            S(lambda x: la.vector_norm(x, 0.5, dim=-1), [positive(2, 3)]),
            S(lambda x: la.vector_norm(x, -1.5, dim=-1), [positive(3)]),
            S(lambda x: la.matrix_norm(x), [randn(2, 3, 3)], note="Frobenius"),
        ],
    }
)

# rows added after the samples above were drawn (appended, so earlier draws stay the same)
SPECS["erf"] = [S(mg.erf, [randn(2, 3)]), S(lambda x: x.erf(), [randn(4)])]

# ---- samples for the indexing, sorting and reductions rows ----

# ---- samples for the special-function rows ----
# drawn from their own generator, so that samples added to the sections above do not move them
_sp = np.random.default_rng(2025)


def _u(lo: float, hi: float, *shape: int) -> np.ndarray:
    return _sp.uniform(lo, hi, shape)


def _away_from_integers(*shape: int) -> np.ndarray:
    """Values 0.2-0.8 from an integer (floor, frac, round: no jump within eps)."""
    return _sp.integers(-3, 3, shape) + _sp.uniform(0.2, 0.8, shape)


from matgrad import special as sp  # noqa: E402

_Z = _u(1.5, 4.0, 3)  # zeta's s (not differentiated: PyTorch has no derivative in s)
_A = _u(0.8, 3.0, 2, 3)  # igamma's a (likewise)
SPECS.update(
    {
        "erfc": [S(mg.erfc, [_u(-2, 2, 2, 3)]), S(lambda x: x.erfc(), [_u(-1, 1, 4)])],
        "special_erfcx": [S(sp.erfcx, [_u(-1.5, 3, 2, 3)])],
        "erfinv": [
            S(mg.erfinv, [_u(-0.9, 0.9, 2, 3)]),
            S(lambda x: sp.erfinv(x), [_u(-0.5, 0.5, 3)]),
        ],
        "special_ndtri": [S(sp.ndtri, [_u(0.05, 0.95, 2, 3)])],
        "special_log_ndtr": [
            S(sp.log_ndtr, [_u(-3, 3, 2, 3)]),
            S(sp.log_ndtr, [_u(-30, -20, 3)], note="far left tail: exp(-x^2/2 - result)"),
        ],
        "lgamma": [
            S(mg.lgamma, [_u(0.3, 4, 2, 3)]),
            S(sp.gammaln, [_u(-2.8, -2.2, 3)], note="negative, between poles"),
        ],
        "digamma": [S(mg.digamma, [_u(0.5, 4, 2, 3)]), S(sp.psi, [_u(-1.8, -1.2, 3)])],
        "polygamma": [
            S(lambda x: mg.polygamma(1, x), [_u(0.5, 3, 2, 3)]),
            S(lambda x: x.polygamma(2), [_u(0.8, 3, 4)]),
            S(lambda x: sp.polygamma(0, x), [_u(0.5, 3, 3)], note="n = 0: digamma"),
        ],
        "mvlgamma": [
            S(lambda x: mg.mvlgamma(x, 1), [_u(0.5, 3, 3)]),
            S(lambda x: x.mvlgamma(3), [_u(1.5, 4, 2, 3)]),
            S(lambda x: sp.multigammaln(x, 2), [_u(1.0, 3, 4)]),
        ],
        "i0": [S(mg.i0, [_u(-3, 3, 2, 3)])],
        "special_i0e": [S(sp.i0e, [_u(-3, 3, 2, 3)])],
        "special_i1": [
            S(sp.i1, [_u(-3, 3, 2, 3)]),
            S(sp.i1, [np.array([0.0, 0.4, -1.1])], note="at 0: I1'(0) = 1/2"),
        ],
        "special_i1e": [S(sp.i1e, [_u(-3, 3, 2, 3)])],
        "special_bessel_j0": [S(sp.bessel_j0, [_u(-6, 6, 2, 3)])],
        "special_bessel_j1": [
            S(sp.bessel_j1, [_u(-6, 6, 2, 3)]),
            S(sp.bessel_j1, [np.array([0.0, 2.5])], note="at 0: J1'(0) = 1/2"),
        ],
        "xlogy": [
            S(mg.xlogy, [_u(-2, 2, 3, 4), _u(0.5, 3, 4)]),
            S(lambda y: mg.xlogy(2.0, y), [_u(0.5, 2, 3)]),
            S(
                lambda x, y: x.xlogy(y),
                [np.array([0.0, 1.5, -0.7]), _u(0.5, 2, 3)],
                note="at x = 0 (y > 0) the derivative in x is log y",
            ),
        ],
        "special_xlog1py": [
            S(sp.xlog1py, [_u(-2, 2, 3, 4), _u(-0.5, 2, 4)]),
            S(sp.xlog1py, [np.array([0.0, 1.5]), _u(0.1, 1, 2)], note="x = 0"),
        ],
        "special_entr": [S(sp.entr, [_u(0.2, 3, 2, 3)])],
        "special_zeta": [
            S(
                lambda q, s: sp.zeta(mg.tensor(s, dtype=q.dtype), q),
                [_u(0.5, 3, 2, 3)],
                nondiff=[_Z],
            ),
            S(lambda q: sp.zeta(3.0, q), [_u(0.5, 3, 4)]),
        ],
        "igamma": [
            S(
                lambda x, a: mg.igamma(mg.tensor(a, dtype=x.dtype), x),
                [_u(0.2, 4, 2, 3)],
                nondiff=[_A],
            ),
            S(lambda x: sp.gammainc(2.5, x), [_u(0.2, 4, 3)]),
        ],
        "igammac": [
            S(
                lambda x, a: mg.tensor(a, dtype=x.dtype).igammac(x),
                [_u(0.2, 4, 2, 3)],
                nondiff=[_A],
            ),
            S(lambda x: sp.gammaincc(1.5, x), [_u(0.2, 4, 3)]),
        ],
        "sinc": [
            S(mg.sinc, [_u(-2, 2, 2, 3)]),
            S(lambda x: x.sinc(), [np.array([0.0, 0.3, -1.7])], note="at 0: -pi^2/3 second order"),
        ],
        "logit": [
            S(mg.logit, [_u(0.05, 0.95, 2, 3)]),
            S(
                lambda x: x.logit(eps=0.2),
                [np.array([0.1, 0.3, 0.5, 0.9])],
                note="eps: clamped outside [0.2, 0.8], zero gradient there",
            ),
        ],
        "rsqrt": [S(mg.rsqrt, [_u(0.3, 3, 2, 3)])],
        "exp2": [S(mg.exp2, [_u(-2, 2, 2, 3)]), S(sp.exp2, [_u(-1, 1, 3)])],
        "frac": [S(mg.frac, [_away_from_integers(2, 3)])],
        "fmod": [
            S(
                mg.fmod,
                [
                    np.array([[-2.3, 0.6, 4.1, 1.3], [5.9, -0.4, 2.9, -3.3]]),
                    np.array([1.1, 0.7, 1.3, 0.9]),
                ],
                note="quotients away from integers: trunc has no jump within eps",
            ),
            S(lambda x: x.fmod(-1.5), [np.array([-2.0, -0.5, 1.0, 2.5])]),
        ],
        "floor": [S(lambda x: mg.floor(x) * x, [_away_from_integers(2, 3)])],
        "ceil": [S(lambda x: x.ceil() + x, [_away_from_integers(4)])],
        "trunc": [
            S(lambda x: mg.trunc(x) * x, [_away_from_integers(2, 3)]),
            S(lambda x: x.fix() - x, [_away_from_integers(3)]),
        ],
        "round": [
            S(lambda x: mg.round(x) * x, [_away_from_integers(2, 3)]),
            S(lambda x: x.round(decimals=1) * x, [np.array([0.12, -0.67, 1.24])]),
        ],
        "heaviside": [
            S(
                lambda v, x: mg.heaviside(mg.tensor(x, dtype=v.dtype), v),
                [_u(-1, 1, 2, 3)],
                nondiff=[np.array([[0.0, 1.5, -0.5], [0.0, 0.0, 2.0]])],
                note="differentiable in values (1 where x == 0); x has no derivative",
            ),
            S(lambda v: mg.tensor([0.0, -1.0, 0.0], dtype=v.dtype).heaviside(v), [_u(0, 1, 3)]),
        ],
        "nextafter": [
            S(mg.nextafter, [_u(-2, 2, 3, 4), _u(-2, 2, 4)]),
            S(lambda x: x.nextafter(float("inf")), [_u(-1, 1, 3)]),
        ],
    }
)

# ---- samples for the fft rows ----
# Real inputs and real outputs (complex spectra built with mg.complex and read with
# view_as_real, as the complex rows' samples below), through the public functions of
# matgrad.fft: n/s padding and cropping, each norm, several axes in a given order, even and
# odd lengths (whether there is a Nyquist bin), hfft/ihfft (conj around the rows). Complex
# inputs themselves: tests/test_fft.py.


def _fz(a, b):
    return mg.complex(a, b)


def _fr(w):
    return mg.view_as_real(w)


SPECS.update(
    {
        "fft_c2c": [
            S(lambda a, b: _fr(mg.fft.fft(_fz(a, b))), [randn(2, 5), randn(2, 5)]),
            S(
                lambda a, b: _fr(mg.fft.ifft(_fz(a, b), n=6, dim=0, norm="ortho")),
                [randn(4, 3), randn(4, 3)],
                note="zero-padded to n = 6 along dim 0",
            ),
            S(
                lambda a, b: _fr(mg.fft.fftn(_fz(a, b), s=(3, 4), dim=(-1, 0), norm="forward")),
                [randn(2, 3, 5), randn(2, 3, 5)],
                note="cropped along -1, padded along 0",
            ),
        ],
        "fft_r2c": [
            S(lambda a: _fr(mg.fft.rfft(a)), [randn(3, 6)], note="even n: a Nyquist bin"),
            S(
                lambda a: _fr(mg.fft.rfftn(a, dim=(-1, 0), norm="ortho")),
                [randn(5, 4)],
                note="halved along dim 0 (odd n = 5), the last of the given dims",
            ),
            S(lambda a: _fr(mg.fft.fft(a, n=5)), [randn(2, 4)], note="two-sided, real input"),
            S(lambda a: _fr(mg.fft.ifft2(a)), [randn(3, 4)], note="two-sided, conjugated"),
            S(lambda a: _fr(mg.fft.ihfft(a, norm="forward")), [randn(7)]),
        ],
        "fft_c2r": [
            S(lambda a, b: mg.fft.irfft(_fz(a, b)), [randn(2, 4), randn(2, 4)], note="n = 6"),
            S(
                lambda a, b: mg.fft.irfft(_fz(a, b), n=7, norm="ortho"),
                [randn(3), randn(3)],
                note="odd n: no Nyquist bin; input padded to 4 bins",
            ),
            S(
                lambda a, b: mg.fft.irfftn(_fz(a, b), s=(3, 5)),
                [randn(2, 4, 3), randn(2, 4, 3)],
                note="the DC column mixes across the other axis",
            ),
            S(lambda a, b: mg.fft.hfft(_fz(a, b), n=5), [randn(4), randn(4)], note="cropped"),
            S(
                lambda a, b: mg.fft.hfft2(_fz(a, b), norm="forward"),
                [randn(3, 3), randn(3, 3)],
            ),
        ],
    }
)

# ---- samples for the complex rows ----
# Real inputs and real outputs with complex values in between: complex(a, b) and view_as_real
# are bijections between R^2n and C^n, so the generic real tests (finite differences, second
# order, batching, float32) check each complex rule as the real map it is. Complex inputs
# themselves (gradcheck's real and imaginary perturbations) are tested in tests/test_complex.py.


def _z(a, b):
    return mg.complex(a, b)


def _r(w):
    return mg.view_as_real(w)


def _herm(a, b):
    z = _z(a, b)
    return (z + z.mH) * 0.5


def _eig_abs(v):
    """|V|: the eigenvectors' phases are arbitrary, their moduli are not."""
    return v.abs()


_CX = {
    "real": [S(lambda a, b: mg.real(_z(a, b) * _z(b, a)), [randn(3), randn(3)])],
    "imag": [S(lambda a, b: mg.imag(_z(a, b) * _z(b, a)) + _z(a, b).imag, [randn(2, 3), randn(3)])],
    "conj": [S(lambda a, b: _r(mg.conj(_z(a, b)) * _z(b, a)), [randn(3), randn(3)])],
    "angle": [
        S(lambda a, b: mg.angle(_z(a, b)), [randn(2, 3), randn(2, 3)]),
        S(lambda a: mg.angle(a) * a, [distinct(4)], note="real input: 0 or pi"),
    ],
    "view_as_real": [S(lambda a, b: _r(_z(a, b) * _z(a, b)), [randn(2, 2), randn(2, 2)])],
    "view_as_complex": [S(lambda x: _r(mg.view_as_complex(x) ** 2), [randn(3, 2)])],
    "complex": [S(lambda a, b: _r(_z(a, b)), [randn(3, 2), randn(2)], note="broadcast")],
    "polar": [S(lambda r, t: _r(mg.polar(r, t)), [positive(3), randn(3)])],
    "linalg_eig": [
        S(lambda a: _r(la.eigvals(a)), [randn(3, 3)], note="real A: complex pairs"),
        S(lambda a, b: _r(la.eigvals(_z(a, b))), [randn(3, 3), randn(3, 3)]),
        S(lambda a, b: _eig_abs(la.eig(_z(a, b))[1]), [randn(3, 3), randn(3, 3)]),
        S(lambda a: _eig_abs(la.eig(a)[1]), [randn(2, 3, 3)], note="batched"),
    ],
}
SPECS.update(_CX)

# the complex cases of existing rows (the conjugations in their rules)
for _op, _sample in [
    ("mul", S(lambda a, b, c: _r(_z(a, b) * _z(b, c)), [randn(3, 2), randn(3, 2), randn(2)])),
    ("mul", S(lambda a, b, c: _r(a * _z(b, c)), [randn(3, 2), randn(2), randn(2)], note="real")),
    ("div", S(lambda a, b, c: _r(_z(a, b) / _z(c, b)), [randn(3), randn(3), positive(3)])),
    ("reciprocal", S(lambda a, b: _r(1.0 / _z(a, b)), [positive(3), randn(3)])),
    ("pow", S(lambda a, b: _r(_z(a, b) ** 3), [randn(3), randn(3)])),
    ("pow", S(lambda a, b, c: _r(_z(a, b) ** _z(c, b)), [positive(3), randn(3), randn(3)])),
    ("exp", S(lambda a, b: _r(mg.exp(_z(a, b))), [randn(3), randn(3)])),
    ("log", S(lambda a, b: _r(mg.log(_z(a, b))), [positive(3), randn(3)])),
    ("sqrt", S(lambda a, b: _r(mg.sqrt(_z(a, b))), [positive(3), randn(3)])),
    ("sin", S(lambda a, b: _r(mg.sin(_z(a, b))), [randn(3), randn(3)])),
    ("cos", S(lambda a, b: _r(mg.cos(_z(a, b))), [randn(3), randn(3)])),
    ("tanh", S(lambda a, b: _r(mg.tanh(_z(a, b))), [randn(3), 0.5 * randn(3)])),
    ("sigmoid", S(lambda a, b: _r(mg.sigmoid(_z(a, b))), [randn(3), 0.5 * randn(3)])),
    ("asin", S(lambda a, b: _r(mg.asin(_z(a, b))), [0.5 * randn(3), 0.5 * randn(3)])),
    ("acosh", S(lambda a, b: _r(mg.acosh(_z(a, b))), [randn(4), randn(4)])),
    ("square", S(lambda a, b: _r(mg.square(_z(a, b))), [randn(3), randn(3)])),
    ("abs", S(lambda a, b: mg.abs(_z(a, b)), [randn(2, 3), randn(2, 3)])),
    ("sum", S(lambda a, b: _r(_z(a, b).sum(0)), [randn(3, 2), randn(3, 2)])),
    ("prod", S(lambda a, b: _r(_z(a, b).prod(0)), [randn(3, 2), randn(3, 2)])),
    ("cumprod", S(lambda a, b: _r(mg.cumprod(_z(a, b), -1)), [randn(2, 3), randn(2, 3)])),
    ("to_dtype", S(lambda a: _r(a.to(mg.complex128) * (1 + 2j)), [randn(3)])),
    ("mm", S(lambda a, b, c: _r(_z(a, b) @ _z(c, c)), [randn(3, 2), randn(3, 2), randn(2, 2)])),
    ("matmul", S(lambda a, b, c: _r(_z(a, b) @ c), [randn(2, 3, 2), randn(2, 3, 2), randn(2, 2)])),
    ("mv", S(lambda a, b, c: _r(_z(a, b) @ _z(c, c)), [randn(3, 2), randn(3, 2), randn(2)])),
    ("dot", S(lambda a, b, c: _r(_z(a, b) @ _z(c, a)), [randn(3), randn(3), randn(3)])),
    ("dot", S(lambda a, b, c: _r(mg.vdot(_z(a, b), _z(c, a))), [randn(3), randn(3), randn(3)])),
    ("outer", S(lambda a, b, c: _r(mg.outer(_z(a, b), _z(c, c))), [randn(3), randn(3), randn(2)])),
    (
        "linalg_inv",
        S(lambda a, b: _r(la.inv(_z(a, b))), [well_conditioned(3, 3), 0.3 * randn(3, 3)]),
    ),
    (
        "linalg_det",
        S(lambda a, b: _r(la.det(_z(a, b))), [well_conditioned(2, 3, 3), 0.3 * randn(3, 3)]),
    ),
    (
        "linalg_slogdet",
        S(
            lambda a, b: (lambda s: (_r(s[0]), s[1]))(la.slogdet(_z(a, b))),
            [well_conditioned(3, 3), 0.3 * randn(3, 3)],
        ),
    ),
    (
        "linalg_solve",
        S(
            lambda a, b, c: _r(la.solve(_z(a, b), _z(c, c))),
            [well_conditioned(3, 3), 0.3 * randn(3, 3), randn(3, 2)],
        ),
    ),
    (
        "linalg_eigh",
        S(
            lambda a, b: (lambda LQ: (LQ[0], _r(LQ[1][..., :1] @ LQ[1][..., :1].mH)))(
                la.eigh(_herm(a, b))
            ),
            [randn(3, 3), randn(3, 3)],
            note="Hermitian: the eigenvalues and a projector (phase-free)",
        ),
    ),
    (
        "linalg_svd",
        S(
            lambda a, b: (lambda r: (r[1], _r(r[0] @ r[2])))(la.svd(_z(a, b), full_matrices=False)),
            [randn(3, 2), randn(3, 2)],
            note="the singular values and the polar factor U Vh (phase-free)",
        ),
    ),
    (
        "linalg_vector_norm",
        S(lambda a, b: la.vector_norm(_z(a, b), dim=-1), [randn(2, 3), randn(3)]),
    ),
]:
    SPECS[_op].append(_sample)

# ---- samples for the linalg-gap rows ----
# linalg_lu (A = P L U): square, wide and tall, batched, with one factor alone (the other's
# cotangent absent), and through the composites lu_factor (the packed LU) and lu_solve (two
# triangular solves reading its triangles). P is piecewise constant and not returned.
SPECS["linalg_lu"] = [
    S(lambda a: tuple(la.lu(a))[1:], [randn(4, 4)]),
    S(lambda a: tuple(la.lu(a))[:0:-1], [randn(2, 3, 5)], note="wide, batched, U first"),
    S(lambda a: tuple(la.lu(a))[1:], [randn(2, 5, 3)], note="tall, batched"),
    S(lambda a: la.lu(a).L, [randn(3, 5)], note="wide, L alone"),
    S(lambda a: la.lu(a).U, [randn(5, 3)], note="tall, U alone"),
    S(lambda a: la.lu(a).U, [randn(3, 3)], note="square, U alone"),
    S(lambda a: la.lu_factor(a).LU, [randn(2, 3, 3)], note="packed (lu_factor)"),
    S(lambda a, b: la.lu_solve(*la.lu_factor(a), b), [randn(3, 3), randn(3, 2)], note="lu_solve"),
    S(
        lambda a, b: tuple(_r(x) for x in tuple(la.lu(_z(a, b)))[1:]),
        [randn(2, 4, 3), randn(2, 4, 3)],
        note="complex (the conjugate transposes of the rule), tall",
    ),
]

# ---- samples for the nn primitive rows ----
# addmm through the public function (broadcast and full input, beta/alpha, beta = 0, a
# column-major mat2, complex) and through nn.functional.linear (W.T: its gradient made
# column-major); threshold_backward directly and as ReLU's VJP in a create_graph pass;
# im2col / col2im through unfold, fold, conv1d/2d (stride, dilation, padding, 'same' with an
# even kernel: asymmetric padding, groups) and avg_pool2d (ceil_mode: extra padding after).
from matgrad.nn import functional as _nnf  # noqa: E402


def _relu_vjp(x, v):
    return mg.autograd.grad(mg.relu(x), x, v, create_graph=True)[0]


SPECS["addmm"] = [
    S(lambda c, a, b: mg.addmm(c, a, b), [randn(4), randn(3, 2), randn(2, 4)]),
    S(
        lambda c, a, b: mg.addmm(c, a, b, beta=0.5, alpha=-2.0),
        [randn(3, 4), randn(3, 2), randn(2, 4)],
    ),
    S(
        lambda c, a, b: mg.addmm(c, a, b.mT, beta=0),
        [randn(3, 1), randn(3, 5), randn(2, 5)],
        note="beta = 0 (input ignored); a column-major mat2",
    ),
    S(
        lambda x, w, b: _nnf.linear(x, w, b),
        [randn(5, 3), randn(4, 3), randn(4)],
        note="a linear layer: mat2 is W.T (column-major)",
    ),
    S(
        lambda x, w, b: _nnf.linear(x, w, b),
        [randn(2, 5, 3), randn(4, 3), randn(4)],
        note="leading axes flattened around addmm",
    ),
    S(
        lambda c, a, b, d: _r(mg.addmm(_z(c, c), _z(a, b), _z(d, d).mT, alpha=1 - 2j)),
        [randn(2), randn(3, 4), randn(3, 4), randn(2, 4)],
        note="complex, complex alpha",
    ),
]
SPECS["threshold_backward"] = [
    S(
        lambda g, x: mg.ops.registry.PRIMITIVES.threshold_backward(g, x, threshold=0.3),
        [randn(3, 4), distinct(3, 4)],
        note="linear in the gradient; no derivative in self (piecewise constant)",
    ),
    S(
        lambda x, v: _relu_vjp(x.detach().requires_grad_(), v),
        [distinct(2, 5), randn(2, 5)],
        note="ReLU's VJP recorded by a create_graph pass (no derivative in x: detached)",
    ),
]
SPECS["im2col"] = [
    S(lambda x: _nnf.unfold(x, (2, 3), padding=1, stride=(2, 1)), [randn(2, 2, 4, 5)]),
    S(lambda x: _nnf.unfold(x, 2, dilation=(2, 1)), [randn(3, 5, 4)], note="unbatched"),
    S(
        lambda x, w: _nnf.conv2d(x, w, stride=(1, 2), padding=(2, 1), dilation=(1, 2), groups=2),
        [randn(2, 4, 5, 6), randn(2, 2, 2, 3)],
    ),
    S(
        lambda x, w, b: _nnf.conv1d(x, w, b, padding="same"),
        [randn(2, 3, 7), randn(2, 3, 4), randn(2)],
        note="'same' with an even kernel: padding 1 before, 2 after",
    ),
    S(
        lambda x: _nnf.avg_pool2d(x, 2, stride=2, padding=1, ceil_mode=True),
        [randn(1, 2, 4, 5)],
        note="ceil_mode: more padding after than before",
    ),
]
SPECS["col2im"] = [
    S(
        lambda x: _nnf.fold(x, (4, 5), (2, 3), padding=1, stride=(2, 1)),
        [randn(2, 12, 15)],
    ),
    S(
        lambda x: _nnf.fold(x, 5, 2, dilation=2, stride=2),
        [randn(8, 4)],
        note="unbatched, dilated, windows that overlap nowhere",
    ),
]

# ---- samples for the log_softmax row ----
_ls = np.random.default_rng(77)  # its own generator: the draws above stay the same
SPECS["log_softmax"] = [
    S(lambda x: mg.log_softmax(x, 1), [_ls.standard_normal((3, 4))]),
    S(lambda x: mg.log_softmax(x, 0), [_ls.standard_normal((4, 2, 3))], note="first axis"),
    S(lambda x: x.log_softmax(-1), [3.0 * _ls.standard_normal((2, 5))], note="method"),
    S(
        lambda x: mg.nn.functional.cross_entropy(x, mg.tensor([0, 3, 1, 1, 2])),
        [_ls.standard_normal((5, 4))],
        note="cross_entropy's log-probabilities",
    ),
]
