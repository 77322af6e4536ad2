"""The standard's utility functions."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..core.tensor_base import Tensor
from ._creation import _tensor
from ._dtypes import bool
from ._elementwise import not_equal
from ._helpers import _axes, _nograd, _normalize_axis
from ._manipulation import concat

__all__ = ["all", "any", "diff"]


def all(x: Tensor, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Tensor:  # noqa: A001
    return _nograd(np.all, x, axis=_axes(axis), keepdims=keepdims)


def any(x: Tensor, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Tensor:  # noqa: A001
    return _nograd(np.any, x, axis=_axes(axis), keepdims=keepdims)


def diff(
    x: Tensor,
    /,
    *,
    axis: int = -1,
    n: int = 1,
    prepend: Tensor | None = None,
    append: Tensor | None = None,
) -> Tensor:
    """The n-th forward difference along ``axis`` (differentiable: slices and subtractions);
    booleans give ``!=`` of neighbours."""
    x = _tensor(x)
    ax = _normalize_axis(axis, x.ndim, "diff")
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        x = concat([_tensor(p) for p in parts], axis=ax)
    lead = (slice(None),) * ax
    for _ in range(n):
        upper, lower = x[lead + (slice(1, None),)], x[lead + (slice(None, -1),)]
        x = not_equal(upper, lower) if x.dtype == bool else upper - lower
    return x
