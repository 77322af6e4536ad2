"""The standard's data type functions (the dtypes themselves are in :mod:`._dtypes`)."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..backend import arrays as _backend
from ..core.tensor_base import Tensor
from ..ops.registry import PRIMITIVES as _P
from ._creation import _tensor
from ._helpers import _cast

__all__ = [
    "astype",
    "can_cast",
    "finfo",
    "finfo_object",
    "iinfo",
    "iinfo_object",
    "isdtype",
    "result_type",
]


def astype(
    x: Tensor,
    dtype: Any,
    /,
    *,
    copy: builtins.bool = True,
    device: Any = None,
) -> Tensor:
    """``x`` converted to ``dtype``: differentiable between floating dtypes; ``copy=False``
    returns ``x`` itself when it has the dtype already."""
    x = _tensor(x)
    dt = np.dtype(dtype)
    out = (_P.clone(x) if copy else x) if dt == x.dtype else _cast(x, dt)
    return out if device is None else out.to_device(device)


def _as_dtype(x: Any) -> np.dtype:
    if isinstance(x, Tensor):
        return x.dtype
    if _backend.is_array(x):
        return x.dtype
    return np.dtype(x)


def can_cast(from_: Any, to: Any, /) -> builtins.bool:
    """Whether ``from_`` (a dtype or a tensor) promotes to ``to`` without losing values."""
    return builtins.bool(np.can_cast(_as_dtype(from_), np.dtype(to)))


class finfo_object:  # noqa: N801 - the standard's name
    """Machine limits of a floating dtype (``finfo``); a complex dtype gives those of its
    real components."""

    __slots__ = ("bits", "eps", "max", "min", "smallest_normal", "dtype")

    def __init__(self, dtype: np.dtype) -> None:
        info = np.finfo(dtype)
        self.bits = int(info.bits)
        self.eps = float(info.eps)
        self.max = float(info.max)
        self.min = float(info.min)
        self.smallest_normal = float(info.smallest_normal)
        self.dtype = np.dtype(info.dtype)

    def __repr__(self) -> str:
        return (
            f"finfo(bits={self.bits}, eps={self.eps}, max={self.max}, min={self.min}, "
            f"smallest_normal={self.smallest_normal}, dtype={self.dtype})"
        )


class iinfo_object:  # noqa: N801 - the standard's name
    """Limits of an integer dtype (``iinfo``)."""

    __slots__ = ("bits", "max", "min", "dtype")

    def __init__(self, dtype: np.dtype) -> None:
        info = np.iinfo(dtype)
        self.bits = int(info.bits)
        self.max = int(info.max)
        self.min = int(info.min)
        self.dtype = np.dtype(dtype)

    def __repr__(self) -> str:
        return f"iinfo(bits={self.bits}, max={self.max}, min={self.min}, dtype={self.dtype})"


def finfo(type: Any, /) -> finfo_object:  # noqa: A002 - the standard's name
    """Machine limits of a floating dtype, or of a tensor's dtype."""
    dt = _as_dtype(type)
    if dt.kind not in "fc":
        raise ValueError(f"finfo: {dt} is not a floating dtype")
    return finfo_object(dt)


def iinfo(type: Any, /) -> iinfo_object:  # noqa: A002 - the standard's name
    """Limits of an integer dtype, or of a tensor's dtype."""
    dt = _as_dtype(type)
    if dt.kind not in "iu":
        raise ValueError(f"iinfo: {dt} is not an integer dtype")
    return iinfo_object(dt)


_KINDS = {
    "bool": lambda dt: dt.kind == "b",
    "signed integer": lambda dt: dt.kind == "i",
    "unsigned integer": lambda dt: dt.kind == "u",
    "integral": lambda dt: dt.kind in "iu",
    "real floating": lambda dt: dt.kind == "f",
    "complex floating": lambda dt: dt.kind == "c",
    "numeric": lambda dt: dt.kind in "iufc",
}


def isdtype(dtype: Any, kind: Any) -> builtins.bool:
    """Whether ``dtype`` is of ``kind``: a dtype, one of the standard's kind names ('bool',
    'signed integer', 'unsigned integer', 'integral', 'real floating', 'complex floating',
    'numeric'), or a tuple of those."""
    dt = np.dtype(dtype)
    if isinstance(kind, tuple):
        return builtins.any(isdtype(dt, k) for k in kind)
    if isinstance(kind, str):
        if kind not in _KINDS:
            raise ValueError(f"isdtype: unknown kind {kind!r} (expected one of {list(_KINDS)})")
        return _KINDS[kind](dt)
    return dt == np.dtype(kind)


def result_type(*arrays_and_dtypes: Any) -> np.dtype:
    """The dtype of an operation on the arguments (tensors, dtypes, Python scalars), by the
    standard's promotion rules (NumPy 2's: Python scalars are weak)."""
    args = []
    for a in arrays_and_dtypes:
        if isinstance(a, Tensor):
            args.append(a.dtype)
        elif isinstance(a, builtins.bool | int | float | complex):
            args.append(a)
        else:
            args.append(_as_dtype(a))
    if not builtins.any(isinstance(a, np.dtype) for a in args):
        raise ValueError("result_type: at least one array or dtype is required")
    return np.result_type(*args)
