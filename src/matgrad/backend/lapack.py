"""Linear algebra on raw arrays: the forwards of the ``linalg_*`` rows (LAPACK through SciPy)
and the array twins of the helpers their formulas call.
"""

from __future__ import annotations

import builtins
import math as _math
import warnings as _warnings
from typing import Any

import numpy as np
import scipy.linalg.blas
from scipy.linalg import lapack as _lapack

from . import arrays as _backend

Array = Any

# -- linear algebra ----------------------------------------------------------------------------
# Forward computations of the ``linalg_*`` rows and the array twins of the functions their
# formulas call. LU factorizations are of A^T: LAPACK is column-major, so the transpose of a
# row-major A is handed over without a transposing copy, and getri on that factorization gives
# A^-T, which is what the gradients of det and slogdet need. Batches are looped over in Python.


class DegenerateGradientWarning(RuntimeWarning):
    """At a repeated eigen-/singular value the loss has no gradient, or one that a first-order
    (reverse-mode) rule cannot see; the coupling of the repeated values was dropped."""


class BasisDependentGradientWarning(DegenerateGradientWarning):
    """The loss depends on the choice of basis of a repeated eigen-/singular space, so its
    gradient is not defined; the basis-dependent part was dropped."""


class SingularMatrixGradientWarning(RuntimeWarning):
    """A gradient was asked at a singular matrix where it is infinite; a documented finite
    substitute was returned."""


def _numpy_only(op: str, *arrays: Any) -> None:
    """The factorizations call LAPACK through SciPy on NumPy arrays; other array libraries
    (Dask, CuPy) get a clear NotImplementedError instead of a partial or eager computation."""
    for a in arrays:
        if _backend.backend_of(a) != "numpy":
            raise NotImplementedError(
                f"{op}: not implemented for {type(a).__module__.partition('.')[0]} arrays "
                "(matgrad.linalg runs LAPACK on NumPy arrays); move the tensor with .to('numpy')"
            )


def _is_dask_matrix(a: Any) -> bool:
    """A 2-D Dask array: what Dask's own linear algebra (tall-and-skinny QR and SVD, triangular
    solves) takes."""
    return _backend.backend_of(a) == "dask" and a.ndim == 2


def _batch_indices(batch: tuple[int, ...]) -> Any:
    return np.ndindex(*batch) if batch else [()]


def _linalg_error(op: str, what: str, shape: tuple[int, ...], index: Any = None) -> Exception:
    where = f" at batch index {tuple(int(i) for i in index)}" if index else ""
    return np.linalg.LinAlgError(f"{op}: {what}{where}, input of shape {tuple(shape)}")


def svd(A: Array, full_matrices: bool = True, compute_uv: bool = True) -> Any:
    """numpy.linalg.svd of NumPy matrices with only finite entries. LAPACK's gesdd prints
    ("On entry to DLASCL parameter number 4 had an illegal value") on an infinite entry, so a
    non-finite input never reaches it: LinAlgError, as PyTorch raises for NaN."""
    if not np.isfinite(A).all():
        raise np.linalg.LinAlgError(
            "linalg.svd: the input contains non-finite values (inf or NaN), so the SVD does "
            f"not converge; input of shape {tuple(A.shape)}"
        )
    return np.linalg.svd(A, full_matrices=full_matrices, compute_uv=compute_uv)


def _per_finite_matrix(fn: Any, A: Array, out_shape: tuple[int, ...]) -> Array:
    """``fn`` of the matrices of ``A`` with finite entries (batched), NaN for the others
    (which would make LAPACK print, see :func:`svd`)."""
    finite = np.isfinite(A).all(axis=(-2, -1))
    if finite.all():
        return fn(A)
    out = np.full(out_shape, np.nan, dtype=A.dtype)
    if A.ndim > 2 and finite.any():
        out[finite] = fn(A[finite])
    return out


_LAPACK_CACHE: dict[tuple[str, str], Any] = {}


def _lapack_fn(name: str, dtype: Any) -> Any:
    """A LAPACK routine for ``dtype`` (looked up once: get_lapack_funcs costs microseconds)."""
    key = (name, np.dtype(dtype).char)
    fn = _LAPACK_CACHE.get(key)
    if fn is None:
        (fn,) = _lapack.get_lapack_funcs((name,), (np.empty((1, 1), dtype=dtype),))
        _LAPACK_CACHE[key] = fn
    return fn


def _getri_lwork(dtype: Any, n: int) -> int:
    key = ("lwork", f"{np.dtype(dtype).char}{n}")
    lwork = _LAPACK_CACHE.get(key)
    if lwork is None:
        lwork = _LAPACK_CACHE[key] = builtins.max(
            int(np.real(_lapack_fn("getri_lwork", dtype)(n)[0])),
            1,  # complex for z/c routines
        )
    return lwork


