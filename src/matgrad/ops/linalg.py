"""``matgrad.linalg``: linear algebra with matrix-form derivative rules (PyTorch's names).

Every function takes batches of matrices (the last two axes; leading axes are batch axes) in
float32 or float64. The primitives (``inv``, ``det``, ``slogdet``, ``solve``,
``solve_triangular``, ``cholesky``, ``qr``, ``eigh``, ``svd``, ``matrix_exp``, ``vector_norm``)
have one row each in ``derivatives.yaml`` with a reverse-mode and a forward-mode rule written
in matrix form; everything else here is a composite of those and of core ops, so the graph
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
  ``numpy.linalg.LinAlgError`` naming the function and the shape.
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
from ..core.grad_mode import state
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
    "cross",
    "det",
    "eig",
    "eigh",
    "eigvals",
    "eigvalsh",
    "inv",
    "kron",
    "logdet",
    "lstsq",
    "matrix_exp",
    "matrix_norm",
    "matrix_power",
    "multi_dot",
    "norm",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "solve_triangular",
    "svd",
    "svdvals",
    "tensor_norm",
    "tensordot",
    "trace",
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
