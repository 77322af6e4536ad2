"""The Array API's ``linalg`` extension over matgrad tensors."""

from __future__ import annotations

import builtins
import functools
from collections import namedtuple
from typing import Any

import numpy as np

from ..core.grad_mode import state as _grad_state
from ..core.tensor_base import Tensor
from ..ops import composite as _ops
from ..ops import linalg as _la
from ..ops.registry import OPS
from ..ops.registry import PRIMITIVES as _P
from ._creation import _tensor
from ._data_types import astype
from ._dtypes import _default_float, int64
from ._helpers import _axes, _dtype, _from_table, _raw, _wrap
from ._linear_algebra import matmul, matrix_transpose, tensordot, vecdot
from ._manipulation import broadcast_arrays

_NS = "matgrad.array_api"  # where the result types are public
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"], module=_NS)
QRResult = namedtuple("QRResult", ["Q", "R"], module=_NS)
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"], module=_NS)
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"], module=_NS)


def _matrix(op: str, x: Any) -> Tensor:
    x = _tensor(x)
    if x.ndim < 2:
        raise ValueError(f"linalg.{op}: expected at least 2 dimensions, got {x.ndim}")
    if x.dtype.kind not in "fc":
        x = astype(x, _default_float())
    return x


def _by_numpy(op: str, *xs: Tensor) -> builtins.bool:
    """Whether ``op`` runs in ``numpy.linalg`` without a graph: for complex inputs
    (matgrad.linalg's rules are real; refused if a gradient is wanted) and empty matrices."""
    if builtins.any(x.dtype.kind == "c" for x in xs):
        if _grad_state.enabled and builtins.any(x.requires_grad for x in xs):
            raise NotImplementedError(
                f"linalg.{op}: gradients of complex linear algebra are not implemented"
            )
        return True
    return builtins.any(x.size == 0 for x in xs)


def _numpy_result(out: Any) -> Any:
    if isinstance(out, tuple):
        return tuple(_wrap(np.asarray(o)) for o in out)
    return _wrap(np.asarray(out))


def cross(x1: Tensor, x2: Tensor, /, *, axis: int = -1) -> Tensor:
    """The cross product of 3-vectors along ``axis`` of the broadcast inputs:
    (a x b)_i = a_{i+1} b_{i+2} - a_{i+2} b_{i+1} (indices mod 3), with rolls."""
    a, b = broadcast_arrays(_tensor(x1), _tensor(x2))
    if a.ndim == 0 or not -a.ndim <= axis < a.ndim:
        raise ValueError(f"linalg.cross: axis {axis} is out of range")
    if a.shape[axis] != 3:
        raise ValueError(f"linalg.cross: axis {axis} must have size 3, got {a.shape[axis]}")
    d = axis - a.ndim if axis >= 0 else axis
    return _ops.roll(a, -1, d) * _ops.roll(b, -2, d) - _ops.roll(a, -2, d) * _ops.roll(b, -1, d)


def diagonal(x: Tensor, /, *, offset: int = 0) -> Tensor:
    return _ops.diagonal(_tensor(x), offset, -2, -1)


def eigh(x: Tensor, /) -> EighResult:
    x = _matrix("eigh", x)
    if _by_numpy("eigh", x):
        return EighResult(*_numpy_result(tuple(np.linalg.eigh(x._data))))
    values, vectors = _la.eigh(x)
    return EighResult(values, vectors)


def eigvalsh(x: Tensor, /) -> Tensor:
    x = _matrix("eigvalsh", x)
    if _by_numpy("eigvalsh", x):
        return _numpy_result(np.linalg.eigvalsh(x._data))
    return _la.eigvalsh(x)


def matrix_norm(
    x: Tensor,
    /,
    *,
    keepdims: builtins.bool = False,
    ord: Any = "fro",  # noqa: A002
) -> Tensor:
    x = _matrix("matrix_norm", x)
    if _by_numpy("matrix_norm", x):
        return _numpy_result(np.linalg.matrix_norm(x._data, keepdims=keepdims, ord=ord))
    return _la.matrix_norm(x, ord, (-2, -1), keepdims)


def matrix_power(x: Tensor, n: int, /) -> Tensor:
    x = _matrix("matrix_power", x)
    if _by_numpy("matrix_power", x):
        return _numpy_result(np.linalg.matrix_power(x._data, n))
    return _la.matrix_power(x, n)


def matrix_rank(x: Tensor, /, *, rtol: Any = None) -> Tensor:
    """The number of singular values above rtol * (the largest); rtol defaults to
    max(M, N) * eps."""
    x = _matrix("matrix_rank", x)
    s = np.linalg.svd(x._data, compute_uv=False)
    if rtol is None:
        rtol = builtins.max(x.shape[-2:]) * np.finfo(x.dtype).eps
    tol = np.asarray(_raw(rtol))[..., None] * np.max(s, axis=-1, keepdims=True, initial=0.0)
    return _wrap(np.asarray(np.count_nonzero(s > tol, axis=-1), dtype=int64))