def _lu_t(A: Array) -> tuple[Array, Array, Array]:
    """The LU factorization of A^T for each matrix of A: (LU, pivots, info); info > 0 where
    a pivot is exactly zero (A singular)."""
    getrf = _lapack_fn("getrf", A.dtype)
    if A.shape[-1] == 0:  # 0 x 0: nothing to factor (LAPACK would print that lda = 0 is illegal)
        batch = A.shape[:-2]
        piv = np.empty(batch + (0,), dtype=np.int32)
        return np.empty(A.shape, dtype=getrf.dtype), piv, np.zeros(batch, dtype=np.int64)
    if A.ndim == 2:
        lu, piv, info = getrf(A.T)  # A.T of a C-ordered A is Fortran-ordered: a plain copy
        return lu, piv, np.asarray(info)
    batch = A.shape[:-2]
    LU = np.empty(A.shape, dtype=getrf.dtype)
    piv = np.empty(batch + A.shape[-1:], dtype=np.int32)
    info = np.zeros(batch, dtype=np.int64)
    for idx in _batch_indices(batch):
        LU[idx], piv[idx], info[idx] = getrf(A[idx].T)
    return LU, piv, info


def _lu_sign_logabs(LU: Array, piv: Array) -> tuple[Array, Array]:
    """(the sign of the row permutation, diag(U)) of an LU factorization."""
    diag = np.diagonal(LU, axis1=-2, axis2=-1)
    n = piv.shape[-1]
    key = ("arange", f"{n}")
    steps = _LAPACK_CACHE.get(key)
    if steps is None:
        steps = _LAPACK_CACHE[key] = np.arange(n, dtype=piv.dtype)
    swaps = np.count_nonzero(piv != steps, axis=-1)
    if piv.ndim == 1:
        return LU.dtype.type(-1.0 if swaps % 2 else 1.0), diag
    return np.where(swaps % 2 == 1, -1, 1).astype(LU.dtype), diag


def _blas_fn(name: str, dtype: Any) -> Any:
    key = ("blas " + name, np.dtype(dtype).char)
    fn = _LAPACK_CACHE.get(key)
    if fn is None:
        fn = _LAPACK_CACHE[key] = scipy.linalg.blas.get_blas_funcs(
            name, (np.empty((1, 1), dtype=dtype),)
        )
    return fn


def _upper_inverse_into(U: Array, out: Array, trtri: Any, trmm: Any) -> bool:
    """inv(U) of an upper triangular U (the upper triangle of an F-ordered view) written into
    ``out`` (zeros below the diagonal), recursively: inv([[U11, U12], [0, U22]]) has the
    blocks inv(U11), inv(U22) and -inv(U11) U12 inv(U22) (two trmm, BLAS-3), which runs faster
    than LAPACK's trtri here. False if U has a zero on its diagonal."""
    n = U.shape[0]
    if n <= 64:
        inv, info = trtri(U, lower=0)
        out[...] = np.triu(inv)
        return info == 0
    h = n // 2
    if not (
        _upper_inverse_into(U[:h, :h], out[:h, :h], trtri, trmm)
        and _upper_inverse_into(U[h:, h:], out[h:, h:], trtri, trmm)
    ):
        return False
    X = trmm(-1.0, np.asfortranarray(out[:h, :h]), U[:h, h:])
    out[:h, h:] = trmm(1.0, np.asfortranarray(out[h:, h:]), X, side=1)
    return True


def _inv_from_lu_large(LU: Array, piv: Array) -> Array | None:
    """inv(M) from M = P L U (getrf's output for one large matrix): W = inv(U) recursively,
    then X with X L = W (one trsm, solved as L^T X^T = W^T on the transposed layout), then the
    columns of X permuted by P^T. The same 4n^3/3 flops as getri, about 10-20% faster with
    OpenBLAS at n = 200. None if U is singular."""
    n = LU.shape[-1]
    W = np.zeros((n, n), dtype=LU.dtype)  # C order: W.T is the Fortran-ordered W^T
    if not _upper_inverse_into(LU, W, _lapack_fn("trtri", LU.dtype), _blas_fn("trmm", LU.dtype)):
        return None
    trsm = _blas_fn("trsm", LU.dtype)
    Xt = trsm(1.0, LU, W.T, lower=1, trans_a=1, diag=1, overwrite_b=1)  # L^T X^T = W^T
    # X P^T: the interchanges applied to the columns of X (rows of X^T) in reverse order
    Xt = _lapack_fn("laswp", LU.dtype)(Xt, piv, inc=-1, overwrite_a=1)
    return Xt.T


def _inv_t_from_lu(LU: Array, piv: Array) -> tuple[Array, Array]:
    """A^-T from the LU of A^T (4n^3/3 flops, no solve with the identity: getri, or the
    blocked variant above for one large matrix); also a mask of the matrices where that
    inverse exists (False for a zero pivot: left as NaN)."""
    if LU.shape[-1] == 0:  # 0 x 0: the empty inverse (getri would print about lda = 0)
        return np.empty(LU.shape, dtype=LU.dtype), np.ones(LU.shape[:-2], dtype=bool)
    if LU.ndim == 2 and LU.shape[-1] >= 128 and LU.dtype.char in "fd":
        inv = _inv_from_lu_large(LU, piv)
        if inv is None:
            return np.full(LU.shape, np.nan, dtype=LU.dtype), np.asarray(False)
        return inv, np.asarray(True)
    getri = _lapack_fn("getri", LU.dtype)
    lwork = _getri_lwork(LU.dtype, LU.shape[-1])
    if LU.ndim == 2:
        inv, info = getri(LU, piv, lwork=lwork)
        if info != 0:
            inv = np.full(LU.shape, np.nan, dtype=LU.dtype)
        return inv, np.asarray(info == 0)
    out = np.empty(LU.shape, dtype=LU.dtype)
    ok = np.ones(LU.shape[:-2], dtype=bool)
    for idx in _batch_indices(LU.shape[:-2]):
        inv, info = getri(LU[idx], piv[idx], lwork=lwork)
        if info != 0:
            out[idx] = np.nan
            ok[idx] = False
        else:
            out[idx] = inv
    return out, ok


