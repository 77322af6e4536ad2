"""The standard's creation functions."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..backend import arrays as _backend
from ..core.tensor_base import Tensor, nested_to_arrays
from ..ops import composite as _ops
from ..ops.registry import PRIMITIVES as _P
from ._dtypes import _default_complex, _default_float, bool, int64
from ._helpers import _cast, _dtype, _place, _raw, _shape_tuple, _wrap

__all__ = [
    "arange",
    "asarray",
    "empty",
    "empty_like",
    "eye",
    "from_dlpack",
    "full",
    "full_like",
    "linspace",
    "meshgrid",
    "ones",
    "ones_like",
    "tril",
    "triu",
    "zeros",
    "zeros_like",
]


def _tensor(x: Any) -> Tensor:
    """``x`` as a tensor (arrays and Python scalars are wrapped, tensors pass through)."""
    return x if isinstance(x, Tensor) else asarray(x)


def _python_default(arr: np.ndarray, obj: Any) -> np.ndarray:
    """Python floats and complexes get the default floating dtypes (NumPy's are float64)."""
    if isinstance(obj, np.ndarray | np.generic):
        return arr
    if arr.dtype.kind == "f" and arr.dtype != _default_float():
        return arr.astype(_default_float())
    if arr.dtype.kind == "c" and arr.dtype != _default_complex():
        return arr.astype(_default_complex())
    return arr


def asarray(
    obj: Any,
    /,
    *,
    dtype: Any = None,
    device: Any = None,
    copy: builtins.bool | None = None,
) -> Tensor:
    """A tensor from a tensor, an array (NumPy, Dask, CuPy, anything with ``__array__`` or
    the buffer protocol), a Python scalar or nested sequences of those. ``copy=False`` shares
    memory or raises ValueError; ``copy=None`` copies only when needed. A tensor keeps its
    graph (a dtype change is the differentiable ``astype``)."""
    dt = _dtype(dtype)
    if isinstance(obj, Tensor):
        if dt is not None and dt != obj.dtype:
            if copy is False:
                raise ValueError(f"asarray: converting {obj.dtype} to {dt} needs a copy")
            return _place(_cast(obj, dt), device)  # astype(obj, dt)
        return _place(_P.clone(obj) if copy else obj, device)
    if not isinstance(obj, np.ndarray | np.generic) and _backend.is_array(obj):
        arr = obj if dt is None or obj.dtype == dt else obj.astype(dt)  # Dask / CuPy
        return _wrap(arr.copy() if copy and arr is obj else arr)
    if isinstance(obj, list | tuple):
        obj = nested_to_arrays(obj)
    if copy is False:
        arr = np.asarray(obj, dtype=dt, copy=False)  # ValueError where a copy is needed
    else:
        arr = np.array(obj, dtype=dt, copy=builtins.bool(copy) or None)
    if dt is None:
        arr = _python_default(arr, obj)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"asarray: cannot make a tensor of dtype {arr.dtype} from {obj!r}")
    return _place(_wrap(arr), device)


def arange(
    start: Any,
    /,
    stop: Any = None,
    step: Any = 1,
    *,
    dtype: Any = None,
    device: Any = None,
) -> Tensor:
    if stop is None:
        start, stop = 0, start
    arr = np.arange(start, stop, step, dtype=_dtype(dtype))
    if dtype is None and arr.dtype.kind == "f":
        arr = arr.astype(_default_float())
    return _place(_wrap(arr), device)


def empty(shape: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    return zeros(shape, dtype=dtype, device=device)


def empty_like(x: Tensor, /, *, dtype: Any = None, device: Any = None) -> Tensor:
    return zeros_like(x, dtype=dtype, device=device)


def eye(
    n_rows: int,
    n_cols: int | None = None,
    /,
    *,
    k: int = 0,
    dtype: Any = None,
    device: Any = None,
) -> Tensor:
    dt = _dtype(dtype) or _default_float()
    return _place(_wrap(np.eye(n_rows, n_cols, k=k, dtype=dt)), device)


def from_dlpack(x: Any, /, *, device: Any = None, copy: builtins.bool | None = None) -> Tensor:
    """A tensor over the memory of any DLPack producer (a copy with ``copy=True``)."""
    kwargs: dict[str, Any] = {}
    if copy is not None:
        kwargs["copy"] = copy
    if device is not None:
        kwargs["device"] = device
    return _wrap(np.from_dlpack(x, **kwargs))


def _fill_dtype(fill_value: Any) -> np.dtype:
    if isinstance(fill_value, builtins.bool | np.bool_):
        return bool
    if isinstance(fill_value, int):
        return int64
    if isinstance(fill_value, float):
        return _default_float()
    if isinstance(fill_value, complex):
        return _default_complex()
    return np.asarray(_raw(fill_value)).dtype


def full(shape: Any, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    dt = _dtype(dtype) or _fill_dtype(fill_value)
    return _place(_wrap(np.full(_shape_tuple(shape), _raw(fill_value), dtype=dt)), device)


def full_like(x: Tensor, /, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    x = _tensor(x)
    arr = np.full_like(x._data, _raw(fill_value), dtype=_dtype(dtype))
    return _place(_wrap(arr), device)


def linspace(
    start: Any,
    stop: Any,
    /,
    num: int,
    *,
    dtype: Any = None,
    device: Any = None,
    endpoint: builtins.bool = True,
) -> Tensor:
    dt = _dtype(dtype)
    if dt is None:
        complex_bound = isinstance(start, complex) or isinstance(stop, complex)
        dt = _default_complex() if complex_bound else _default_float()
    arr = np.linspace(start, stop, num, endpoint=endpoint, dtype=dt)
    return _place(_wrap(arr), device)


def meshgrid(*arrays: Tensor, indexing: str = "xy") -> list[Tensor]:
    """Coordinate grids from 1-D tensors (differentiable: reshapes and broadcasts)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    arrays_t = [_tensor(a) for a in arrays]
    n = len(arrays_t)
    sizes = [a.shape[0] if a.ndim else 1 for a in arrays_t]
    positions = list(range(n))
    if indexing == "xy" and n > 1:
        positions[0], positions[1] = 1, 0
    shape = [0] * n
    for size, pos in zip(sizes, positions, strict=True):
        shape[pos] = size
    out = []
    for a, pos in zip(arrays_t, positions, strict=True):
        view = [1] * n
        view[pos] = -1
        out.append(_ops.expand(_ops.reshape(a, tuple(view)), tuple(shape)))
    return out


def ones(shape: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    dt = _dtype(dtype) or _default_float()
    return _place(_wrap(np.ones(_shape_tuple(shape), dtype=dt)), device)


def ones_like(x: Tensor, /, *, dtype: Any = None, device: Any = None) -> Tensor:
    return _place(_wrap(np.ones_like(_tensor(x)._data, dtype=_dtype(dtype))), device)


def tril(x: Tensor, /, *, k: int = 0) -> Tensor:
    return _ops.tril(x, k)


def triu(x: Tensor, /, *, k: int = 0) -> Tensor:
    return _ops.triu(x, k)


def zeros(shape: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    dt = _dtype(dtype) or _default_float()
    return _place(_wrap(np.zeros(_shape_tuple(shape), dtype=dt)), device)


def zeros_like(x: Tensor, /, *, dtype: Any = None, device: Any = None) -> Tensor:
    return _place(_wrap(np.zeros_like(_tensor(x)._data, dtype=_dtype(dtype))), device)
