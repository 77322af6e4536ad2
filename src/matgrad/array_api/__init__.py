"""``matgrad.array_api``: the Python Array API standard (2024.12) over matgrad tensors.

Code written against the standard runs on matgrad tensors and can be differentiated::

    def logistic_loss(w, X, y):
        xp = w.__array_namespace__()
        z = xp.matmul(X, w)
        return xp.mean(xp.logaddexp(0.0, -y * z))

    w = matgrad.zeros(3, requires_grad=True)
    logistic_loss(w, X, y).backward()   # w.grad

Every differentiable function goes through matgrad's ops, so it records the graph:
``xp.exp(x)`` records ``ExpBackward0``, ``xp.sum(x, axis=1)`` ``SumBackward0``, ``xp.sort``
a gather (``TakeAlongAxisBackward0``), ``xp.cumulative_sum`` ``CumsumBackward0``. Functions with
a zero or undefined derivative (``floor``, ``sign``, comparisons, bitwise and logical functions,
``argmax``, ``argsort``, ...) return tensors without a graph. Integer, boolean and complex
tensors follow NumPy 2's semantics (its type promotion is the standard's, Python scalars are
"weak"); only floating tensors can require gradients. ``linalg`` (over :mod:`matgrad.linalg`)
and ``fft`` (over ``numpy.fft``, without gradients) are the two extensions.

Devices: ``"cpu"`` (NumPy data, the default; Dask data is on ``"cpu"`` too). A CuPy-backed
tensor reports its GPU, and ``to_device`` moves data between libraries.

Conformance with the consortium's suite (``data-apis/array-api-tests``): see
``docs/array_api.md``.
"""

from __future__ import annotations

import builtins
import math
import types
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import arrays as _backend
from .core.grad_mode import state as _grad_state
from .core.tensor_base import Tensor, get_default_dtype, nested_to_arrays
from .ops import composite as _ops
from .ops import linalg as _la
from .ops.registry import OPS
from .ops.registry import PRIMITIVES as _P

__array_api_version__ = "2024.12"
SUPPORTED_VERSIONS = ("2021.12", "2022.12", "2023.12", "2024.12")

Array = Tensor

# -- data types --------------------------------------------------------------------------------
# NumPy's scalar types, as in NumPy's own namespace: they compare equal to the tensors'
# ``dtype`` (``x.dtype == float32``) and, unlike ``numpy.dtype`` instances, not to None
# (``np.dtype(None)`` is float64, so ``np.dtype("float64") == None`` holds).
bool = np.bool_  # noqa: A001 - the standard's names
int8 = np.int8
int16 = np.int16
int32 = np.int32
int64 = np.int64
uint8 = np.uint8
uint16 = np.uint16
uint32 = np.uint32
uint64 = np.uint64
float32 = np.float32
float64 = np.float64
complex64 = np.complex64
complex128 = np.complex128

_SIGNED = (int8, int16, int32, int64)
_UNSIGNED = (uint8, uint16, uint32, uint64)
_REAL_FLOATING = (float32, float64)
_COMPLEX = (complex64, complex128)
_ALL_DTYPES = (bool, *_SIGNED, *_UNSIGNED, *_REAL_FLOATING, *_COMPLEX)

# -- constants ---------------------------------------------------------------------------------
e = math.e
inf = math.inf
nan = math.nan
pi = math.pi
newaxis = None


# -- helpers -----------------------------------------------------------------------------------
def _default_float() -> Any:
    return float32 if get_default_dtype() == float32 else float64


def _default_complex() -> Any:
    return complex64 if get_default_dtype() == float32 else complex128


def _dtype(dtype: Any) -> np.dtype | None:
    return None if dtype is None else np.dtype(dtype)


def _tensor(x: Any) -> Tensor:
    """``x`` as a tensor (arrays and Python scalars are wrapped, tensors pass through)."""
    return x if isinstance(x, Tensor) else asarray(x)


def _wrap(arr: Any) -> Tensor:
    return Tensor._wrap(arr)


def _raw(x: Any) -> Any:
    return x._data if isinstance(x, Tensor) else x


def _check_device(device: Any) -> None:
    if device is not None and device != "cpu":
        raise ValueError(f"unsupported device {device!r} (the devices: {_Info().devices()})")


def _place(t: Tensor, device: Any) -> Tensor:
    """``t`` on ``device`` (None: where it is; a CuPy tensor's ``device``: to CuPy)."""
    if device is None or device == t.device:
        return t
    return t.to_device(device)


def _like_device(x: Tensor, device: Any) -> Any:
    return x.device if device is None else device


