"""The standard's searching functions (indices and counts: no gradient), and ``where``."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..core.tensor_base import Tensor
from ._creation import _tensor
from ._dtypes import int64
from ._helpers import _axes, _from_table, _nograd, _raw, _wrap

# `where(condition, x1, x2, /)` is the row `where`'s array_api variant in derivatives.yaml (the
# row's entry point, differentiable in x1 and x2), as the elementwise functions are
_TABLE: dict[str, Any] = _from_table("searching")
globals().update(_TABLE)


def argmax(x: Tensor, /, *, axis: int | None = None, keepdims: builtins.bool = False) -> Tensor:
    return _nograd(np.argmax, x, axis=axis, keepdims=keepdims)


def argmin(x: Tensor, /, *, axis: int | None = None, keepdims: builtins.bool = False) -> Tensor:
    return _nograd(np.argmin, x, axis=axis, keepdims=keepdims)


def count_nonzero(x: Tensor, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Tensor:
    out = np.count_nonzero(_raw(x), axis=_axes(axis), keepdims=keepdims)
    return _wrap(np.asarray(out, dtype=int64))


def nonzero(x: Tensor, /) -> tuple[Tensor, ...]:
    x = _tensor(x)
    if x.ndim == 0:
        raise ValueError("nonzero: a 0-d input is not allowed")
    return tuple(_wrap(i.astype(int64, copy=False)) for i in np.nonzero(x._data))


def searchsorted(
    x1: Tensor,
    x2: Any,
    /,
    *,
    side: str = "left",
    sorter: Tensor | None = None,
) -> Tensor:
    out = np.searchsorted(_raw(x1), _raw(x2), side=side, sorter=_raw(sorter))
    return _wrap(np.asarray(out, dtype=int64))


__all__ = sorted(["argmax", "argmin", "count_nonzero", "nonzero", "searchsorted", *_TABLE])
