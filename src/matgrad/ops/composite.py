"""matgrad's tensor functions written over the rows of ``derivatives.yaml``, and composites.

A row's public function is written here when its PyTorch signature needs more than the row's
entry point (``sum``'s ``dtype=``, ``reshape(*shape)``, shape checks of ``mm``); the other rows
are bound straight to their entry points (:mod:`matgrad.ops.bindings`). Composite functions
(``flatten``, ``split``, ``softmax``, ...) are written in primitives, so the graph shows the
primitives. The tensor twins of the helpers formulas call (``zeros_like``, ``mT``, ...) are
here too: with the rows' entry points they make the tensor formula namespace.
"""

from __future__ import annotations

import builtins
import itertools
import math
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import forward as _forward
from ..core.apply import normalize_dim as _norm_dim
from ..core.apply import normalize_dims as _norm_dims
from ..core.grad_mode import state as _state
from ..core.tensor_base import Tensor, as_tensor
from ..core.tensor_base import data_of as _values
from . import batching as _batching
from .registry import OPS
from .registry import PRIMITIVES as P

# the composites matgrad exports at top level (table ops come from their rows' variants)
__all__ = [
    "allclose",
    "argmax",
    "argmin",
    "broadcast_to",
    "chunk",
    "diag",
    "eq",
    "equal",
    "flatten",
    "floor_divide",
    "full_like",
    "ge",
    "gt",
    "inner",
    "isfinite",
    "isnan",
    "le",
    "log_softmax",
    "narrow",
    "view",
    "vdot",
    "is_complex",
    "sgn",
    "resolve_conj",
    "select",
    "logical_and",
    "logical_not",
    "logical_or",
    "logsumexp",
    "lt",
    "max",
    "min",
    "ne",
    "ones_like",
    "softmax",
    "split",
    "std",
    "t",
    "trace",
    "unbind",
    "unflatten",
    "var",
    "zeros_like",
]

Dims = int | Sequence[int] | None


# -- argument normalisation --------------------------------------------------------------------


def _shape_arg(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], list | tuple):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else as_tensor(x)


# -- elementwise primitives --------------------------------------------------------------------
def add(input: Any, other: Any, alpha: float = 1) -> Tensor:
    """input + alpha * other, with NumPy broadcasting."""
    if alpha != 1:
        other = P.mul(other, alpha)
    return P.add(input, other)


def sub(input: Any, other: Any, alpha: float = 1) -> Tensor:
    if alpha != 1:
        other = P.mul(other, alpha)
    return P.sub(input, other)


subtract = sub


def rsub(input: Any, other: Any, alpha: float = 1) -> Tensor:
    """other - alpha * input (PyTorch's rsub; the row records ``input`` first)."""
    if alpha != 1:
        input = P.mul(input, alpha)
    return P.rsub(input, other)


def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    """input / other; ``rounding_mode='trunc'`` rounds the quotient toward zero, ``'floor'``
    down (piecewise constant: no gradient is recorded, where PyTorch's is zero)."""
    if rounding_mode is None:
        return P.div(input, other)
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode == "trunc":
        return _nograd(_forward_trunc_divide, input, other)
    raise ValueError(
        f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
        f"{rounding_mode!r}"
    )


def _forward_trunc_divide(a: Any, b: Any) -> Any:
    dtype = np.result_type(a, b)
    if dtype.kind in "iub":  # exact for integers: the floor quotient, corrected toward zero
        q = np.floor_divide(a, b)
        return np.where((q < 0) & (np.remainder(a, b) != 0), q + 1, q).astype(dtype)
    return np.trunc(np.true_divide(a, b))


divide = div
true_divide = div


def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = P.maximum(out, min)
        if max is not None:
            out = P.minimum(out, max)
        return out
    return OPS["clamp"](input, min=min, max=max)


def to_dtype(input: Tensor, dtype: Any) -> Tensor:
    """Convert to ``dtype``; differentiable between floating dtypes."""
    return OPS["to_dtype"](input, dtype=np.dtype(dtype))


def _cast(input: Tensor, dtype: Any) -> Tensor:
    """``input`` converted to ``dtype`` first (PyTorch's ``dtype=`` of reductions and scans:
    the op then runs in that dtype); None keeps it."""
    if dtype is None or np.dtype(dtype) == input.dtype:
        return input
    return to_dtype(input, dtype)


# -- functions without gradient ----------------------------------------------------------------
def _nograd(fn: Any, *args: Any, **kwargs: Any) -> Tensor:
    if _state.vmap:  # inside func.vmap: batched arguments (matgrad.ops.batching)
        return _batching.nograd(fn, args, kwargs)
    raw = [a._data if isinstance(a, Tensor) else a for a in args]
    return Tensor._wrap(fn(*raw, **kwargs))


def gt(input: Any, other: Any) -> Tensor:
    return _nograd(np.greater, input, other)


def ge(input: Any, other: Any) -> Tensor:
    return _nograd(np.greater_equal, input, other)


def lt(input: Any, other: Any) -> Tensor:
    return _nograd(np.less, input, other)


def le(input: Any, other: Any) -> Tensor:
    return _nograd(np.less_equal, input, other)


def eq(input: Any, other: Any) -> Tensor:
    return _nograd(np.equal, input, other)


def ne(input: Any, other: Any) -> Tensor:
    return _nograd(np.not_equal, input, other)


def floor_divide(input: Any, other: Any) -> Tensor:
    """floor(input / other); piecewise constant, so no gradient is recorded."""
    return _nograd(_forward.floor_divide, input, other)


def has_zero(input: Any) -> bool:
    return _forward.has_zero(input._data if isinstance(input, Tensor) else input)


def bitwise_and(input: Any, other: Any) -> Tensor:
    """Bitwise AND of integers; logical AND of booleans (``&``)."""
    return _nograd(np.bitwise_and, input, other)


def bitwise_or(input: Any, other: Any) -> Tensor:
    return _nograd(np.bitwise_or, input, other)


def bitwise_xor(input: Any, other: Any) -> Tensor:
    return _nograd(np.bitwise_xor, input, other)


def bitwise_invert(input: Any) -> Tensor:
    """Bitwise NOT of integers; logical NOT of booleans (``~``)."""
    return _nograd(np.invert, input)


def bitwise_left_shift(input: Any, other: Any) -> Tensor:
    return _nograd(np.left_shift, input, other)


def bitwise_right_shift(input: Any, other: Any) -> Tensor:
    return _nograd(np.right_shift, input, other)


def logical_and(input: Any, other: Any) -> Tensor:
    return _nograd(np.logical_and, input, other)


def logical_or(input: Any, other: Any) -> Tensor:
    return _nograd(np.logical_or, input, other)


def logical_not(input: Any) -> Tensor:
    return _nograd(np.logical_not, input)


def isnan(input: Tensor) -> Tensor:
    return _nograd(np.isnan, input)


def isfinite(input: Tensor) -> Tensor:
    return _nograd(np.isfinite, input)


