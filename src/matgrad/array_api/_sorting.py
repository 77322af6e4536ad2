"""The standard's sorting functions: stable, ascending or descending; ``sort`` is a gather at
the ``argsort`` (differentiable)."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..core.tensor_base import Tensor
from ..ops import composite as _ops
from ..ops.registry import PRIMITIVES as _P
from ._creation import _tensor
from ._dtypes import int64
from ._helpers import _eager_only, _normalize_axis, _wrap

__all__ = ["argsort", "sort"]


def _argsort(data: Any, axis: int, descending: builtins.bool, stable: builtins.bool) -> Any:
    _eager_only("argsort", data)
    kind = "stable" if stable else None
    if not descending:
        return np.argsort(data, axis=axis, kind=kind)
    # descending and stable: sort the reversed array ascending and reverse back
    n = data.shape[axis]
    idx = np.flip(np.argsort(np.flip(data, axis), axis=axis, kind="stable"), axis)
    return n - 1 - idx


def argsort(
    x: Tensor,
    /,
    *,
    axis: int = -1,
    descending: builtins.bool = False,
    stable: builtins.bool = True,
) -> Tensor:
    x = _tensor(x)
    ax = _normalize_axis(axis, builtins.max(x.ndim, 1), "argsort")
    if x.ndim == 0:
        return _wrap(np.zeros((), dtype=int64))
    return _wrap(_argsort(x._data, ax, descending, stable).astype(int64, copy=False))


def sort(
    x: Tensor,
    /,
    *,
    axis: int = -1,
    descending: builtins.bool = False,
    stable: builtins.bool = True,
) -> Tensor:
    """Sorted values: a gather of ``x`` at its ``argsort`` (the gradient goes back to each
    value's original position)."""
    x = _tensor(x)
    if x.ndim == 0:
        return _P.clone(x)
    ax = _normalize_axis(axis, x.ndim, "sort")
    return _ops.take_along_axis(x, _argsort(x._data, ax, descending, stable), ax)
