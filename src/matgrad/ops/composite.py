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
    return input - logsumexp(input, _norm_dim("log_softmax", dim, input.ndim), keepdim=True)


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
        return index._data
    if isinstance(index, list):
        arr = np.asarray(index)
        if arr.dtype.kind not in "iub":
            raise IndexError(f"list indices must hold integers or booleans, got {arr.dtype}")
        return arr
    return index


def getitem(input: Tensor, index: Any) -> Tensor:
    """``input[index]``: basic slicing, integer and boolean array indexing (NumPy rules)."""
    return OPS["getitem"](input, index=raw_index(index))


def _index_array(op: str, indices: Any) -> Any:
    arr = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"{op}: indices must be integers, got dtype {arr.dtype}")
    return arr


def take_along_axis(input: Tensor, indices: Any, dim: int = -1) -> Tensor:
    """``out[..., j, ...] = input[..., indices[..., j, ...], ...]`` along ``dim`` (NumPy's
    ``take_along_axis``; PyTorch's ``take_along_dim`` with a dim); the gradient scatter-adds."""
    input = _tensor(input)
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
    if isinstance(indices, list) or (isinstance(indices, tuple) and builtins.all(
        i is None or isinstance(i, Tensor | np.ndarray) for i in indices
    )):  # PyTorch's list of index tensors: None takes the whole axis (NumPy: a new axis)
        indices = tuple(slice(None) if i is None else i for i in indices)
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
    data = input._data
    if out.numel() > 1 and isinstance(data, np.ndarray) and not out._is_view():
        raise RuntimeError(
            f"view size {tuple(out.shape)} is not compatible with input tensor's size "
            f"{tuple(input.shape)} and stride (the memory is not contiguous). Use "
            ".reshape(...) instead."
        )
    return out