def _adjugate_t_svd(A: Array) -> Array:
    """adj(A)^T = det(U) det(V) U diag(prod_{j != i} s_j) V^T from A = U S V^T: finite and
    accurate at singular A (rank n-1: rank one; rank <= n-2: zero); NaN for a matrix with a
    non-finite entry."""
    return _per_finite_matrix(_adjugate_t_svd_finite, A, A.shape)


def _adjugate_t_svd_finite(A: Array) -> Array:
    U, s, Vh = np.linalg.svd(A)
    ones = np.ones(s.shape[:-1] + (1,), dtype=s.dtype)
    before = np.cumprod(np.concatenate([ones, s[..., :-1]], -1), -1)  # prod_{j < i} s_j
    after = np.cumprod(np.concatenate([ones, s[..., :0:-1]], -1), -1)[..., ::-1]  # j > i
    d = np.linalg.det(U) * np.linalg.det(Vh)
    M = (U * (before * after)[..., None, :]) @ Vh
    # adj(A) = d V diag(p) U^H, so adj(A)^T = d conj(U diag(p) V^H) (for real A: d U diag(p) V^T)
    return d[..., None, None] * (np.conj(M) if np.iscomplexobj(M) else M)


def _ill_conditioned(A: Array, inv: Array, ok: Array) -> Array:
    """Where the LU route to the adjugate loses more than half the digits: cond_F(A) =
    ||A||_F ||A^-1||_F above 1/sqrt(eps), or no inverse at all."""
    limit = 1.0 / _math.sqrt(np.finfo(A.dtype).eps)
    if A.ndim == 2:
        return np.asarray(not (ok and np.linalg.norm(A) * np.linalg.norm(inv) <= limit))
    with np.errstate(invalid="ignore", over="ignore"):
        cond = np.linalg.norm(A, axis=(-2, -1)) * np.linalg.norm(inv, axis=(-2, -1))
    return ~ok | ~(cond <= limit)


def linalg_inv(A: Array) -> Array:
    """A^-1. One matrix: getrf + getri (4n^3/3 flops after the LU, against 2n^3 for a solve
    with the identity, as numpy.linalg.inv does); batches: numpy.linalg.inv. A 2-D Dask
    array: Dask's own (blocked LU) inverse, lazily."""
    if _is_dask_matrix(A):
        import dask.array as da

        return da.linalg.inv(A)
    _numpy_only("linalg.inv", A)
    if A.ndim == 2 and A.shape[0] > 16 and A.dtype.char in "fd":
        LU, piv, info = _lu_t(A)
        if info == 0:
            inv_t, ok = _inv_t_from_lu(LU, piv)
            if ok:
                return inv_t.T  # inv(A^T)^T = inv(A), C-ordered: no copy
        raise _linalg_error("linalg.inv", "the matrix is singular (not invertible)", A.shape)
    try:
        return np.linalg.inv(A)
    except np.linalg.LinAlgError:
        bad = np.argwhere(np.linalg.matrix_rank(A) < A.shape[-1]) if A.ndim > 2 else None
        index = tuple(bad[0]) if bad is not None and len(bad) else None
        raise _linalg_error(
            "linalg.inv", "the matrix is singular (not invertible)", A.shape, index
        ) from None


def linalg_det(A: Array) -> tuple[Array, Array, Array]:
    """det(A) from one LU factorization (of A^T), returned with it for the backward pass."""
    _numpy_only("linalg.det", A)
    LU, piv, _ = _lu_t(A)
    parity, diag = _lu_sign_logabs(LU, piv)
    return parity * np.prod(diag, -1), LU, piv


def linalg_slogdet(A: Array) -> tuple[Array, Array, Array, Array]:
    """(sign, log|det A|) from one LU factorization, returned with it; a zero pivot gives
    (0, -inf), as NumPy does."""
    _numpy_only("linalg.slogdet", A)
    LU, piv, _ = _lu_t(A)
    parity, diag = _lu_sign_logabs(LU, piv)
    with np.errstate(divide="ignore"):
        logabs = np.sum(np.log(np.abs(diag)), -1)
    return parity * np.prod(np.sign(diag), -1) + 0.0, logabs, LU, piv  # + 0.0: no -0.0


def _scale(M: Array, grad: Array) -> Array:
    """grad[..., None, None] * M, in place in M (a fresh array) when the shapes allow."""
    g = np.asarray(grad)
    if g.ndim == 0:
        return M if g == 1 else np.multiply(M, g, out=M)
    return g[..., None, None] * M


