"""Functions that make tensors: from data, filled, ranges and random."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .core.tensor_base import Tensor, get_default_dtype
from .devices import _DEFAULT, backend_for

_rng = [np.random.default_rng()]


def manual_seed(seed: int) -> np.random.Generator:
    """Seed matgrad's random generator (``rand``, ``randn``, ...); returns it. As PyTorch,
    any seed in [-2**63, 2**64) is accepted, a negative one taken modulo 2**64
    (``manual_seed(-1)`` is ``manual_seed(2**64 - 1)``)."""
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"manual_seed: the seed must be in [-2**63, 2**64), got {seed}")
    _rng[0] = np.random.default_rng(seed % 2**64)
    return _rng[0]


def default_generator() -> np.random.Generator:
    return _rng[0]


def _on_device(make: Any) -> Any:
    """Give a creation function PyTorch's ``device=`` (default: ``set_default_device``'s):
    the tensor is made in NumPy and moved where the device says ('cuda': CuPy)."""

    @functools.wraps(make)
    def create(*args: Any, device: Any = None, **kwargs: Any) -> Tensor:
        kwargs.pop("pin_memory", None)  # accepted, as PyTorch's CPU tensors ignore it
        kwargs.pop("layout", None)
        target = backend_for(_DEFAULT[0] if device is None else device)
        out = make(*args, **kwargs)
        if target == "numpy":
            return out
        moved = out.to(target)
        return moved.requires_grad_() if out.requires_grad else moved

    return create


def _size(size: Sequence[Any]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], list | tuple):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _float_dtype(dtype: Any) -> np.dtype:
    return get_default_dtype() if dtype is None else np.dtype(dtype)


@_on_device
def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, a NumPy array, a number).
    Python floats become the default float dtype (float64)."""
    if isinstance(data, Tensor):
        data = data._data
    arr = np.array(Tensor(data, dtype=dtype)._data, copy=True)
    return Tensor(arr, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (changes to either show in both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


@_on_device
def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_size(size), dtype=_float_dtype(dtype)), requires_grad=requires_grad)


@_on_device
def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_size(size), dtype=_float_dtype(dtype)), requires_grad=requires_grad)


@_on_device
def empty(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


@_on_device
def full(
    size: Sequence[int], fill_value: Any, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    if dtype is None:
        dtype = (
            _float_dtype(None) if isinstance(fill_value, float) else np.asarray(fill_value).dtype
        )
    return Tensor(np.full(tuple(size), fill_value, dtype=dtype), requires_grad=requires_grad)


@_on_device
def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


@_on_device
def arange(
    start: float,
    end: float | None = None,
    step: float = 1,
    dtype: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Values from ``start`` up to (not including) ``end``; integers unless a bound is float."""
    if end is None:
        start, end = 0, start
    arr = np.arange(start, end, step)
    if dtype is not None:
        arr = arr.astype(dtype)
    elif arr.dtype.kind == "f":
        arr = arr.astype(get_default_dtype())
    return Tensor(arr, requires_grad=requires_grad)


@_on_device
def linspace(
    start: float, end: float, steps: int, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    return Tensor(
        np.linspace(start, end, steps, dtype=_float_dtype(dtype)), requires_grad=requires_grad
    )


@_on_device
def rand(
    *size: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Uniform samples on [0, 1)."""
    rng = generator or _rng[0]
    arr = rng.random(_size(size)).astype(_float_dtype(dtype), copy=False)
    return Tensor(arr, requires_grad=requires_grad)


@_on_device
def randn(
    *size: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Standard normal samples."""
    rng = generator or _rng[0]
    arr = rng.standard_normal(_size(size)).astype(_float_dtype(dtype), copy=False)
    return Tensor(arr, requires_grad=requires_grad)


@_on_device
def randint(
    low: int,
    high: int | None = None,
    size: Sequence[int] = (),
    dtype: Any = None,
    generator: np.random.Generator | None = None,
) -> Tensor:
    rng = generator or _rng[0]
    if high is None:
        low, high = 0, low
    return Tensor(rng.integers(low, high, size=tuple(size), dtype=dtype or np.int64))


def _like(input: Any, dtype: Any) -> tuple[tuple[int, ...], np.dtype]:
    arr = input._data if isinstance(input, Tensor) else np.asarray(input)
    return arr.shape, np.dtype(dtype) if dtype is not None else arr.dtype


@_on_device
def rand_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype)
    return rand(*shape, dtype=dt, requires_grad=requires_grad)


@_on_device
def randn_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype)
    return randn(*shape, dtype=dt, requires_grad=requires_grad)


@_on_device
def empty_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype)
    return Tensor(np.zeros(shape, dtype=dt), requires_grad=requires_grad)


def asarray(obj: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor over ``obj`` that keeps its array library: a Dask array stays lazy and
    chunked, a CuPy array stays on its GPU, NumPy arrays are shared, not copied."""
    if isinstance(obj, Tensor):
        out = obj if dtype is None else obj.to(dtype)
    else:
        out = Tensor(obj, dtype=dtype)
    if requires_grad:
        out.requires_grad_()
    return out


def compute(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Compute several (Dask-backed) tensors in one pass over their task graphs, so work they
    share runs once; returns NumPy-backed tensors without graphs, in order."""
    lazy = [i for i, t in enumerate(tensors) if t.backend == "dask"]
    results = [t.detach() for t in tensors]
    if lazy:
        import dask

        values = dask.compute(*(tensors[i]._data for i in lazy))
        for i, value in zip(lazy, values, strict=True):
            results[i] = Tensor._wrap(np.asarray(value))
    return tuple(results)
