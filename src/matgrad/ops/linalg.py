"""``matgrad.linalg``: linear algebra with matrix-form derivative rules (PyTorch's names).

Every function takes batches of matrices (the last two axes; leading axes are batch axes) in
float32 or float64. The primitives (``inv``, ``det``, ``slogdet``, ``solve``,
``solve_triangular``, ``cholesky``, ``qr``, ``eigh``, ``svd``, ``matrix_exp``, ``vector_norm``,
``lu``) have one row each in ``derivatives.yaml`` with a reverse-mode and a forward-mode rule
written in matrix form; everything else here is a composite of those and of core ops, so the graph
shows what was computed.

Gradients at the hard places:

* ``det`` of a singular matrix: the gradient is the adjugate transposed, adj(A)^T (rank one at
  rank n-1, zero below), computed from the SVD; never NaN.
* ``slogdet``/``logdet`` of a singular matrix: the value is -inf; the true gradient A^-T is
  infinite, so the gradient of the log pseudo-determinant, pinv(A)^T, is returned (the finite
  part, exact for perturbations that keep the rank) with a ``SingularMatrixGradientWarning``.
* ``eigh``/``svd`` with repeated eigen-/singular values: the rules never divide by a zero gap
  (1/(l_j - l_i) is used only where the gap exceeds 100 n eps max|l|). Losses that depend on a
  repeated space only through the space itself and symmetric functions of its values (sums
  and norms of the values, projectors Q_k Q_k^T onto whole eigenspaces, the polar factor
  U V^T) get finite, exact gradients. A loss that depends on the arbitrary basis inside the
  space (e.g. ``U.sum()``) has no gradient: a ``BasisDependentGradientWarning`` says so and
  the basis-dependent part is dropped. A loss that weighs the repeated values differently is
  either not differentiable there (weights on sorted eigenvalues) or has a gradient that
  depends on second derivatives no reverse-mode rule sees (reconstructions Q f(L) Q^T,
  U f(S) V^T: two such losses can have identical cotangents and different gradients): a
  ``DegenerateGradientWarning`` says so (write those losses in the matrix itself).
* ``vector_norm``/``matrix_norm`` at zero: subgradient 0.
* ``inv``/``solve``/``cholesky`` of a singular (non positive definite) matrix:
  ``numpy.linalg.LinAlgError`` naming the function and the shape; ``lu_factor`` of a singular
  matrix too. The ``_ex`` variants (``inv_ex``, ``solve_ex``, ``cholesky_ex``,
  ``lu_factor_ex``, ``ldl_factor_ex``) return int32 ``info`` instead (LAPACK's, as PyTorch's):
  the failed matrices get LAPACK's values and no gradient; ``check_errors=True`` raises.
* ``ldl_factor``/``ldl_solve`` and ``geqrf`` have no derivative (as in PyTorch): a backward pass
  through them raises ``NotImplementedError``.
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import lapack as _af
from ..backend.lapack import (
    BasisDependentGradientWarning,
    DegenerateGradientWarning,
    SingularMatrixGradientWarning,
)
from ..core.apply import tensor_edge
from ..core.grad_mode import state
from ..core.graph import Node
from ..core.tensor_base import Tensor, as_tensor
from ..core.tensor_base import data_of as _raw
from . import composite as _ops
from .registry import OPS
from .registry import PRIMITIVES as _P

__all__ = [
    "BasisDependentGradientWarning",
    "DegenerateGradientWarning",
    "SingularMatrixGradientWarning",
    "LinAlgError",
    "cholesky",
    "cholesky_ex",
    "cond",
    "cross",
    "det",
    "diagonal",
    "eig",
    "eigh",
    "eigvals",
    "eigvalsh",
    "householder_product",
    "inv",
    "inv_ex",
    "kron",
    "ldl_factor",
    "ldl_factor_ex",
    "ldl_solve",
    "logdet",
    "lstsq",
    "lu",
    "lu_factor",
    "lu_factor_ex",
    "lu_solve",
    "matrix_exp",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "multi_dot",
    "norm",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "solve_ex",
    "solve_triangular",
    "svd",
    "svdvals",
    "tensor_norm",
    "tensordot",
    "tensorinv",
    "tensorsolve",
    "trace",
    "vander",
    "vecdot",
    "vector_norm",
]

LinAlgError = np.linalg.LinAlgError

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
EigResult = namedtuple("EigResult", ["eigenvalues", "eigenvectors"])
QRResult = namedtuple("QRResult", ["Q", "R"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
LstsqResult = namedtuple("LstsqResult", ["solution", "residuals", "rank", "singular_values"])


# -- argument checks ---------------------------------------------------------------------------
# the functions whose derivative rules are written for complex input too (PyTorch's convention:
# conjugate transposes in the rules; see derivatives.yaml, "complex numbers")
_COMPLEX_OK = {
    "inv", "det", "slogdet", "logdet", "solve", "solve_triangular", "cholesky", "eig",
    "eigvals", "eigh", "eigvalsh", "svd", "svdvals", "pinv", "matrix_exp", "vector_norm",
    "matrix_norm", "norm", "matrix_power", "multi_dot", "cross", "trace",
    # the linalg gaps of issue #13 (checked on PyTorch's complex samples)
    "lu", "lu_factor", "lu_factor_ex", "lu_solve", "lu_unpack", "cholesky_ex", "inv_ex",
    "solve_ex", "cond", "matrix_rank", "tensorinv", "tensorsolve", "householder_product",
    "ormqr", "geqrf", "ldl_factor_ex", "ldl_solve",
}  # fmt: skip


def _float_tensor(op: str, A: Any) -> Tensor:
    A = as_tensor(A)
    if A.dtype.kind == "c" and op in _COMPLEX_OK:
        return A
    if A.dtype.kind == "c":
        raise TypeError(
            f"linalg.{op}: complex input (dtype {A.dtype}) is not supported yet; it takes "
            "float32 or float64"
        )
    if A.dtype.kind != "f":
        raise TypeError(f"linalg.{op}: expected a floating point tensor, got dtype {A.dtype}")
    return A


def _conj(x: Tensor) -> Tensor:
    """conj(x), or x itself when real."""
    return OPS["conj"](x) if x.dtype.kind == "c" else x


def _mH(x: Tensor) -> Tensor:  # noqa: N802
    return _conj(x.mT)


def _matrix(op: str, A: Any, square: bool = False) -> Tensor:
    A = _float_tensor(op, A)
    if A.ndim < 2:
        raise RuntimeError(
            f"linalg.{op}: expected a matrix or a batch of matrices (at least 2 dimensions), "
            f"got shape {tuple(A.shape)}"
        )
    if square and A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"linalg.{op}: expected square matrices, got shape {tuple(A.shape)}")
    return A


def _tracked(A: Tensor) -> bool:
    """Whether A must go through the differentiable path (reverse or forward mode)."""
    return (A.requires_grad and state.enabled) or (
        A._fw_grad is not None and state.forward_level > 0
    )


# -- inverses, determinants, solves ------------------------------------------------------------
def inv(A: Any) -> Tensor:
    """A^-1. VJP -A^-T grad A^-T (two matmuls with the saved result)."""
    return OPS["linalg_inv"](_matrix("inv", A, square=True))


def det(A: Any) -> Tensor:
    """det(A) from one LU factorization, reused by the backward pass (grad det(A) A^-T);
    the adjugate at singular A."""
    return OPS["linalg_det"](_matrix("det", A, square=True))[0]


def slogdet(A: Any) -> SlogdetResult:
    """(sign, log|det A|) from one LU factorization, reused by the backward pass (A^-T)."""
    sign, logabsdet, _, _ = OPS["linalg_slogdet"](_matrix("slogdet", A, square=True))
    return SlogdetResult(sign, logabsdet)


def logdet(A: Any) -> Tensor:
    """log det A: NaN where det A < 0, -inf where A is singular (PyTorch's convention); for
    complex A the principal log, log|det A| + i angle(det A)."""
    sign, logabsdet = slogdet(A)
    if sign.dtype.kind == "c":
        return OPS["complex"](logabsdet, OPS["angle"](sign))
    if not np.any(sign._data < 0):
        return logabsdet
    return _P.where(sign < 0, math.nan, logabsdet)


def _is_vector_rhs(A: Tensor, B: Tensor) -> bool:
    return B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))


def solve(A: Any, B: Any, *, left: bool = True) -> Tensor:
    """X with A X = B (or X A = B with ``left=False``). B is a (batch of) matrix, or a (batch
    of) vector; batch axes broadcast. One LU factorization, reused by the backward pass."""
    A = _matrix("solve", A, square=True)
    B = _float_tensor("solve", B)
    if not left:
        return solve(A.mT, B.mT).mT
    if _is_vector_rhs(A, B):
        return _ops.squeeze(solve(A, _ops.unsqueeze(B, -1)), -1)
    if B.shape[-2] != A.shape[-1]:
        raise RuntimeError(
            f"linalg.solve: A of shape {tuple(A.shape)} and B of shape {tuple(B.shape)} do "
            "not match (A.shape[-1] != B.shape[-2])"
        )
    return OPS["linalg_solve"](A, B)[0]


def solve_triangular(
    A: Any, B: Any, *, upper: bool, left: bool = True, unitriangular: bool = False
) -> Tensor:
    """X with A X = B (X A = B with ``left=False``) for triangular A; only A's triangle (and
    not its diagonal, with ``unitriangular``) is read, and only it gets a gradient."""
    A = _matrix("solve_triangular", A, square=True)
    B = _matrix("solve_triangular", B)
    if not left:
        return solve_triangular(A.mT, B.mT, upper=not upper, unitriangular=unitriangular).mT
    return OPS["linalg_solve_triangular"](
        A, B, upper=bool(upper), unitriangular=bool(unitriangular)
    )


def cholesky(A: Any, *, upper: bool = False) -> Tensor:
    """L with A = L L^H (U = L^H with ``upper``). A is taken to be symmetric (Hermitian; its
    lower triangle is read) and gets a symmetric (Hermitian) gradient."""
    L = OPS["linalg_cholesky"](_matrix("cholesky", A, square=True))
    return _mH(L) if upper else L  # U = L^H


def qr(A: Any, mode: str = "reduced") -> QRResult:
    """A = QR. ``mode``: 'reduced' (Q m x k), 'complete' (Q m x m; the trailing columns of Q
    are an arbitrary basis, so a loss may use them only through basis-independent quantities
    such as Q2 Q2^T) or 'r' (Q empty)."""
    A = _matrix("qr", A)
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"linalg.qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    Q, R = OPS["linalg_qr"](A, mode="complete" if mode == "complete" else "reduced")
    if mode == "r":
        return QRResult(Tensor._wrap(np.empty((0,), dtype=A.dtype)), R)
    return QRResult(Q, R)


def eigh(A: Any, UPLO: str = "L") -> EighResult:  # noqa: N803
    """Eigenvalues (ascending) and orthonormal eigenvectors of symmetric A (the ``UPLO``
    triangle is read; the gradient is symmetric). See the module docstring for repeated
    eigenvalues."""
    A = _matrix("eigh", A, square=True)
    if UPLO not in ("L", "U"):
        raise ValueError(f"linalg.eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    L, Q = OPS["linalg_eigh"](A, UPLO=UPLO)
    return EighResult(L, Q)


def eig(A: Any) -> EigResult:
    """Eigenvalues and eigenvectors of a general square matrix, complex (also for real A);
    eigenvectors of unit norm, each defined up to a phase: a loss must not depend on it (a
    loss that does raises in backward, as PyTorch's). Repeated eigenvalues have no
    gradient (the rule divides by their gaps)."""
    A = _matrix("eig", A, square=True)
    L, V = OPS["linalg_eig"](A)
    return EigResult(L, V)


def eigvals(A: Any) -> Tensor:
    """Eigenvalues of a general square matrix (complex); gradient V^-H diag(grad) V^H."""
    A = _matrix("eigvals", A, square=True)
    if not _tracked(A):
        values = np.linalg.eigvals(A._data)
        return Tensor._wrap(values.astype(np.result_type(A.dtype, np.complex64), copy=False))
    return eig(A)[0]


def eigvalsh(A: Any, UPLO: str = "L") -> Tensor:  # noqa: N803
    """Eigenvalues of symmetric A; gradient Q diag(grad) Q^T."""
    A = _matrix("eigvalsh", A, square=True)
    if not _tracked(A):
        return Tensor._wrap(np.linalg.eigvalsh(A._data, UPLO=UPLO))
    return eigh(A, UPLO)[0]


def svd(A: Any, full_matrices: bool = True) -> SVDResult:
    """A = U diag(S) Vh, singular values descending. With ``full_matrices`` (PyTorch's default)
    U and Vh are square; their trailing rows/columns are an arbitrary basis (use them only
    through basis-independent quantities). See the module docstring for repeated values."""
    A = _matrix("svd", A)
    U, S, Vh = OPS["linalg_svd"](A, full_matrices=bool(full_matrices))
    return SVDResult(U, S, Vh)


def svdvals(A: Any) -> Tensor:
    """Singular values, descending; gradient U diag(grad) V^T."""
    A = _matrix("svdvals", A)
    if not _tracked(A):
        return Tensor._wrap(_af.svd(A._data, compute_uv=False))
    return svd(A, full_matrices=False)[1]


def pinv(A: Any, *, atol: Any = None, rtol: Any = None, hermitian: bool = False) -> Tensor:
    """The Moore-Penrose pseudo-inverse V diag(1/s) U^T, singular values at or below
    max(atol, rtol * s_max) treated as zero (rtol defaults to eps * max(m, n)). Its own row:
    the gradient is Golub & Pereyra's (exact at repeated singular values, e.g. orthogonal A)."""
    A = _matrix("pinv", A)
    atol = None if atol is None else float(_raw(atol))
    rtol = None if rtol is None else float(_raw(rtol))
    return OPS["linalg_pinv"](A, atol=atol, rtol=rtol, hermitian=bool(hermitian))


def lstsq(A: Any, B: Any, rcond: float | None = None, *, driver: str | None = None) -> LstsqResult:
    """The least-squares solution X = pinv(A) B (minimum norm); residuals
    ||A X - B||^2 per column when A is tall with full rank (else empty), the numerical rank,
    and the singular values. ``driver`` is accepted for PyTorch compatibility."""
    A = _matrix("lstsq", A)
    B = _float_tensor("lstsq", B)
    vector = B.ndim == A.ndim - 1
    if vector:
        B = _ops.unsqueeze(B, -1)
    X = pinv(A, rtol=rcond) @ B
    S = svdvals(A)
    cut = _af._pinv_cutoff(S._data, tuple(A.shape), None, rcond)
    rank = Tensor._wrap(np.sum(S._data > cut, axis=-1))
    m, n = A.shape[-2:]
    if m > n and np.all(rank._data == n):
        residuals = _ops.sum((A @ X - B) ** 2, -2)
        if vector:
            residuals = _ops.squeeze(residuals, -1)
    else:
        residuals = Tensor._wrap(np.empty((0,), dtype=A.dtype))
    if vector:
        X = _ops.squeeze(X, -1)
    return LstsqResult(X, residuals, rank, S)


# -- norms -------------------------------------------------------------------------------------
def vector_norm(
    x: Any,
    ord: float = 2,  # noqa: A002
    dim: Any = None,
    keepdim: bool = False,
    *,
    dtype: Any = None,
) -> Tensor:
    """(sum |x_i|^ord)^(1/ord) over ``dim`` (all axes when None); ord may be any real or
    +-inf, 0 counts nonzeros. The gradient at 0 is 0 (a subgradient), never NaN."""
    x = _float_tensor("vector_norm", x)
    if dtype is not None:
        x = _ops.to_dtype(x, dtype)
    if isinstance(ord, str):
        raise ValueError(f"linalg.vector_norm: ord must be a number, got {ord!r}")
    return linalg_vector_norm(x, float(ord), dim, keepdim)


def _move_to_end(A: Tensor, dim: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
    nd = A.ndim
    d0, d1 = (_ops._norm_dim("matrix_norm", d, nd) for d in dim)
    if d0 == d1:
        raise RuntimeError(f"linalg.matrix_norm: dim {dim} names the same axis twice")
    if (d0, d1) == (-2, -1):
        return A, (d0, d1)
    rest = [d for d in range(-nd, 0) if d not in (d0, d1)]
    return _ops.permute(A, tuple(rest) + (d0, d1)), (d0, d1)


def matrix_norm(
    A: Any,
    ord: Any = "fro",  # noqa: A002
    dim: tuple[int, int] = (-2, -1),
    keepdim: bool = False,
    *,
    dtype: Any = None,
) -> Tensor:
    """Matrix norms over the axes ``dim``: 'fro', 'nuc' (sum of singular values), 2 / -2
    (largest / smallest singular value), 1 / -1 (max / min column abs sum), inf / -inf
    (max / min row abs sum)."""
    A = _float_tensor("matrix_norm", A)
    if dtype is not None:
        A = _ops.to_dtype(A, dtype)
    if A.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: expected at least 2 dimensions, got {A.ndim}")
    dim = tuple(dim)
    if ord == "fro":
        return vector_norm(A, 2, dim, keepdim)
    moved, (d0, d1) = _move_to_end(A, dim)
    if ord == "nuc":
        s = svdvals(moved)
        # the minimum-norm subgradient U_r V_r^T: singular values at rounding level (at or
        # below max(m, n) eps s_max, the rank cutoff of pinv and lstsq) count as zero, so
        # their arbitrary singular vectors get no gradient (0 at the zero matrix, as
        # vector_norm); the value keeps them
        values = s._data
        if values.shape[-1]:
            cutoff = np.finfo(values.dtype).eps * builtins.max(moved.shape[-2:])
            small = values <= cutoff * values.max(axis=-1, keepdims=True)
            if not isinstance(small, np.ndarray) or small.any():  # lazy data: always masked
                s = _P.where(Tensor._wrap(small), s.detach(), s)
        out = _ops.sum(s, -1)
    elif ord in (2, -2):
        s = svdvals(moved)
        # at the zero matrix every U V^T-like matrix is a subgradient: take 0 (as vector_norm)
        zero = np.all(s._data == 0, axis=-1, keepdims=True)
        if zero.any():
            s = _P.where(Tensor._wrap(zero), 0.0, s)
        out = _P.amax(s, -1) if ord == 2 else _P.amin(s, -1)
    elif ord in (1, -1, math.inf, -math.inf):
        col_sums = abs(ord) == 1
        sums = _ops.sum(_P.abs(moved), -2 if col_sums else -1)
        out = _P.amax(sums, -1) if ord > 0 else _P.amin(sums, -1)
    else:
        raise ValueError(f"linalg.matrix_norm: unsupported ord {ord!r}")
    if keepdim:
        for d in sorted((d0 + A.ndim, d1 + A.ndim)):
            out = _ops.unsqueeze(out, d)
    return out


def norm(
    A: Any,
    ord: Any = None,  # noqa: A002
    dim: Any = None,
    keepdim: bool = False,
    *,
    dtype: Any = None,
) -> Tensor:
    """PyTorch's ``linalg.norm``: a vector norm when ``dim`` is an int (or ``A`` is 1-D), a
    matrix norm when ``dim`` is a pair (or ``A`` is 2-D and ``ord`` is given); with ``ord`` and
    ``dim`` both None, the 2-norm of all elements."""
    A = _float_tensor("norm", A)
    if isinstance(dim, int):
        dim = (dim,)
    if dim is not None and len(dim) == 1:
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if dim is not None and len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    if dim is not None:
        raise RuntimeError(f"linalg.norm: dim must be an int or a pair, got {dim!r}")
    if ord is None or (ord == "fro" and A.ndim != 2):
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    raise RuntimeError(
        f"linalg.norm: with ord={ord!r} and dim=None the input must be 1-D or 2-D, got "
        f"{A.ndim}-D (pass dim)"
    )


def tensor_norm(
    input: Any,  # noqa: A002
    p: Any = "fro",
    dim: Any = None,
    keepdim: bool = False,
    dtype: Any = None,
) -> Tensor:
    """PyTorch's ``torch.norm`` / ``Tensor.norm``: the ``p``-norm of the elements over ``dim``
    (all elements when None), whatever the shape: ``x.norm(2)`` of a matrix is the 2-norm of
    its flattened elements (the Frobenius norm), not the spectral norm. ``p`` is a number
    (``inf``, ``-inf``, 0 and fractional too) or ``'fro'`` (the 2-norm over ``dim``, one or two
    axes); ``'nuc'`` is the nuclear norm of the matrices over ``dim`` (two axes; all axes of a
    2-D input when None)."""
    input = _float_tensor("norm", input)
    if isinstance(p, str):
        if p == "fro" and (dim is None or isinstance(dim, int | np.integer) or len(dim) <= 2):
            return vector_norm(input, 2, dim, keepdim, dtype=dtype)
        dims = tuple(range(input.ndim)) if dim is None else dim
        dims = (dims,) if isinstance(dims, int | np.integer) else tuple(dims)
        if len(dims) != 2:
            raise RuntimeError(
                f"norm: p={p!r} is a matrix norm: dim must name 2 axes, got {dims} (input of "
                f"shape {tuple(input.shape)})"
            )
        return matrix_norm(input, p, dims, keepdim, dtype=dtype)
    return vector_norm(input, 2.0 if p is None else p, dim, keepdim, dtype=dtype)


# -- products and powers -----------------------------------------------------------------------
def matrix_power(A: Any, n: int) -> Tensor:
    """A^n by repeated squaring (matmuls); n = 0 gives the identity, n < 0 powers of inv(A)."""
    A = _matrix("matrix_power", A, square=True)
    n = int(n)
    if n == 0:
        eye = np.broadcast_to(np.eye(A.shape[-1], dtype=A.dtype), A.shape)
        return Tensor._wrap(np.array(eye))
    if n < 0:
        A, n = inv(A), -n
    result = None
    base = A
    while True:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if not n:
            return result
        base = base @ base


def matrix_exp(A: Any) -> Tensor:
    """expm(A) (SciPy's scaling and squaring); derivatives by the block-matrix Frechet rule."""
    return OPS["linalg_matrix_exp"](_matrix("matrix_exp", A, square=True))


def _chain_order(shapes: list[tuple[int, int]]) -> list[list[int]]:
    """The optimal parenthesisation of a matrix chain (the classic O(n^3) dynamic program)."""
    n = len(shapes)
    dims = [shapes[0][0]] + [s[1] for s in shapes]
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = math.inf
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def multi_dot(tensors: Sequence[Any]) -> Tensor:
    """A chain of matrix products in the cheapest order. The first and last may be 1-D (a row
    and a column vector); the rest must be 2-D."""
    ts = [_float_tensor("multi_dot", t) for t in tensors]
    if len(ts) < 2:
        raise RuntimeError("linalg.multi_dot: expected at least two tensors")
    first_vec, last_vec = ts[0].ndim == 1, ts[-1].ndim == 1
    if first_vec:
        ts[0] = _ops.unsqueeze(ts[0], 0)
    if last_vec:
        ts[-1] = _ops.unsqueeze(ts[-1], -1)
    for i, t in enumerate(ts):
        if t.ndim != 2:
            raise RuntimeError(
                f"linalg.multi_dot: tensor {i} must be 2-D, got shape {tuple(t.shape)}"
            )
    split = _chain_order([tuple(t.shape) for t in ts])

    def product(i: int, j: int) -> Tensor:
        if i == j:
            return ts[i]
        k = split[i][j]
        return _ops.matmul(product(i, k), product(k + 1, j))

    out = product(0, len(ts) - 1)
    if first_vec:
        out = _ops.squeeze(out, 0)
    if last_vec:
        out = _ops.squeeze(out, -1)
    return out


def cross(input: Any, other: Any, *, dim: int = -1) -> Tensor:  # noqa: A002
    """The cross product of 3-vectors along ``dim`` (inputs broadcast):
    a x b = roll(a, -1) roll(b, -2) - roll(a, -2) roll(b, -1)."""
    a, b = _float_tensor("cross", input), _float_tensor("cross", other)
    if a.shape[dim] != 3 or b.shape[dim] != 3:
        raise RuntimeError(
            f"linalg.cross: dimension {dim} must have size 3, got shapes {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    nd = builtins.max(a.ndim, b.ndim)
    d = dim if dim < 0 else dim - nd
    return _ops.roll(a, -1, d) * _ops.roll(b, -2, d) - _ops.roll(a, -2, d) * _ops.roll(b, -1, d)


def vecdot(x: Any, y: Any, *, dim: int = -1) -> Tensor:
    """sum(conj(x) * y, dim) (inputs broadcast; x conjugated, as PyTorch's)."""
    return _ops.sum(_P.mul(_conj(as_tensor(x)), y), dim)


def tensordot(a: Any, b: Any, dims: Any = 2) -> Tensor:
    """Contract the axes ``dims`` of ``a`` and ``b`` (an int n: the last n of a with the
    first n of b; or two lists of axes), as one permute + reshape + matmul each side."""
    a, b = as_tensor(a), as_tensor(b)
    if isinstance(dims, int):
        axes_a = list(range(a.ndim - dims, a.ndim))
        axes_b = list(range(dims))
    else:
        axes_a, axes_b = ([d] if isinstance(d, int) else list(d) for d in dims)
    axes_a = [d % a.ndim for d in axes_a]
    axes_b = [d % b.ndim for d in axes_b]
    if len(axes_a) != len(axes_b) or any(
        a.shape[i] != b.shape[j] for i, j in zip(axes_a, axes_b, strict=False)
    ):
        raise RuntimeError(
            f"linalg.tensordot: contracted axes {axes_a} of {tuple(a.shape)} and {axes_b} of "
            f"{tuple(b.shape)} do not match"
        )
    free_a = [d for d in range(a.ndim) if d not in axes_a]
    free_b = [d for d in range(b.ndim) if d not in axes_b]
    k = math.prod(a.shape[d] for d in axes_a)
    pa = _ops.permute(a, tuple(free_a + axes_a)) if free_a + axes_a != list(range(a.ndim)) else a
    pb = _ops.permute(b, tuple(axes_b + free_b)) if axes_b + free_b != list(range(b.ndim)) else b
    fa = [a.shape[d] for d in free_a]
    fb = [b.shape[d] for d in free_b]
    out = _ops.matmul(_ops.reshape(pa, (math.prod(fa), k)), _ops.reshape(pb, (k, math.prod(fb))))
    return _ops.reshape(out, tuple(fa + fb))


def trace(A: Any, offset: int = 0) -> Tensor:
    """The sum of the (offset) diagonal of each matrix (the last two axes)."""
    A = _matrix("trace", A)
    return _ops.sum(_ops.diagonal(A, offset, -2, -1), -1)


def kron(a: Any, b: Any) -> Tensor:
    """The Kronecker product (NumPy's ``kron`` for any number of axes): out[i*p + k, j*q + l]
    = a[i, j] b[k, l]; one broadcast multiply and a reshape."""
    a, b = as_tensor(a), as_tensor(b)
    nd = builtins.max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + tuple(a.shape)
    sb = (1,) * (nd - b.ndim) + tuple(b.shape)
    ia = tuple(x for s in sa for x in (s, 1))
    ib = tuple(x for s in sb for x in (1, s))
    out = _ops.reshape(a, ia) * _ops.reshape(b, ib)
    return _ops.reshape(out, tuple(x * y for x, y in zip(sa, sb, strict=True)))


# -- LU, LDL, Householder products, the _ex variants and tensor solves (issue #13) ---------------
# One row, linalg_lu (A = P L U); everything else is composed of it and of the other rows: the
# packed LU of lu_factor, lu_solve as two triangular solves that read the packed factors'
# triangles (so the gradient of the packed LU is PyTorch's), the Householder products in
# compact WY form (I - V S V^H, one triangular solve for S). LDL and geqrf are forward only,
# as in PyTorch.
LUResult = namedtuple("LUResult", ["P", "L", "U"])
LUFactorResult = namedtuple("LUFactorResult", ["LU", "pivots"])
LUFactorExResult = namedtuple("LUFactorExResult", ["LU", "pivots", "info"])
CholeskyExResult = namedtuple("CholeskyExResult", ["L", "info"])
InvExResult = namedtuple("InvExResult", ["inverse", "info"])
SolveExResult = namedtuple("SolveExResult", ["result", "info"])
LDLFactorResult = namedtuple("LDLFactorResult", ["LD", "pivots"])
LDLFactorExResult = namedtuple("LDLFactorExResult", ["LD", "pivots", "info"])


def _const(x: Any) -> Tensor:
    return Tensor._wrap(np.asarray(x))


def _eye(n: int, m: int, dtype: Any) -> Tensor:
    return _const(np.eye(n, m, dtype=dtype))


def _no_pivot(op: str, pivot: bool) -> None:
    if not pivot:
        raise RuntimeError(
            f"linalg.{op}: LU without pivoting is not implemented on the CPU (LAPACK's getrf "
            "always pivots; PyTorch has it on CUDA only)"
        )


def _first_failure(info: np.ndarray) -> tuple[tuple[int, ...], int]:
    index = tuple(int(i) for i in np.argwhere(info > 0)[0]) if info.ndim else ()
    return index, int(info[index])


def _raise_for_info(op: str, info: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    """LinAlgError naming the op, the first failing matrix (batch index), the order ``i`` of
    ``what`` (a format string) and the input's shape, where any ``info`` is positive."""
    if not np.any(info > 0):
        return
    index, i = _first_failure(info)
    where = f" (batch index {index})" if index else ""
    raise LinAlgError(f"linalg.{op}: {what.format(i=i, i0=i - 1)}{where}; input of shape {shape}")


def _pack_lu(L: Tensor, U: Tensor) -> Tensor:
    """The m x n matrix holding L's strict lower part and U (getrf's layout)."""
    m, k = L.shape[-2:]
    n = U.shape[-1]
    low, up = _ops.tril(L, -1), U
    if n > k:
        low = _ops.pad(low, (0, n - k))
    if m > k:
        up = _ops.pad(up, (0, 0, 0, m - k))
    return low + up


def lu(A: Any, *, pivot: bool = True) -> LUResult:
    """A = P L U with partial pivoting (LAPACK's getrf): P m x m, L m x k unit lower
    triangular, U k x n upper triangular, k = min(m, n). Differentiable in A through L and U
    (P is piecewise constant); the row ``linalg_lu``."""
    A = _matrix("lu", A)
    _no_pivot("lu", pivot)
    P, L, U, _, _ = OPS["linalg_lu"](A)
    return LUResult(P.detach(), L, U)


def lu_factor_ex(A: Any, *, pivot: bool = True, check_errors: bool = False) -> LUFactorExResult:
    """(LU, pivots, info): L (unit diagonal not stored) and U packed in one m x n matrix,
    1-based int32 pivots (row i was interchanged with row pivots[i]), int32 info = i > 0 where
    U[i-1, i-1] is exactly zero (then ``check_errors`` raises)."""
    A = _matrix("lu_factor_ex", A)
    _no_pivot("lu_factor_ex", pivot)
    if _tracked(A):
        _, L, U, pivots, info = OPS["linalg_lu"](A)
        LU = _pack_lu(L, U)
    else:
        LU, pivots, info = (_const(x) for x in _af.lu_factor(A._data))
    if check_errors:
        _raise_for_info(
            "lu_factor_ex", info._data, tuple(A.shape), "U[{i0},{i0}] is zero (A is singular)"
        )
    return LUFactorExResult(LU, pivots, info)


def lu_factor(A: Any, *, pivot: bool = True) -> LUFactorResult:
    """(LU, pivots) of :func:`lu_factor_ex`; raises where U has a zero on its diagonal (A
    singular), as PyTorch's (``lu_factor_ex`` returns it with ``info`` instead)."""
    LU, pivots, info = lu_factor_ex(A, pivot=pivot)
    _raise_for_info(
        "lu_factor",
        info._data,
        tuple(LU.shape),
        "U[{i0},{i0}] is zero and using it on lu_solve would result in a division by zero (A "
        "is singular); linalg.lu or linalg.lu_factor_ex factor it anyway",
    )
    return LUFactorResult(LU, pivots)


def _permutation(op: str, pivots: Any, m: int, dtype: Any) -> Tensor:
    """P (a constant) from getrf's 1-based pivots: A = P L U."""
    perm = _af.lu_permutation(_raw(pivots), m, op)
    return _const(_af.permutation_matrix(perm, dtype))


def lu_unpack(
    LU_data: Any,  # noqa: N803 - PyTorch's names
    LU_pivots: Any,  # noqa: N803
    unpack_data: bool = True,
    unpack_pivots: bool = True,
) -> LUResult:
    """(P, L, U) from lu_factor's packed (LU, pivots): L = tril(LU, -1) + I (m x k), U =
    triu(LU) (k x n); differentiable in LU. Without ``unpack_data`` (``unpack_pivots``) L and U
    (P) are empty, as PyTorch's."""
    LU = _matrix("lu_unpack", LU_data)
    m, n = LU.shape[-2:]
    k = builtins.min(m, n)
    empty = _const(np.empty((0,), dtype=LU.dtype))
    P = _permutation("lu_unpack", LU_pivots, m, LU.dtype) if unpack_pivots else empty
    if not unpack_data:
        return LUResult(P, empty, empty)
    L = _ops.tril(LU[..., :, :k], -1) + _eye(m, k, LU.dtype)
    return LUResult(P, L, _ops.triu(LU[..., :k, :], 0))


def lu_solve(LU: Any, pivots: Any, B: Any, *, left: bool = True, adjoint: bool = False) -> Tensor:
    """X with A X = B (X A = B with ``left=False``; A^H for ``adjoint``) from lu_factor's
    (LU, pivots) of A = P L U: X = U^-1 L^-1 P^T B, two triangular solves that read LU's
    triangles, so the gradient reaches LU's strict lower part (L) and upper part (U)."""
    LU = _matrix("lu_solve", LU, square=True)
    B = _matrix("lu_solve", B)
    n = LU.shape[-1]
    if B.shape[-2 if left else -1] != n:
        raise RuntimeError(
            f"linalg.lu_solve: LU of shape {tuple(LU.shape)} and B of shape {tuple(B.shape)} do "
            f"not match (B.shape[{-2 if left else -1}] must be {n})"
        )
    if not left:  # X A = B: A^H X^H = B^H (and X A^H = B: A X^H = B^H)
        return _mH(lu_solve(LU, pivots, _mH(B), adjoint=not adjoint))
    P = _permutation("lu_solve", pivots, n, LU.dtype)
    tri = OPS["linalg_solve_triangular"]
    if adjoint:  # A^H = U^H L^H P^T: X = P L^-H U^-H B
        Y = tri(_mH(LU), B, upper=False, unitriangular=False)
        return P @ tri(_mH(LU), Y, upper=True, unitriangular=True)
    Y = tri(LU, P.mT @ B, upper=False, unitriangular=True)
    return tri(LU, Y, upper=True, unitriangular=False)


def _ex_where(bad: np.ndarray, A: Tensor, fallback: Tensor, fn: Any) -> Tensor:
    """fn(A) for the matrices of A where ``bad`` is False, ``fallback`` (a constant) where it
    is True: fn sees the identity in the bad matrices' place, so no gradient or error comes
    from them."""
    mask = _const(bad[..., None, None])
    n = A.shape[-1]
    return _P.where(mask, fallback, fn(_P.where(mask, _eye(n, n, A.dtype), A)))


def cholesky_ex(A: Any, *, upper: bool = False, check_errors: bool = False) -> CholeskyExResult:
    """(L, info) of the Cholesky factorization; info = i > 0 (int32) where the leading minor of
    order i is not positive definite, whose L is LAPACK's partial factor (no gradient);
    ``check_errors`` raises instead."""
    A = _matrix("cholesky_ex", A, square=True)
    raw, info = _af.cholesky_info(A._data)
    if check_errors:
        _raise_for_info(
            "cholesky_ex",
            info,
            tuple(A.shape),
            "the input is not positive-definite (the leading minor of order {i} is not "
            "positive-definite)",
        )
    bad = info > 0
    if not _tracked(A):
        L = _const(raw)
    elif not bad.any():
        L = OPS["linalg_cholesky"](A)
    else:
        L = _ex_where(bad, A, _const(raw), OPS["linalg_cholesky"])
    return CholeskyExResult(_mH(L) if upper else L, _const(info))


def _solve_ex(op: str, A: Tensor, B: Tensor | None, check_errors: bool) -> tuple[Tensor, Tensor]:
    """(A^-1 B, info) (A^-1 for B None) with batch axes broadcast, B a (batch of) matrix, from
    LAPACK's getrf/getrs without the singularity check: where A is singular (info > 0) the
    values are LAPACK's infinities and NaN, with zero gradient; elsewhere the differentiable
    rows (linalg_inv, linalg_solve)."""
    n = A.shape[-1]
    rhs = np.broadcast_to(np.eye(n, dtype=A.dtype), tuple(A.shape)) if B is None else B._data
    X, info = _af.solve_unchecked(A._data, rhs)
    if check_errors:
        _raise_for_info(op, info, tuple(A.shape), "the matrix is singular: U[{i0},{i0}] is 0")
    if not (_tracked(A) or (B is not None and _tracked(B))):
        return _const(X), _const(info)

    def fn(M: Tensor) -> Tensor:
        return OPS["linalg_inv"](M) if B is None else OPS["linalg_solve"](M, B)[0]

    bad = info > 0 if info.shape == tuple(A.shape[:-2]) else _af.lu_factor(A._data)[2] > 0
    if not bad.any():
        return fn(A), _const(info)
    return _ex_where(bad, A, _const(X), fn), _const(info)


def inv_ex(A: Any, *, check_errors: bool = False) -> InvExResult:
    """(A^-1, info): info = i > 0 (int32) where U[i-1, i-1] of A's LU is zero (A singular; its
    inverse is then LAPACK's inf/NaN and has no gradient); ``check_errors`` raises instead."""
    return InvExResult(*_solve_ex("inv_ex", _matrix("inv_ex", A, square=True), None, check_errors))


def solve_ex(A: Any, B: Any, *, left: bool = True, check_errors: bool = False) -> SolveExResult:
    """(X, info) with A X = B (X A = B with ``left=False``); info as :func:`inv_ex`'s."""
    A = _matrix("solve_ex", A, square=True)
    B = _float_tensor("solve_ex", B)
    if not left:
        X, info = solve_ex(A.mT, B.mT, check_errors=check_errors)
        return SolveExResult(X.mT, info)
    vector = _is_vector_rhs(A, B)
    Bm = _ops.unsqueeze(B, -1) if vector else B
    if Bm.ndim < 2 or Bm.shape[-2] != A.shape[-1]:
        raise RuntimeError(
            f"linalg.solve_ex: A of shape {tuple(A.shape)} and B of shape {tuple(B.shape)} do "
            "not match (A.shape[-1] != B.shape[-2])"
        )
    X, info = _solve_ex("solve_ex", A, Bm, check_errors)
    return SolveExResult(_ops.squeeze(X, -1) if vector else X, info)


# -- condition numbers, ranks, tensor inverses and solves ----------------------------------------
_COND_ORDS = ("fro", "nuc", math.inf, -math.inf, 1, -1)


def cond(A: Any, p: Any = None) -> Tensor:
    """The condition number: s_max / s_min for p = None or 2 (s_min / s_max for -2; any
    m x n), else ||A||_p ||A^-1||_p for square A (p 'fro', 'nuc', 1, -1, inf, -inf), inf for
    a singular matrix (with zero gradient), as PyTorch's."""
    A = _matrix("cond", A)
    if p is None or (not isinstance(p, str) and p in (2, -2)):
        s = svdvals(A)
        if s.shape[-1] == 0:
            return _const(np.zeros(tuple(A.shape[:-2]), dtype=s.dtype))
        big, small = s[..., 0], s[..., -1]
        return small / big if p == -2 else big / small
    if p not in _COND_ORDS:
        raise ValueError(f"linalg.cond: unsupported p {p!r} (None, 'fro', 'nuc', ±1, ±2, ±inf)")
    if A.shape[-1] != A.shape[-2]:
        raise RuntimeError(
            f"linalg.cond(ord={p}): A must be batches of square matrices, but they are "
            f"{A.shape[-2]} by {A.shape[-1]} matrices"
        )
    bad = _af.lu_factor(A._data)[2] > 0

    def ratio(M: Tensor) -> Tensor:
        return matrix_norm(M, p) * matrix_norm(inv(M), p)

    if not bad.any():
        return ratio(A)
    mask = _const(bad)
    safe = _P.where(_const(bad[..., None, None]), _eye(A.shape[-1], A.shape[-1], A.dtype), A)
    return _P.where(mask, math.inf, ratio(safe))


def _tolerance_array(x: Any) -> np.ndarray | None:
    return None if x is None else np.asarray(_raw(x), dtype=np.float64)


def matrix_rank(
    A: Any,
    tol: Any = None,
    hermitian: bool = False,
    *,
    atol: Any = None,
    rtol: Any = None,
) -> Tensor:
    """The number of singular values (|eigenvalues| with ``hermitian``) above
    max(atol, rtol * s_max), int64, no gradient. rtol defaults to eps * max(m, n) where atol
    is not given or is 0, else to 0 (PyTorch's rule); ``tol`` (PyTorch's older argument) is
    atol with rtol = 0. atol and rtol may be tensors that broadcast against the batch."""
    A = _matrix("matrix_rank", A)
    if tol is not None:
        if atol is not None or rtol is not None:
            raise RuntimeError("linalg.matrix_rank: give tol or atol/rtol, not both")
        atol, rtol = tol, 0.0
    data = A._data
    if hermitian:
        s = np.abs(np.linalg.eigvalsh(data)) if data.size else np.zeros(data.shape[:-1])
    else:
        s = _af.svd(data, compute_uv=False) if data.size else np.zeros(data.shape[:-2] + (0,))
    s = np.asarray(s)
    a, r = _tolerance_array(atol), _tolerance_array(rtol)
    if r is None:
        default = np.finfo(s.dtype if s.dtype.kind == "f" else np.float64).eps * builtins.max(
            A.shape[-2:]
        )
        r = np.asarray(default) if a is None else np.where(a > 0, 0.0, default)
    a = np.zeros(()) if a is None else a
    smax = np.max(s, axis=-1, initial=0.0)
    cutoff = np.maximum(a, r * smax)
    return _const(np.sum(s > cutoff[..., None], axis=-1).astype(np.int64))


def tensorinv(A: Any, ind: int = 2) -> Tensor:
    """The inverse of A for the tensor product over its first ``ind`` axes: A reshaped to a
    square prod(shape[:ind]) x prod(shape[ind:]) matrix, inverted, reshaped to
    shape[ind:] + shape[:ind]."""
    A = _float_tensor("tensorinv", A)
    if int(ind) <= 0:
        raise RuntimeError(f"linalg.tensorinv: expected a strictly positive ind, got {ind}")
    ind = int(ind)
    rows, cols = tuple(A.shape[:ind]), tuple(A.shape[ind:])
    if math.prod(rows) != math.prod(cols):
        raise RuntimeError(
            f"linalg.tensorinv: prod(A.shape[ind:]) = {math.prod(cols)} must equal "
            f"prod(A.shape[:ind]) = {math.prod(rows)} (A of shape {tuple(A.shape)}, ind={ind})"
        )
    M = _ops.reshape(A, (math.prod(rows), math.prod(cols)))
    return _ops.reshape(inv(M), cols + rows)


def tensorsolve(A: Any, B: Any, dims: Sequence[int] | None = None) -> Tensor:
    """X with tensordot(A, X, X.ndim) = B: the axes ``dims`` of A moved to the end, A
    reshaped to a prod(B.shape) x prod(A.shape[B.ndim:]) matrix and solved against B's
    elements; X has shape A.shape[B.ndim:]."""
    A = _float_tensor("tensorsolve", A)
    B = _float_tensor("tensorsolve", B)
    if dims is not None:
        moved = [_ops._norm_dim("tensorsolve", d, A.ndim) + A.ndim for d in dims]
        rest = [d for d in range(A.ndim) if d not in moved]
        A = _ops.permute(A, tuple(rest + moved))
    out_shape = tuple(A.shape[B.ndim :])
    if math.prod(A.shape[: B.ndim]) != math.prod(B.shape) or math.prod(B.shape) != math.prod(
        out_shape
    ):
        raise RuntimeError(
            f"linalg.tensorsolve: A of shape {tuple(A.shape)} and B of shape {tuple(B.shape)} do "
            "not match (prod(A.shape[B.ndim:]) and prod(A.shape[:B.ndim]) must both equal "
            "prod(B.shape))"
        )
    M = _ops.reshape(A, (math.prod(B.shape), math.prod(out_shape)))
    return _ops.reshape(solve(M, _ops.reshape(B, (math.prod(B.shape),))), out_shape)


# -- Householder products -----------------------------------------------------------------------
def _reflectors(op: str, A: Tensor, tau: Tensor) -> tuple[Tensor, Tensor]:
    """(V, S) with H_1 H_2 ... H_k = I - V S V^H, H_i = I - tau_i v_i v_i^H (LAPACK's
    convention; v_i the i-th column of A below the diagonal, 1 on it): V = tril(A, -1) + I
    (m x k) and S upper triangular with S^-1 = diag(1/tau) + triu(V^H V, 1) (the compact WY
    form: Schreiber & Van Loan 1989; Joffrain et al. 2006), computed as S = (I + D N)^-1 D,
    D = diag(tau), N = triu(V^H V, 1): one unit triangular solve, defined for tau_i = 0 too."""
    m, n = A.shape[-2:]
    k = tau.shape[-1]
    if tau.ndim != A.ndim - 1 or tuple(tau.shape[:-1]) != tuple(A.shape[:-2]):
        raise RuntimeError(
            f"{op}: tau of shape {tuple(tau.shape)} does not match input of shape "
            f"{tuple(A.shape)} (expected the batch shape {tuple(A.shape[:-2])} and one value "
            "per reflector)"
        )
    if k > n:
        raise RuntimeError(
            f"{op}: input.shape[-1] must be greater than or equal to tau.shape[-1], got "
            f"input of shape {tuple(A.shape)} and tau of shape {tuple(tau.shape)}"
        )
    V = _ops.tril(A[..., :, :k], -1) + _eye(m, k, A.dtype)
    N = _ops.triu(_mH(V) @ V, 1)
    DN = _ops.unsqueeze(tau, -1) * N  # strictly upper: the solve's unit diagonal is implied
    S = OPS["linalg_solve_triangular"](
        DN, _ops.diag_embed(tau, 0, -2, -1), upper=True, unitriangular=True
    )
    return V, S


def householder_product(A: Any, tau: Any) -> Tensor:
    """The first n columns of H_1 H_2 ... H_k, H_i = I - tau_i v_i v_i^H with v_i the i-th
    column of A (m x n, m >= n >= k) below the diagonal and 1 on it (LAPACK's orgqr/ungqr;
    geqrf's output gives the Q of the QR decomposition). Composed as I - V S V_n^H (see
    _reflectors); differentiable in A and tau."""
    A = _matrix("householder_product", A)
    tau = _float_tensor("householder_product", tau)
    m, n = A.shape[-2:]
    if m < n:
        raise RuntimeError(
            "linalg.householder_product: input.shape[-2] must be greater than or equal to "
            f"input.shape[-1], got shape {tuple(A.shape)}"
        )
    V, S = _reflectors("linalg.householder_product", A, tau)
    return _eye(m, n, A.dtype) - V @ (S @ _mH(V[..., :n, :]))


def ormqr(
    input: Any,  # noqa: A002 - PyTorch's names
    tau: Any,
    other: Any,
    left: bool = True,
    transpose: bool = False,
) -> Tensor:
    """Q C, Q^H C (``transpose``), C Q or C Q^H (``left=False``) for the m x m product
    Q = H_1 ... H_k of the Householder reflectors in ``input`` and ``tau`` (LAPACK's
    ormqr/unmqr): C - V S V^H C etc. (see _reflectors); differentiable in all three."""
    A = _matrix("ormqr", input)
    tau = _float_tensor("ormqr", tau)
    C = _matrix("ormqr", other)
    m = C.shape[-2] if left else C.shape[-1]
    if A.shape[-2] != m:
        raise RuntimeError(
            f"ormqr: input.shape[-2] must equal other.shape[{-2 if left else -1}] = {m}, got "
            f"input of shape {tuple(A.shape)} and other of shape {tuple(C.shape)}"
        )
    V, S = _reflectors("ormqr", A, tau)
    S = _mH(S) if transpose else S  # Q^H = I - V S^H V^H
    if left:
        return C - V @ (S @ (_mH(V) @ C))
    return C - ((C @ V) @ S) @ _mH(V)


def vander(x: Any, *, N: int | None = None) -> Tensor:  # noqa: N803 - PyTorch's name
    """The Vandermonde matrix: out[..., i, j] = x[..., i] ** j, j < N (default: x.shape[-1]),
    as a cumulative product (exact, differentiable, also at 0)."""
    x = as_tensor(x)
    if x.ndim == 0:
        x = _ops.reshape(x, (1,))
    N = x.shape[-1] if N is None else int(N)  # noqa: N806
    if N <= 1:
        raise RuntimeError(f"linalg.vander: N must be greater than 1, got {N}")
    powers = _ops.cumprod(_ops.expand(_ops.unsqueeze(x, -1), tuple(x.shape) + (N - 1,)), -1)
    ones = _const(np.ones(tuple(x.shape) + (1,), dtype=x.dtype))
    return _ops.cat([ones, powers], -1)


def diagonal(A: Any, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """The (offset) diagonals of the matrices over the axes dim1, dim2 (the last two by
    default: PyTorch's linalg.diagonal)."""
    return _ops.diagonal(as_tensor(A), offset, dim1, dim2)


# -- forward-only factorizations (no derivative, as in PyTorch) --------------------------------
class NoDerivativeNode(Node):
    """The grad_fn of the outputs of a function without a derivative (ldl_factor, geqrf, as in
    PyTorch): a backward pass that reaches it raises rather than dropping the gradient."""

    __slots__ = ("_op", "n_outputs")

    def __init__(self, op: str, inputs: Sequence[Any], n_outputs: int) -> None:
        super().__init__()
        self._op = op
        self.n_outputs = n_outputs
        self._next = tuple(tensor_edge(x) for x in inputs)

    def name(self) -> str:
        return f"NotImplemented[{self._op}]"

    def _apply(
        self, grads: list[Any], create_graph: bool, nbatch: int, want_all: bool = False
    ) -> list[Any]:
        raise NotImplementedError(
            f"the derivative for '{self._op}' is not implemented (nor is it in PyTorch); "
            "detach() its inputs"
        )


def _forward_only(op: str, inputs: Sequence[Any], outputs: Sequence[np.ndarray]) -> tuple:
    """Wrap ``outputs``; where an input takes gradients, the floating ones get a
    NoDerivativeNode. A forward-mode tangent raises at once (PyTorch's behaviour)."""
    tensors = [x for x in inputs if isinstance(x, Tensor)]
    if state.forward_level > 0 and any(t._fw_grad is not None for t in tensors):
        raise NotImplementedError(
            f"the forward-mode derivative for '{op}' is not implemented (nor is it in PyTorch)"
        )
    outs = tuple(_const(o) for o in outputs)
    if state.enabled and any(t.requires_grad for t in tensors):
        node = NoDerivativeNode(op, tensors, len(outs))
        for i, o in enumerate(outs):
            if o.dtype.kind in "fc":
                o.grad_fn, o._output_nr, o._requires_grad = node, i, True
    return outs


def ldl_factor_ex(
    A: Any, *, hermitian: bool = False, check_errors: bool = False
) -> LDLFactorExResult:
    """(LD, pivots, info) of A = L D L^T (L D L^H with ``hermitian``) with Bunch-Kaufman
    pivoting (LAPACK's sytrf/hetrf, the lower triangle): L and the block diagonal D packed,
    1-based int32 pivots (negative for 2 x 2 blocks of D), info = i > 0 where D[i-1, i-1] is
    zero (``check_errors`` raises). No derivative (as in PyTorch)."""
    A = _matrix("ldl_factor_ex", A, square=True)
    LD, pivots, info = _af.ldl_factor(A._data, bool(hermitian))
    if check_errors:
        _raise_for_info("ldl_factor_ex", info, tuple(A.shape), "D[{i0},{i0}] is zero")
    return LDLFactorExResult(*_forward_only("linalg.ldl_factor", [A], [LD, pivots, info]))


def ldl_factor(A: Any, *, hermitian: bool = False) -> LDLFactorResult:
    """(LD, pivots) of :func:`ldl_factor_ex`."""
    LD, pivots, _ = ldl_factor_ex(A, hermitian=hermitian)
    return LDLFactorResult(LD, pivots)


def ldl_solve(LD: Any, pivots: Any, B: Any, *, hermitian: bool = False) -> Tensor:
    """A^-1 B from ldl_factor's (LD, pivots) (LAPACK's sytrs/hetrs). No derivative."""
    LD = _matrix("ldl_solve", LD, square=True)
    B = _matrix("ldl_solve", B)
    if B.shape[-2] != LD.shape[-1]:
        raise RuntimeError(
            f"linalg.ldl_solve: LD of shape {tuple(LD.shape)} and B of shape {tuple(B.shape)} "
            "do not match"
        )
    X = _af.ldl_solve(LD._data, np.asarray(_raw(pivots)), B._data, bool(hermitian))
    return _forward_only("linalg.ldl_solve", [LD, B], [X])[0]


def geqrf(input: Any) -> tuple[Tensor, Tensor]:  # noqa: A002 - PyTorch's name
    """(a, tau) of LAPACK's geqrf: R on and above the diagonal, the Householder vectors
    below (see :func:`householder_product`). No derivative (as in PyTorch)."""
    A = _matrix("geqrf", input)
    return GeqrfResult(*_forward_only("geqrf", [A], list(_af.geqrf(A._data))))


GeqrfResult = namedtuple("GeqrfResult", ["a", "tau"])


# -- PyTorch's top-level names for these (torch.lu, torch.lu_solve, torch.orgqr, ...) -----------
def _torch_lu(A: Any, pivot: bool = True, get_infos: bool = False) -> tuple:
    """``torch.lu``: (LU, pivots), or (LU, pivots, infos) with ``get_infos``; without it a
    singular matrix raises."""
    out = lu_factor_ex(A, pivot=pivot, check_errors=not get_infos)
    return out if get_infos else (out.LU, out.pivots)


def _torch_lu_solve(b: Any, LU_data: Any, LU_pivots: Any) -> Tensor:  # noqa: N803
    """``torch.lu_solve(b, LU_data, LU_pivots)``: linalg.lu_solve's arguments reordered."""
    return lu_solve(LU_data, LU_pivots, b)


#: the functions above under PyTorch's top-level names (matgrad.ops.toplevel exports them)
TOP_LEVEL: dict[str, Any] = {
    "lu": _torch_lu,
    "lu_solve": _torch_lu_solve,
    "lu_unpack": lu_unpack,
    "geqrf": geqrf,
    "orgqr": householder_product,
    "ormqr": ormqr,
    "logdet": logdet,
    "matrix_power": matrix_power,
    "kron": kron,
}
for _name, _fn in TOP_LEVEL.items():
    if _fn.__name__.startswith("_torch_"):
        _fn.__name__ = _fn.__qualname__ = _name


# -- linear algebra primitives -----------------------------------------------------------------
# The tensor twins of the ``linalg_*`` rows (the public functions are in matgrad.linalg) and of
# the array functions their formulas call. Those read the forward's factorization (LU,
# pivots) when nothing has to be differentiated, and are differentiable composites otherwise
# (create_graph=True), so second derivatives come for free.


def _differentiable(*xs: Any) -> bool:
    return builtins.any(isinstance(x, Tensor) and x.requires_grad for x in xs)


def linalg_vector_norm(
    self: Tensor,
    ord: float = 2,
    dim: _ops.Dims = None,
    keepdim: bool = False,  # noqa: A002
) -> Tensor:
    self = _ops._tensor(self)
    dims = _ops._norm_dims("vector_norm", dim, self.ndim)
    return OPS["linalg_vector_norm"](self, ord=float(ord), dim=dims, keepdim=bool(keepdim))


def _adjugate_t(A: Tensor) -> Tensor:
    """adj(A)^T = det(U) det(V) U diag(prod_{j != i} s_j) V^T, differentiably (via svd)."""
    U, S, Vh = OPS["linalg_svd"](A, False)
    n = S.shape[-1]
    others = _P.where(Tensor._wrap(np.eye(n, dtype=bool)), 1.0, _ops.unsqueeze(S, -2))
    p = _ops.prod(others, -1)
    d = np.linalg.det(U._data) * np.linalg.det(Vh._data)
    # complex A: adj(A)^T = d conj(U diag(p) V^H); d is taken as a constant (locally so for a
    # real A, where it is +-1)
    return _conj((U * _ops.unsqueeze(p, -2)) @ Vh) * Tensor._wrap(np.asarray(d)[..., None, None])


def _per_matrix(x: Any) -> Tensor:
    return _ops.unsqueeze(_ops.unsqueeze(_ops._tensor(x), -1), -1)


def linalg_det_vjp(grad: Any, A: Tensor, det: Tensor, LU: Tensor, pivots: Tensor) -> Tensor:
    """grad * adj(A)^T (see ``backend.lapack.linalg_det_vjp``); differentiable when grad, A or
    det is (then grad det(A) inv(A)^T, or the SVD adjugate at a singular A)."""
    if not _differentiable(grad, A, det):
        return Tensor._wrap(
            _af.linalg_det_vjp(_raw(grad), _raw(A), _raw(det), _raw(LU), _raw(pivots))
        )
    inv_t, ok = _af._inv_t_from_lu(_raw(LU), _raw(pivots))
    if np.any(_af._ill_conditioned(_raw(A), inv_t, ok)):
        return _per_matrix(grad) * _conj(_adjugate_t(A))
    return _per_matrix(grad * _conj(_ops._tensor(det))) * _mH(OPS["linalg_inv"](A))


def linalg_slogdet_vjp(grad: Any, A: Tensor, sign: Tensor, LU: Tensor, pivots: Tensor) -> Tensor:
    """grad * A^-T, or grad * pinv(A)^T at a singular A (see ``backend.lapack``)."""
    if not _differentiable(grad, A):
        return Tensor._wrap(
            _af.linalg_slogdet_vjp(_raw(grad), _raw(A), _raw(sign), _raw(LU), _raw(pivots))
        )
    if np.any(_raw(sign) == 0):
        _af._warn_singular_slogdet()
        return _per_matrix(grad) * _mH(pinv(A))
    return _per_matrix(grad) * _mH(OPS["linalg_inv"](A))


def linalg_lu_solve(LU: Tensor, pivots: Tensor, A: Tensor, B: Tensor, adjoint: bool) -> Tensor:
    """A^-1 B (A^-H B with ``adjoint``): from the saved LU when nothing is differentiated,
    else a differentiable solve."""
    if not _differentiable(A, B):
        return Tensor._wrap(_af.linalg_lu_solve(_raw(LU), _raw(pivots), _raw(A), _raw(B), adjoint))
    return OPS["linalg_solve"](_mH(A) if adjoint else A, B)[0]


def spectral_tolerance(values: Tensor, size: int) -> float:
    return _af.spectral_tolerance(_raw(values), size)


def inverse_gaps(values: Tensor, tol: float, plus: bool, scale: float) -> Tensor:
    """Differentiable twin of ``backend.lapack.inverse_gaps``."""
    v_j, v_i = _ops.unsqueeze(values, -2), _ops.unsqueeze(values, -1)
    gaps = v_j + v_i if plus else v_j - v_i
    ok = _P.abs(gaps) > tol
    return _P.where(ok, scale / _P.where(ok, gaps, 1.0), 0.0)


def gap_quotient(K: Tensor, values: Tensor, tol: float, plus: bool, scale: float) -> Tensor:
    """Differentiable twin of ``backend.lapack.gap_quotient``."""
    return K * inverse_gaps(values, tol, plus, scale)


def with_diagonal(M: Tensor, d: Tensor) -> Tensor:
    """M with its diagonal replaced by d (out of place, differentiable)."""
    eye = Tensor._wrap(np.eye(M.shape[-1], dtype=bool))
    return _P.where(eye, _ops.unsqueeze(d, -2), M)


def warn_if_basis_dependent(
    values: Tensor, spectrum: Any, tol: float, cotangents: Any, op: str, what: str, kind: str
) -> None:
    _af.warn_if_basis_dependent(
        _raw(values), _raw(spectrum), tol, [_raw(c) for c in cotangents], op, what, kind
    )


def raise_if_phase_dependent(imag_diag: Tensor, cotangents: Any, op: str) -> None:
    _af.raise_if_phase_dependent(_raw(imag_diag), [_raw(c) for c in cotangents], op)


def warn_if_split_dependent(
    grad_values: Tensor, values: Tensor, tol: float, op: str, what: str
) -> None:
    _af.warn_if_split_dependent(_raw(grad_values), _raw(values), tol, op, what)