def linalg_det_vjp(grad: Array, A: Array, det: Array, LU: Array, pivots: Array) -> Array:
    """grad * conj(adj(A)^T) = grad conj(det(A)) A^-H, with A^-T from the forward's LU
    (getri); where A is singular or nearly so, adj(A)^T from the SVD instead (finite,
    correct). For real A the conjugations are no-ops."""
    if np.iscomplexobj(A):
        return np.conj(_det_vjp_t(np.conj(grad), A, det, LU, pivots))
    return _det_vjp_t(grad, A, det, LU, pivots)


def _det_vjp_t(grad: Array, A: Array, det: Array, LU: Array, pivots: Array) -> Array:
    """grad * adj(A)^T (no conjugation)."""
    inv_t, ok = _inv_t_from_lu(LU, pivots)
    bad = _ill_conditioned(A, inv_t, ok)
    if inv_t.ndim == 2:
        if bad:
            return _scale(_adjugate_t_svd(A), grad)
        return _scale(inv_t, np.asarray(grad) * det)
    out = np.multiply(inv_t, det[..., None, None], out=inv_t)
    if bad.any():
        out[bad] = _adjugate_t_svd(np.broadcast_to(A, out.shape)[bad])
    return _scale(out, grad)


def _warn_singular_slogdet() -> None:
    _warnings.warn(
        "linalg.slogdet/logdet: the matrix is singular, so log|det A| = -inf and its gradient "
        "A^-T is infinite; returning pinv(A)^T instead, the gradient of the log "
        "pseudo-determinant (the sum of the logs of the nonzero singular values), which equals "
        "A^-T wherever A is invertible",
        SingularMatrixGradientWarning,
        stacklevel=3,
    )


def _singular_slogdet_grad(A: Array) -> Array:
    _warn_singular_slogdet()
    return np.swapaxes(_per_finite_matrix(np.linalg.pinv, A, A.shape), -1, -2)


def linalg_slogdet_vjp(grad: Array, A: Array, sign: Array, LU: Array, pivots: Array) -> Array:
    """grad * A^-H (d log|det A| = Re tr(A^-1 dA)), A^-T from the forward's LU (getri). At a
    singular A (sign 0, value -inf) the gradient is infinite: pinv(A)^H is used instead, with
    a warning."""
    if np.iscomplexobj(A):
        return np.conj(_slogdet_vjp_t(np.conj(grad), A, sign, LU, pivots))
    return _slogdet_vjp_t(grad, A, sign, LU, pivots)


def _slogdet_vjp_t(grad: Array, A: Array, sign: Array, LU: Array, pivots: Array) -> Array:
    """grad * A^-T (no conjugation)."""
    inv_t, ok = _inv_t_from_lu(LU, pivots)
    bad = ~ok | (sign == 0)
    if bad.any():
        if inv_t.ndim == 2:
            return _scale(_singular_slogdet_grad(A), grad)
        inv_t[bad] = _singular_slogdet_grad(np.broadcast_to(A, inv_t.shape)[bad])
    return _scale(inv_t, grad)


def _getrs(LU: Array, piv: Array, B: Array, trans: int) -> Array:
    getrs = _lapack_fn("getrs", np.result_type(LU, B))
    bshape = np.broadcast_shapes(LU.shape[:-2], B.shape[:-2])
    if LU.shape[-1] == 0 or B.shape[-1] == 0:  # nothing to solve (and no LAPACK message)
        return np.zeros(bshape + B.shape[-2:], dtype=np.result_type(LU, B))
    if not bshape:
        x, _ = getrs(LU, piv, B, trans=trans)
        return x
    LUb = np.broadcast_to(LU, bshape + LU.shape[-2:])
    pivb = np.broadcast_to(piv, bshape + piv.shape[-1:])
    Bb = np.broadcast_to(B, bshape + B.shape[-2:])
    out = np.empty(Bb.shape, dtype=np.result_type(LU, B))
    for idx in _batch_indices(bshape):
        out[idx], _ = getrs(LUb[idx], pivb[idx], Bb[idx], trans=trans)
    return out


def linalg_lu_solve(LU: Array, pivots: Array, A: Array, B: Array, adjoint: bool) -> Array:
    """A^-1 B (or A^-H B with ``adjoint``) from the forward's LU of A^T: O(n^2 k)."""
    if adjoint and np.iscomplexobj(LU):  # A^-H B = conj(A^-T conj(B))
        return np.conj(_getrs(LU, pivots, np.conj(B), 0))
    return _getrs(LU, pivots, B, 0 if adjoint else 1)


def linalg_solve(A: Array, B: Array) -> tuple[Array, Array, Array]:
    """X = A^-1 B (B a batch of matrices; batch axes broadcast), with the LU for backward."""
    _numpy_only("linalg.solve", A, B)
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    LU, piv, info = _lu_t(np.broadcast_to(A, batch + A.shape[-2:]))
    if np.any(info > 0):
        index = tuple(np.argwhere(info > 0)[0]) if batch else None
        raise _linalg_error(
            "linalg.solve", "the matrix A is singular (not invertible)", A.shape, index
        )
    return _getrs(LU, piv, B, 1), LU, piv


