"""The standard's indexing functions: gathers, whose gradients scatter-add."""

from __future__ import annotations

import numpy as np

from ..core.tensor_base import Tensor
from ..ops import composite as _ops
from ._creation import _tensor
from ._helpers import _normalize_axis, _raw

__all__ = ["take", "take_along_axis"]


def take(x: Tensor, indices: Tensor, /, *, axis: int | None = None) -> Tensor:
    """Elements of ``x`` at the 1-D integer ``indices`` along ``axis`` (optional for a 1-D
    ``x``); a gather, whose gradient scatter-adds."""
    x = _tensor(x)
    if axis is None:
        if x.ndim != 1:
            raise ValueError(f"take: axis is required for a {x.ndim}-d input")
        axis = 0
    ax = _normalize_axis(axis, x.ndim, "take")
    idx = np.asarray(_raw(indices))
    if idx.ndim != 1:
        raise ValueError(f"take: indices must be 1-D, got shape {idx.shape}")
    view = [1] * x.ndim
    view[ax] = idx.shape[0]
    return _ops.take_along_axis(x, idx.reshape(view), ax)


def take_along_axis(x: Tensor, indices: Tensor, /, *, axis: int = -1) -> Tensor:
    """``x`` gathered at ``indices`` along ``axis`` (``indices`` has x's number of axes);
    differentiable (the gradient scatter-adds)."""
    x = _tensor(x)
    idx = _raw(indices)
    if np.ndim(idx) != x.ndim:
        raise ValueError(
            f"take_along_axis: indices must have {x.ndim} dimensions, got {np.ndim(idx)}"
        )
    return _ops.take_along_axis(x, idx, _normalize_axis(axis, x.ndim, "take_along_axis"))
