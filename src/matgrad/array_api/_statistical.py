"""The standard's statistical functions: reductions and cumulative sums and products over
matgrad's ops (integer accumulations in the requested dtype have no gradient)."""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from ..core.tensor_base import Tensor
from ..ops import composite as _ops
from ..ops.registry import PRIMITIVES as _P
from ._creation import _tensor
from ._data_types import astype
from ._dtypes import int64, uint64
from ._helpers import _axes, _dtype, _nograd, _normalize_axis, _wrap

__all__ = [
    "cumulative_prod",
    "cumulative_sum",
    "max",
    "mean",
    "min",
    "prod",
    "std",
    "sum",
    "var",
]


def _cumulative(
    op: str, x: Tensor, axis: int | None, dtype: Any, include_initial: builtins.bool
) -> Tensor:
    x = _tensor(x)
    if axis is None:
        if x.ndim > 1:
            raise ValueError(f"{op}: axis is required for a {x.ndim}-d input")
        axis = 0
    if x.ndim == 0:
        x = _ops.reshape(x, (1,))
    ax = _normalize_axis(axis, x.ndim, op)
    dt = _dtype(dtype)
    if dt is None and x.dtype.kind in "biu":
        dt = np.dtype(uint64 if x.dtype.kind == "u" else int64)  # the default integer
    if dt is not None and dt.kind in "biu":
        # integers accumulate in ``dtype`` itself (NumPy would widen them): no gradient
        np_fn = np.cumsum if op == "cumulative_sum" else np.cumprod
        out = _wrap(np_fn(x._data, axis=ax, dtype=dt))
    else:
        if dt is not None:
            x = astype(x, dt, copy=False)
        fn = _P.cumsum if op == "cumulative_sum" else _P.cumprod
        out = fn(x, ax) if x.shape[ax] else _P.clone(x)
    if include_initial:
        shape = list(out.shape)
        shape[ax] = 1
        first = _wrap(np.full(shape, 0 if op == "cumulative_sum" else 1, dtype=out.dtype))
        out = _ops.cat([first, out], ax)
    return out


def cumulative_sum(
    x: Tensor,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: builtins.bool = False,
) -> Tensor:
    """Cumulative sums along ``axis``; the gradient is the reversed cumulative sum."""
    return _cumulative("cumulative_sum", x, axis, dtype, include_initial)


def cumulative_prod(
    x: Tensor,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: builtins.bool = False,
) -> Tensor:
    """Cumulative products along ``axis``; gradients exact with zeros."""
    return _cumulative("cumulative_prod", x, axis, dtype, include_initial)


def max(x: Tensor, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Tensor:  # noqa: A001
    return _P.amax(_tensor(x), _axes(axis), keepdims)


def mean(x: Tensor, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Tensor:
    return _ops.mean(_tensor(x), _axes(axis), keepdims)


def min(x: Tensor, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Tensor:  # noqa: A001
    return _P.amin(_tensor(x), _axes(axis), keepdims)


def _reduced_to_last(x: Tensor, axes: tuple[int, ...]) -> Tensor:
    """``x`` with ``axes`` moved last and merged into one."""
    nd = x.ndim
    norm = sorted({_normalize_axis(a, nd, "prod") for a in axes})
    rest = [a for a in range(nd) if a not in norm]
    moved = _ops.permute(x, tuple(rest + norm)) if rest + norm != list(range(nd)) else x
    return _ops.reshape(moved, tuple(x.shape[a] for a in rest) + (-1,))


def prod(
    x: Tensor,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    keepdims: builtins.bool = False,
) -> Tensor:
    x = _tensor(x)
    dt = _dtype(dtype)
    if dt is not None and (dt.kind in "biu" or x.dtype.kind in "biu"):
        # integer products accumulate in ``dtype`` itself (NumPy would widen them)
        return _nograd(np.prod, x, axis=_axes(axis), keepdims=keepdims, dtype=dt)
    if dt is not None:
        x = astype(x, dt, copy=False)
    axis = _axes(axis)
    if axis is None:
        axis = tuple(range(x.ndim))
    if isinstance(axis, int):
        axis = (axis,)
    if not axis:  # no axis: each element is its own product (in the product's dtype)
        out_dtype = np.prod(np.ones(1, dtype=x.dtype)).dtype
        return astype(x, out_dtype)
    if len(axis) == 1:
        return _ops.prod(x, _normalize_axis(axis[0], x.ndim, "prod"), keepdims)
    out = _ops.prod(_reduced_to_last(x, axis), -1, False)
    if keepdims:
        out = _ops.reshape(
            out, tuple(1 if a in {a % x.ndim for a in axis} else s for a, s in enumerate(x.shape))
        )
    return out


def std(
    x: Tensor,
    /,
    *,
    axis: Any = None,
    correction: int | float = 0.0,
    keepdims: builtins.bool = False,
) -> Tensor:
    return _P.sqrt(var(x, axis=axis, correction=correction, keepdims=keepdims))


def sum(  # noqa: A001
    x: Tensor,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    keepdims: builtins.bool = False,
) -> Tensor:
    x = _tensor(x)
    dt = _dtype(dtype)
    if dt is not None and (dt.kind in "biu" or x.dtype.kind in "biu"):
        # integer sums accumulate in ``dtype`` itself (NumPy would widen them): no gradient
        return _nograd(np.sum, x, axis=_axes(axis), keepdims=keepdims, dtype=dt)
    return _ops.sum(x, _axes(axis), keepdims, dt)


def var(
    x: Tensor,
    /,
    *,
    axis: Any = None,
    correction: int | float = 0.0,
    keepdims: builtins.bool = False,
) -> Tensor:
    """sum((x - mean)^2) / (N - correction) over ``axis``."""
    x = _tensor(x)
    axis = _axes(axis)
    centered = x - _ops.mean(x, axis, keepdim=True)
    dims = _ops._norm_dims("var", axis, x.ndim)
    n = math.prod(x.shape[d] for d in dims)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _ops.sum(centered * centered, axis, keepdims) / (n - correction)