def linalg_solve_triangular(A: Array, B: Array, upper: bool, unitriangular: bool = False) -> Array:
    if _is_dask_matrix(A) and _is_dask_matrix(B) and not unitriangular:
        import dask.array as da

        return da.linalg.solve_triangular(A, B, lower=not upper)
    _numpy_only("linalg.solve_triangular", A, B)
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    if 0 in batch:  # SciPy raises for zero-size batches; the solution is as empty (PyTorch)
        return np.zeros(batch + B.shape[-2:], dtype=np.result_type(A.dtype, B.dtype, np.float32))
    try:
        return scipy.linalg.solve_triangular(
            A, B, lower=not upper, unit_diagonal=unitriangular, check_finite=False
        )
    except np.linalg.LinAlgError as exc:
        raise _linalg_error(
            "linalg.solve_triangular", f"the matrix is singular ({exc})", A.shape
        ) from None


def linalg_cholesky(A: Array) -> Array:
    if _is_dask_matrix(A) and A.chunks[0] == A.chunks[1]:  # Dask's blocked Cholesky
        import dask.array as da

        return da.linalg.cholesky(A, lower=True)
    _numpy_only("linalg.cholesky", A)
    try:
        return np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        raise _linalg_error(
            "linalg.cholesky", "the matrix is not positive definite", A.shape
        ) from None


def linalg_qr(A: Array, mode: str = "reduced") -> tuple[Array, Array]:
    if _is_dask_matrix(A) and mode == "reduced":  # Dask's tall-and-skinny QR
        import dask.array as da

        return da.linalg.qr(A)
    _numpy_only("linalg.qr", A)
    Q, R = np.linalg.qr(A, mode=mode)
    return Q, R


def linalg_eig(A: Array) -> tuple[Array, Array]:
    """Eigenvalues and unit-norm eigenvectors of a general square matrix (LAPACK's geev, as
    PyTorch), complex even for a real A (NumPy returns real ones when they all are)."""
    _numpy_only("linalg.eig", A)
    if not np.isfinite(A).all():
        raise np.linalg.LinAlgError(
            f"linalg.eig: the input contains non-finite values (inf or NaN); input of shape "
            f"{tuple(A.shape)}"
        )
    L, V = np.linalg.eig(A)
    cdtype = np.result_type(A.dtype, np.complex64)
    return L.astype(cdtype, copy=False), V.astype(cdtype, copy=False)


def raise_if_phase_dependent(imag_diag: Array, cotangents: Any, op: str) -> None:
    """Complex eigen-/singular vectors are defined up to a phase each (v -> v e^(i phi)); a
    loss is invariant under it iff Im diag(V^H Vbar) = 0 (``imag_diag``). Otherwise its
    gradient does not exist: raise, as PyTorch does (PyTorch's tolerance is 1e-2; here
    sqrt(eps) max(1, |cotangents|), far above rounding, which can leave cotangents that
    cancel to tiny values with a relatively large phase part)."""
    scale = builtins.max(
        [float(np.max(np.abs(c), initial=0.0)) for c in cotangents if c is not None], default=0.0
    )
    limit = _math.sqrt(np.finfo(imag_diag.dtype).eps) * builtins.max(scale, 1.0)
    if np.max(np.abs(imag_diag), initial=0.0) > limit:
        raise RuntimeError(
            f"{op}_backward: The eigenvectors in the complex case are specified up to "
            "multiplication by e^{i phi}. The specified loss function depends on this quantity, "
            "so it is ill-defined."
        )


def linalg_eigh(A: Array, UPLO: str = "L") -> tuple[Array, Array]:  # noqa: N803
    _numpy_only("linalg.eigh", A)
    L, Q = np.linalg.eigh(A, UPLO=UPLO)
    return L, Q


def linalg_svd(A: Array, full_matrices: bool = False) -> tuple[Array, Array, Array]:
    if _is_dask_matrix(A) and not full_matrices:  # Dask's tall-and-skinny SVD
        import dask.array as da

        return da.linalg.svd(A)
    _numpy_only("linalg.svd", A)
    U, S, Vh = svd(A, full_matrices=full_matrices)
    return U, S, Vh


def linalg_matrix_exp(A: Array) -> Array:
    _numpy_only("linalg.matrix_exp", A)
    return scipy.linalg.expm(A)


def linalg_vector_norm(
    self: Array,
    ord: float = 2,
    dim: tuple[int, ...] | None = None,
    keepdim: bool = False,  # noqa: A002
) -> Array:
    with np.errstate(divide="ignore"):  # negative ord with a zero entry: the norm is 0
        return np.linalg.vector_norm(self, ord=ord, axis=dim, keepdims=keepdim)


def spectral_tolerance(values: Array, size: int) -> float:
    """The gap below which two eigen-/singular values count as equal (and a singular value as
    zero): 100 * size * eps * max|value| (computed gaps of exactly repeated values stay below
    size * eps * max|value|)."""
    if values.size == 0:
        return 0.0
    return float(100 * size * np.finfo(values.dtype).eps * np.max(np.abs(values)))


def _spectral_numpy_only(values: Array) -> None:
    if not isinstance(values, np.ndarray | np.generic):
        raise _backend.unsupported(
            "the gradient through singular or eigen vectors",
            values,
            "on Dask only the singular values (linalg.svdvals) and QR are differentiable",
        )


