"""Functions that make tensors: from data, filled, ranges and random."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import arrays as _backend
from .core.grad_mode import state as _state
from .core.tensor_base import Tensor, get_default_dtype
from .devices import _DEFAULT, backend_for
from .ops import batching as _batching

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


class Generator:
    """A random number generator of its own, as ``torch.Generator``: pass it as
    ``generator=`` to ``rand``/``randn``/``randint``, ``DataLoader``, ``random_split`` and the
    samplers. It is NumPy's PCG64, so the numbers differ from PyTorch's (Mersenne Twister) for
    the same seed. A new one starts from PyTorch's default seed, 67280421310721."""

    def __init__(self, device: Any = "cpu") -> None:
        if str(device) != "cpu":
            raise RuntimeError(f"matgrad.Generator: only CPU generators exist, got {device!r}")
        self.device = device
        self.manual_seed(67280421310721)

    def manual_seed(self, seed: int) -> Generator:
        """Reseed (any seed in [-2**63, 2**64), a negative one modulo 2**64); returns self."""
        seed = int(seed)
        if not -(2**63) <= seed < 2**64:
            raise ValueError(
                f"Generator.manual_seed: the seed must be in [-2**63, 2**64), got {seed}"
            )
        self._seed = seed % 2**64
        self._numpy = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Reseed from fresh OS entropy; returns the new seed."""
        self.manual_seed(int(np.random.SeedSequence().generate_state(1, np.uint64)[0]))
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> Tensor:
        """The state as a uint8 tensor (the bit generator's state as JSON, not PyTorch's
        layout); ``set_state`` takes it back."""
        text = json.dumps(self._numpy.bit_generator.state)
        return Tensor._wrap(np.frombuffer(text.encode(), dtype=np.uint8).copy())

    def set_state(self, new_state: Tensor) -> Generator:
        data = new_state._data if isinstance(new_state, Tensor) else np.asarray(new_state)
        try:
            state = json.loads(np.asarray(data, dtype=np.uint8).tobytes().decode())
            self._numpy.bit_generator.state = state
        except (ValueError, TypeError, KeyError) as e:
            raise RuntimeError(f"Generator.set_state: not a state from get_state(): {e}") from e
        return self


def _numpy_rng(generator: Any) -> np.random.Generator:
    """The NumPy generator behind ``generator=`` (a matgrad or NumPy generator, or None for
    the global one that ``manual_seed`` seeds)."""
    if generator is None:
        return _rng[0]
    if isinstance(generator, Generator):
        return generator._numpy
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(
        f"generator must be a matgrad.Generator or numpy.random.Generator, got "
        f"{type(generator).__name__}"
    )


def _draw(generator: Any, shape: tuple[int, ...], method: str, *args: Any, **kw: Any) -> Any:
    """``generator.<method>(*args, size=shape, **kw)``, and the vmap levels to mark the result
    batched over. Inside ``func.vmap`` the levels with ``randomness='different'`` get one draw
    per batch element (their sizes in front of ``shape``), 'same' ones share the draw, and an
    'error' one raises (``batching.random_levels``), with any generator, as PyTorch."""
    rng = _numpy_rng(generator)
    if not _state.vmap_levels:
        return getattr(rng, method)(*args, size=shape, **kw), ()
    levels = _batching.random_levels()
    rng = getattr(rng, "_inner", rng)  # the global generator behind vmap's guard
    sizes = dict(_state.vmap_levels)
    batch = tuple(sizes[lv] for lv in levels)
    return getattr(rng, method)(*args, size=batch + tuple(shape), **kw), levels


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
    """A new leaf tensor holding a copy of ``data`` (nested lists, a NumPy, Dask or CuPy array,
    a number, a tensor), as ``torch.tensor``. Python floats become the default float dtype
    (float64); arrays keep theirs.

    The copy stays in ``data``'s library: a Dask array stays lazy (its copy is a new Dask array
    over the same task graph, computing nothing; Dask arrays are immutable, so it behaves as a
    copy, and an in-place change of either does not show in the other), a CuPy array is copied
    on its GPU. ``device=`` moves it explicitly ('cpu' keeps Dask data lazy: Dask is a CPU
    library)."""
    if isinstance(data, Tensor):
        data = data._data
    if not isinstance(data, np.ndarray | np.generic) and _backend.is_array(data):
        arr = data.copy()  # lazy for Dask, on the device for CuPy
        return Tensor(arr, dtype=dtype, requires_grad=requires_grad)
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
    generator: Generator | np.random.Generator | None = None,
) -> Tensor:
    """Uniform samples on [0, 1)."""
    arr, levels = _draw(generator, _size(size), "random")
    arr = arr.astype(_float_dtype(dtype), copy=False)
    return _batching.mark(Tensor(arr, requires_grad=requires_grad), levels)


@_on_device
def randn(
    *size: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    generator: Generator | np.random.Generator | None = None,
) -> Tensor:
    """Standard normal samples; for a complex dtype, real and imaginary parts each of variance
    1/2 (PyTorch's convention: E|z|^2 = 1)."""
    dt = _float_dtype(dtype)
    if dt.kind == "c":
        parts, levels = _draw(generator, _size(size) + (2,), "standard_normal")
        parts = parts * np.sqrt(0.5)
        arr = (parts[..., 0] + 1j * parts[..., 1]).astype(dt, copy=False)
        return _batching.mark(Tensor(arr, requires_grad=requires_grad), levels)
    arr, levels = _draw(generator, _size(size), "standard_normal")
    arr = arr.astype(dt, copy=False)
    return _batching.mark(Tensor(arr, requires_grad=requires_grad), levels)


@_on_device
def randint(
    low: int,
    high: int | None = None,
    size: Sequence[int] = (),
    dtype: Any = None,
    generator: Generator | np.random.Generator | None = None,
) -> Tensor:
    if isinstance(high, list | tuple) and not size:  # randint(high, size): PyTorch's overload
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    dt = np.dtype(np.int64 if dtype is None else dtype)
    # a floating dtype holds the integers drawn (as PyTorch's)
    draw = np.int64 if dt.kind in "fc" else dt
    arr, levels = _draw(generator, tuple(size), "integers", low, high, dtype=draw)
    return _batching.mark(Tensor(arr.astype(dt, copy=False)), levels)


def _like(input: Any, dtype: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The (logical: inside vmap, without the batch axes) shape and the dtype to make."""
    if isinstance(input, Tensor):
        return tuple(input.shape), np.dtype(dtype) if dtype is not None else input.dtype
    arr = np.asarray(input)
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
    _, dt = _like(input, dtype)
    data = input._data if isinstance(input, Tensor) else np.asarray(input)
    out = Tensor(np.zeros(data.shape, dtype=dt), requires_grad=requires_grad)
    return _batching.new_like(out, input)  # batched as the input is (zeros_like's rule)


def asarray(
    obj: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    *,
    device: Any = None,
    copy: bool | None = None,
) -> Tensor:
    """A tensor over ``obj`` that keeps its array library: a Dask array stays lazy and
    chunked, a CuPy array stays on its GPU, NumPy arrays are shared, not copied. As
    ``torch.asarray``: ``copy=True`` copies (lazily for Dask), ``copy=False`` refuses a dtype
    change that would need one, ``device=`` moves the data explicitly."""
    if isinstance(obj, Tensor):
        out = obj if dtype is None else obj.to(dtype)
        converted = out is not obj
    else:
        out = Tensor(obj, dtype=dtype)
        converted = out._data is not obj  # a sequence, a number or a dtype change
    if copy is False and converted:
        what = (
            f"{type(obj).__name__} of dtype {obj.dtype}"
            if hasattr(obj, "dtype")
            else f"a {type(obj).__name__}"
        )
        raise ValueError(
            f"asarray: copy=False, but {what} cannot become a {out.dtype} tensor without a copy"
        )
    if copy and not converted:
        out = Tensor._wrap(out._data.copy())
    if device is not None:
        target = backend_for(device)
        if target == "numpy" and out.backend == "dask":
            pass  # Dask is on the CPU: it stays lazy
        elif target != out.backend:
            out = out.to(target)
    if requires_grad:
        out.requires_grad_()
    return out


def compute(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Compute several (Dask-backed) tensors in one ``dask.compute`` call, so the work their
    task graphs share (reading the data, the forward pass a gradient needs) runs once; returns
    NumPy-backed tensors without graphs, in order (other tensors come back detached).

    The lazy gradient of a NumPy leaf (``w.grad`` after a backward pass through Dask data, as
    in ``loss = ((X_dask @ w_numpy - y) ** 2).mean()``) is computed in place: after
    ``matgrad.compute(loss, w.grad)``, ``w.grad`` itself holds the NumPy values, where the
    parameter lives, ready for an optimizer step (and is the tensor returned for it)."""
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"compute: expected tensors, got {type(t).__name__}")
    lazy = [i for i, t in enumerate(tensors) if _backend.backend_of(t._data) == "dask"]
    results = [t.detach() for t in tensors]
    if lazy:
        import dask

        values = dask.compute(*(tensors[i]._data for i in lazy))
        for i, value in zip(lazy, values, strict=True):
            t = tensors[i]
            value = np.asarray(value)
            if t.__dict__.pop("_lazy_leaf_grad", False):
                t._data = value  # the same values, now in memory: no version change
                results[i] = t
            else:
                results[i] = Tensor._wrap(value)
    return tuple(results)
