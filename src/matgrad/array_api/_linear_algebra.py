"""The standard's linear algebra functions (also in the ``linalg`` extension: :mod:`.linalg`)."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..core.tensor_base import Tensor
from ..ops import composite as _ops
from ..ops import linalg as _la
from ..ops.registry import PRIMITIVES as _P
from ._creation import _tensor
from ._elementwise import conj
from ._helpers import _nograd

__all__ = ["matmul", "matrix_transpose", "tensordot", "vecdot"]


def matmul(x1: Tensor, x2: Tensor, /) -> Tensor:
    a, b = _tensor(x1), _tensor(x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: both arguments need at least one dimension")
    try:
        return _ops.matmul(a, b)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None


def matrix_transpose(x: Tensor, /) -> Tensor:
    x = _tensor(x)
    if x.ndim < 2:
        raise ValueError(f"matrix_transpose: expected at least 2 dimensions, got {x.ndim}")
    return _ops.transpose(x, -2, -1)


def tensordot(x1: Tensor, x2: Tensor, /, *, axes: Any = 2) -> Tensor:
    """Contract ``axes`` (an int n: the last n axes of x1 with the first n of x2; or two
    sequences of axes) as one matmul."""
    a, b = _tensor(x1), _tensor(x2)
    if isinstance(axes, int | np.integer):
        if axes < 0:
            raise ValueError(f"tensordot: axes must be non-negative, got {axes}")
        dims: Any = int(axes)
    else:
        dims = tuple(tuple(int(d) for d in ax) for ax in axes)
    try:
        return _la.tensordot(a, b, dims)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None


def vecdot(x1: Tensor, x2: Tensor, /, *, axis: int = -1) -> Tensor:
    """sum(conj(x1) * x2) over ``axis`` (counted on the broadcast shape)."""
    a, b = _tensor(x1), _tensor(x2)
    nd = builtins.min(a.ndim, b.ndim)
    if nd == 0 or not -nd <= axis < builtins.max(a.ndim, b.ndim):
        raise ValueError(f"vecdot: axis {axis} is out of range")
    if axis >= 0:
        axis -= builtins.max(a.ndim, b.ndim)
    if a.shape[axis] != b.shape[axis]:
        raise ValueError(
            f"vecdot: the contracted axes differ in size ({a.shape[axis]} != {b.shape[axis]})"
        )
    if a.dtype.kind == "c":
        a = conj(a)
    products = _P.mul(a, b)
    if products.dtype.kind in "biu":  # in the inputs' dtype (NumPy's sum would widen it)
        return _nograd(np.sum, products, axis=axis, dtype=products.dtype)
    return _ops.sum(products, axis)