def allclose(input: Any, other: Any, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    return bool(
        np.allclose(np.asarray(_values(input)), np.asarray(_values(other)), rtol=rtol, atol=atol)
    )


def equal(input: Any, other: Any) -> bool:
    a, b = np.asarray(_values(input)), np.asarray(_values(other))
    return a.shape == b.shape and bool(np.array_equal(a, b))


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _nograd(np.argmax, input, axis=dim, keepdims=keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _nograd(np.argmin, input, axis=dim, keepdims=keepdim)


def _placed(out: Tensor, device: Any) -> Tensor:
    """``out`` on ``device`` (PyTorch's ``device=`` of the ``*_like`` factories): 'cpu' keeps
    the NumPy data; another device moves it (Tensor.to: 'cuda' is CuPy)."""
    if device is None or str(device).partition(":")[0] == "cpu":
        return out
    moved = out.to(device)
    return moved.requires_grad_() if out.requires_grad and not moved.requires_grad else moved


def zeros_like(
    input: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    *,
    device: Any = None,
    layout: Any = None,
    memory_format: Any = None,
) -> Tensor:
    data = np.zeros_like(np.asarray(_values(input)), dtype=dtype)
    out = _batching.new_like(Tensor(data, requires_grad=requires_grad), input)
    return _placed(out, device)


def ones_like(
    input: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    *,
    device: Any = None,
    layout: Any = None,
    memory_format: Any = None,
) -> Tensor:
    data = np.ones_like(np.asarray(_values(input)), dtype=dtype)
    out = _batching.new_like(Tensor(data, requires_grad=requires_grad), input)
    return _placed(out, device)


def full_like(
    input: Any,
    fill_value: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    *,
    device: Any = None,
    layout: Any = None,
    memory_format: Any = None,
) -> Tensor:
    out = Tensor(
        np.full_like(np.asarray(_values(input)), fill_value, dtype=dtype),
        requires_grad=requires_grad,
    )
    return _placed(_batching.new_like(out, input), device)


def full_like_shape(value: Any, shape: tuple[int, ...], dtype: Any) -> Tensor:
    return Tensor._wrap(np.full(shape, value, dtype=dtype))


def eye_like(input: Tensor, n: int) -> Tensor:
    return Tensor._wrap(np.eye(n, dtype=input.dtype))


# -- reductions --------------------------------------------------------------------------------
def _one_dim_0d(op: str, input: Tensor, dim: int) -> Tensor:
    """A 0-d ``input`` as shape (1,) (checking that ``dim`` is 0 or -1), for ops along one
    axis that PyTorch runs on 0-d tensors as on one element (``cumsum``, ``softmax``, ...)."""
    _norm_dim(op, dim, 1)
    return reshape(input, (1,))


def sum(input: Tensor, dim: Dims = None, keepdim: bool = False, dtype: Any = None) -> Tensor:  # noqa: A001
    """Sum over ``dim`` (an int, a sequence, or None for all axes)."""
    input = _tensor(input)
    if dtype is not None:
        input = to_dtype(input, dtype)
    return OPS["sum"](input, dim, bool(keepdim))


def mean(input: Tensor, dim: Dims = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    input = _tensor(input)
    if dtype is not None:
        input = to_dtype(input, dtype)
    if input.dtype.kind not in "fc":
        raise RuntimeError(f"mean: input dtype should be floating point, got {input.dtype}")
    return OPS["mean"](input, dim, bool(keepdim))


def prod(
    input: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """Product over one axis, or over all elements when ``dim`` is None."""
    input = _cast(_tensor(input), dtype)
    if dim is None or input.ndim == 0:
        if dim is not None:
            _norm_dim("prod", dim, 1)
        out = OPS["prod"](reshape(input, (-1,)), dim=-1, keepdim=False)
        return reshape(out, (1,) * input.ndim) if keepdim else out
    return OPS["prod"](input, dim=_norm_dim("prod", dim, input.ndim), keepdim=bool(keepdim))


def _all_dims(dim: Dims) -> Dims:
    # PyTorch's amax/amin: dim=() (its default) reduces every axis
    return None if dim is not None and not isinstance(dim, int | np.integer) and not dim else dim


def amax(input: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """The largest value over ``dim`` (None or ``()``: all axes); ties share the gradient
    evenly (PyTorch's amax)."""
    input = _tensor(input)
    return OPS["amax"](input, _all_dims(dim), bool(keepdim))


def amin(input: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    input = _tensor(input)
    return OPS["amin"](input, _all_dims(dim), bool(keepdim))


MinMax = namedtuple("MinMax", ["values", "indices"])


def _extreme_along(op: str, input: Any, dim: int, keepdim: bool, arg: Any) -> MinMax:
    """(values, indices) of the max/min along ``dim``: the values are gathered at the index
    ``arg`` returns (the first extremum, as PyTorch's), so the gradient goes to that entry
    only (amax/amin split it among ties)."""
    input = _tensor(input)
    if input.ndim == 0:
        flat = _one_dim_0d(op, input, dim)
        index = arg(flat, -1, True)
        return MinMax(reshape(take_along_axis(flat, index, -1), ()), reshape(index, ()))
    d = _norm_dim(op, dim, input.ndim)
    index = arg(input, d, True)
    values = take_along_axis(input, index, d)
    if keepdim:
        return MinMax(values, index)
    return MinMax(squeeze(values, d), Tensor._wrap(np.squeeze(index._data, d)))


def max(input: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    """``max(x)`` -> the largest value (ties share the gradient); ``max(x, dim)`` ->
    (values, indices), the gradient going to the returned index; ``max(x, y)`` -> the
    elementwise maximum."""
    if isinstance(dim, Tensor):
        return P.maximum(input, dim)
    if dim is None:
        return P.amax(input)
    return _extreme_along("max", input, dim, keepdim, argmax)


def min(input: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    if isinstance(dim, Tensor):
        return P.minimum(input, dim)
    if dim is None:
        return P.amin(input)
    return _extreme_along("min", input, dim, keepdim, argmin)


_UNSET: Any = object()


def _correction(
    op: str, dim: Any, unbiased: Any, keepdim: Any, correction: Any
) -> tuple[Any, Any, bool]:
    """PyTorch's overloads of var/std: ``(input, dim=None, *, correction=1, keepdim=False)``,
    ``(input, dim, unbiased, keepdim=False)`` and ``(input, unbiased)``; returns
    (dim, correction, keepdim). A number (not a bool) in ``unbiased``'s place is taken as the
    correction (matgrad's former order ``var(input, dim, correction, keepdim)``)."""
    if isinstance(dim, bool | np.bool_):  # var(x, True): the `unbiased` overload
        if unbiased is not _UNSET or correction is not None:
            raise TypeError(
                f"{op}(): invalid combination of arguments: {op}(input, unbiased) takes no "
                "other argument"
            )
        unbiased, dim = bool(dim), None
    if unbiased is not _UNSET and unbiased is not None:
        if correction is not None:
            raise TypeError(f"{op}(): unbiased and correction cannot both be given")
        is_bool = isinstance(unbiased, bool | np.bool_)
        correction = (1 if unbiased else 0) if is_bool else unbiased
    if correction is None:
        correction = 1
    return dim, correction, bool(keepdim)


def var(
    input: Tensor,
    dim: Any = None,
    unbiased: Any = _UNSET,
    keepdim: bool = False,
    *,
    correction: Any = None,
) -> Tensor:
    """The variance over ``dim`` with ``n - correction`` degrees of freedom (PyTorch's
    signatures: ``var(x, dim, unbiased, keepdim)``, ``var(x, unbiased)``,
    ``var(x, dim, correction=c, keepdim=k)``)."""
    input = _tensor(input)
    dim, correction, keepdim = _correction("var", dim, unbiased, keepdim, correction)
    dim = dim
    centered = input - mean(input, dim, keepdim=True)
    n = math.prod(input.shape[d] for d in _norm_dims("var", dim, input.ndim))
    return sum(centered * centered, dim, keepdim) / builtins.max(n - correction, 0)


def std(
    input: Tensor,
    dim: Any = None,
    unbiased: Any = _UNSET,
    keepdim: bool = False,
    *,
    correction: Any = None,
) -> Tensor:
    """sqrt(var) (the same signatures). Where the variance is 0 (a constant input) the
    gradient is 0, as PyTorch's std_backward, not 0 * inf."""
    v = var(input, dim, unbiased, keepdim, correction=correction)
    zero = v._data == 0
    if isinstance(zero, np.ndarray | np.bool_) and not np.any(zero):
        return P.sqrt(v)  # the common case: no extra nodes (lazy data takes the masked form)
    mask = Tensor._wrap(zero)
    return P.where(mask, 0.0, P.sqrt(P.where(mask, 1.0, v)))


def _empty_along(input: Tensor, dims: tuple[int, ...]) -> bool:
    return builtins.any(input.shape[d] == 0 for d in dims)


def logsumexp(input: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """P.log(sum(P.exp(x))) computed stably (shifted by the detached maximum); -inf over an
    empty axis."""
    input = _tensor(input)
    dim = dim
    if _empty_along(input, _norm_dims("logsumexp", dim, input.ndim)):
        return sum(input, dim, keepdim) + -math.inf  # the gradient: zero-size, like the input
    shift = P.amax(input, dim, keepdim=True).detach()
    shift = P.where(isfinite(shift), shift, 0.0)
    out = P.log(sum(P.exp(input - shift), dim, keepdim=True)) + shift
    if keepdim or dim == ():
        return out
    return squeeze(out, dim if dim is not None else None)


def softmax(input: Tensor, dim: int = -1, dtype: Any = None) -> Tensor:
    input = _cast(_tensor(input), dtype)
    if input.ndim == 0:
        return reshape(softmax(_one_dim_0d("softmax", input, dim), -1), ())
    d = _norm_dim("softmax", dim, input.ndim)
    shifted = input if input.shape[d] == 0 else input - P.amax(input, d, keepdim=True).detach()
    e = P.exp(shifted)
    return e / sum(e, d, keepdim=True)


def log_softmax(input: Tensor, dim: int = -1, dtype: Any = None) -> Tensor:
    input = _cast(_tensor(input), dtype)
    if input.ndim == 0:
        return reshape(log_softmax(_one_dim_0d("log_softmax", input, dim), -1), ())
    d = _norm_dim("log_softmax", dim, input.ndim)
    if input.shape[d] == 0 or input.dtype.kind == "c":
        return input - logsumexp(input, d, keepdim=True)
    return OPS["log_softmax"](input, d)


def cumsum(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """The cumulative sum along ``dim`` (a 0-d tensor keeps its shape, as PyTorch's)."""
    input = _cast(_tensor(input), dtype)
    if input.ndim == 0:
        return reshape(OPS["cumsum"](_one_dim_0d("cumsum", input, dim), -1), ())
    return OPS["cumsum"](input, dim)


def cumprod(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    input = _cast(_tensor(input), dtype)
    if input.ndim == 0:
        return reshape(OPS["cumprod"](_one_dim_0d("cumprod", input, dim), -1), ())
    return OPS["cumprod"](input, dim)


# -- shape primitives --------------------------------------------------------------------------
def reshape(input: Tensor, *shape: Any) -> Tensor:
    """The same elements in a new shape (one entry may be -1)."""
    input = _tensor(input)
    shape = _shape_arg(shape)
    try:
        target = np.broadcast_to(np.empty((), dtype=np.bool_), input.shape).reshape(shape).shape
    except ValueError:
        raise RuntimeError(
            f"reshape: shape {list(shape)} is invalid for input of size {input.numel()} "
            f"(shape {tuple(input.shape)})"
        ) from None
    if target == input.shape:
        return input if not input.requires_grad else OPS["reshape"](input, shape=target)
    return OPS["reshape"](input, shape=target)


def permute(input: Tensor, *dims: Any) -> Tensor:
    input = _tensor(input)
    dims = _shape_arg(dims)
    ndim = input.ndim
    if len(dims) != ndim and not (dims and builtins.all(d < 0 for d in dims)):
        raise RuntimeError(
            f"permute: number of dims {len(dims)} doesn't match the tensor's {ndim} dims"
        )
    norm = tuple(_norm_dim("permute", d, ndim) if d >= 0 else d for d in dims)
    if len(set(norm)) != len(norm):
        raise RuntimeError(f"permute: repeated dim in {dims}")
    return OPS["permute"](input, dims=norm)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    input = _tensor(input)
    if input.ndim == 0:  # PyTorch: 0 and -1 name the 0-d tensor's axis; the result is a view
        _norm_dim("transpose", dim0, 1), _norm_dim("transpose", dim1, 1)
        return OPS["reshape"](input, shape=())
    return OPS["transpose"](
        input,
        dim0=_norm_dim("transpose", dim0, input.ndim),
        dim1=_norm_dim("transpose", dim1, input.ndim),
    )


def t(input: Tensor) -> Tensor:
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, got {input.ndim}")
    return input if input.ndim < 2 else transpose(input, 0, 1)


def expand(input: Tensor, *shape: Any) -> Tensor:
    """Broadcast to ``shape`` (-1 keeps a size). The gradient is summed back by the engine."""
    input = _tensor(input)
    shape = _shape_arg(shape)
    lead = len(shape) - input.ndim
    if lead < 0:
        raise RuntimeError(
            f"expand: the number of sizes ({len(shape)}) must be at least the tensor's "
            f"dimension ({input.ndim}); shape {tuple(input.shape)}"
        )
    target = tuple(s if s != -1 else input.shape[i - lead] for i, s in enumerate(shape))
    try:
        np.broadcast_shapes(input.shape, target)
    except ValueError:
        raise RuntimeError(
            f"expand: the shape {tuple(input.shape)} cannot be expanded to {target}"
        ) from None
    return OPS["expand"](input, shape=target)


def expand_as(input: Tensor, other: Tensor) -> Tensor:
    return expand(input, other.shape)


def broadcast_to(input: Tensor, shape: Sequence[int]) -> Tensor:
    return expand(input, tuple(shape))


def squeeze(input: Tensor, dim: Dims = None) -> Tensor:
    input = _tensor(input)
    if dim is None:
        dims = tuple(d - input.ndim for d, s in enumerate(input.shape) if s == 1)
    elif input.ndim == 0:
        _norm_dims("squeeze", dim, 1)  # 0 and -1 name the 0-d tensor's (absent) axis
        return input
    else:
        dims = tuple(d for d in _norm_dims("squeeze", dim, input.ndim) if input.shape[d] == 1)
    if not dims:
        return input
    return OPS["squeeze"](input, dim=dims)


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    input = _tensor(input)
    return OPS["unsqueeze"](input, dim=_norm_dim("unsqueeze", dim, input.ndim + 1))


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if input.ndim == 0:
        return reshape(input, (1,))
    s = start_dim % input.ndim
    e = end_dim % input.ndim
    shape = tuple(input.shape[:s]) + (-1,) + tuple(input.shape[e + 1 :])
    return reshape(input, shape)


def unflatten(input: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    d = dim % input.ndim
    return reshape(input, tuple(input.shape[:d]) + tuple(sizes) + tuple(input.shape[d + 1 :]))


def mT(input: Tensor) -> Tensor:  # noqa: N802 - the Array API's name
    """The matrix transpose (last two axes swapped)."""
    return transpose(input, -2, -1)


def raw_index(index: Any) -> Any:
    """An index with tensors replaced by their arrays (validated: integer or boolean)."""
    if isinstance(index, tuple):
        return tuple(raw_index(i) for i in index)
    if isinstance(index, Tensor):
        if index.dtype.kind not in "iub":
            raise IndexError(
                f"tensors used as indices must be integer or boolean, got {index.dtype}"
            )
        if _state.vmap and _batching.is_batched(index):  # its array has the batch axes too
            raise NotImplementedError(
                "vmap: this operation does not take a batched index tensor (its array would be "
                "read with the batch axes as index axes); index with x[idx], index_put, "
                "take_along_dim or gather, or pass the index unbatched"
            )
        return index._data
    if isinstance(index, list):
        arr = np.asarray(index)
        if arr.dtype.kind not in "iub":
            raise IndexError(f"list indices must hold integers or booleans, got {arr.dtype}")
        return arr
    return index


def getitem(input: Tensor, index: Any) -> Tensor:
    """``input[index]``: basic slicing, integer and boolean array indexing (NumPy rules)."""
    if _state.vmap and _batching.has_batched_index(index):  # inside vmap: a batched gather
        return _batching.getitem(_tensor(input), index)
    return OPS["getitem"](input, index=raw_index(index))


def _index_array(op: str, indices: Any) -> Any:
    arr = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"{op}: indices must be integers, got dtype {arr.dtype}")
    if _state.vmap and _batching.is_batched(indices):  # its array has the batch axes too
        raise NotImplementedError(
            f"vmap: {op} does not take a batched index tensor yet (its array would be read "
            "with the batch axes as index axes); use x[idx], take_along_dim or gather, or "
            "pass the index unbatched"
        )
    return arr


def take_along_axis(input: Tensor, indices: Any, dim: int = -1) -> Tensor:
    """``out[..., j, ...] = input[..., indices[..., j, ...], ...]`` along ``dim`` (NumPy's
    ``take_along_axis``; PyTorch's ``take_along_dim`` with a dim); the gradient scatter-adds."""
    input = _tensor(input)
    if _state.vmap and _batching.is_batched(indices):  # inside vmap: batch axes line up
        return _batching.take_along_axis(input, indices, dim)
    idx = _index_array("take_along_axis", indices)
    # (a tensor's own ndim: inside vmap a batched one's array has its batch axes too)
    if (indices.ndim if isinstance(indices, Tensor) else idx.ndim) > input.ndim:
        raise ValueError(
            f"take_along_axis: indices must have as many dimensions as the input "
            f"({input.ndim}), got shape {tuple(idx.shape)}"
        )
    d = _norm_dim("take_along_axis", dim, input.ndim)
    return OPS["take_along_axis"](input, indices=idx, dim=d)


def zeros_scatter_along(input: Tensor, indices: Any, dim: int, shape: Sequence[int]) -> Tensor:
    """zeros(shape) with ``input`` added at ``indices`` along ``dim`` (the adjoint of
    ``take_along_axis``)."""
    return OPS["zeros_scatter_along"](
        _tensor(input),
        indices=_index_array("zeros_scatter_along", indices),
        dim=dim,
        shape=tuple(shape),
    )


def index_put(input: Tensor, indices: Any, values: Any, accumulate: bool = False) -> Tensor:
    """A copy of ``input`` with ``values`` written at ``indices`` (out-of-place setitem
    ``input[indices] = values``; PyTorch's argument order). ``indices`` is a tuple of index
    tensors, one per leading axis (None: the whole axis), or any index ``__getitem__`` takes;
    ``accumulate=True`` adds ``values`` instead (repeated indices add up). The former order
    ``index_put(input, values, index)`` (a non-tuple second argument) is still taken."""
    input = _tensor(input)
    if not isinstance(indices, list | tuple):
        # matgrad's former order index_put(input, values, index): values are never a tuple
        indices, values = values, indices
    if isinstance(indices, list) or (
        isinstance(indices, tuple)
        and builtins.all(i is None or isinstance(i, Tensor | np.ndarray) for i in indices)
    ):  # PyTorch's list of index tensors: None takes the whole axis (NumPy: a new axis)
        indices = tuple(slice(None) if i is None else i for i in indices)
    if _state.vmap and _batching.has_batched_index(indices):  # inside vmap: a batched scatter
        return _batching.index_put(input, indices, values, accumulate)
    index = raw_index(indices)
    if not accumulate:
        return OPS["index_put"](input, values, index=index)
    target = np.empty(input.shape, dtype=np.bool_)[index].shape
    values = _tensor(values)
    if values.dtype != input.dtype:
        values = to_dtype(values, input.dtype)
    return input + zeros_scatter(expand(values, target), input.shape, index)


def zeros_scatter(input: Tensor, shape: tuple[int, ...], index: Any) -> Tensor:
    return OPS["zeros_scatter"](input, shape=tuple(shape), index=index)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = [_tensor(x) for x in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    # PyTorch skips legacy empty 1-d tensors (shape (0,)) joined with tensors of more axes
    if builtins.any(x.ndim > 1 for x in tensors):
        tensors = [x for x in tensors if x.shape != (0,)]
    nd = tensors[0].ndim
    d = _norm_dim("cat", dim, nd)
    for x in tensors:
        if x.ndim != nd or x.shape[: d + nd] + (x.shape[d + 1 :] if d != -1 else ()) != (
            tensors[0].shape[: d + nd] + (tensors[0].shape[d + 1 :] if d != -1 else ())
        ):
            raise RuntimeError(
                f"cat: sizes of tensors must match except in dimension {dim}; got shapes "
                f"{[tuple(t.shape) for t in tensors]}"
            )
    return OPS["cat"](tensors, dim=d)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    tensors = [_tensor(x) for x in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    if len({tuple(x.shape) for x in tensors}) != 1:
        raise RuntimeError(
            f"stack: expects each tensor to be equal size, got {[tuple(t.shape) for t in tensors]}"
        )
    return OPS["stack"](tensors, dim=_norm_dim("stack", dim, tensors[0].ndim + 1))


def split(input: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces along ``dim``: of size ``split_size`` each (the last may be smaller), or of the
    listed sizes. Each piece is a slice of ``input`` in the graph."""
    n = input.shape[dim]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [builtins.min(size, n - i) for i in range(0, n, size)]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split: sizes {sizes} do not sum to the dimension's size {n}")
    d = _norm_dim("split", dim, input.ndim)
    pieces, start = [], 0
    for s in sizes:
        index = (Ellipsis, slice(start, start + s)) + (slice(None),) * (-d - 1)
        pieces.append(getitem(input, index))
        start += s
    return tuple(pieces)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    n = input.shape[dim]
    return split(input, builtins.max(1, -(-n // chunks)), dim)


def unbind(input: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    d = _norm_dim("unbind", dim, input.ndim)
    return tuple(
        getitem(input, (Ellipsis, i) + (slice(None),) * (-d - 1)) for i in range(input.shape[d])
    )


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """``length`` entries of ``input`` along ``dim`` from ``start`` (negative: from the end):
    a view, as in PyTorch."""
    input = _tensor(input)
    d = _norm_dim("narrow", dim, input.ndim)
    n = input.shape[d]
    start = int(start) + n if start < 0 else int(start)
    if not (0 <= start <= n and length >= 0 and start + length <= n):
        raise IndexError(
            f"narrow: start {start} and length {length} exceed dimension {dim} of size {n}"
        )
    return getitem(input, (Ellipsis, slice(start, start + length)) + (slice(None),) * (-d - 1))


def select(input: Tensor, dim: int, index: int) -> Tensor:
    """``input`` at ``index`` along ``dim``, that axis removed: a view, as in PyTorch."""
    input = _tensor(input)
    d = _norm_dim("select", dim, input.ndim)
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select: index {index} is out of range for dimension {dim} of size {n}")
    return getitem(input, (Ellipsis, int(index)) + (slice(None),) * (-d - 1))


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    input = _tensor(input)
    d1 = _norm_dim("diagonal", dim1, input.ndim)
    d2 = _norm_dim("diagonal", dim2, input.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal: dim1 and dim2 cannot be the same axis ({dim1}, {dim2})")
    return OPS["diagonal"](input, offset=int(offset), dim1=d1, dim2=d2)


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    input = _tensor(input)
    d1 = _norm_dim("diag_embed", dim1, input.ndim + 1)
    d2 = _norm_dim("diag_embed", dim2, input.ndim + 1)
    return OPS["diag_embed"](input, offset=int(offset), dim1=d1, dim2=d2)


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """A 1-D input becomes a diagonal matrix; a 2-D input gives its diagonal."""
    if input.ndim == 1:
        return diag_embed(input, diagonal)
    return _diagonal(input, diagonal, 0, 1)


def trace(input: Tensor) -> Tensor:
    return sum(diagonal(input, 0, -2, -1), -1)


_diagonal = diagonal


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    return OPS["tril"](_tensor(input), diagonal=int(diagonal))


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    return OPS["triu"](_tensor(input), diagonal=int(diagonal))


def flip(input: Tensor, dims: Dims) -> Tensor:
    input = _tensor(input)
    if input.ndim == 0:
        _norm_dims("flip", dims, 1)  # PyTorch accepts 0 and -1: nothing to reverse
        return OPS["flip"](input, dims=())
    return OPS["flip"](input, dims=_norm_dims("flip", dims, input.ndim))


def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    input = _tensor(input)
    if dims is None:
        flat = reshape(input, (-1,))
        return reshape(OPS["roll"](flat, shifts=(int(shifts),), dims=(-1,)), input.shape)
    shifts_t = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims_t = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts_t) != len(dims_t):
        raise RuntimeError(f"roll: shifts {shifts_t} and dims {dims_t} must have the same length")
    return OPS["roll"](
        input,
        shifts=tuple(int(s) for s in shifts_t),
        dims=tuple(_norm_dim("roll", d, input.ndim) for d in dims_t),
    )


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad (or, with negative amounts, crop) the last axes; ``pad`` lists (before, after)
    pairs starting from the last axis, as ``torch.nn.functional.pad``."""
    input = _tensor(input)
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(
            f"pad: expected an even number of amounts, at most 2 per axis of the "
            f"{input.ndim}-d input, got {list(pad)}"
        )
    return OPS["pad"](input, pad=tuple(int(p) for p in pad), value=float(value))


# -- products ----------------------------------------------------------------------------------
def _check_matmul(op: str, a: Tensor, b: Tensor) -> None:
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim >= 2 else b.shape[-1]
    if ka != kb:
        raise RuntimeError(
            f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
            f"({ka} != {kb})"
        )


def matmul(input: Any, other: Any) -> Tensor:
    """Matrix product with NumPy's semantics: 1-D operands are promoted and the added axis
    removed, leading axes broadcast. 2-D @ 2-D records ``mm``, 2-D @ 1-D ``mv``, 1-D @ 1-D
    ``dot``; anything else the general ``matmul`` row."""
    a, b = _tensor(input), _tensor(other)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError("matmul: both arguments need at least 1 dimension (use * for scalars)")
    _check_matmul("matmul", a, b)
    if a.ndim == 2 and b.ndim == 2:
        return OPS["mm"](a, b)
    if a.ndim == 1 and b.ndim == 1:
        return OPS["dot"](a, b)
    if a.ndim == 2 and b.ndim == 1:
        return OPS["mv"](a, b)
    if a.ndim == 1:
        return squeeze(matmul(unsqueeze(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(matmul(a, unsqueeze(b, -1)), -1)
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise RuntimeError(
            f"matmul: batch dimensions of {tuple(a.shape)} and {tuple(b.shape)} do not broadcast"
        ) from None
    return OPS["matmul"](a, b)


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {input.ndim}-D and {mat2.ndim}-D")
    _check_matmul("mm", input, mat2)
    return OPS["mm"](input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise RuntimeError(
            f"bmm: expected 3-D tensors with the same batch size, got {tuple(input.shape)} "
            f"and {tuple(mat2.shape)}"
        )
    _check_matmul("bmm", input, mat2)
    return OPS["bmm"](input, mat2)


def mv(input: Tensor, vec: Tensor) -> Tensor:
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(
            f"mv: expected a 2-D and a 1-D tensor, got {input.ndim}-D and {vec.ndim}-D"
        )
    _check_matmul("mv", input, vec)
    return OPS["mv"](input, vec)


def dot(input: Tensor, other: Tensor) -> Tensor:
    if input.ndim != 1 or other.ndim != 1 or input.shape != other.shape:
        raise RuntimeError(
            f"dot: expected two 1-D tensors of the same size, got {tuple(input.shape)} and "
            f"{tuple(other.shape)}"
        )
    return OPS["dot"](input, other)


def vdot(input: Tensor, other: Tensor) -> Tensor:
    """sum(conj(input) * other) of two 1-D tensors (``dot`` does not conjugate)."""
    input, other = _tensor(input), _tensor(other)
    if input.ndim != 1 or other.ndim != 1 or input.shape != other.shape:
        raise RuntimeError(
            f"vdot: expected two 1-D tensors of the same size, got {tuple(input.shape)} and "
            f"{tuple(other.shape)}"
        )
    return OPS["dot"](P.conj(input) if input.dtype.kind == "c" else input, other)


def is_complex(input: Tensor) -> bool:
    return _tensor(input).dtype.kind == "c"


def resolve_conj(input: Tensor) -> Tensor:
    """``input`` itself: ``conj`` is never lazy in matgrad."""
    return input


def sgn(input: Tensor) -> Tensor:
    """z / |z| (0 at 0) for complex input, ``sign`` for real input (PyTorch's sgn)."""
    input = _tensor(input)
    if input.dtype.kind != "c":
        return P.sign(input)
    a = P.abs(input)
    zero = Tensor._wrap(a._data == 0)
    return P.where(zero, 0.0, input / P.where(zero, 1.0, a))


def inner(input: Tensor, other: Tensor) -> Tensor:
    """Sum over the last axes of ``input * other``; with a 0-d operand, the product."""
    input, other = _tensor(input), _tensor(other)
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    return sum(input * other, -1)


def view(input: Tensor, *shape: Any) -> Tensor:
    """``input`` with a new shape, sharing its memory: raises where that needs a copy (a
    non-contiguous tensor, e.g. a transpose), as PyTorch's does; ``reshape`` copies there."""
    input = _tensor(input)
    out = reshape(input, *shape)
    if out is input:  # reshape hands an unchanged shape back as is; a view is a new tensor
        out = OPS["reshape"](input, shape=tuple(input.shape))
    data = input._data
    if out.numel() > 1 and isinstance(data, np.ndarray) and not out._is_view():
        raise RuntimeError(
            f"view size {tuple(out.shape)} is not compatible with input tensor's size "
            f"{tuple(input.shape)} and stride (the memory is not contiguous). Use "
            ".reshape(...) instead."
        )
    return out


# ==============================================================================================
# PyTorch's functions composed of the rows (op coverage, issue #13): indexing and scatters,
# shapes, products, elementwise helpers, reductions, sorting and order statistics. Each is
# written in the table's primitives, so its graph shows them; index arithmetic (which entries
# go where) is computed on integer arrays, which carry no gradient.
# ==============================================================================================


def _along(d: int, index: Any) -> tuple:
    """The index that applies ``index`` along the (negative) axis ``d``."""
    return (Ellipsis, index) + (slice(None),) * (-d - 1)


def _as_1d(input: Tensor) -> Tensor:
    return reshape(input, (1,)) if input.ndim == 0 else input


def _const(data: Any) -> Tensor:
    return Tensor._wrap(np.asarray(data))


def _mask_of(op: str, mask: Any) -> Tensor:
    mask = _tensor(mask)
    if mask.dtype != np.bool_:
        raise RuntimeError(f"{op}: expected a boolean mask, got dtype {mask.dtype}")
    return mask


def _broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise RuntimeError(
            f"{op}: the shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast"
        ) from None


def _expand_to(input: Tensor, shape: tuple[int, ...]) -> Tensor:
    return input if tuple(input.shape) == tuple(shape) else expand(input, shape)


# -- gather and scatter ------------------------------------------------------------------------
def _check_index(op: str, idx: np.ndarray, n: int, axis: int) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise RuntimeError(
            f"{op}(): index {bad} is out of bounds for dimension {axis} with size {n}"
        )


def _scatter_args(
    op: str, input: Any, dim: int, index: Any, src: Any
) -> tuple[Tensor, int, np.ndarray, Tensor, tuple[int, ...]]:
    """PyTorch's checks of gather/scatter arguments; returns (input as >= 1-d, the negative
    axis, the index as >= 1-d, ``src`` cut to the index's shape, the region of ``input`` the
    index reaches: its shape with the axis's full size)."""
    input = _tensor(input)
    x = _as_1d(input)
    idx = _index_array(op, index)
    idx = idx.reshape(-1) if idx.ndim == 0 else idx
    if idx.ndim != x.ndim:
        raise RuntimeError(
            f"{op}(): Index tensor must have the same number of dimensions as the input tensor "
            f"({input.ndim}), got index of shape {tuple(idx.shape)}"
        )
    d = _norm_dim(op, dim, x.ndim)
    axis = x.ndim + d
    for a in range(x.ndim):
        if a != axis and idx.shape[a] > x.shape[a]:
            raise RuntimeError(
                f"{op}(): Size does not match at dimension {a}: index {tuple(idx.shape)} is "
                f"larger than the input {tuple(input.shape)} outside dimension {dim}"
            )
    _check_index(op, idx, x.shape[axis], dim)
    if src is not None:
        if isinstance(src, Tensor):
            s = _as_1d(src)
            larger = builtins.any(i > n for i, n in zip(idx.shape, s.shape, strict=False))
            if s.ndim != x.ndim or larger:
                raise RuntimeError(
                    f"{op}(): the index of shape {tuple(idx.shape)} must not be larger than "
                    f"src of shape {tuple(src.shape)}"
                )
            if s.dtype != x.dtype:
                raise RuntimeError(
                    f"{op}(): Expected self.dtype to be equal to src.dtype ({x.dtype} and "
                    f"{s.dtype})"
                )
            if tuple(s.shape) != tuple(idx.shape):
                s = getitem(s, tuple(slice(0, i) for i in idx.shape))
        else:
            s = _const(np.full(idx.shape, src, dtype=x.dtype))
    else:
        s = None
    region = tuple(idx.shape[:axis]) + (x.shape[axis],) + tuple(idx.shape[axis + 1 :])
    return x, d, idx, s, region


def _embed(region_value: Tensor, shape: tuple[int, ...], fill: float = 0.0) -> Tensor:
    """``region_value`` (a leading block) in a tensor of ``shape`` filled with ``fill``."""
    if tuple(region_value.shape) == tuple(shape):
        return region_value
    amounts: list[int] = []
    for r, n in zip(reversed(region_value.shape), reversed(shape), strict=False):
        amounts += [0, n - r]
    return OPS["pad"](region_value, pad=tuple(amounts), value=float(fill))


def _embed_raw(region: np.ndarray, shape: tuple[int, ...], fill: Any = 0) -> np.ndarray:
    widths = [(0, n - r) for r, n in zip(region.shape, shape, strict=False)]
    return np.pad(region, widths, constant_values=fill)


def _scatter_sum(src: Tensor, idx: np.ndarray, d: int, region: tuple[int, ...]) -> Tensor:
    return OPS["zeros_scatter_along"](src, indices=idx, dim=d, shape=region)


def _counts(idx: np.ndarray, d: int, region: tuple[int, ...], of: Any = None) -> np.ndarray:
    """How many entries of the index (or the sum of ``of`` over them) land at each position."""
    ones = np.ones(idx.shape) if of is None else np.asarray(of, dtype=np.float64)
    return _forward.zeros_scatter_along(ones, idx, d, region)


def gather(input: Tensor, dim: int, index: Any, *, sparse_grad: bool = False) -> Tensor:
    """``out[i][j][k] = input[i][index[i][j][k]][k]`` (for ``dim=1``): PyTorch's gather;
    ``index`` may be smaller than ``input`` outside ``dim``. The gradient scatter-adds."""
    if _state.vmap and _batching.is_batched(index):  # inside vmap: a batched gather
        return _batching.gather(_tensor(input), dim, index)
    shape = _index_array("gather", index).shape
    if math.prod(shape) == 0:  # nothing to read: PyTorch checks no shapes
        return getitem(reshape(_tensor(input), (-1,)), np.zeros(shape, dtype=np.int64))
    x, d, idx, _, _ = _scatter_args("gather", input, dim, index, None)
    cut = tuple(slice(None) if a == x.ndim + d else slice(0, n) for a, n in enumerate(idx.shape))
    if builtins.any(idx.shape[a] != x.shape[a] for a in range(x.ndim) if a != x.ndim + d):
        x = getitem(x, cut)
    out = OPS["take_along_axis"](x, indices=idx, dim=d)
    return reshape(out, shape) if tuple(out.shape) != tuple(shape) else out


def _last_writers(idx: np.ndarray, d: int, region: tuple[int, ...]) -> np.ndarray:
    """Where several index entries name one position, the last (along ``dim``) wins, as a
    sequential write: True at the entries whose value is kept."""
    axis = idx.ndim + d
    order = np.broadcast_to(np.arange(idx.shape[axis]).reshape((-1,) + (1,) * (-d - 1)), idx.shape)
    winner = np.full(region, -1)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    np.maximum.at(winner, tuple(grid), order)
    return np.take_along_axis(winner, idx, axis) == order


def _scatter_values(x: Tensor, d: int, idx: np.ndarray, s: Tensor, region: tuple) -> Tensor:
    """``x`` with ``s`` written at ``idx`` along ``d`` (PyTorch's scatter without reduce)."""
    keep = _last_writers(idx, d, region)
    if not keep.all():
        s = P.where(_const(keep), s, 0.0)
    written = _embed_raw(_counts(idx, d, region) > 0, tuple(x.shape), False)
    return P.where(_const(written), _embed(_scatter_sum(s, idx, d, region), tuple(x.shape)), x)


def _reshaped_like(out: Tensor, input: Any) -> Tensor:
    shape = _tensor(input).shape
    return reshape(out, shape) if tuple(out.shape) != tuple(shape) else out


def scatter(
    input: Tensor,
    dim: int,
    index: Any,
    src: Any = None,
    value: Any = None,
    *,
    reduce: str | None = None,
) -> Tensor:
    """``input`` with ``src`` (a tensor, or the number ``value``) written at ``index`` along
    ``dim``: ``out[i][index[i][j]] = src[i][j]`` (for ``dim=1``). Where an index repeats,
    the last write along ``dim`` is kept (PyTorch leaves the choice undefined).
    ``reduce='add'`` / ``'multiply'`` combine instead (as :func:`scatter_reduce`)."""
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter(): expected a src tensor or a value")
    if reduce is not None:
        if reduce not in ("add", "multiply"):
            raise RuntimeError(
                f"scatter(): reduce argument must be 'add' or 'multiply', got {reduce!r}"
            )
        return scatter_reduce(input, dim, index, src, "sum" if reduce == "add" else "prod")
    x, d, idx, s, region = _scatter_args("scatter", input, dim, index, src)
    return _reshaped_like(_scatter_values(x, d, idx, s, region), input)


def scatter_add(input: Tensor, dim: int, index: Any, src: Tensor) -> Tensor:
    """``input`` plus ``src`` added at ``index`` along ``dim`` (repeated indices add up)."""
    x, d, idx, s, region = _scatter_args("scatter_add", input, dim, index, _tensor(src))
    return _reshaped_like(x + _embed(_scatter_sum(s, idx, d, region), tuple(x.shape)), input)


def _scatter_reduce_raw(x: np.ndarray, d: int, idx: np.ndarray, s: np.ndarray, region: tuple,
                        reduce: str, include_self: bool) -> np.ndarray:  # fmt: skip
    """The values of scatter_reduce, on arrays (the amax/amin masks need them)."""
    axis = idx.ndim + d
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    ufunc = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum,
             "amin": np.minimum}[reduce]  # fmt: skip
    out = np.array(x, dtype=np.result_type(x, np.float64) if reduce == "mean" else x.dtype)
    reg = tuple(slice(0, n) for n in region)
    written = _embed_raw(_counts(idx, d, region) > 0, x.shape, False)
    if not include_self:
        if ufunc.identity is not None:
            out[written] = ufunc.identity
        else:  # amax, amin: the lowest (highest) value of the dtype
            info = np.finfo(out.dtype) if out.dtype.kind in "fc" else np.iinfo(out.dtype)
            out[written] = (
                -np.inf
                if out.dtype.kind == "f" and reduce == "amax"
                else (
                    np.inf if out.dtype.kind == "f" else info.min if reduce == "amax" else info.max
                )
            )
    block = out[reg]
    ufunc.at(block, tuple(grid), s)
    out[reg] = block
    if reduce == "mean":
        count = _embed_raw(_counts(idx, d, region), x.shape) + (1 if include_self else 0)
        out = np.where(count > 0, out / np.maximum(count, 1), x)
        if x.dtype.kind in "iu":
            out = np.floor(out)
        out = out.astype(x.dtype)
    return out


def scatter_reduce(
    input: Tensor, dim: int, index: Any, src: Tensor, reduce: str, *, include_self: bool = True
) -> Tensor:
    """``input`` with the entries of ``src`` combined into the positions ``index`` names along
    ``dim`` by ``reduce`` ('sum', 'prod', 'mean', 'amax', 'amin'); ``include_self=False``
    leaves ``input``'s own values out where something is scattered. Gradients as PyTorch's:
    amax/amin share it evenly among the entries equal to the result, prod is exact at zeros
    (one zero gets the product of the others)."""
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise RuntimeError(
            f"scatter_reduce(): reduce argument must be one of 'sum', 'prod', 'mean', 'amax', "
            f"'amin', got {reduce!r}"
        )
    x, d, idx, s, region = _scatter_args("scatter_reduce", input, dim, index, _tensor(src))
    shape = tuple(x.shape)
    if x.dtype.kind not in "fc":  # integers and booleans: no gradient, the values alone
        raw = _scatter_reduce_raw(_values(x), d, idx, _values(s), region, reduce, include_self)
        return _reshaped_like(_const(raw), input)
    counts = _counts(idx, d, region)
    written = _const(_embed_raw(counts > 0, shape, False))
    base = x if include_self or reduce == "prod" else P.where(written, 0.0, x)
    if reduce == "sum":
        out = base + _embed(_scatter_sum(s, idx, d, region), shape)
    elif reduce == "mean":
        total = base + _embed(_scatter_sum(s, idx, d, region), shape)
        n = _embed_raw(counts, shape) + (1 if include_self else 0)
        out = P.where(_const(n > 0), total / _const(np.maximum(n, 1).astype(x.dtype)), x)
    elif reduce in ("amax", "amin"):
        result = _scatter_reduce_raw(_values(x), d, idx, _values(s), region, reduce, include_self)
        on_self = (_values(x) == result) if include_self else ~_values(written)
        block = result[tuple(slice(0, n) for n in region)]
        on_src = _values(s) == np.take_along_axis(block, idx, x.ndim + d)
        n = on_self + _embed_raw(_counts(idx, d, region, on_src), shape)
        picked = P.where(_const(on_self), x, 0.0) + _embed(
            _scatter_sum(P.where(_const(on_src), s, 0.0), idx, d, region), shape
        )
        out = picked / _const(np.maximum(n, 1).astype(x.dtype))
    else:  # prod: exp(sum log|s|) times the sign over the nonzero entries; zeros apart
        sv = _values(s)
        zero = sv == 0
        nonzero = P.where(_const(zero), 1.0, s)
        magnitude = P.exp(_scatter_sum(P.log(P.abs(nonzero)), idx, d, region))
        negatives = _counts(idx, d, region, (sv < 0) & ~zero)
        sign = _const((1 - 2 * (negatives % 2)).astype(x.dtype))
        zeros = _counts(idx, d, region, zero)
        one_zero = _scatter_sum(P.where(_const(zero), s, 0.0), idx, d, region)  # its value
        zero_part = P.where(_const(zeros == 0), 1.0, P.where(_const(zeros == 1), one_zero, 0.0))
        factor = x if include_self else P.where(written, 1.0, x)
        out = factor * _embed(magnitude * sign * zero_part, shape, fill=1.0)
    return _reshaped_like(out, input)


def _index_1d(op: str, index: Any, n: int, dim: int) -> np.ndarray:
    idx = _index_array(op, index)
    if idx.ndim > 1:
        raise IndexError(f"{op}(): Index is supposed to be a vector, got shape {tuple(idx.shape)}")
    idx = idx.reshape(-1)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"{op}(): index out of range in self (dimension {dim} of size {n})")
    return np.where(idx < 0, idx + n, idx)


def _index_along(op: str, input: Tensor, dim: int, index: Any, source: Any):
    """index_add/index_copy/index_reduce as their scatter: the 1-d ``index`` along ``dim``
    repeated over the other axes of ``source``."""
    x = _as_1d(_tensor(input))
    d = _norm_dim(op, dim, x.ndim)
    idx = _index_1d(op, index, x.shape[d], dim)
    if isinstance(source, Tensor):
        src = _as_1d(source)
        want = tuple(x.shape[: x.ndim + d]) + (idx.size,) + tuple(x.shape[x.ndim + d + 1 :])
        if tuple(src.shape) != want:
            raise RuntimeError(
                f"{op}(): source of shape {tuple(source.shape)} must have the input's shape "
                f"{tuple(input.shape)} with dimension {dim} of size {idx.size} (the index's)"
            )
    else:
        want = tuple(x.shape[: x.ndim + d]) + (idx.size,) + tuple(x.shape[x.ndim + d + 1 :])
        src = source
    full = np.broadcast_to(idx.reshape((-1,) + (1,) * (-d - 1)), want).copy()
    return x, d, full, src


def index_select(input: Tensor, dim: int, index: Any) -> Tensor:
    """The entries at ``index`` (a 1-d integer tensor) along ``dim``; the gradient adds up."""
    input = _tensor(input)
    x = _as_1d(input)
    d = _norm_dim("index_select", dim, x.ndim)
    idx = _index_1d("index_select", index, x.shape[d], dim)
    out = getitem(x, _along(d, idx))
    return reshape(out, ()) if input.ndim == 0 else out  # a 0-d input stays 0-d


def index_add(input: Tensor, dim: int, index: Any, source: Tensor, *, alpha: Any = 1) -> Tensor:
    """``input`` with ``alpha * source`` added at ``index`` along ``dim``."""
    x, d, idx, src = _index_along("index_add", input, dim, index, _tensor(source))
    if alpha != 1:
        src = P.mul(src, alpha)
    return _reshaped_like(scatter_add(x, d, idx, src), input)


def index_copy(input: Tensor, dim: int, index: Any, source: Tensor) -> Tensor:
    """``input`` with ``source``'s slices written at ``index`` along ``dim``."""
    x, d, idx, src = _index_along("index_copy", input, dim, index, _tensor(source))
    return _reshaped_like(scatter(x, d, idx, src), input)


def index_fill(input: Tensor, dim: int, index: Any, value: Any) -> Tensor:
    """``input`` with the slices at ``index`` along ``dim`` set to ``value`` (a number or a
    0-d tensor, which then gets the sum of their gradients)."""
    input = _tensor(input)
    x = _as_1d(input)
    d = _norm_dim("index_fill", dim, x.ndim)
    idx = np.unique(_index_1d("index_fill", index, x.shape[d], dim))
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(
                f"index_fill(): only supports a 0-dimensional value tensor, got shape "
                f"{tuple(value.shape)}"
            )
        value = value if value.dtype == x.dtype else to_dtype(value, x.dtype)
    else:
        value = _const(np.asarray(value, dtype=x.dtype))
    shape = tuple(x.shape[: x.ndim + d]) + (idx.size,) + tuple(x.shape[x.ndim + d + 1 :])
    return _reshaped_like(OPS["index_put"](x, expand(value, shape), index=_along(d, idx)), input)


def index_reduce(
    input: Tensor, dim: int, index: Any, source: Tensor, reduce: str, *, include_self: bool = True
) -> Tensor:
    """``input`` with ``source``'s slices combined at ``index`` along ``dim`` by ``reduce``
    ('prod', 'mean', 'amax', 'amin'; as :func:`scatter_reduce`)."""
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise RuntimeError(
            f"index_reduce(): reduce argument must be one of 'prod', 'mean', 'amax', 'amin', "
            f"got {reduce!r}"
        )
    x, d, idx, src = _index_along("index_reduce", input, dim, index, _tensor(source))
    out = scatter_reduce(x, d, idx, src, reduce, include_self=include_self)
    return _reshaped_like(out, input)


def take(input: Tensor, index: Any) -> Tensor:
    """``input`` read as 1-d at ``index`` (any shape; negative indices count from the end)."""
    input = _tensor(input)
    if _state.vmap and _batching.is_batched(index):  # inside vmap: a batched gather
        return _batching.take(input, index)
    idx = _index_array("take", index)
    n = input.numel()
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"take(): index out of range for a tensor of {n} elements")
    return getitem(reshape(input, (-1,)), idx)


def take_along_dim(input: Tensor, indices: Any, dim: int | None = None) -> Tensor:
    """``input`` at ``indices`` along ``dim``, the other axes broadcast (None: both read as
    1-d). PyTorch's take_along_dim."""
    input = _tensor(input)
    if _state.vmap and _batching.is_batched(indices):  # inside vmap: a batched gather
        return _batching.take_along_dim(input, indices, dim)
    idx = _index_array("take_along_dim", indices)
    if dim is None:
        return take_along_axis(reshape(input, (-1,)), idx.reshape(-1), 0)
    if idx.ndim != input.ndim:
        raise RuntimeError(
            f"take_along_dim(): input and indices should have the same number of dimensions, "
            f"got {input.ndim} and {idx.ndim}"
        )
    x = _as_1d(input)
    idx = idx.reshape(-1) if idx.ndim == 0 else idx
    d = _norm_dim("take_along_dim", dim, x.ndim)
    axis = x.ndim + d
    xs, ids = list(x.shape), list(idx.shape)
    xs[axis] = ids[axis] = 1
    shape = _broadcast_shape("take_along_dim", tuple(xs), tuple(ids))
    xt = list(shape)
    xt[axis] = x.shape[axis]
    it = list(shape)
    it[axis] = idx.shape[axis]
    out = take_along_axis(_expand_to(x, tuple(xt)), np.broadcast_to(idx, tuple(it)), d)
    return reshape(out, ()) if input.ndim == 0 else out


def put(input: Tensor, index: Any, source: Tensor, accumulate: bool = False) -> Tensor:
    """``input`` read as 1-d with ``source``'s entries written (or, with ``accumulate``,
    added) at ``index``."""
    input = _tensor(input)
    idx = _index_array("put", index).reshape(-1)
    source = _tensor(source)
    if source.numel() != idx.size:
        raise RuntimeError(
            f"put(): Expected source and index to have the same number of elements, got "
            f"{source.numel()} and {idx.size}"
        )
    n = input.numel()
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"put(): index out of range for a tensor of {n} elements")
    flat = index_put(reshape(input, (-1,)), (idx,), reshape(source, (-1,)), accumulate)
    return reshape(flat, input.shape)


def masked_fill(input: Tensor, mask: Any, value: Any) -> Tensor:
    """``input`` with ``value`` where ``mask`` (boolean, broadcast) is True."""
    input = _tensor(input)
    mask = _mask_of("masked_fill", mask)
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(
                f"masked_fill only supports a 0-dimensional value tensor, but got tensor with "
                f"{value.ndim} dimension(s)"
            )
        value = value if value.dtype == input.dtype else to_dtype(value, input.dtype)
    else:
        value = _const(np.asarray(value, dtype=input.dtype))
    return P.where(mask, value, input)


def masked_select(input: Tensor, mask: Any) -> Tensor:
    """The entries of ``input`` where ``mask`` is True (both broadcast), as a 1-d tensor."""
    input = _tensor(input)
    mask = _mask_of("masked_select", mask)
    shape = _broadcast_shape("masked_select", input.shape, mask.shape)
    return getitem(_expand_to(input, shape), np.broadcast_to(mask._data, shape))


def masked_scatter(input: Tensor, mask: Any, source: Tensor) -> Tensor:
    """``input`` with the leading entries of ``source`` (read as 1-d) written, in order, where
    ``mask`` (broadcast to ``input``) is True."""
    input = _tensor(input)
    mask = _mask_of("masked_scatter", mask)
    source = _tensor(source)
    m = np.broadcast_to(mask._data, _broadcast_shape("masked_scatter", input.shape, mask.shape))
    x = _expand_to(input, m.shape)
    n = int(m.sum())
    if source.numel() < n:
        raise RuntimeError(
            f"masked_scatter: the source has {source.numel()} elements, fewer than the {n} "
            "the mask selects"
        )
    values = getitem(reshape(source, (-1,)), slice(0, n))
    return OPS["index_put"](x, values, index=m)


def _scatter_view(op: str, input: Tensor, src: Tensor, positions: np.ndarray) -> Tensor:
    """``input`` with ``src`` written at ``positions`` (flat indices in the shape of a view of
    ``input``): the out-of-place write through a view (diagonal_scatter, select_scatter, ...)."""
    input, src = _tensor(input), _tensor(src)
    if tuple(src.shape) != tuple(positions.shape):
        raise RuntimeError(
            f"{op}(): expected src to have a size equal to the slice of self: src size "
            f"{tuple(src.shape)}, slice size {tuple(positions.shape)}"
        )
    if src.dtype != input.dtype:
        src = to_dtype(src, input.dtype)
    flat = OPS["index_put"](reshape(input, (-1,)), reshape(src, (-1,)), index=positions.reshape(-1))
    return reshape(flat, input.shape)


def _positions(input: Tensor) -> np.ndarray:
    return np.arange(input.numel()).reshape(input.shape)


def diagonal_scatter(
    input: Tensor, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1
) -> Tensor:
    """``input`` with ``src`` as its diagonal (the one :func:`diagonal` reads)."""
    input = _tensor(input)
    d1 = _norm_dim("diagonal_scatter", dim1, input.ndim)
    d2 = _norm_dim("diagonal_scatter", dim2, input.ndim)
    pos = np.diagonal(_positions(input), offset, d1, d2)
    return _scatter_view("diagonal_scatter", input, src, pos)


def select_scatter(input: Tensor, src: Tensor, dim: int, index: int) -> Tensor:
    """``input`` with ``src`` written at ``index`` along ``dim`` (the slice :func:`select`
    reads)."""
    input = _tensor(input)
    d = _norm_dim("select_scatter", dim, input.ndim)
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(
            f"select_scatter(): index {index} out of range for dimension {dim} of size {n}"
        )
    return _scatter_view("select_scatter", input, src, _positions(input)[_along(d, int(index))])


def slice_scatter(
    input: Tensor, src: Tensor, dim: int = 0, start: int | None = None, end: int | None = None,
    step: int = 1,
) -> Tensor:  # fmt: skip
    """``input`` with ``src`` written at ``start:end:step`` along ``dim``."""
    input = _tensor(input)
    d = _norm_dim("slice_scatter", dim, input.ndim)
    pos = _positions(input)[_along(d, slice(start, end, step))]
    return _scatter_view("slice_scatter", input, src, pos)


def _strided_positions(op: str, input: Tensor, size: Any, stride: Any, offset: int) -> np.ndarray:
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise RuntimeError(f"{op}(): mismatch in length of strides and shape ({size}, {stride})")
    last = offset + builtins.sum((n - 1) * s for n, s in zip(size, stride, strict=False) if n > 0)
    if builtins.all(n > 0 for n in size) and last >= input.numel():
        raise RuntimeError(
            f"{op}(): setStorage: sizes {list(size)}, strides {list(stride)}, storage offset "
            f"{offset} are out of bounds for a storage of {input.numel()} elements"
        )
    base = np.arange(input.numel())
    step = base.strides[0]
    return np.lib.stride_tricks.as_strided(
        base[offset:], size, tuple(s * step for s in stride), writeable=False
    ).copy()


def as_strided(input: Tensor, size: Any, stride: Any, storage_offset: int = 0) -> Tensor:
    """The entries of ``input``'s (contiguous, row-major) elements at ``storage_offset +
    sum(i_k stride_k)``: a gather, so overlapping windows add up their gradients. Unlike
    PyTorch's, the result is a copy, not a view of the memory."""
    input = _tensor(input)
    pos = _strided_positions("as_strided", input, size, stride, int(storage_offset))
    return getitem(reshape(input, (-1,)), pos)


def as_strided_scatter(
    input: Tensor, src: Tensor, size: Any, stride: Any, storage_offset: int = 0
) -> Tensor:
    """``input`` with ``src`` written where :func:`as_strided` reads."""
    input = _tensor(input)
    pos = _strided_positions("as_strided_scatter", input, size, stride, int(storage_offset))
    return _scatter_view("as_strided_scatter", input, src, pos)


# -- copies of views (PyTorch's *_copy functions: the view's values in new memory) -------------
def _copy_of(view: Any, name: str) -> Any:
    def copy(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        out = view(input, *args, **kwargs)
        if isinstance(out, tuple):
            return tuple(OPS["clone"](o) for o in out)
        return OPS["clone"](out)

    copy.__name__ = copy.__qualname__ = name
    copy.__doc__ = f"The values of :func:`{view.__name__}` in new memory (not a view)."
    return copy


def _alias(input: Tensor) -> Tensor:
    return input


# -- shapes ------------------------------------------------------------------------------------
def movedim(input: Tensor, source: Any, destination: Any) -> Tensor:
    """``input`` with the axes ``source`` moved to the positions ``destination`` (the others
    keep their order): a view."""
    input = _tensor(input)
    src = [source] if isinstance(source, int | np.integer) else list(source)
    dst = [destination] if isinstance(destination, int | np.integer) else list(destination)
    if len(src) != len(dst):
        raise RuntimeError(
            f"movedim: Invalid source or destination dims: source ({src} dims) should contain "
            f"the same number of dims as destination ({dst} dims)"
        )
    nd = builtins.max(input.ndim, 1)
    src = [_norm_dim("movedim", s, input.ndim) % nd for s in src]
    dst = [_norm_dim("movedim", s, input.ndim) % nd for s in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in source {src} or destination {dst}")
    if input.ndim == 0:
        return OPS["reshape"](input, shape=())
    rest = [a for a in range(input.ndim) if a not in src]
    order = [0] * input.ndim
    for s, t in zip(src, dst, strict=False):
        order[t] = s
    it = iter(rest)
    order = [order[i] if i in dst else next(it) for i in range(input.ndim)]
    return permute(input, tuple(order))


moveaxis = movedim
swapdims = transpose


def atleast_1d(*tensors: Any) -> Any:
    """Each tensor with at least 1 axis (0-d -> (1,)); one tensor in, one out."""
    return _atleast(tensors, 1)


def atleast_2d(*tensors: Any) -> Any:
    """0-d -> (1, 1), 1-d (n) -> (1, n); others unchanged."""
    return _atleast(tensors, 2)


def atleast_3d(*tensors: Any) -> Any:
    """0-d -> (1, 1, 1), (n) -> (1, n, 1), (m, n) -> (m, n, 1); others unchanged."""
    return _atleast(tensors, 3)


def _atleast(tensors: tuple, n: int) -> Any:
    single = len(tensors) == 1 and not isinstance(tensors[0], list | tuple)
    items = tensors[0] if len(tensors) == 1 and not single else tensors
    out = []
    for t in items:
        t = _tensor(t)
        s = tuple(t.shape)
        if t.ndim < n:
            s = {0: (1,) * n, 1: ((1,) + s + (1,))[: n] if n == 3 else (1,) * (n - 1) + s,
                 2: s + (1,)}[t.ndim]  # fmt: skip
            t = reshape(t, s)
        out.append(t)
    return out[0] if single else tuple(out)


def _promoted(tensors: Sequence[Any]) -> list[Tensor]:
    """The tensors in their common dtype (PyTorch's type promotion among tensors)."""
    ts = [_tensor(t) for t in tensors]
    if not ts:
        return ts
    dtype = np.result_type(*[t.dtype for t in ts])
    return [t if t.dtype == dtype else to_dtype(t, dtype) for t in ts]


def hstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along the second axis (the first for 1-d tensors)."""
    ts = _atleast(tuple(tensors), 1) if tensors else ()
    ts = _promoted(ts if isinstance(ts, tuple) else (ts,))
    return cat(ts, 0 if ts and ts[0].ndim == 1 else 1)


def vstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along the first axis, 1-d tensors as rows."""
    ts = _atleast(tuple(tensors), 2) if tensors else ()
    return cat(_promoted(ts if isinstance(ts, tuple) else (ts,)), 0)


row_stack = vstack


def dstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along the third axis (tensors made at least 3-d)."""
    ts = _atleast(tuple(tensors), 3) if tensors else ()
    return cat(_promoted(ts if isinstance(ts, tuple) else (ts,)), 2)


def column_stack(tensors: Sequence[Tensor]) -> Tensor:
    """Join as columns: 0-d and 1-d tensors become columns (n, 1)."""
    ts = [_tensor(t) for t in tensors]
    ts = [reshape(t, (t.numel(), 1)) if t.ndim <= 1 else t for t in ts]
    return cat(_promoted(ts), 1)


def _split_at(input: Tensor, cuts: Sequence[int], d: int) -> tuple[Tensor, ...]:
    n = input.shape[d]
    bounds = [0, *(builtins.min(builtins.max(int(c), 0), n) for c in cuts), n]
    return tuple(
        getitem(input, _along(d, slice(a, builtins.max(a, b))))
        for a, b in itertools.pairwise(bounds)
    )


def tensor_split(input: Tensor, indices_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Views of ``input`` along ``dim``: ``sections`` pieces (the first ``n % sections`` one
    longer), or the pieces between the listed ``indices``."""
    input = _tensor(input)
    if input.ndim == 0:
        raise RuntimeError(
            "tensor_split expected at least a 1-dimensional tensor, but got a 0-d tensor"
        )
    d = _norm_dim("tensor_split", dim, input.ndim)
    spec = indices_or_sections
    if isinstance(spec, Tensor):
        if spec.dtype.kind not in "iu" or spec.ndim > 1:
            raise RuntimeError(
                "tensor_split expected tensor_indices_or_sections to be a zero-dimensional or "
                f"one-dimensional tensor of integers, got shape {tuple(spec.shape)}, dtype "
                f"{spec.dtype}"
            )
        spec = int(spec.item()) if spec.ndim == 0 else [int(i) for i in spec._data]
    if isinstance(spec, int | np.integer):
        if spec <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {spec}")
        n = input.shape[d]
        q, r = divmod(n, int(spec))
        cuts = list(itertools.accumulate([q + 1] * r + [q] * (int(spec) - r - 1)))
        return _split_at(input, cuts, d)
    return _split_at(input, [int(i) for i in spec], d)


def _split_dir(op: str, input: Tensor, spec: Any, dim: int, min_ndim: int) -> tuple:
    input = _tensor(input)
    if input.ndim < min_ndim:
        raise RuntimeError(
            f"torch.{op} requires a tensor with at least {min_ndim} dimension, but got a tensor "
            f"with {input.ndim} dimensions!"
        )
    if isinstance(spec, int | np.integer) and (spec == 0 or input.shape[dim] % spec):
        raise RuntimeError(
            f"torch.{op} attempted to split along dimension {dim}, but the size of the "
            f"dimension {input.shape[dim]} is not divisible by the split_size {spec}!"
        )
    return tensor_split(input, spec, dim)


def hsplit(input: Tensor, indices_or_sections: Any) -> tuple[Tensor, ...]:
    input = _tensor(input)
    return _split_dir("hsplit", input, indices_or_sections, 1 if input.ndim > 1 else 0, 1)


def vsplit(input: Tensor, indices_or_sections: Any) -> tuple[Tensor, ...]:
    return _split_dir("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input: Tensor, indices_or_sections: Any) -> tuple[Tensor, ...]:
    return _split_dir("dsplit", input, indices_or_sections, 2, 3)


def split_with_sizes(input: Tensor, split_sizes: Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    return split(input, list(split_sizes), dim)


unsafe_split = split
unsafe_chunk = chunk
unsafe_split_with_sizes = split_with_sizes


def repeat(input: Tensor, *sizes: Any) -> Tensor:
    """``input`` tiled ``sizes[i]`` times along each axis (leading new axes for extra sizes):
    an expand of interleaved unit axes and a reshape, so the gradient sums the copies."""
    input = _tensor(input)
    sizes = _shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError(
            f"repeat: number of dimensions of repeat dims ({len(sizes)}) can not be smaller "
            f"than number of dimensions of tensor ({input.ndim})"
        )
    shape = (1,) * (len(sizes) - input.ndim) + tuple(input.shape)
    unit = tuple(x for s in shape for x in (1, s))
    wide = tuple(x for r, s in zip(sizes, shape, strict=False) for x in (r, s))
    out = expand(reshape(input, unit), wide)
    return reshape(out, tuple(r * s for r, s in zip(sizes, shape, strict=False)))


def tile(input: Tensor, *dims: Any) -> Tensor:
    """``input`` repeated ``dims[i]`` times along each axis (missing leading dims are 1)."""
    input = _tensor(input)
    dims = _shape_arg(dims)
    return repeat(input, (1,) * (input.ndim - len(dims)) + dims)


def repeat_interleave(
    input: Any, repeats: Any = None, dim: int | None = None, *, output_size: int | None = None
) -> Tensor:
    """Each entry of ``input`` along ``dim`` (None: of ``input`` read as 1-d) repeated
    ``repeats`` times (an int, or one count per entry); ``repeat_interleave(repeats)`` gives
    the indices ``[0] * repeats[0] + [1] * repeats[1] + ...``."""
    if repeats is None:
        counts = _index_array("repeat_interleave", input).reshape(-1)
        return _const(np.repeat(np.arange(counts.size), counts))
    input = _tensor(input)
    x = reshape(input, (-1,)) if dim is None else _as_1d(input)
    d = -1 if dim is None else _norm_dim("repeat_interleave", dim, x.ndim)
    n = x.shape[d]
    counts = np.asarray(repeats._data if isinstance(repeats, Tensor) else repeats)
    if counts.dtype.kind not in "iu":
        raise RuntimeError(f"repeat_interleave: repeats must be integers, got {counts.dtype}")
    if counts.ndim > 1 or (counts.ndim == 1 and counts.size not in (1, n)):
        raise RuntimeError(
            f"repeat_interleave: repeats must have the same size as input along dim ({n}), "
            f"got shape {tuple(counts.shape)}"
        )
    if (counts < 0).any():
        raise RuntimeError("repeat_interleave: repeats can not be negative")
    idx = np.repeat(np.arange(n), np.broadcast_to(counts.reshape(-1), (n,)))
    if output_size is not None and idx.size != output_size:
        raise RuntimeError(f"repeat_interleave: output_size {output_size} != {idx.size}")
    return getitem(x, _along(d, idx))


def broadcast_tensors(*tensors: Any) -> tuple[Tensor, ...]:
    """The tensors expanded to their common broadcast shape (views)."""
    if len(tensors) == 1 and isinstance(tensors[0], list | tuple):
        tensors = tuple(tensors[0])
    ts = [_tensor(t) for t in tensors]
    shape = _broadcast_shape("broadcast_tensors", *(t.shape for t in ts))
    return tuple(_expand_to(t, shape) for t in ts)


def meshgrid(*tensors: Any, indexing: str | None = None) -> tuple[Tensor, ...]:
    """Coordinate grids of 1-d (or 0-d) tensors: ``indexing='ij'`` (the default) gives axis i
    from tensor i; ``'xy'`` swaps the first two axes (NumPy's default)."""
    if len(tensors) == 1 and isinstance(tensors[0], list | tuple):
        tensors = tuple(tensors[0])
    ts = [_tensor(t) for t in tensors]
    indexing = "ij" if indexing is None else indexing
    if indexing not in ("ij", "xy"):
        raise ValueError(
            f"torch.meshgrid: indexing must be one of 'xy' or 'ij', but received: {indexing}"
        )
    for t in ts:
        if t.ndim > 1:
            raise RuntimeError(
                f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {t.ndim}-d"
            )
    if len({t.dtype for t in ts}) > 1:
        raise RuntimeError("torch.meshgrid: expects all tensors to have the same dtype")
    sizes = [t.numel() for t in ts]
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, t in enumerate(ts):
        pos = (1 - i if i < 2 else i) if swap else i
        shape = [1] * len(ts)
        shape[pos] = t.numel()
        out.append(expand(reshape(t, tuple(shape)), tuple(sizes)))
    return tuple(out)


def cartesian_prod(*tensors: Any) -> Tensor:
    """The rows of all combinations of one entry from each 1-d tensor (itertools.product)."""
    ts = [_tensor(t) for t in tensors]
    for t in ts:
        if t.ndim != 1:
            raise RuntimeError(
                f"cartesian_prod: Expect a 1D vector, but got shape {tuple(t.shape)}"
            )
    if len(ts) == 1:
        return ts[0]
    return stack([reshape(g, (-1,)) for g in meshgrid(*_promoted(ts), indexing="ij")], 1)


def combinations(input: Tensor, r: int = 2, with_replacement: bool = False) -> Tensor:
    """The rows of all length-``r`` combinations of the entries of a 1-d tensor
    (itertools.combinations, or combinations_with_replacement)."""
    input = _tensor(input)
    if input.ndim != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape {tuple(input.shape)}")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return _const(np.empty((0,), dtype=input.dtype))
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    idx = np.array(list(pick(range(input.shape[0]), r)), dtype=np.int64).reshape(-1, r)
    return getitem(input, idx)  # (0, r) where there is no combination


def block_diag(*tensors: Any) -> Tensor:
    """The tensors (0-d, 1-d as one row, 2-d) as the diagonal blocks of one matrix, zeros
    elsewhere."""
    ts = _promoted(tensors)
    mats = []
    for i, t in enumerate(ts):
        if t.ndim > 2:
            raise RuntimeError(
                f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} "
                f"has {t.ndim} dimensions"
            )
        mats.append(reshape(t, (1, -1)) if t.ndim < 2 else t)
    if not mats:
        return _const(np.zeros((1, 0)))
    cols = builtins.sum(m.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        rows.append(pad(m, (left, cols - left - m.shape[1])))
        left += m.shape[1]
    return cat(rows, 0)


def rot90(input: Tensor, k: int = 1, dims: Sequence[int] = (0, 1)) -> Tensor:
    """``input`` rotated by 90 degrees ``k`` times in the plane ``dims`` (from the first axis
    towards the second)."""
    input = _tensor(input)
    dims = list(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.ndim}")
    a, b = (_norm_dim("rot90", x, input.ndim) for x in dims)
    if a == b:
        raise RuntimeError(
            f"expected rotation dims to be different, but got dim0 = {a} and dim1 = {b}"
        )
    k = int(k) % 4
    if k == 1:
        return transpose(flip(input, [b]), a, b)
    if k == 2:
        return flip(input, [a, b])
    if k == 3:
        return flip(transpose(input, a, b), [b])
    return OPS["clone"](input)


def fliplr(input: Tensor) -> Tensor:
    input = _tensor(input)
    if input.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(input, [1])


def flipud(input: Tensor) -> Tensor:
    input = _tensor(input)
    if input.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(input, [0])


def ravel(input: Tensor) -> Tensor:
    return reshape(input, (-1,))


def diagflat(input: Tensor, offset: int = 0) -> Tensor:
    """A matrix with ``input`` (read as 1-d) on its ``offset`` diagonal."""
    return diag_embed(reshape(input, (-1,)), offset)


_pad = pad


def constant_pad_nd(input: Tensor, pad: Sequence[int], value: float = 0) -> Tensor:
    """:func:`pad` with a constant (PyTorch's constant_pad_nd)."""
    return _pad(input, pad, value=value)


def unfold(input: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """Tensor.unfold: the windows of ``size`` entries every ``step`` along ``dimension``, as a
    new last axis (a gather; overlapping windows add up their gradients)."""
    input = _tensor(input)
    x = _as_1d(input)
    d = _norm_dim("unfold", dimension, x.ndim)
    n = x.shape[d]
    if size > n:
        raise RuntimeError(
            f"maximum size for tensor at dimension {dimension} is {n} but size is {size}"
        )
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    starts = np.arange(0, n - size + 1, step)
    idx = starts[:, None] + np.arange(size)[None, :]
    out = getitem(x, _along(d, idx))  # (..., windows, size, rest...)
    if input.ndim == 0:  # PyTorch: shape (size,)
        return reshape(out, (size,))
    return movedim(out, x.ndim + d + 1, -1)


def sum_to_size(input: Tensor, *size: Any) -> Tensor:
    """Tensor.sum_to_size: ``input`` summed to ``size``, a shape it broadcasts from."""
    input = _tensor(input)
    size = _shape_arg(size)
    lead = input.ndim - len(size)
    try:
        ok = lead >= 0 and np.broadcast_shapes(size, input.shape) == tuple(input.shape)
    except ValueError:
        ok = False
    if not ok:
        raise RuntimeError(f"size {list(size)} is not expandable to size {list(input.shape)}")
    dims = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(size) if s == 1 and input.shape[lead + i] != 1
    )
    if not dims:
        return input
    return reshape(sum(input, dims, keepdim=True), size)


# -- products ----------------------------------------------------------------------------------
def _scaled_sum(op: str, input: Any, product: Tensor, beta: Any, alpha: Any) -> Tensor:
    """beta * input + alpha * product, ``input`` broadcast to the product's shape; beta = 0
    ignores ``input`` (its nan and inf too), as PyTorch's."""
    input = _tensor(input)
    try:
        ok = np.broadcast_shapes(input.shape, product.shape) == tuple(product.shape)
    except ValueError:
        ok = False
    if not ok:
        raise RuntimeError(
            f"{op}: the input of shape {tuple(input.shape)} does not broadcast to the product's "
            f"shape {tuple(product.shape)}"
        )
    if alpha != 1:
        product = P.mul(product, alpha)
    if beta == 0:
        return product
    return P.add(input if beta == 1 else P.mul(input, beta), product)


def _is_colmajor(t: Tensor) -> bool:
    """Whether a matrix's memory is column-major (a transposed view such as ``W.T``)."""
    data = t._data
    return isinstance(data, np.ndarray) and data.flags.f_contiguous and not data.flags.c_contiguous


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """beta * input + alpha * (mat1 @ mat2): the table's ``addmm`` row (AddmmBackward0, as
    PyTorch's); inside ``func.vmap`` the product and the sum, which have batching rules."""
    m1, m2 = _tensor(mat1), _tensor(mat2)
    if _state.vmap:
        return _scaled_sum("addmm", input, mm(m1, m2), beta, alpha)
    if m1.ndim != 2 or m2.ndim != 2:
        raise RuntimeError(f"addmm: expected 2-D matrices, got {m1.ndim}-D and {m2.ndim}-D")
    _check_matmul("addmm", m1, m2)
    input = _tensor(input)
    product = (m1.shape[0], m2.shape[1])
    try:
        ok = np.broadcast_shapes(tuple(input.shape), product) == product
    except ValueError:
        ok = False
    if not ok:
        raise RuntimeError(
            f"addmm: the input of shape {tuple(input.shape)} does not broadcast to the product's "
            f"shape {product}"
        )
    return OPS["addmm"](input, m1, m2, beta=beta, alpha=alpha, mat2_colmajor=_is_colmajor(m2))


def addmv(input: Tensor, mat: Tensor, vec: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """beta * input + alpha * (mat @ vec)."""
    return _scaled_sum("addmv", input, mv(_tensor(mat), _tensor(vec)), beta, alpha)


def addbmm(
    input: Tensor, batch1: Tensor, batch2: Tensor, *, beta: Any = 1, alpha: Any = 1
) -> Tensor:
    """beta * input + alpha * sum_b (batch1[b] @ batch2[b])."""
    return _scaled_sum("addbmm", input, sum(bmm(_tensor(batch1), _tensor(batch2)), 0), beta, alpha)


def baddbmm(
    input: Tensor, batch1: Tensor, batch2: Tensor, *, beta: Any = 1, alpha: Any = 1
) -> Tensor:
    """beta * input + alpha * (batch1 @ batch2), per batch."""
    return _scaled_sum("baddbmm", input, bmm(_tensor(batch1), _tensor(batch2)), beta, alpha)


def addr(input: Tensor, vec1: Tensor, vec2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """beta * input + alpha * outer(vec1, vec2)."""
    v1, v2 = _tensor(vec1), _tensor(vec2)
    if v1.ndim != 1 or v2.ndim != 1:
        raise RuntimeError(f"addr: expected 1-D vectors, got {v1.ndim}-D and {v2.ndim}-D")
    return _scaled_sum("addr", input, OPS["outer"](v1, v2), beta, alpha)


def addcmul(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
    """input + value * tensor1 * tensor2 (all broadcast)."""
    prod_ = P.mul(tensor1, tensor2)
    return P.add(input, prod_ if value == 1 else P.mul(prod_, value))


def addcdiv(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
    """input + value * tensor1 / tensor2 (all broadcast)."""
    q = P.div(tensor1, tensor2)
    return P.add(input, q if value == 1 else P.mul(q, value))


def lerp(input: Tensor, end: Tensor, weight: Any) -> Tensor:
    """input + weight * (end - input) (``weight`` a number or a tensor; all broadcast)."""
    return P.add(input, P.mul(P.sub(end, input), weight))


# -- elementwise -------------------------------------------------------------------------------
def clamp_min(input: Tensor, min: Any) -> Tensor:  # noqa: A002
    return clamp(input, min=min)


def clamp_max(input: Tensor, max: Any) -> Tensor:  # noqa: A002
    return clamp(input, max=max)


def _nan_aware_pick(op: str, input: Any, other: Any, better: Any) -> Tensor:
    a, b = _tensor(input), _tensor(other)
    av, bv = np.asarray(_values(a)), np.asarray(_values(b))
    # the gradient goes where the value comes from: to input where it wins or ties, or where
    # other is nan (PyTorch's fmax/fmin)
    take_a = better(av, bv)
    if np.result_type(av, bv).kind in "fc":
        take_a = take_a | np.isnan(bv)
    return P.where(_const(take_a), a, b)


def fmax(input: Tensor, other: Tensor) -> Tensor:
    """The elementwise maximum, ignoring nan (nan only where both are nan)."""
    return _nan_aware_pick("fmax", input, other, np.greater_equal)


def fmin(input: Tensor, other: Tensor) -> Tensor:
    """The elementwise minimum, ignoring nan."""
    return _nan_aware_pick("fmin", input, other, np.less_equal)


def _to_float(x: Any, dtype: Any = None) -> Any:
    if isinstance(x, Tensor):
        want = np.dtype(dtype) if dtype is not None else (
            x.dtype if x.dtype.kind in "fc" else np.dtype(np.float64))  # fmt: skip
        return x if x.dtype == want else to_dtype(x, want)
    return x


def float_power(input: Any, exponent: Any) -> Tensor:
    """input ** exponent in double precision (complex128 where either is complex)."""
    complex_ = builtins.any(
        (isinstance(v, Tensor) and v.dtype.kind == "c") or isinstance(v, complex)
        for v in (input, exponent)
    )
    dt = np.complex128 if complex_ else np.float64
    a = _to_float(_tensor(input), dt)
    b = _to_float(exponent, dt) if isinstance(exponent, Tensor) else exponent
    return P.pow(a, b)


def ldexp(input: Tensor, other: Tensor) -> Tensor:
    """input * 2 ** other."""
    input = _tensor(input)
    other = _to_float(_tensor(other), input.dtype if input.dtype.kind in "fc" else None)
    return P.mul(_to_float(input), P.rpow(other, 2.0))


def deg2rad(input: Tensor) -> Tensor:
    return P.mul(_to_float(_tensor(input)), math.pi / 180)


def rad2deg(input: Tensor) -> Tensor:
    return P.mul(_to_float(_tensor(input)), 180 / math.pi)


def logaddexp2(input: Tensor, other: Tensor) -> Tensor:
    """log2(2 ** input + 2 ** other), stably (logaddexp of the inputs times ln 2)."""
    ln2 = math.log(2.0)
    return P.mul(P.logaddexp(P.mul(input, ln2), P.mul(other, ln2)), 1 / ln2)


def positive(input: Tensor) -> Tensor:
    return _tensor(input)


def nan_to_num(
    input: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None
) -> Tensor:
    """nan, inf and -inf replaced by ``nan``, ``posinf`` and ``neginf`` (default: the dtype's
    largest and lowest finite values); the replaced entries get no gradient."""
    input = _tensor(input)
    if input.dtype.kind not in "fc":
        return input
    data = np.asarray(_values(input))
    bad = ~np.isfinite(data)
    fixed = np.nan_to_num(data, nan=nan, posinf=posinf, neginf=neginf)
    return P.where(_const(bad), _const(fixed), input)


def isinf(input: Any) -> Tensor:
    return _nograd(np.isinf, input)


def isposinf(input: Any) -> Tensor:
    return _nograd(np.isposinf, input)


def isneginf(input: Any) -> Tensor:
    return _nograd(np.isneginf, input)


def isreal(input: Any) -> Tensor:
    return _nograd(np.isreal, input)


def isclose(
    input: Any, other: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False
) -> Tensor:
    """|input - other| <= atol + rtol |other|, elementwise."""
    return _nograd(np.isclose, input, other, rtol=rtol, atol=atol, equal_nan=equal_nan)


def signbit(input: Any) -> Tensor:
    return _nograd(np.signbit, input)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype: Any = np.int64, **_: Any) -> Tensor:
    """The (2, N) row and column indices of the lower triangle of a row x col matrix."""
    return _const(np.stack(np.tril_indices(row, offset, col)).astype(dtype).reshape(2, -1))


def triu_indices(row: int, col: int, offset: int = 0, *, dtype: Any = np.int64, **_: Any) -> Tensor:
    """The (2, N) row and column indices of the upper triangle of a row x col matrix."""
    return _const(np.stack(np.triu_indices(row, offset, col)).astype(dtype).reshape(2, -1))


# -- reductions --------------------------------------------------------------------------------
def nansum(input: Tensor, dim: Dims = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """The sum over ``dim`` with nan taken as 0 (nan entries get no gradient)."""
    input = _cast(_tensor(input), dtype)
    if input.dtype.kind in "fc":
        input = P.where(isnan(input), 0.0, input)
    return sum(input, dim, keepdim)


def nanmean(input: Tensor, dim: Dims = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """The mean over ``dim`` of the entries that are not nan."""
    input = _cast(_tensor(input), dtype)
    if input.dtype.kind not in "fc":
        raise RuntimeError(
            f"nanmean(): expected input to have floating point or complex dtype but got "
            f"{input.dtype}"
        )
    count = sum(to_dtype(logical_not(isnan(input)), input.dtype), dim, keepdim)
    return nansum(input, dim, keepdim) / count


def all(input: Any, dim: Dims = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    """Whether every entry over ``dim`` (None: all) is nonzero."""
    input = _tensor(input)
    dims = _norm_dims("all", dim, input.ndim)
    out = _nograd(np.all, input, axis=dims, keepdims=bool(keepdim))
    return out if input.dtype != np.uint8 else to_dtype(out, np.uint8)


def any(input: Any, dim: Dims = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    """Whether some entry over ``dim`` (None: all) is nonzero."""
    input = _tensor(input)
    dims = _norm_dims("any", dim, input.ndim)
    out = _nograd(np.any, input, axis=dims, keepdims=bool(keepdim))
    return out if input.dtype != np.uint8 else to_dtype(out, np.uint8)


def count_nonzero(input: Any, dim: Dims = None) -> Tensor:
    input = _tensor(input)
    dims = _norm_dims("count_nonzero", dim, input.ndim)
    return to_dtype(_nograd(np.count_nonzero, input, axis=dims), np.int64)


def logcumsumexp(input: Tensor, dim: int) -> Tensor:
    """log(cumsum(exp(input))) along ``dim``, stably: a scan of ``logaddexp`` by doubling
    strides (Hillis & Steele 1986): ceil(log2 n) steps, each exact where the values differ
    widely (no common shift that would underflow)."""
    input = _tensor(input)
    if input.ndim == 0:
        return reshape(logcumsumexp(_one_dim_0d("logcumsumexp", input, dim), -1), ())
    d = _norm_dim("logcumsumexp", dim, input.ndim)
    n = input.shape[d]
    if n <= 1:
        return OPS["clone"](input)
    y, s = input, 1
    while s < n:
        head = getitem(y, _along(d, slice(0, n - s)))
        shifted = OPS["pad"](head, pad=(0, 0) * (-d - 1) + (s, 0), value=-math.inf)
        y = P.logaddexp(y, shifted)
        s *= 2
    return y


CumResult = namedtuple("CumResult", ["values", "indices"])


def _cumulative_extreme(op: str, input: Any, dim: int) -> CumResult:
    input = _tensor(input)
    x = _as_1d(input)
    d = _norm_dim(op, dim, x.ndim)
    a = np.asarray(_values(x))
    axis = x.ndim + d
    acc = (np.maximum if op == "cummax" else np.minimum).accumulate(a, axis=axis)
    # the running extreme is (re)attained at ties too (PyTorch keeps the last index), and
    # nan, once seen, stays (each later nan taking over)
    hit = (a == acc) | np.isnan(a) if a.dtype.kind in "fc" else a == acc
    pos = np.arange(a.shape[axis]).reshape((-1,) + (1,) * (-d - 1))
    idx = np.maximum.accumulate(np.where(hit, pos, 0), axis=axis).astype(np.int64)
    values = take_along_axis(x, idx, d)
    if input.ndim == 0:
        return CumResult(reshape(values, ()), _const(idx.reshape(())))
    return CumResult(values, _const(idx))


def cummax(input: Tensor, dim: int) -> CumResult:
    """(values, indices) of the running maximum along ``dim``; the gradient goes to the entry
    each value is taken from."""
    return _cumulative_extreme("cummax", input, dim)


def cummin(input: Tensor, dim: int) -> CumResult:
    return _cumulative_extreme("cummin", input, dim)


AminmaxResult = namedtuple("AminmaxResult", ["min", "max"])


def aminmax(input: Tensor, *, dim: int | None = None, keepdim: bool = False) -> AminmaxResult:
    """(amin, amax) over ``dim`` (None: all)."""
    return AminmaxResult(amin(input, dim, keepdim), amax(input, dim, keepdim))


def var_mean(
    input: Tensor, dim: Any = None, unbiased: Any = _UNSET, keepdim: bool = False, *,
    correction: Any = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(var, mean) over ``dim`` (the signatures of :func:`var`)."""
    dim, correction, keepdim = _correction("var_mean", dim, unbiased, keepdim, correction)
    return var(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(
    input: Tensor, dim: Any = None, unbiased: Any = _UNSET, keepdim: bool = False, *,
    correction: Any = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(std, mean) over ``dim`` (the signatures of :func:`var`)."""
    dim, correction, keepdim = _correction("std_mean", dim, unbiased, keepdim, correction)
    return std(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim)


def dist(input: Tensor, other: Tensor, p: float = 2) -> Tensor:
    """The p-norm of input - other (over all entries)."""
    return OPS["linalg_vector_norm"](P.sub(input, other), ord=float(p), dim=None, keepdim=False)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode: str | None = None) -> Tensor:
    """The p-norm distances between the rows of ``x1`` (..., P, M) and of ``x2`` (..., R, M):
    shape (..., P, R), batch axes broadcast. Computed from the differences (not PyTorch's
    matmul form for large p=2 inputs, whose cancellation error this avoids)."""
    x1, x2 = _tensor(x1), _tensor(x2)
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(
            f"cdist: X1 and X2 must have at least 2 dimensions and the same number of columns, "
            f"got shapes {tuple(x1.shape)} and {tuple(x2.shape)}"
        )
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    diff = P.sub(unsqueeze(x1, -2), unsqueeze(x2, -3))
    return OPS["linalg_vector_norm"](diff, ord=float(p), dim=-1, keepdim=False)


def renorm(input: Tensor, p: float, dim: int, maxnorm: float) -> Tensor:
    """Each slice ``input.select(dim, i)`` whose p-norm exceeds ``maxnorm`` scaled to norm
    ``maxnorm`` (PyTorch's factor maxnorm / (norm + 1e-7)); differentiated through the norm."""
    input = _tensor(input)
    if p <= 0:
        raise RuntimeError(f"renorm: non-positive-norm not supported, got p = {p}")
    d = _norm_dim("renorm", dim, input.ndim)
    others = tuple(a for a in range(-input.ndim, 0) if a != d)
    norms = OPS["linalg_vector_norm"](input, ord=float(p), dim=others, keepdim=True)
    over = _const(np.asarray(_values(norms)) > maxnorm)
    factor = P.where(over, P.div(float(maxnorm), P.add(norms, 1e-7)), 1.0)
    return P.mul(input, factor)


def diff(
    input: Tensor, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None
) -> Tensor:
    """The n-th forward difference along ``dim``, of ``input`` with ``prepend`` and
    ``append`` joined on first (booleans: ``!=``)."""
    input = _tensor(input)
    if input.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    d = _norm_dim("diff", dim, input.ndim)
    if n == 0:  # PyTorch: the input itself, prepend and append ignored
        return input
    parts = [_tensor(t) for t in (prepend, input, append) if t is not None]
    x = cat(_promoted(parts), d) if len(parts) > 1 else input
    for _ in range(int(n)):
        m = x.shape[d]
        if m == 0:
            break
        hi = getitem(x, _along(d, slice(1, None)))
        lo = getitem(x, _along(d, slice(0, m - 1)))
        x = ne(hi, lo) if x.dtype == np.bool_ else P.sub(hi, lo)
    return x


def _spacing(y: Tensor, x: Any, dx: Any, d: int, op: str) -> Any:
    """The interval widths along ``d``: diff(x) (x 1-d, or broadcast against y) or dx."""
    if x is None:
        return 1.0 if dx is None else dx
    if dx is not None:
        raise RuntimeError(f"{op}: only one of x and dx may be given")
    x = _tensor(x)
    if x.ndim == 1:
        if x.shape[0] != y.shape[d]:
            raise RuntimeError(
                f"{op}: There must be one `x` value for each sample point: x has {x.shape[0]}, "
                f"y has {y.shape[d]} along dim {d}"
            )
        w = diff(x)
        return reshape(w, (w.shape[0],) + (1,) * (-d - 1))
    return diff(x, 1, d)


def trapezoid(y: Tensor, x: Any = None, *, dx: Any = None, dim: int = -1) -> Tensor:
    """The trapezoidal rule along ``dim``: sum of w_i (y_i + y_{i+1}) / 2 with w the
    spacing (``x``'s differences, or ``dx``, default 1)."""
    y = _tensor(y)
    d = _norm_dim("trapezoid", dim, y.ndim)
    n = y.shape[d]
    w = _spacing(y, x, dx, d, "trapezoid")
    if n == 0:
        return sum(y, d) * 0.0
    mid = P.add(getitem(y, _along(d, slice(1, None))), getitem(y, _along(d, slice(0, n - 1))))
    return sum(P.mul(P.mul(mid, w), 0.5), d)


trapz = trapezoid


def cumulative_trapezoid(y: Tensor, x: Any = None, *, dx: Any = None, dim: int = -1) -> Tensor:
    """The running trapezoidal integral along ``dim`` (one entry less than ``y``)."""
    y = _tensor(y)
    d = _norm_dim("cumulative_trapezoid", dim, y.ndim)
    n = y.shape[d]
    w = _spacing(y, x, dx, d, "cumulative_trapezoid")
    if n == 0:
        return y
    mid = P.add(getitem(y, _along(d, slice(1, None))), getitem(y, _along(d, slice(0, n - 1))))
    return cumsum(P.mul(P.mul(mid, w), 0.5), d)


def cov(
    input: Tensor, *, correction: int = 1, fweights: Any = None, aweights: Any = None
) -> Tensor:
    """The covariance matrix of the variables in the rows of ``input`` (observations in the
    columns; a 1-d input is one variable), with frequency and observation weights as
    ``numpy.cov``; a 0-d result for one variable."""
    input = _tensor(input)
    if input.ndim > 2:
        raise RuntimeError(
            "cov(): expected input to have two or fewer dimensions but got an input with "
            f"{input.ndim} dimensions"
        )
    x = reshape(input, (1, -1)) if input.ndim < 2 else input
    if x.dtype.kind not in "fc":
        x = to_dtype(x, np.float64)
    n = x.shape[1]
    w = None
    # the weights keep their dtypes (PyTorch's cov computes their sums in them)
    if fweights is not None and _tensor(fweights).dtype.kind not in "iu":
        raise RuntimeError(
            f"cov(): expected fweights to have integral dtype, got {_tensor(fweights).dtype}"
        )
    if fweights is not None and aweights is not None:
        fweights = to_dtype(_tensor(fweights), _tensor(aweights).dtype)
    for name, wt in (("fweights", fweights), ("aweights", aweights)):
        if wt is None:
            continue
        wt = _tensor(wt)
        if wt.ndim > 1 or wt.numel() != n:
            raise RuntimeError(
                f"cov(): expected {name} to have one dimension of size {n}, got shape "
                f"{tuple(wt.shape)}"
            )
        if builtins.any(np.asarray(_values(wt)).reshape(-1) < 0):
            raise RuntimeError(f"cov(): {name} cannot be negative")
        wt = reshape(wt, (-1,))
        w = wt if w is None else P.mul(w, wt)
    if w is None:
        avg = mean(x, 1, keepdim=True)
        norm: Any = builtins.max(n - correction, 0)
        xc = P.sub(x, avg)
        xt = transpose(OPS["conj"](xc) if x.dtype.kind == "c" else xc, 0, 1)
        c = matmul(xc, xt)
    else:
        w_sum = sum(w)
        avg = P.div(sum(P.mul(x, w), 1, keepdim=True), w_sum)
        if correction == 0:
            norm = w_sum
        elif aweights is None:
            norm = P.sub(w_sum, correction)
        else:
            a = reshape(_tensor(aweights), (-1,))
            norm = P.sub(w_sum, P.mul(P.div(sum(P.mul(w, a)), w_sum), correction))
        norm = P.where(_const(np.asarray(_values(norm)) <= 0), 0.0, norm)
        xc = P.sub(x, avg)
        c = matmul(P.mul(xc, w), transpose(xc, 0, 1))
    out = P.div(c, norm)
    return reshape(out, ()) if out.shape == (1, 1) else out


def corrcoef(input: Tensor) -> Tensor:
    """Pearson correlation coefficients of the rows of ``input`` (cov normalised by the
    standard deviations, clipped to [-1, 1])."""
    c = cov(input)
    if c.ndim == 0:
        return P.div(c, c)
    std_ = P.sqrt(diagonal(c, 0, 0, 1))
    c = P.div(P.div(c, unsqueeze(std_, 1)), unsqueeze(std_, 0))
    return clamp(c, -1.0, 1.0)


# -- sorting and order statistics --------------------------------------------------------------
SortResult = namedtuple("SortResult", ["values", "indices"])


def _order(a: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """The stable sorting permutation along ``axis`` (nan last ascending, first descending;
    equal entries keep their order either way)."""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    n = a.shape[axis]
    order = np.argsort(np.flip(a, axis), axis=axis, kind="stable")
    return n - 1 - np.flip(order, axis)


def _along_parts(op: str, input: Any, dim: int) -> tuple[Tensor, Tensor, int, np.ndarray]:
    input = _tensor(input)
    x = _as_1d(input)
    d = _norm_dim(op, dim, x.ndim)
    return input, x, d, np.asarray(_values(x))


def _picked(input: Tensor, x: Tensor, d: int, idx: np.ndarray, keepdim: bool) -> SortResult:
    """(values, indices) at ``idx`` (keepdim-shaped) along ``d``; the gradient goes to them."""
    values = take_along_axis(x, idx, d)
    if input.ndim == 0:
        return SortResult(reshape(values, ()), _const(idx.reshape(())))
    if keepdim:
        return SortResult(values, _const(idx))
    return SortResult(squeeze(values, d), _const(np.squeeze(idx, x.ndim + d)))


def sort(
    input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False
) -> SortResult:
    """(values, indices) sorted along ``dim``; always stable (equal entries keep their
    order), nan sorted as the largest value. The gradient goes back through the indices."""
    input, x, d, a = _along_parts("sort", input, dim)
    idx = _order(a, x.ndim + d, bool(descending)).astype(np.int64)
    values = take_along_axis(x, idx, d)
    if input.ndim == 0:
        return SortResult(reshape(values, ()), _const(idx.reshape(())))
    return SortResult(values, _const(idx))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort ``input`` along ``dim`` (stable)."""
    return sort(input, dim, descending, stable).indices


def msort(input: Tensor) -> Tensor:
    """``input`` sorted along its first axis."""
    return sort(input, 0).values


def topk(
    input: Tensor,
    k: int,
    dim: int = -1,
    largest: bool = True,
    sorted: bool = True,  # noqa: A002
) -> SortResult:
    """(values, indices) of the ``k`` largest (smallest) entries along ``dim``, in sorted
    order (also for ``sorted=False``, where PyTorch's order is unspecified)."""
    input, x, d, a = _along_parts("topk", input, dim)
    n = x.shape[d]
    if not 0 <= k <= n:
        raise RuntimeError(
            f"topk(): selected index k out of range (k = {k}, size {n} along dim {dim})"
        )
    idx = _order(a, x.ndim + d, bool(largest))[_along(d, slice(0, int(k)))].astype(np.int64)
    return _picked(input, x, d, idx, True)


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> SortResult:
    """(values, indices) of the k-th smallest entry (1-based) along ``dim``."""
    input, x, d, a = _along_parts("kthvalue", input, dim)
    n = x.shape[d]
    if not 1 <= k <= n:
        raise IndexError(
            f"kthvalue(): selected number k out of range for dimension {dim} (k = {k}, size {n})"
        )
    idx = _order(a, x.ndim + d, False)[_along(d, slice(int(k) - 1, int(k)))].astype(np.int64)
    return _picked(input, x, d, idx, keepdim)


def _median_index(a: np.ndarray, axis: int, ignore_nan: bool) -> np.ndarray:
    """The keepdim-shaped index of the lower median along ``axis`` (median: the first nan of
    a slice with one; nanmedian: of the entries that are not nan)."""
    order = _order(a, axis, False)
    nan = np.isnan(a) if a.dtype.kind in "fc" else np.zeros(a.shape, dtype=bool)
    count = a.shape[axis] - nan.sum(axis=axis, keepdims=True)
    if ignore_nan:
        k = np.maximum(count - 1, 0) // 2
    else:
        k = np.where(count < a.shape[axis], count, (a.shape[axis] - 1) // 2)
    return np.take_along_axis(order, k, axis).astype(np.int64)


def _median(op: str, input: Any, dim: Any, keepdim: bool, ignore_nan: bool) -> Any:
    input = _tensor(input)
    if dim is None:
        a = np.asarray(_values(input)).reshape(-1)
        if a.size == 0:
            return _const(np.array(np.nan, dtype=input.dtype))
        i = _median_index(a, 0, ignore_nan)[0]
        m = a[i]
        # the gradient is shared evenly by the entries equal to the median (PyTorch's
        # evenly_distribute_backward): m + sum(where(x == m, x - m, 0)) / count
        same = (a == m) | (np.isnan(a) & np.isnan(m)) if a.dtype.kind in "fc" else a == m
        if input.dtype.kind not in "fc":
            return _const(np.asarray(m))
        shaped = same.reshape(input.shape)
        part = P.where(_const(shaped), P.sub(input, float(m)), 0.0)
        return P.add(P.div(sum(part), float(same.sum())), float(m))
    input, x, d, a = _along_parts(op, input, dim)
    if x.shape[d] == 0:
        raise IndexError(f"{op}(): Expected reduction dim {dim} to have non-zero size.")
    idx = _median_index(a, x.ndim + d, ignore_nan)
    return _picked(input, x, d, idx, keepdim)


def median(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """``median(x)``: the lower median of all entries (nan if there is one; the gradient is
    shared by the entries equal to it); ``median(x, dim)``: (values, indices) along ``dim``,
    the gradient going to the index."""
    return _median("median", input, dim, keepdim, False)


def nanmedian(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """:func:`median` of the entries that are not nan."""
    return _median("nanmedian", input, dim, keepdim, True)


def mode(input: Tensor, dim: int = -1, keepdim: bool = False) -> SortResult:
    """(values, indices) of the most frequent value along ``dim`` (ties: the smallest value;
    its index: the last place it appears)."""
    input, x, d, a = _along_parts("mode", input, dim)
    axis = x.ndim + d
    moved = np.moveaxis(a, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    if flat.shape[-1] == 0:
        raise IndexError(f"mode(): Expected reduction dim {dim} to have non-zero size.")
    picks = np.empty(flat.shape[0], dtype=np.int64)
    for r, row in enumerate(flat):
        values, counts = np.unique(row, return_counts=True)
        best = values[np.argmax(counts)]  # np.unique sorts: the first maximum is the smallest
        picks[r] = np.flatnonzero((row == best) | (np.isnan(row) & np.isnan(best)))[-1]
    idx = np.expand_dims(picks.reshape(moved.shape[:-1]), axis)
    return _picked(input, x, d, idx, keepdim)


_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(
    op: str, input: Any, q: Any, dim: Any, keepdim: bool, interpolation: str, ignore_nan: bool
) -> Tensor:
    input = _tensor(input)
    if input.dtype.kind != "f":
        raise RuntimeError(
            f"{op}() input tensor must be either float or double dtype, got {input.dtype}"
        )
    if isinstance(q, Tensor) and q.dtype != input.dtype:
        raise RuntimeError(
            f"{op}() q tensor must be same dtype as the input tensor ({q.dtype}, {input.dtype})"
        )
    qv = np.asarray(_values(q) if isinstance(q, Tensor) else q, dtype=input.dtype)
    if qv.ndim > 1:
        raise RuntimeError(f"{op}() q must be a scalar or 1D tensor, got shape {tuple(qv.shape)}")
    if ((qv < 0) | (qv > 1)).any():
        raise RuntimeError(f"{op}() q values must be in the range [0, 1]")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(
            f"{op}() interpolation must be one of {', '.join(_INTERPOLATIONS)}, got "
            f"{interpolation!r}"
        )
    if input.numel() == 0:
        raise RuntimeError(f"{op}() input tensor must be non-empty")
    if dim is None:
        x, d = reshape(input, (-1,)), -1
    else:
        x = _as_1d(input)
        d = _norm_dim(op, dim, x.ndim)
    xm = movedim(x, d, -1) if d != -1 else x
    a = np.asarray(_values(xm))
    n = a.shape[-1]
    order = np.argsort(a, axis=-1, kind="stable")
    ordered = take_along_axis(xm, order, -1)
    nan = np.isnan(a)
    if ignore_nan:
        scale = np.maximum(n - nan.sum(-1, keepdims=True) - 1, 0)
        live = np.ones(scale.shape, dtype=bool)
    else:  # a slice with nan has quantile nan: read its last sorted entry
        scale = np.full(a.shape[:-1] + (1,), n - 1)
        live = ~nan.any(-1, keepdims=True)
    ranks = np.where(live, qv.reshape(-1) * scale, n - 1)
    ranks = np.broadcast_to(ranks, a.shape[:-1] + (qv.size,))
    if interpolation in ("lower", "higher", "nearest"):
        pick = {"lower": np.floor, "higher": np.ceil, "nearest": np.round}[interpolation]
        out = take_along_axis(ordered, pick(ranks).astype(np.int64), -1)
    else:
        lo, hi = np.floor(ranks), np.ceil(ranks)
        weight = np.full(ranks.shape, 0.5) if interpolation == "midpoint" else ranks - lo
        weight_t = _const(weight.astype(input.dtype))
        if interpolation == "linear" and isinstance(q, Tensor) and q.requires_grad:
            # the weights depend on q (rank = q (n - 1)): its gradient goes through them
            rank_t = P.mul(reshape(q, (-1,)), _const(scale.astype(input.dtype)))
            live_t = _const(np.broadcast_to(live, ranks.shape))
            weight_t = P.where(live_t, P.sub(rank_t, _const(lo.astype(input.dtype))), 0.0)
        below = take_along_axis(ordered, lo.astype(np.int64), -1)
        above = take_along_axis(ordered, hi.astype(np.int64), -1)
        out = lerp(below, above, weight_t)
    if keepdim:
        if dim is None:
            kept = (1,) * input.ndim
        else:
            kept = list(x.shape)
            kept[x.ndim + d] = 1
            kept = tuple(kept) if input.ndim else ()
        out = reshape(out, kept + (qv.size,))
    if qv.ndim == 0:
        return squeeze(out, -1)
    return movedim(out, -1, 0)


def quantile(
    input: Tensor, q: Any, dim: int | None = None, keepdim: bool = False, *,
    interpolation: str = "linear",
) -> Tensor:  # fmt: skip
    """The ``q``-quantiles (a number or a 1-d tensor in [0, 1]; a 1-d q becomes the first
    axis) along ``dim`` (None: all entries), interpolated between the sorted entries as
    ``interpolation`` says; nan where a slice has nan."""
    return _quantile("quantile", input, q, dim, keepdim, interpolation, False)


def nanquantile(
    input: Tensor, q: Any, dim: int | None = None, keepdim: bool = False, *,
    interpolation: str = "linear",
) -> Tensor:  # fmt: skip
    """:func:`quantile` of the entries that are not nan."""
    return _quantile("nanquantile", input, q, dim, keepdim, interpolation, True)


diagonal_copy = _copy_of(diagonal, "diagonal_copy")
permute_copy = _copy_of(permute, "permute_copy")
squeeze_copy = _copy_of(squeeze, "squeeze_copy")
unsqueeze_copy = _copy_of(unsqueeze, "unsqueeze_copy")
transpose_copy = _copy_of(transpose, "transpose_copy")
t_copy = _copy_of(t, "t_copy")
view_copy = _copy_of(reshape, "view_copy")
unbind_copy = _copy_of(unbind, "unbind_copy")
narrow_copy = _copy_of(narrow, "narrow_copy")
select_copy = _copy_of(select, "select_copy")
split_copy = _copy_of(split, "split_copy")
split_with_sizes_copy = _copy_of(split_with_sizes, "split_with_sizes_copy")
unfold_copy = _copy_of(unfold, "unfold_copy")
as_strided_copy = _copy_of(as_strided, "as_strided_copy")
alias_copy = _copy_of(_alias, "alias_copy")


def expand_copy(input: Tensor, size: Sequence[int], *, implicit: bool = False) -> Tensor:
    """The values of :func:`expand` in new memory (not a view)."""
    return OPS["clone"](expand(input, tuple(size)))


__all__ += [
    "addbmm", "addcdiv", "addcmul", "addmm", "addmv", "addr", "alias_copy", "all", "aminmax",
    "any", "argsort", "as_strided", "as_strided_copy", "as_strided_scatter", "atleast_1d",
    "atleast_2d", "atleast_3d", "baddbmm", "block_diag", "broadcast_tensors", "cartesian_prod",
    "cdist", "clamp_max", "clamp_min", "column_stack", "combinations", "constant_pad_nd",
    "corrcoef", "count_nonzero", "cov", "cummax", "cummin", "cumulative_trapezoid", "deg2rad",
    "diagflat", "diagonal_copy", "diagonal_scatter", "diff", "dist", "dsplit", "dstack",
    "expand_copy", "float_power", "fliplr", "flipud", "fmax", "fmin", "gather", "hsplit",
    "hstack", "index_add", "index_copy", "index_fill", "index_reduce", "index_select",
    "isclose", "isinf", "isneginf", "isposinf", "isreal", "kthvalue", "ldexp", "lerp",
    "logaddexp2", "logcumsumexp", "masked_fill", "masked_scatter", "masked_select", "median",
    "meshgrid", "mode", "moveaxis", "movedim", "msort", "nan_to_num", "nanmean", "nanmedian",
    "nanquantile", "nansum", "narrow_copy", "permute_copy", "positive", "put", "quantile",
    "rad2deg", "ravel", "renorm", "repeat_interleave", "rot90", "row_stack", "scatter",
    "scatter_add", "scatter_reduce", "select_copy", "select_scatter", "signbit",
    "slice_scatter", "sort", "split_copy", "split_with_sizes", "split_with_sizes_copy",
    "squeeze_copy", "std_mean", "swapdims", "t_copy", "take", "take_along_dim",
    "tensor_split", "tile", "topk", "transpose_copy", "trapezoid", "trapz", "tril_indices",
    "triu_indices", "true_divide", "unbind_copy", "unfold_copy", "unsafe_chunk",
    "unsafe_split", "unsafe_split_with_sizes", "unsqueeze_copy", "var_mean", "view_copy",
    "vsplit", "vstack", "fill", "zero_", "frexp", "resolve_neg", "gradient",
]  # fmt: skip


def fill(input: Tensor, value: Any) -> Tensor:
    """A tensor like ``input`` filled with ``value`` (a number, or a 0-d tensor, which gets
    the sum of the gradient)."""
    input = _tensor(input)
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(
                f"fill only supports 0-dimension value tensor but got tensor with {value.ndim} "
                "dimensions."
            )
        value = value if value.dtype == input.dtype else to_dtype(value, input.dtype)
        return OPS["clone"](expand(value, input.shape))
    return full_like(input, value)


def zero_(input: Tensor) -> Tensor:
    """``input`` set to zeros in place (``torch.zero_``)."""
    return input.zero_()


FrexpResult = namedtuple("FrexpResult", ["mantissa", "exponent"])


def frexp(input: Tensor) -> FrexpResult:
    """(mantissa, exponent) with input = mantissa * 2 ** exponent, |mantissa| in [0.5, 1);
    the mantissa's gradient is grad / 2 ** exponent."""
    input = _tensor(input)
    if input.dtype.kind != "f":
        raise RuntimeError(f"torch.frexp() only supports floating-point dtypes, got {input.dtype}")
    _, exponent = np.frexp(np.asarray(_values(input)))
    scale = np.ldexp(np.ones((), dtype=input.dtype), -exponent).astype(input.dtype)
    return FrexpResult(P.mul(input, _const(scale)), _const(exponent.astype(np.int32)))


def resolve_neg(input: Tensor) -> Tensor:
    """``input`` itself: matgrad tensors carry no lazy negation bit."""
    return _tensor(input)


def gradient(
    input: Tensor, *, spacing: Any = None, dim: Any = None, edge_order: int = 1
) -> tuple[Tensor, ...]:
    """The derivative estimated along each axis of ``dim`` (None: all) by second-order central
    differences inside and first- or second-order (``edge_order``) one-sided differences at
    the ends (NumPy's ``gradient``). ``spacing``: a number or one per axis (uniform steps),
    or one coordinate tensor per axis."""
    input = _tensor(input)
    dims = list(range(input.ndim)) if dim is None else (
        [dim] if isinstance(dim, int) else list(dim))  # fmt: skip
    dims = [_norm_dim("gradient", d, input.ndim) for d in dims]
    if isinstance(spacing, list | tuple):
        if len(spacing) != len(dims):
            raise RuntimeError(
                f"torch.gradient expected spacing to be unspecified, a scalar or it's spacing "
                f"and dim arguments to have the same length, but got a spacing argument of "
                f"length {len(spacing)} and a dim argument of length {len(dims)}."
            )
        steps = list(spacing)
    else:
        steps = [spacing] * len(dims)
    if edge_order not in (1, 2):
        raise RuntimeError("torch.gradient only supports edge_order=1 and edge_order=2.")
    out = []
    for d, h in zip(dims, steps, strict=True):
        n = input.shape[d]
        if n < edge_order + 1:
            raise RuntimeError(
                f"torch.gradient expected each dimension size to be at least edge_order+1, "
                f"got size {n} along dim {d}"
            )
        h = 1.0 if h is None else _values(h) if isinstance(h, Tensor) else h
        out.append(_gradient_along(input, d, np.asarray(h, dtype=np.float64), edge_order))
    return tuple(out)


def _gradient_along(f: Tensor, d: int, h: np.ndarray, edge_order: int) -> Tensor:
    n = f.shape[d]

    def at(s: Any) -> Tensor:
        return getitem(f, _along(d, s))

    def w(c: np.ndarray) -> Any:  # coefficients broadcast along d
        c = np.asarray(c, dtype=f.dtype)
        return _const(c.reshape((-1,) + (1,) * (-d - 1))) if c.ndim else float(c)

    if h.ndim == 0:
        dx1 = dx2 = np.full(n - 1, float(h))
    else:  # coordinates
        dx = np.diff(h)
        dx1, dx2 = dx, dx
    a1, a2 = dx1[:-1], dx2[1:]  # the steps before and after each interior point
    # interior: -a2/(a1(a1+a2)) f[i-1] + (a2-a1)/(a1 a2) f[i] + a1/(a2(a1+a2)) f[i+1]
    inner = (at(slice(0, n - 2)) * w(-a2 / (a1 * (a1 + a2)))
             + at(slice(1, n - 1)) * w((a2 - a1) / (a1 * a2))
             + at(slice(2, n)) * w(a1 / (a2 * (a1 + a2))))  # fmt: skip
    if edge_order == 1:
        first = (at(slice(1, 2)) - at(slice(0, 1))) * w(1 / dx1[0])
        last = (at(slice(n - 1, n)) - at(slice(n - 2, n - 1))) * w(1 / dx1[-1])
    else:
        b1, b2 = dx1[0], dx1[1]
        first = (at(slice(0, 1)) * w(-(2 * b1 + b2) / (b1 * (b1 + b2)))
                 + at(slice(1, 2)) * w((b1 + b2) / (b1 * b2))
                 + at(slice(2, 3)) * w(-b1 / (b2 * (b1 + b2))))  # fmt: skip
        c1, c2 = dx1[-2], dx1[-1]
        last = (at(slice(n - 3, n - 2)) * w(c2 / (c1 * (c1 + c2)))
                + at(slice(n - 2, n - 1)) * w(-(c2 + c1) / (c1 * c2))
                + at(slice(n - 1, n)) * w((2 * c2 + c1) / (c2 * (c1 + c2))))  # fmt: skip
    return cat([first, inner, last], d)
