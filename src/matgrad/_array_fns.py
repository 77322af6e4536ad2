"""The array namespace: every primitive op's forward computation on raw arrays.

This module is the one place that calls the array library. Its functions have the same names
and signatures as matgrad's tensor functions (``matgrad._ops``), so a formula from
``derivatives.yaml`` runs on either: on raw arrays when no graph of the backward pass is wanted
(fast), on tensors when it is (``create_graph=True``). NumPy is the default; calls go through
NumPy's API, which dispatches to other array libraries that implement ``__array_function__``.

Conventions: ``dim`` arguments arrive normalised to negative integers (counted from the last
axis), so the same formulas work when cotangents carry extra leading batch dimensions.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
import scipy.special

Array = Any


# -- elementwise -------------------------------------------------------------------------------
# NumPy's ufuncs themselves where the op is one (saves a Python call on every op)
add = np.add


sub = np.subtract


mul = np.multiply


div = np.true_divide


neg = np.negative


pow = np.power  # noqa: A001 - PyTorch's name


exp = np.exp


log = np.log


log1p = np.log1p


expm1 = np.expm1


sqrt = np.sqrt


abs = np.abs


sign = np.sign


sin = np.sin


cos = np.cos


tan = np.tan


tanh = np.tanh


def sigmoid(self: Array) -> Array:
    return scipy.special.expit(self)


def relu(self: Array) -> Array:
    return np.maximum(self, 0)


maximum = np.maximum


minimum = np.minimum


def where(condition: Array, self: Array, other: Array) -> Array:
    return np.where(condition, self, other)


def clamp(self: Array, min: Any = None, max: Any = None) -> Array:  # noqa: A002
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return np.clip(self, min, max)


# -- comparisons and other functions without gradient -----------------------------------------
gt = np.greater


ge = np.greater_equal


lt = np.less


le = np.less_equal


eq = np.equal


ne = np.not_equal


def zeros_like(self: Array) -> Array:
    return np.zeros_like(self)


def ones_like(self: Array) -> Array:
    return np.ones_like(self)


def argmax(self: Array, dim: int | None = None, keepdim: bool = False) -> Array:
    return np.argmax(self, axis=dim, keepdims=keepdim)


def argmin(self: Array, dim: int | None = None, keepdim: bool = False) -> Array:
    return np.argmin(self, axis=dim, keepdims=keepdim)


# -- reductions --------------------------------------------------------------------------------
def sum(self: Array, dim: tuple[int, ...] | None = None, keepdim: bool = False) -> Array:  # noqa: A001
    return np.sum(self, axis=dim, keepdims=keepdim)


def mean(self: Array, dim: tuple[int, ...] | None = None, keepdim: bool = False) -> Array:
    return np.mean(self, axis=dim, keepdims=keepdim)


def prod(self: Array, dim: int | None = None, keepdim: bool = False) -> Array:
    return np.prod(self, axis=dim, keepdims=keepdim)


def amax(self: Array, dim: tuple[int, ...] | None = None, keepdim: bool = False) -> Array:
    return np.amax(self, axis=dim, keepdims=keepdim)


def amin(self: Array, dim: tuple[int, ...] | None = None, keepdim: bool = False) -> Array:
    return np.amin(self, axis=dim, keepdims=keepdim)


# -- shape ops ---------------------------------------------------------------------------------
def reshape(self: Array, shape: tuple[int, ...]) -> Array:
    return np.reshape(self, shape)


def permute(self: Array, dims: tuple[int, ...]) -> Array:
    # dims are negative; keep any extra leading (batch) axes in front, in order
    lead = self.ndim - len(dims)
    return np.transpose(self, tuple(range(lead)) + tuple(d + self.ndim for d in dims))


def transpose(self: Array, dim0: int, dim1: int) -> Array:
    return np.swapaxes(self, dim0, dim1)


def expand(self: Array, shape: tuple[int, ...]) -> Array:
    lead = self.ndim - len(shape)  # extra leading batch axes of self, kept as they are
    if lead > 0:
        shape = self.shape[:lead] + tuple(shape)
    return np.broadcast_to(self, shape)


def squeeze(self: Array, dim: tuple[int, ...]) -> Array:
    return np.squeeze(self, axis=dim)


def unsqueeze(self: Array, dim: int) -> Array:
    return np.expand_dims(self, dim)


def getitem(self: Array, index: Any) -> Array:
    return self[index]


def index_put(self: Array, values: Array, index: Any) -> Array:
    out = np.array(self, copy=True)
    out[index] = values
    return out


def zeros_scatter(self: Array, shape: tuple[int, ...], index: Any) -> Array:
    """zeros(shape) with ``self`` added at ``index`` (repeated indices accumulate)."""
    lead = self.ndim - _index_result_ndim(shape, index)
    out = np.zeros(self.shape[:lead] + tuple(shape), dtype=self.dtype)
    full_index = (slice(None),) * lead + _as_tuple(index)
    np.add.at(out, full_index, self)
    return out


def cat(tensors: list[Array], dim: int = 0) -> Array:
    return np.concatenate(tensors, axis=dim)


def stack(tensors: list[Array], dim: int = 0) -> Array:
    return np.stack(tensors, axis=dim)


def diagonal(self: Array, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Array:
    return np.diagonal(self, offset=offset, axis1=dim1, axis2=dim2)


def diag_embed(self: Array, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Array:
    n = self.shape[-1] + abs(offset)
    out_ndim = self.ndim + 1
    d1, d2 = dim1 % out_ndim, dim2 % out_ndim
    out = np.zeros(self.shape[:-1] + (n, n), dtype=self.dtype)
    i = np.arange(self.shape[-1])
    rows, cols = (i, i + offset) if offset >= 0 else (i - offset, i)
    out[..., rows, cols] = self
    # the new pair of axes sits last; move it to (dim1, dim2)
    return np.moveaxis(out, (-2, -1), (d1, d2))


def tril(self: Array, diagonal: int = 0) -> Array:
    return np.tril(self, diagonal)


def triu(self: Array, diagonal: int = 0) -> Array:
    return np.triu(self, diagonal)


def flip(self: Array, dims: tuple[int, ...]) -> Array:
    return np.flip(self, axis=dims)


def roll(self: Array, shifts: tuple[int, ...], dims: tuple[int, ...] | None) -> Array:
    return np.roll(self, shifts, axis=dims)


def pad(self: Array, pad: tuple[int, ...], value: float = 0.0) -> Array:
    """Constant padding; ``pad`` lists (before, after) pairs from the last axis backwards,
    as in ``torch.nn.functional.pad``. Negative amounts crop."""
    widths = [(0, 0)] * self.ndim
    slices = [slice(None)] * self.ndim
    for k in range(len(pad) // 2):
        before, after = pad[2 * k], pad[2 * k + 1]
        axis = self.ndim - 1 - k
        widths[axis] = (builtins.max(before, 0), builtins.max(after, 0))
        n = self.shape[axis]
        slices[axis] = slice(builtins.max(-before, 0), n - builtins.max(-after, 0))
    out = np.pad(self[tuple(slices)], widths, mode="constant", constant_values=value)
    return out


# -- products ----------------------------------------------------------------------------------
def matmul(self: Array, other: Array) -> Array:
    return np.matmul(self, other)


mm = matmul
bmm = matmul
mv = matmul


def dot(self: Array, other: Array) -> Array:
    return np.matmul(self, other)


def outer(self: Array, other: Array) -> Array:
    return np.multiply(self[..., :, None], other[..., None, :])


# -- helpers -----------------------------------------------------------------------------------
def _as_tuple(index: Any) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def _index_result_ndim(shape: tuple[int, ...], index: Any) -> int:
    """ndim of ``zeros(shape)[index]``, computed on a zero-stride view (no allocation)."""
    return np.broadcast_to(np.empty((), dtype=np.bool_), shape)[index].ndim


# -- dtype and constants -----------------------------------------------------------------------
def to_dtype(self: Array, dtype: Any) -> Array:
    return self.astype(dtype, copy=False)


def full_like_shape(value: Any, shape: tuple[int, ...], dtype: Any) -> Array:
    return np.full(shape, value, dtype=dtype)


def eye_like(self: Array, n: int) -> Array:
    return np.eye(n, dtype=self.dtype)


def clone(self: Array) -> Array:
    return np.array(self, copy=True)