def inverse_gaps(values: Array, tol: float, plus: bool, scale: float) -> Array:
    """G_ij = scale / (v_j - v_i) (``plus``: scale / (v_j + v_i)) where that denominator
    exceeds ``tol`` in size, 0 elsewhere (the diagonal and repeated values: no 1/0)."""
    _spectral_numpy_only(values)
    v_j, v_i = values[..., None, :], values[..., :, None]
    gaps = v_j + v_i if plus else v_j - v_i
    out = np.zeros(gaps.shape, dtype=gaps.dtype)
    return np.divide(scale, gaps, out=out, where=np.abs(gaps) > tol)


def gap_quotient(K: Array, values: Array, tol: float, plus: bool, scale: float) -> Array:
    """K * inverse_gaps(values, tol, plus, scale) in one division (no 1/gap matrix). Sorted
    values without repeats (checked in O(k)) skip the masking: only the diagonal of
    v_j - v_i is zero there, where K (skew) is zero too."""
    _spectral_numpy_only(values)
    v_j, v_i = values[..., None, :], values[..., :, None]
    gaps = v_j + v_i if plus else v_j - v_i
    repeated = values.ndim != 1 or _degenerate(values, tol, "sum" if plus else "diff") is not None
    mask = np.abs(gaps) > tol if repeated else None
    if scale != 1:
        gaps = np.multiply(gaps, 1.0 / scale, out=gaps)  # K * scale / gaps
    if mask is None:
        if not plus:
            np.fill_diagonal(gaps, np.inf)
        return np.divide(K, gaps)
    out = np.zeros(np.broadcast_shapes(K.shape, gaps.shape), dtype=np.result_type(K, gaps))
    return np.divide(K, gaps, out=out, where=mask)


def with_diagonal(M: Array, d: Array) -> Array:
    """M with its diagonal set to d (d broadcasts against M's batch axes). M must be a fresh
    temporary: its diagonal is written in place."""
    i = np.arange(M.shape[-1])
    M[..., i, i] = d
    return M


def _degenerate(values: Array, tol: float, kind: str) -> Array | None:
    """The mask of the entries of a (..., k, k) coefficient matrix that meet a zero gap of the
    sorted ``values``, or None when there are none (decided in O(k) first)."""
    if kind == "all":
        return np.ones((1, 1), dtype=bool)
    if kind == "diff":
        if values.shape[-1] < 2 or not np.any(np.abs(np.diff(values, axis=-1)) <= tol):
            return None
        mask = np.abs(values[..., None, :] - values[..., :, None]) <= tol
        mask &= ~np.eye(values.shape[-1], dtype=bool)
        return mask
    small = np.abs(values) <= tol
    if not np.any(small):
        return None
    if kind == "sum":
        return np.abs(values[..., None, :] + values[..., :, None]) <= tol
    if kind == "zero columns":
        return small[..., None, :]
    return small[..., :, None]  # "zero rows"


def warn_if_basis_dependent(
    values: Array, spectrum: Any, tol: float, cotangents: Any, op: str, what: str, kind: str
) -> None:
    """Warn when the coefficients ``values`` that a spectral gradient divides by a gap of the
    sorted ``spectrum`` are not negligible where that gap is zero: the loss then depends on the
    arbitrary basis of a repeated eigen-/singular space, and its gradient does not exist.
    ``kind``: "diff" (gaps s_j - s_i), "sum" (s_j + s_i), "zero columns"/"zero rows" (s_j),
    "all" (every entry is arbitrary). Negligible: below sqrt(eps) times the largest entry of
    the incoming ``cotangents``."""
    degenerate = _degenerate(spectrum, tol, kind)
    if degenerate is None:
        return
    size = np.max(np.abs(np.where(degenerate, values, 0)), initial=0.0)
    scale = builtins.max(
        [float(np.max(np.abs(c), initial=0.0)) for c in cotangents if c is not None], default=0.0
    )
    finfo = np.finfo(values.dtype)
    if size > _math.sqrt(finfo.eps) * builtins.max(scale, float(finfo.tiny)):
        _warnings.warn(
            f"{op} backward: the loss depends on {what}, which is only defined up to a "
            "rotation within a repeated eigen-/singular space, so its gradient does not exist; "
            "the basis-dependent part was dropped. Make the loss depend on whole eigenspaces "
            "(e.g. projectors Q_k Q_k^T) or on the values alone.",
            BasisDependentGradientWarning,
            stacklevel=2,
        )


def warn_if_split_dependent(
    grad_values: Array, values: Array, tol: float, op: str, what: str
) -> None:
    """Warn when the loss's derivatives with respect to the members of a repeated value (sorted
    ``values``, equal within ``tol``) differ: then the loss is not symmetric in them, so at this
    point it is either not differentiable (weights on sorted eigenvalues) or its gradient
    depends on second derivatives the backward pass does not have (reconstructions such as
    Q f(L) Q^T or U f(S) V^T); losses symmetric in them (norms, traces, projectors onto whole
    eigenspaces) are exact."""
    if values.shape[-1] < 2:
        return
    tied = np.abs(np.diff(values, axis=-1)) <= tol
    if not np.any(tied):
        return
    spread = np.max(np.abs(np.where(tied, np.diff(grad_values, axis=-1), 0)), initial=0.0)
    finfo = np.finfo(values.dtype)
    scale = float(np.max(np.abs(grad_values), initial=0.0))
    if spread > _math.sqrt(finfo.eps) * builtins.max(scale, float(finfo.tiny)):
        _warnings.warn(
            f"{op} backward: the loss weighs the members of a repeated {what} differently (its "
            f"derivatives with respect to them differ), so at this point it is not "
            "differentiable, or its gradient needs second-order information the backward pass "
            "does not have (e.g. a reconstruction Q f(L) Q^T or U f(S) V^T: write such losses "
            "in the matrix itself); the coupling of the repeated values was dropped.",
            DegenerateGradientWarning,
            stacklevel=2,
        )