def outer(x1: Tensor, x2: Tensor, /) -> Tensor:
    a, b = _tensor(x1), _tensor(x2)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("linalg.outer: expected two 1-D tensors")
    return _P.outer(a, b)


def pinv(x: Tensor, /, *, rtol: Any = None) -> Tensor:
    x = _matrix("pinv", x)
    if _by_numpy("pinv", x):
        return _numpy_result(np.linalg.pinv(x._data, rtol=_raw(rtol)))
    if rtol is not None and np.ndim(_raw(rtol)) > 0:  # one tolerance per matrix
        rtol = np.asarray(_raw(rtol), dtype=x.dtype)[..., None]
        return OPS["linalg_pinv"](x, atol=None, rtol=rtol, hermitian=False)
    return _la.pinv(x, rtol=rtol)


def qr(x: Tensor, /, *, mode: str = "reduced") -> QRResult:
    x = _matrix("qr", x)
    if _by_numpy("qr", x):
        return QRResult(*_numpy_result(tuple(np.linalg.qr(x._data, mode=mode))))
    Q, R = _la.qr(x, mode)
    return QRResult(Q, R)


def solve(x1: Tensor, x2: Tensor, /) -> Tensor:
    """X with x1 X = x2: x2 is a vector when 1-D, else a (batch of) matrix; batch axes
    broadcast."""
    A = _matrix("solve", x1)
    B = _tensor(x2)
    dt = np.result_type(A.dtype, B.dtype, np.float32)
    A, B = astype(A, dt, copy=False), astype(B, dt, copy=False)
    if _by_numpy("solve", A, B):
        return _numpy_result(np.linalg.solve(A._data, B._data))
    if B.ndim == 1:
        return _ops.squeeze(OPS["linalg_solve"](A, _ops.unsqueeze(B, -1))[0], -1)
    return OPS["linalg_solve"](A, B)[0]


def svd(x: Tensor, /, *, full_matrices: builtins.bool = True) -> SVDResult:
    x = _matrix("svd", x)
    if _by_numpy("svd", x):
        return SVDResult(*_numpy_result(tuple(np.linalg.svd(x._data, full_matrices))))
    U, S, Vh = _la.svd(x, full_matrices)
    return SVDResult(U, S, Vh)


def svdvals(x: Tensor, /) -> Tensor:
    x = _matrix("svdvals", x)
    if _by_numpy("svdvals", x):
        return _numpy_result(np.linalg.svdvals(x._data))
    return _la.svdvals(x)


def trace(x: Tensor, /, *, offset: int = 0, dtype: Any = None) -> Tensor:
    x = _tensor(x)
    return _ops.sum(_ops.diagonal(x, offset, -2, -1), -1, False, _dtype(dtype))


def vector_norm(
    x: Tensor,
    /,
    *,
    axis: Any = None,
    keepdims: builtins.bool = False,
    ord: Any = 2,  # noqa: A002
) -> Tensor:
    x = _tensor(x)
    if x.dtype.kind == "c":
        x = _P.abs(x)  # the norm of the moduli, in the real dtype of x's precision
    elif x.dtype.kind != "f":
        x = astype(x, _default_float())
    return _la.vector_norm(x, ord, _axes(axis), keepdims)


def _standard(name: str, fn: Any) -> Any:
    """``fn`` (matgrad.linalg's function for a table row) with the standard's handling: at
    least two dimensions, integer input converted to the default float, complex or empty
    input computed by ``numpy.linalg`` without a graph; keyword arguments pass through."""

    @functools.wraps(fn)
    def standard(x: Tensor, /, **kwargs: Any) -> Any:
        x = _matrix(name, x)
        if not _by_numpy(name, x):
            return fn(x, **kwargs)
        out = getattr(np.linalg, name)(x._data, **kwargs)
        if isinstance(out, tuple):  # numpy's result namedtuple, with matgrad tensors
            return namedtuple(type(out).__name__, out._fields, module=_NS)(*_numpy_result(out))
        return _numpy_result(out)

    standard.__module__ = __name__
    return standard


# rows of derivatives.yaml whose array_api variant is `linalg.<name>`: matgrad.linalg's
# function with the standard's handling
_TABLE: dict[str, Any] = {name: _standard(name, fn) for name, fn in _from_table("linalg").items()}
globals().update(_TABLE)

__all__ = [
    "cross",
    "diagonal",
    "eigh",
    "eigvalsh",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "matrix_transpose",
    "outer",
    "pinv",
    "qr",
    "solve",
    "svd",
    "svdvals",
    "tensordot",
    "trace",
    "vecdot",
    "vector_norm",
    *_TABLE,
]