def _nograd(fn: Any, *args: Any, **kwargs: Any) -> Tensor:
    return _ops._nograd(fn, *args, **kwargs)


def _shape_tuple(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _axes(axis: Any) -> Any:
    """None, an int, or a tuple of ints (lists become tuples)."""
    if axis is None or isinstance(axis, int | np.integer):
        return axis
    return tuple(int(a) for a in axis)


def _is_float(x: Tensor) -> builtins.bool:
    return x.dtype.kind in "fc"


# -- inspection --------------------------------------------------------------------------------
class _Info:
    """What ``__array_namespace_info__()`` returns: capabilities, devices and dtypes."""

    __module__ = "matgrad.array_api"

    def capabilities(self) -> dict[str, Any]:
        return {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}

    def default_device(self) -> str:
        return "cpu"

    def default_dtypes(self, *, device: Any = None) -> dict[str, np.dtype]:
        _check_device(device)
        return {
            "real floating": _default_float(),
            "complex floating": _default_complex(),
            "integral": int64,
            "indexing": int64,
        }

    def dtypes(self, *, device: Any = None, kind: Any = None) -> dict[str, np.dtype]:
        _check_device(device)
        return {np.dtype(dt).name: dt for dt in _ALL_DTYPES if kind is None or isdtype(dt, kind)}

    def devices(self) -> list[str]:
        return ["cpu"]


def __array_namespace_info__() -> _Info:  # noqa: N807 - the standard's name
    return _Info()


# -- creation functions ------------------------------------------------------------------------
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
            return _place(astype(obj, dt), device)
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


# -- data type functions -----------------------------------------------------------------------
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
    if dt == x.dtype:
        out = _P.clone(x) if copy else x
    elif x.dtype.kind in "fc" and dt.kind in "fc" and not (x.dtype.kind == "c" != dt.kind):
        out = _ops.to_dtype(x, dt)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            out = _wrap(x._data.astype(dt))
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


# -- elementwise functions ---------------------------------------------------------------------
# differentiable: through matgrad's ops (each records its node)
def abs(x: Tensor, /) -> Tensor:  # noqa: A001
    return OPS["abs"](x)


def acos(x: Tensor, /) -> Tensor:
    return OPS["acos"](x)


def acosh(x: Tensor, /) -> Tensor:
    return OPS["acosh"](x)


def add(x1: Any, x2: Any, /) -> Tensor:
    return OPS["add"](x1, x2)


def asin(x: Tensor, /) -> Tensor:
    return OPS["asin"](x)


def asinh(x: Tensor, /) -> Tensor:
    return OPS["asinh"](x)


def atan(x: Tensor, /) -> Tensor:
    return OPS["atan"](x)


def atan2(x1: Any, x2: Any, /) -> Tensor:
    return OPS["atan2"](x1, x2)


def atanh(x: Tensor, /) -> Tensor:
    return OPS["atanh"](x)


def clip(x: Tensor, /, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    """``x`` limited to [min, max] (tensors or scalars; None: unbounded), in x's dtype;
    the gradient passes where x is inside."""
    x = _tensor(x)
    if min is None and max is None:
        return _P.clone(x)
    out = _ops.clamp(x, min, max)
    return out if out.dtype == x.dtype else astype(out, x.dtype)


def conj(x: Tensor, /) -> Tensor:
    x = _tensor(x)
    return _nograd(np.conj, x) if x.dtype.kind == "c" else _P.clone(x)


def copysign(x1: Any, x2: Any, /) -> Tensor:
    return OPS["copysign"](x1, x2)


def cos(x: Tensor, /) -> Tensor:
    return OPS["cos"](x)


def cosh(x: Tensor, /) -> Tensor:
    return OPS["cosh"](x)


def divide(x1: Any, x2: Any, /) -> Tensor:
    return OPS["div"](x1, x2)


def exp(x: Tensor, /) -> Tensor:
    return OPS["exp"](x)


def expm1(x: Tensor, /) -> Tensor:
    return OPS["expm1"](x)


def hypot(x1: Any, x2: Any, /) -> Tensor:
    return OPS["hypot"](x1, x2)


def imag(x: Tensor, /) -> Tensor:
    x = _tensor(x)
    return _nograd(np.imag, x) if x.dtype.kind == "c" else zeros_like(x)


def log(x: Tensor, /) -> Tensor:
    return OPS["log"](x)


def log1p(x: Tensor, /) -> Tensor:
    return OPS["log1p"](x)


def log2(x: Tensor, /) -> Tensor:
    return OPS["log2"](x)


def log10(x: Tensor, /) -> Tensor:
    return OPS["log10"](x)


def logaddexp(x1: Any, x2: Any, /) -> Tensor:
    return OPS["logaddexp"](x1, x2)


def maximum(x1: Any, x2: Any, /) -> Tensor:
    return OPS["maximum"](x1, x2)


def minimum(x1: Any, x2: Any, /) -> Tensor:
    return OPS["minimum"](x1, x2)


def multiply(x1: Any, x2: Any, /) -> Tensor:
    return OPS["mul"](x1, x2)


def negative(x: Tensor, /) -> Tensor:
    return OPS["neg"](x)


def positive(x: Tensor, /) -> Tensor:
    return _P.clone(_tensor(x))


def pow(x1: Any, x2: Any, /) -> Tensor:  # noqa: A001
    return OPS["pow"](x1, x2)


def real(x: Tensor, /) -> Tensor:
    x = _tensor(x)
    return _nograd(np.real, x) if x.dtype.kind == "c" else _P.clone(x)


def reciprocal(x: Tensor, /) -> Tensor:
    return OPS["div"](1.0, x)


def remainder(x1: Any, x2: Any, /) -> Tensor:
    return OPS["remainder"](x1, x2)


def sign(x: Tensor, /) -> Tensor:
    return OPS["sign"](x)


def sin(x: Tensor, /) -> Tensor:
    return OPS["sin"](x)


def sinh(x: Tensor, /) -> Tensor:
    return OPS["sinh"](x)


def square(x: Tensor, /) -> Tensor:
    return OPS["square"](x)


def sqrt(x: Tensor, /) -> Tensor:
    return OPS["sqrt"](x)


def subtract(x1: Any, x2: Any, /) -> Tensor:
    return OPS["sub"](x1, x2)


def tan(x: Tensor, /) -> Tensor:
    return OPS["tan"](x)


def tanh(x: Tensor, /) -> Tensor:
    return OPS["tanh"](x)


# without gradient: piecewise constant, boolean or integer valued
def bitwise_and(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.bitwise_and, x1, x2)


def bitwise_left_shift(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.left_shift, x1, x2)


def bitwise_invert(x: Tensor, /) -> Tensor:
    return _nograd(np.invert, x)


def bitwise_or(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.bitwise_or, x1, x2)


def bitwise_right_shift(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.right_shift, x1, x2)


def bitwise_xor(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.bitwise_xor, x1, x2)


def ceil(x: Tensor, /) -> Tensor:
    return _nograd(np.ceil, x)


def equal(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.equal, x1, x2)


def floor(x: Tensor, /) -> Tensor:
    return _nograd(np.floor, x)


def floor_divide(x1: Any, x2: Any, /) -> Tensor:
    return _ops.floor_divide(x1, x2)


def greater(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.greater, x1, x2)


def greater_equal(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.greater_equal, x1, x2)


def isfinite(x: Tensor, /) -> Tensor:
    return _nograd(np.isfinite, x)


def isinf(x: Tensor, /) -> Tensor:
    return _nograd(np.isinf, x)


def isnan(x: Tensor, /) -> Tensor:
    return _nograd(np.isnan, x)


def less(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.less, x1, x2)


def less_equal(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.less_equal, x1, x2)


def logical_and(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.logical_and, x1, x2)


def logical_not(x: Tensor, /) -> Tensor:
    return _nograd(np.logical_not, x)


def logical_or(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.logical_or, x1, x2)


def logical_xor(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.logical_xor, x1, x2)


def nextafter(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.nextafter, x1, x2)


def not_equal(x1: Any, x2: Any, /) -> Tensor:
    return _nograd(np.not_equal, x1, x2)


def round(x: Tensor, /) -> Tensor:  # noqa: A001
    """Round half to even."""
    return _nograd(np.round, x)


def signbit(x: Tensor, /) -> Tensor:
    return _nograd(np.signbit, x)


def trunc(x: Tensor, /) -> Tensor:
    return _nograd(np.trunc, x)


# -- indexing functions ------------------------------------------------------------------------
def _normalize_axis(axis: int, ndim: int, op: str) -> int:
    if not -ndim <= axis < ndim:
        raise IndexError(f"{op}: axis {axis} is out of range for {ndim} dimension(s)")
    return axis % ndim


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


# -- linear algebra functions ------------------------------------------------------------------
def matmul(x1: Tensor, x2: Tensor, /) -> Tensor:
    a, b = _tensor(x1), _tensor(x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: both arguments need at least one dimension")
    try:
        return _ops.matmul(a, b)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None


def matrix_transpose(x: Tensor, /) -> Tensor:
    x = _tensor(x)
    if x.ndim < 2:
        raise ValueError(f"matrix_transpose: expected at least 2 dimensions, got {x.ndim}")
    return _ops.transpose(x, -2, -1)


def tensordot(x1: Tensor, x2: Tensor, /, *, axes: Any = 2) -> Tensor:
    """Contract ``axes`` (an int n: the last n axes of x1 with the first n of x2; or two
    sequences of axes) as one matmul."""
    a, b = _tensor(x1), _tensor(x2)
    if isinstance(axes, int | np.integer):
        if axes < 0:
            raise ValueError(f"tensordot: axes must be non-negative, got {axes}")
        dims: Any = int(axes)
    else:
        dims = tuple(tuple(int(d) for d in ax) for ax in axes)
    try:
        return _la.tensordot(a, b, dims)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None


def vecdot(x1: Tensor, x2: Tensor, /, *, axis: int = -1) -> Tensor:
    """sum(conj(x1) * x2) over ``axis`` (counted on the broadcast shape)."""
    a, b = _tensor(x1), _tensor(x2)
    nd = builtins.min(a.ndim, b.ndim)
    if nd == 0 or not -nd <= axis < builtins.max(a.ndim, b.ndim):
        raise ValueError(f"vecdot: axis {axis} is out of range")
    if axis >= 0:
        axis -= builtins.max(a.ndim, b.ndim)
    if a.shape[axis] != b.shape[axis]:
        raise ValueError(
            f"vecdot: the contracted axes differ in size ({a.shape[axis]} != {b.shape[axis]})"
        )
    if a.dtype.kind == "c":
        a = conj(a)
    products = _P.mul(a, b)
    if products.dtype.kind in "biu":  # in the inputs' dtype (NumPy's sum would widen it)
        return _nograd(np.sum, products, axis=axis, dtype=products.dtype)
    return _ops.sum(products, axis)


# -- manipulation functions --------------------------------------------------------------------
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


# -- searching functions -----------------------------------------------------------------------
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


def where(condition: Tensor, x1: Any, x2: Any, /) -> Tensor:
    return OPS["where"](condition, x1, x2)


# -- set functions -----------------------------------------------------------------------------
UniqueAllResult = namedtuple("UniqueAllResult", ["values", "indices", "inverse_indices", "counts"])
UniqueCountsResult = namedtuple("UniqueCountsResult", ["values", "counts"])
UniqueInverseResult = namedtuple("UniqueInverseResult", ["values", "inverse_indices"])


def _unique(x: Tensor) -> tuple[Tensor, Any, Any, Any]:
    """(values, first indices, inverse indices, counts) over the flattened ``x``; NaNs are
    distinct. The values are a gather of ``x``, so they carry its gradient."""
    x = _tensor(x)
    _eager_only("unique", x._data)
    flat = _ops.reshape(x, (-1,))
    _, index, inverse, counts = np.unique(
        flat._data, return_index=True, return_inverse=True, return_counts=True, equal_nan=False
    )
    values = take(flat, index, axis=0)
    return values, index, np.reshape(inverse, x.shape), counts


def unique_all(x: Tensor, /) -> UniqueAllResult:
    values, index, inverse, counts = _unique(x)
    return UniqueAllResult(
        values,
        _wrap(index.astype(int64)),
        _wrap(inverse.astype(int64)),
        _wrap(counts.astype(int64)),
    )


def unique_counts(x: Tensor, /) -> UniqueCountsResult:
    values, _, _, counts = _unique(x)
    return UniqueCountsResult(values, _wrap(counts.astype(int64)))


def unique_inverse(x: Tensor, /) -> UniqueInverseResult:
    values, _, inverse, _ = _unique(x)
    return UniqueInverseResult(values, _wrap(inverse.astype(int64)))


def unique_values(x: Tensor, /) -> Tensor:
    return _unique(x)[0]


# -- sorting functions -------------------------------------------------------------------------
def _eager_only(op: str, data: Any) -> None:
    """Refuse data-dependent ops that Dask lacks (NumPy's fallback would compute the whole
    array eagerly and silently)."""
    if _backend.backend_of(data) == "dask":
        raise _backend.unsupported(op, data, "compute the tensor first (tensor.compute())")


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


# -- statistical functions ---------------------------------------------------------------------
def _cumulative(
    op: str, x: Tensor, axis: int | None, dtype: Any, include_initial: builtins.bool
) -> Tensor:
    x = _tensor(x)
    if axis is None:
        if x.ndim > 1:
            raise ValueError(f"{op}: axis is required for a {x.ndim}-d input")
        axis = 0
    if x.ndim == 0:
        x = _ops.reshape(x, (1,))
    ax = _normalize_axis(axis, x.ndim, op)
    dt = _dtype(dtype)
    if dt is None and x.dtype.kind in "biu":
        dt = np.dtype(uint64 if x.dtype.kind == "u" else int64)  # the default integer
    if dt is not None and dt.kind in "biu":
        # integers accumulate in ``dtype`` itself (NumPy would widen them): no gradient
        np_fn = np.cumsum if op == "cumulative_sum" else np.cumprod
        out = _wrap(np_fn(x._data, axis=ax, dtype=dt))
    else:
        if dt is not None:
            x = astype(x, dt, copy=False)
        fn = _P.cumsum if op == "cumulative_sum" else _P.cumprod
        out = fn(x, ax) if x.shape[ax] else _P.clone(x)
    if include_initial:
        shape = list(out.shape)
        shape[ax] = 1
        first = _wrap(np.full(shape, 0 if op == "cumulative_sum" else 1, dtype=out.dtype))
        out = _ops.cat([first, out], ax)
    return out


def cumulative_sum(
    x: Tensor,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: builtins.bool = False,
) -> Tensor:
    """Cumulative sums along ``axis``; the gradient is the reversed cumulative sum."""
    return _cumulative("cumulative_sum", x, axis, dtype, include_initial)


def cumulative_prod(
    x: Tensor,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: builtins.bool = False,
) -> Tensor:
    """Cumulative products along ``axis``; gradients exact with zeros."""
    return _cumulative("cumulative_prod", x, axis, dtype, include_initial)


def max(x: Tensor, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Tensor:  # noqa: A001
    return _P.amax(_tensor(x), _axes(axis), keepdims)


def mean(x: Tensor, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Tensor:
    return _ops.mean(_tensor(x), _axes(axis), keepdims)


def min(x: Tensor, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Tensor:  # noqa: A001
    return _P.amin(_tensor(x), _axes(axis), keepdims)


def _reduced_to_last(x: Tensor, axes: tuple[int, ...]) -> Tensor:
    """``x`` with ``axes`` moved last and merged into one."""
    nd = x.ndim
    norm = sorted({_normalize_axis(a, nd, "prod") for a in axes})
    rest = [a for a in range(nd) if a not in norm]
    moved = _ops.permute(x, tuple(rest + norm)) if rest + norm != list(range(nd)) else x
    return _ops.reshape(moved, tuple(x.shape[a] for a in rest) + (-1,))


def prod(
    x: Tensor,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    keepdims: builtins.bool = False,
) -> Tensor:
    x = _tensor(x)
    dt = _dtype(dtype)
    if dt is not None and (dt.kind in "biu" or x.dtype.kind in "biu"):
        # integer products accumulate in ``dtype`` itself (NumPy would widen them)
        return _nograd(np.prod, x, axis=_axes(axis), keepdims=keepdims, dtype=dt)
    if dt is not None:
        x = astype(x, dt, copy=False)
    axis = _axes(axis)
    if axis is None:
        axis = tuple(range(x.ndim))
    if isinstance(axis, int):
        axis = (axis,)
    if not axis:  # no axis: each element is its own product (in the product's dtype)
        out_dtype = np.prod(np.ones(1, dtype=x.dtype)).dtype
        return astype(x, out_dtype)
    if len(axis) == 1:
        return _ops.prod(x, _normalize_axis(axis[0], x.ndim, "prod"), keepdims)
    out = _ops.prod(_reduced_to_last(x, axis), -1, False)
    if keepdims:
        out = _ops.reshape(
            out, tuple(1 if a in {a % x.ndim for a in axis} else s for a, s in enumerate(x.shape))
        )
    return out


def std(
    x: Tensor,
    /,
    *,
    axis: Any = None,
    correction: int | float = 0.0,
    keepdims: builtins.bool = False,
) -> Tensor:
    return sqrt(var(x, axis=axis, correction=correction, keepdims=keepdims))


def sum(  # noqa: A001
    x: Tensor,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    keepdims: builtins.bool = False,
) -> Tensor:
    x = _tensor(x)
    dt = _dtype(dtype)
    if dt is not None and (dt.kind in "biu" or x.dtype.kind in "biu"):
        # integer sums accumulate in ``dtype`` itself (NumPy would widen them): no gradient
        return _nograd(np.sum, x, axis=_axes(axis), keepdims=keepdims, dtype=dt)
    return _ops.sum(x, _axes(axis), keepdims, dt)


def var(
    x: Tensor,
    /,
    *,
    axis: Any = None,
    correction: int | float = 0.0,
    keepdims: builtins.bool = False,
) -> Tensor:
    """sum((x - mean)^2) / (N - correction) over ``axis``."""
    x = _tensor(x)
    axis = _axes(axis)
    centered = x - _ops.mean(x, axis, keepdim=True)
    dims = _ops._norm_dims("var", axis, x.ndim)
    n = math.prod(x.shape[d] for d in dims)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _ops.sum(centered * centered, axis, keepdims) / (n - correction)


# -- utility functions -------------------------------------------------------------------------
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


# -- the linalg extension ----------------------------------------------------------------------
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
QRResult = namedtuple("QRResult", ["Q", "R"])
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])


def _matrix(op: str, x: Any) -> Tensor:
    x = _tensor(x)
    if x.ndim < 2:
        raise ValueError(f"linalg.{op}: expected at least 2 dimensions, got {x.ndim}")
    if x.dtype.kind not in "fc":
        x = astype(x, _default_float())
    return x


def _by_numpy(op: str, *xs: Tensor) -> builtins.bool:
    """Whether ``op`` runs in ``numpy.linalg`` without a graph: for complex inputs
    (matgrad.linalg's rules are real; refused if a gradient is wanted) and empty matrices."""
    if builtins.any(x.dtype.kind == "c" for x in xs):
        if _grad_state.enabled and builtins.any(x.requires_grad for x in xs):
            raise NotImplementedError(
                f"linalg.{op}: gradients of complex linear algebra are not implemented"
            )
        return True
    return builtins.any(x.size == 0 for x in xs)


def _numpy_result(out: Any) -> Any:
    if isinstance(out, tuple):
        return tuple(_wrap(np.asarray(o)) for o in out)
    return _wrap(np.asarray(out))


def _linalg_cholesky(x: Tensor, /, *, upper: builtins.bool = False) -> Tensor:
    x = _matrix("cholesky", x)
    if _by_numpy("cholesky", x):
        return _numpy_result(np.linalg.cholesky(x._data, upper=upper))
    return _la.cholesky(x, upper=upper)


def _linalg_cross(x1: Tensor, x2: Tensor, /, *, axis: int = -1) -> Tensor:
    """The cross product of 3-vectors along ``axis`` of the broadcast inputs:
    (a x b)_i = a_{i+1} b_{i+2} - a_{i+2} b_{i+1} (indices mod 3), with rolls."""
    a, b = broadcast_arrays(_tensor(x1), _tensor(x2))
    if a.ndim == 0 or not -a.ndim <= axis < a.ndim:
        raise ValueError(f"linalg.cross: axis {axis} is out of range")
    if a.shape[axis] != 3:
        raise ValueError(f"linalg.cross: axis {axis} must have size 3, got {a.shape[axis]}")
    d = axis - a.ndim if axis >= 0 else axis
    return _ops.roll(a, -1, d) * _ops.roll(b, -2, d) - _ops.roll(a, -2, d) * _ops.roll(b, -1, d)


def _linalg_det(x: Tensor, /) -> Tensor:
    x = _matrix("det", x)
    if _by_numpy("det", x):
        return _numpy_result(np.linalg.det(x._data))
    return _la.det(x)


def _linalg_diagonal(x: Tensor, /, *, offset: int = 0) -> Tensor:
    return _ops.diagonal(_tensor(x), offset, -2, -1)


def _linalg_eigh(x: Tensor, /) -> EighResult:
    x = _matrix("eigh", x)
    if _by_numpy("eigh", x):
        return EighResult(*_numpy_result(tuple(np.linalg.eigh(x._data))))
    values, vectors = _la.eigh(x)
    return EighResult(values, vectors)


def _linalg_eigvalsh(x: Tensor, /) -> Tensor:
    x = _matrix("eigvalsh", x)
    if _by_numpy("eigvalsh", x):
        return _numpy_result(np.linalg.eigvalsh(x._data))
    return _la.eigvalsh(x)


def _linalg_inv(x: Tensor, /) -> Tensor:
    x = _matrix("inv", x)
    if _by_numpy("inv", x):
        return _numpy_result(np.linalg.inv(x._data))
    return _la.inv(x)


def _linalg_matrix_norm(
    x: Tensor,
    /,
    *,
    keepdims: builtins.bool = False,
    ord: Any = "fro",  # noqa: A002
) -> Tensor:
    x = _matrix("matrix_norm", x)
    if _by_numpy("matrix_norm", x):
        return _numpy_result(np.linalg.matrix_norm(x._data, keepdims=keepdims, ord=ord))
    return _la.matrix_norm(x, ord, (-2, -1), keepdims)


def _linalg_matrix_power(x: Tensor, n: int, /) -> Tensor:
    x = _matrix("matrix_power", x)
    if _by_numpy("matrix_power", x):
        return _numpy_result(np.linalg.matrix_power(x._data, n))
    return _la.matrix_power(x, n)


def _linalg_matrix_rank(x: Tensor, /, *, rtol: Any = None) -> Tensor:
    """The number of singular values above rtol * (the largest); rtol defaults to
    max(M, N) * eps."""
    x = _matrix("matrix_rank", x)
    s = np.linalg.svd(x._data, compute_uv=False)
    if rtol is None:
        rtol = builtins.max(x.shape[-2:]) * np.finfo(x.dtype).eps
    tol = np.asarray(_raw(rtol))[..., None] * np.max(s, axis=-1, keepdims=True, initial=0.0)
    return _wrap(np.asarray(np.count_nonzero(s > tol, axis=-1), dtype=int64))


def _linalg_outer(x1: Tensor, x2: Tensor, /) -> Tensor:
    a, b = _tensor(x1), _tensor(x2)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("linalg.outer: expected two 1-D tensors")
    return _P.outer(a, b)


def _linalg_pinv(x: Tensor, /, *, rtol: Any = None) -> Tensor:
    x = _matrix("pinv", x)
    if _by_numpy("pinv", x):
        return _numpy_result(np.linalg.pinv(x._data, rtol=_raw(rtol)))
    if rtol is not None and np.ndim(_raw(rtol)) > 0:  # one tolerance per matrix
        rtol = np.asarray(_raw(rtol), dtype=x.dtype)[..., None]
        return OPS["linalg_pinv"](x, atol=None, rtol=rtol, hermitian=False)
    return _la.pinv(x, rtol=rtol)


def _linalg_qr(x: Tensor, /, *, mode: str = "reduced") -> QRResult:
    x = _matrix("qr", x)
    if _by_numpy("qr", x):
        return QRResult(*_numpy_result(tuple(np.linalg.qr(x._data, mode=mode))))
    Q, R = _la.qr(x, mode)
    return QRResult(Q, R)


def _linalg_slogdet(x: Tensor, /) -> SlogdetResult:
    x = _matrix("slogdet", x)
    if _by_numpy("slogdet", x):
        return SlogdetResult(*_numpy_result(tuple(np.linalg.slogdet(x._data))))
    sign_, logabsdet = _la.slogdet(x)
    return SlogdetResult(sign_, logabsdet)


def _linalg_solve(x1: Tensor, x2: Tensor, /) -> Tensor:
    """X with x1 X = x2: x2 is a vector when 1-D, else a (batch of) matrix; batch axes
    broadcast."""
    A = _matrix("solve", x1)
    B = _tensor(x2)
    dt = np.result_type(A.dtype, B.dtype, np.float32)
    A, B = astype(A, dt, copy=False), astype(B, dt, copy=False)
    if _by_numpy("solve", A, B):
        return _numpy_result(np.linalg.solve(A._data, B._data))
    if B.ndim == 1:
        return _ops.squeeze(OPS["linalg_solve"](A, _ops.unsqueeze(B, -1))[0], -1)
    return OPS["linalg_solve"](A, B)[0]


def _linalg_svd(x: Tensor, /, *, full_matrices: builtins.bool = True) -> SVDResult:
    x = _matrix("svd", x)
    if _by_numpy("svd", x):
        return SVDResult(*_numpy_result(tuple(np.linalg.svd(x._data, full_matrices))))
    U, S, Vh = _la.svd(x, full_matrices)
    return SVDResult(U, S, Vh)


def _linalg_svdvals(x: Tensor, /) -> Tensor:
    x = _matrix("svdvals", x)
    if _by_numpy("svdvals", x):
        return _numpy_result(np.linalg.svdvals(x._data))
    return _la.svdvals(x)


def _linalg_trace(x: Tensor, /, *, offset: int = 0, dtype: Any = None) -> Tensor:
    x = _tensor(x)
    return _ops.sum(_ops.diagonal(x, offset, -2, -1), -1, False, _dtype(dtype))


def _linalg_vector_norm(
    x: Tensor,
    /,
    *,
    axis: Any = None,
    keepdims: builtins.bool = False,
    ord: Any = 2,  # noqa: A002
) -> Tensor:
    x = _tensor(x)
    if x.dtype.kind == "c":
        x = abs(x)  # the norm of the moduli, in the real dtype of x's precision
    elif x.dtype.kind != "f":
        x = astype(x, _default_float())
    return _la.vector_norm(x, ord, _axes(axis), keepdims)


def _extension(name: str, functions: dict[str, Any]) -> types.ModuleType:
    module = types.ModuleType(f"matgrad.array_api.{name}")
    module.__doc__ = f"The Array API's ``{name}`` extension over matgrad tensors."
    for fname, fn in functions.items():
        fn.__name__ = fname
        fn.__qualname__ = f"{name}.{fname}"
        setattr(module, fname, fn)
    module.__all__ = list(functions)
    return module


linalg = _extension(
    "linalg",
    {
        "cholesky": _linalg_cholesky,
        "cross": _linalg_cross,
        "det": _linalg_det,
        "diagonal": _linalg_diagonal,
        "eigh": _linalg_eigh,
        "eigvalsh": _linalg_eigvalsh,
        "inv": _linalg_inv,
        "matmul": matmul,
        "matrix_norm": _linalg_matrix_norm,
        "matrix_power": _linalg_matrix_power,
        "matrix_rank": _linalg_matrix_rank,
        "matrix_transpose": matrix_transpose,
        "outer": _linalg_outer,
        "pinv": _linalg_pinv,
        "qr": _linalg_qr,
        "slogdet": _linalg_slogdet,
        "solve": _linalg_solve,
        "svd": _linalg_svd,
        "svdvals": _linalg_svdvals,
        "tensordot": tensordot,
        "trace": _linalg_trace,
        "vecdot": vecdot,
        "vector_norm": _linalg_vector_norm,
    },
)
# the shared functions keep their top-level names
for _shared in (matmul, matrix_transpose, tensordot, vecdot):
    _shared.__qualname__ = _shared.__name__


# -- the fft extension -------------------------------------------------------------------------
def _fft_input(op: str, x: Any) -> Any:
    x = _tensor(x)
    if x.requires_grad and _grad_state.enabled:
        raise NotImplementedError(
            f"fft.{op}: gradients of the FFT are not implemented; detach() the input or "
            "run under matgrad.no_grad()"
        )
    return x._data


def _fft1(name: str) -> Any:
    np_fn = getattr(np.fft, name)

    def fn(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Any:
        return _wrap(np.asarray(np_fn(_fft_input(name, x), n=n, axis=axis, norm=norm)))

    fn.__doc__ = f"``numpy.fft.{name}`` on the tensor's data (no gradient)."
    return fn


def _fftn(name: str) -> Any:
    np_fn = getattr(np.fft, name)

    def fn(
        x: Tensor,
        /,
        *,
        s: Sequence[int] | None = None,
        axes: Sequence[int] | None = None,
        norm: str = "backward",
    ) -> Any:
        data = _fft_input(name, x)
        if s is not None and axes is None:
            axes = tuple(range(-len(s), 0))
        return _wrap(np.asarray(np_fn(data, s=s, axes=axes, norm=norm)))

    fn.__doc__ = f"``numpy.fft.{name}`` on the tensor's data (no gradient)."
    return fn


def _fft_fftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Tensor:
    out = np.fft.fftfreq(n, d=d).astype(_dtype(dtype) or _default_float(), copy=False)
    return _place(_wrap(out), device)


def _fft_rfftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Tensor:
    out = np.fft.rfftfreq(n, d=d).astype(_dtype(dtype) or _default_float(), copy=False)
    return _place(_wrap(out), device)


def _shift(x: Tensor, axes: Any, inverse: builtins.bool) -> Tensor:
    x = _tensor(x)
    if axes is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axes, int | np.integer):
        axes = (int(axes),)
    axes = tuple(int(a) for a in axes)
    if not axes:
        return x
    shifts = tuple(-(x.shape[a] // 2) if inverse else x.shape[a] // 2 for a in axes)
    return _ops.roll(x, shifts, axes)


def _fft_fftshift(x: Tensor, /, *, axes: Any = None) -> Tensor:
    """The zero frequency moved to the centre (a roll: differentiable)."""
    return _shift(x, axes, False)


def _fft_ifftshift(x: Tensor, /, *, axes: Any = None) -> Tensor:
    return _shift(x, axes, True)


fft = _extension(
    "fft",
    {
        **{name: _fft1(name) for name in ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft")},
        **{name: _fftn(name) for name in ("fftn", "ifftn", "rfftn", "irfftn")},
        "fftfreq": _fft_fftfreq,
        "rfftfreq": _fft_rfftfreq,
        "fftshift": _fft_fftshift,
        "ifftshift": _fft_ifftshift,
    },
)

__all__ = [
    name
    for name in dir()
    if not name.startswith("_")
    and name
    not in (
        "annotations",
        "builtins",
        "math",
        "types",
        "namedtuple",
        "Sequence",
        "Any",
        "np",
        "Tensor",
        "OPS",
        "get_default_dtype",
    )
]