def _pinv_cutoff(s: Array, shape: tuple[int, ...], atol: Any, rtol: Any) -> Array:
    """max(atol, rtol * s_max) per matrix; rtol defaults to eps * max(m, n) when atol is
    None or 0 (PyTorch's rule)."""
    if rtol is None:
        rtol = np.finfo(s.dtype).eps * builtins.max(shape[-2:]) if not atol else 0.0
    smax = np.max(s, axis=-1, keepdims=True, initial=0.0)
    return np.maximum(0.0 if atol is None else atol, rtol * smax)


def linalg_pinv(A: Array, atol: Any = None, rtol: Any = None, hermitian: bool = False) -> Array:
    """V diag(1/s) U^T over the singular values above the cutoff (eigh for ``hermitian``)."""
    _numpy_only("linalg.pinv", A)
    if hermitian:
        w, Q = np.linalg.eigh(A)
        keep = np.abs(w) > _pinv_cutoff(np.abs(w), A.shape, atol, rtol)
        inv_w = np.divide(1.0, w, out=np.zeros_like(w), where=keep)
        return (Q * inv_w[..., None, :]) @ np.conj(np.swapaxes(Q, -1, -2))
    U, s, Vh = svd(A, full_matrices=False)
    keep = s > _pinv_cutoff(s, A.shape, atol, rtol)
    inv_s = np.divide(1.0, s, out=np.zeros_like(s), where=keep)
    return np.conj(np.swapaxes(Vh, -1, -2)) @ (
        inv_s[..., :, None] * np.conj(np.swapaxes(U, -1, -2))
    )


# -- LU, LDL and Householder QR factorizations (PyTorch's linalg.lu*, ldl*, geqrf) -----------
# Each matrix is handed to LAPACK as is (getrf of A, not of A^T as above), so that the packed
# factors, the pivots and `info` are LAPACK's and PyTorch's: pivots 1-based, int32.


def _float_result(*arrays: Array) -> Any:
    return np.result_type(*(a.dtype for a in arrays), np.float32)


def lu_factor(A: Array) -> tuple[Array, Array, Array]:
    """(LU, pivots, info) of each m x n matrix of A (getrf, partial pivoting): L (unit
    diagonal, not stored) and U packed in one m x n matrix; row i was interchanged with row
    pivots[i] - 1, i < k = min(m, n); info = i > 0 where U[i-1, i-1] is exactly zero."""
    _numpy_only("linalg.lu_factor", A)
    m, n = A.shape[-2:]
    batch = A.shape[:-2]
    k = builtins.min(m, n)
    dtype = _float_result(A)
    LU = np.array(A, dtype=dtype, copy=True)
    piv = np.zeros(batch + (k,), dtype=np.int32)
    info = np.zeros(batch, dtype=np.int32)
    if k == 0 or 0 in batch:  # nothing to factor (LAPACK would print that lda = 0 is illegal)
        return LU, piv, info
    getrf = _lapack_fn("getrf", dtype)
    for idx in _batch_indices(batch):
        LU[idx], p, info[idx] = getrf(A[idx])
        piv[idx] = p + 1  # SciPy's getrf counts from 0
    return LU, piv, info


def lu_permutation(pivots: Array, m: int, op: str = "lu_unpack") -> Array:
    """perm with P^T A = A[..., perm, :] from LAPACK's 1-based ``pivots`` (the interchanges
    i <-> pivots[i] - 1 applied in order to the rows 0..m-1)."""
    pivots = np.asarray(pivots)
    if pivots.dtype.kind not in "iu":
        raise TypeError(f"{op}: pivots must be an integer tensor, got dtype {pivots.dtype}")
    k = pivots.shape[-1]
    if k > m or (pivots.size and (pivots.min() < 1 or pivots.max() > m)):
        raise ValueError(
            f"{op}: pivots of shape {tuple(pivots.shape)} do not fit matrices with {m} rows "
            "(expected at most that many pivots, each between 1 and the number of rows)"
        )
    batch = pivots.shape[:-1]
    perm = np.array(np.broadcast_to(np.arange(m), batch + (m,)))
    if k == 0 or perm.size == 0:
        return perm
    flat, swaps = perm.reshape(-1, m), pivots.reshape(-1, k).astype(np.intp) - 1
    rows = np.arange(flat.shape[0])
    for i in range(k):
        j = swaps[:, i]
        row_i = flat[rows, i]
        flat[rows, i] = flat[rows, j]
        flat[rows, j] = row_i
    return flat.reshape(batch + (m,))


def permutation_matrix(perm: Array, dtype: Any) -> Array:
    """P with P[..., perm[i], i] = 1: P^T A = A[..., perm, :]."""
    m = perm.shape[-1]
    return (np.arange(m)[:, None] == perm[..., None, :]).astype(dtype)


