"""The standard's manipulation functions: reshapes, broadcasts, permutations and gathers,
all differentiable."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.tensor_base import Tensor
from ..ops import composite as _ops
from ..ops.registry import PRIMITIVES as _P
from ._creation import _tensor
from ._helpers import _axes, _normalize_axis, _raw, _shape_tuple
from ._indexing import take

__all__ = [
    "broadcast_arrays",
    "broadcast_to",
    "concat",
    "expand_dims",
    "flip",
    "moveaxis",
    "permute_dims",
    "repeat",
    "reshape",
    "roll",
    "squeeze",
    "stack",
    "tile",
    "unstack",
]


def broadcast_arrays(*arrays: Tensor) -> list[Tensor]:
    ts = [_tensor(a) for a in arrays]
    shape = np.broadcast_shapes(*(t.shape for t in ts))
    return [t if t.shape == shape else _ops.expand(t, shape) for t in ts]


def broadcast_to(x: Tensor, /, shape: Any) -> Tensor:
    x = _tensor(x)
    shape = _shape_tuple(shape)
    if np.broadcast_shapes(x.shape, shape) != shape:  # ValueError if incompatible
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return _ops.expand(x, shape)


def concat(arrays: Sequence[Tensor], /, *, axis: int | None = 0) -> Tensor:
    ts = [_tensor(a) for a in arrays]
    if axis is None:
        ts = [_ops.reshape(t, (-1,)) for t in ts]
        axis = 0
    try:
        return _ops.cat(ts, axis)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None


def expand_dims(x: Tensor, /, axis: int = 0) -> Tensor:
    x = _tensor(x)
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise IndexError(f"expand_dims: axis {axis} is out of range for {x.ndim} dimension(s)")
    return _ops.unsqueeze(x, axis)


def flip(x: Tensor, /, *, axis: Any = None) -> Tensor:
    return _ops.flip(_tensor(x), _axes(axis))


def moveaxis(x: Tensor, source: Any, destination: Any, /) -> Tensor:
    x = _tensor(x)
    src = [source] if isinstance(source, int | np.integer) else list(source)
    dst = [destination] if isinstance(destination, int | np.integer) else list(destination)
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination need as many axes")
    src = [_normalize_axis(int(a), x.ndim, "moveaxis") for a in src]
    dst = [_normalize_axis(int(a), x.ndim, "moveaxis") for a in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError("moveaxis: repeated axis")
    order = [a for a in range(x.ndim) if a not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return _ops.permute(x, tuple(order)) if x.ndim else x


def permute_dims(x: Tensor, /, axes: Any) -> Tensor:
    return _ops.permute(_tensor(x), tuple(int(a) for a in axes))


def repeat(x: Tensor, repeats: Any, /, *, axis: int | None = None) -> Tensor:
    """Each element repeated ``repeats`` times (an int or one count per element) along
    ``axis`` (of the flattened ``x`` when None); differentiable (a gather)."""
    x = _tensor(x)
    if axis is None:
        x = _ops.reshape(x, (-1,))
        axis = 0
    ax = _normalize_axis(axis, x.ndim, "repeat")
    counts = _raw(repeats)
    positions = np.repeat(np.arange(x.shape[ax]), counts)
    return take(x, positions, axis=ax)


def reshape(x: Tensor, /, shape: Any, *, copy: builtins.bool | None = None) -> Tensor:
    x = _tensor(x)
    shape = _shape_tuple(shape)
    if copy is False and isinstance(x._data, np.ndarray):
        np.reshape(x._data, shape, copy=False)  # ValueError where a copy would be needed
    try:
        out = _ops.reshape(x, shape)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None
    return _P.clone(out) if copy else out


def roll(x: Tensor, /, shift: Any, *, axis: Any = None) -> Tensor:
    x = _tensor(x)
    if axis is None:
        return _ops.roll(x, int(builtins.sum(np.atleast_1d(shift))))
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    shifts = (shift,) * len(axes) if isinstance(shift, int | np.integer) else tuple(shift)
    return _ops.roll(x, tuple(int(s) for s in shifts), tuple(int(a) for a in axes))


def squeeze(x: Tensor, /, axis: Any) -> Tensor:
    x = _tensor(x)
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    norm = [_normalize_axis(int(a), x.ndim, "squeeze") for a in axes]
    if len(set(norm)) != len(norm):
        raise ValueError(f"squeeze: repeated axis in {axis!r}")
    for a in norm:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {x.shape[a]}, not 1")
    return _ops.squeeze(x, tuple(norm)) if norm else x


def stack(arrays: Sequence[Tensor], /, *, axis: int = 0) -> Tensor:
    ts = [_tensor(a) for a in arrays]
    try:
        return _ops.stack(ts, axis)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None


def tile(x: Tensor, repetitions: Any, /) -> Tensor:
    """``x`` repeated ``repetitions[i]`` times along axis i (one broadcast and a reshape;
    differentiable)."""
    x = _tensor(x)
    reps = tuple(int(r) for r in repetitions)
    nd = builtins.max(x.ndim, len(reps))
    reps = (1,) * (nd - len(reps)) + reps
    shape = (1,) * (nd - x.ndim) + tuple(x.shape)
    interleaved = tuple(v for s in shape for v in (1, s))
    expanded = tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s))
    out = _ops.expand(_ops.reshape(x, interleaved), expanded)
    return _ops.reshape(out, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def unstack(x: Tensor, /, *, axis: int = 0) -> tuple[Tensor, ...]:
    x = _tensor(x)
    return _ops.unbind(x, _normalize_axis(axis, x.ndim, "unstack"))