def linalg_lu(A: Array) -> tuple[Array, Array, Array, Array, Array]:
    """(P, L, U, pivots, info): A = P L U with L m x k unit lower triangular, U k x n upper
    triangular (k = min(m, n)), P a permutation; the pivots and info of getrf."""
    LU, piv, info = lu_factor(A)
    m, n = A.shape[-2:]
    k = builtins.min(m, n)
    L = np.tril(LU[..., :, :k], -1)
    diag = np.arange(k)
    L[..., diag, diag] = 1
    U = np.triu(LU[..., :k, :])
    return permutation_matrix(lu_permutation(piv, m), LU.dtype), L, U, piv, info


def solve_unchecked(A: Array, B: Array) -> tuple[Array, Array]:
    """(A^-1 B, info) through getrf and getrs without the singularity check (PyTorch's
    solve_ex and inv_ex): a zero pivot (info > 0) gives infinities and NaN, as LAPACK's."""
    _numpy_only("linalg.solve_ex", A, B)
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    LU, piv, info = lu_factor(np.broadcast_to(A, batch + A.shape[-2:]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _getrs(LU, piv - 1, B, 0), info


def cholesky_info(A: Array) -> tuple[Array, Array]:
    """(L, info) of potrf (lower) for each matrix, without raising: info = i > 0 where the
    leading minor of order i is not positive definite, L then LAPACK's partial factor (the
    Schur complement left in the trailing block, as PyTorch's cholesky_ex returns it)."""
    _numpy_only("linalg.cholesky_ex", A)
    n = A.shape[-1]
    batch = A.shape[:-2]
    dtype = _float_result(A)
    info = np.zeros(batch, dtype=np.int32)
    if n == 0 or 0 in batch:
        return np.zeros(A.shape, dtype=dtype), info
    L = np.empty(A.shape, dtype=dtype)
    potrf = _lapack_fn("potrf", dtype)
    for idx in _batch_indices(batch):
        L[idx], info[idx] = potrf(A[idx], lower=1, clean=1)
    return L, info


def geqrf(A: Array) -> tuple[Array, Array]:
    """(a, tau) of LAPACK's geqrf for each matrix: R on and above the diagonal, the
    Householder vectors below it (their leading 1 not stored), H_i = I - tau_i v_i v_i^H."""
    _numpy_only("geqrf", A)
    m, n = A.shape[-2:]
    batch = A.shape[:-2]
    dtype = _float_result(A)
    a = np.array(A, dtype=dtype, copy=True)
    tau = np.zeros(batch + (builtins.min(m, n),), dtype=dtype)
    if 0 in A.shape:
        return a, tau
    fn = _lapack_fn("geqrf", dtype)
    for idx in _batch_indices(batch):
        a[idx], tau[idx], _, _ = fn(A[idx])
    return a, tau


def _ldl_routine(kind: str, dtype: Any, hermitian: bool) -> Any:
    # hetrf/hetrs for complex Hermitian matrices; sytrf/sytrs (symmetric, no conjugation) else
    herm = hermitian and np.dtype(dtype).kind == "c"
    return _lapack_fn(("he" if herm else "sy") + kind, dtype)


def ldl_factor(A: Array, hermitian: bool = False) -> tuple[Array, Array, Array]:
    """(LD, pivots, info) of LAPACK's sytrf/hetrf (Bunch-Kaufman, the lower triangle): L and
    the block diagonal D packed (the upper triangle zero); pivots 1-based, negative for the
    2 x 2 blocks of D; info = i > 0 where D[i-1, i-1] is exactly zero."""
    _numpy_only("linalg.ldl_factor", A)
    n = A.shape[-1]
    batch = A.shape[:-2]
    dtype = _float_result(A)
    LD = np.zeros(A.shape, dtype=dtype)
    piv = np.zeros(batch + (n,), dtype=np.int32)
    info = np.zeros(batch, dtype=np.int32)
    if n == 0 or 0 in batch:
        return LD, piv, info
    fn = _ldl_routine("trf", dtype, hermitian)
    for idx in _batch_indices(batch):
        ld, piv[idx], info[idx] = fn(A[idx], lower=1)
        LD[idx] = np.tril(ld)
    return LD, piv, info


def ldl_solve(LD: Array, pivots: Array, B: Array, hermitian: bool = False) -> Array:
    """A^-1 B from ldl_factor's (LD, pivots) (sytrs/hetrs); batch axes broadcast."""
    _numpy_only("linalg.ldl_solve", LD, B)
    batch = np.broadcast_shapes(LD.shape[:-2], pivots.shape[:-1], B.shape[:-2])
    dtype = _float_result(LD, B)
    out = np.zeros(batch + B.shape[-2:], dtype=dtype)
    if out.size == 0 or LD.shape[-1] == 0:
        return out
    fn = _ldl_routine("trs", dtype, hermitian)
    LDb = np.broadcast_to(LD.astype(dtype, copy=False), batch + LD.shape[-2:])
    pivb = np.broadcast_to(pivots, batch + pivots.shape[-1:])
    Bb = np.broadcast_to(B.astype(dtype, copy=False), batch + B.shape[-2:])
    for idx in _batch_indices(batch):
        out[idx], _ = fn(LDb[idx], pivb[idx], Bb[idx], lower=1)
    return out
