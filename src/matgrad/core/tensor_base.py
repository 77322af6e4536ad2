"""The tensor record at the bottom of matgrad: an array and what autodiff keeps with it
(``requires_grad``, ``grad``, ``grad_fn``, the version counter, hooks).

The core knows no op. The user-facing methods and operators (``x.tanh()``, ``x @ y``) are
defined in :mod:`matgrad.tensor` and attached to this one class by :func:`extend`, so every
layer sees the same ``Tensor`` type.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..backend import arrays as _backend
from .graph import ACCUMULATE_LOCK, AccumulateGrad, Node, _RemovableHandle

_default_dtype = [np.dtype(np.float64)]


def get_default_dtype() -> np.dtype:
    """The floating dtype of tensors created without one (float64 unless changed)."""
    return _default_dtype[0]


def set_default_dtype(dtype: Any) -> None:
    """Set the floating dtype for ``randn``, ``zeros``, ``tensor([1.0])`` etc."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: only floating dtypes are allowed, got {dt}")
    _default_dtype[0] = dt


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``requires_grad=True`` marks a leaf whose gradient ``backward()`` accumulates in ``.grad``;
    results of recorded operations carry ``grad_fn``, the graph node that made them.
    """

    __array_priority__ = 1000  # NumPy defers `ndarray op Tensor` to the Tensor's operators

    # The hot fields are slots, set for every tensor; the rest default on the class and go
    # to a __dict__ made only when one is set (keeps the per-op allocation count low).
    __slots__ = (
        "_data",
        "_requires_grad",
        "grad_fn",
        "_output_nr",
        "_fw_grad",
        # [count] of in-place changes, shared by every tensor of the same memory (a view, its
        # base, a detached alias); None until first needed. It is what a node checks a saved
        # tensor against, and a node saving an output keeps the list itself, so the check
        # works after the output object is gone
        "_version_counter",
        "__dict__",
        "__weakref__",
    )
    grad: Tensor | None = None
    # a view (basic indexing, reshape, transpose, ...: PyTorch's view ops) records its base
    # tensor and the ops (with attributes) that make it from the base
    _base: Tensor | None = None
    _view_chain: tuple = ()
    _views: list | None = None  # on a base: weak references to its views
    _acc_ref: weakref.ref | None = None
    _retains_grad = False
    _leaf_hooks: list[Callable] | None = None
    _post_accumulate_hooks: list[Callable] | None = None

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data._data
        self._data = to_array(data, dtype)
        self._requires_grad = False
        self.grad_fn = None
        self._output_nr = 0
        self._fw_grad = None
        self._version_counter = None
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _wrap(cls, arr: Any) -> Tensor:
        """A new tensor around an array the caller owns (no copy, no checks)."""
        if isinstance(arr, np.generic):
            arr = np.asarray(arr)
        t = cls.__new__(cls)
        t._data = arr
        t._requires_grad = False
        t.grad_fn = None
        t._output_nr = 0
        t._fw_grad = None
        t._version_counter = None
        return t

    @classmethod
    def _make_result(cls, arr: Any, node: Node, output_nr: int) -> Tensor:
        t = cls._wrap(arr)
        t.grad_fn = node
        t._output_nr = output_nr
        t._requires_grad = True
        return t

    # -- autograd attributes ---------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self._data.dtype.kind not in "fc":
            raise RuntimeError(
                f"only tensors of floating point and complex dtype can require gradients, "
                f"got dtype {self._data.dtype} (convert with .double() or .float() first)"
            )
        if not value and self.grad_fn is not None:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables; use detach() "
                "to get a tensor that does not require grad"
            )
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def _version(self) -> int:
        """How many times this tensor's memory was changed in place (PyTorch's name)."""
        vc = self._version_counter
        return 0 if vc is None else vc[0]

    def _shared_counter(self) -> list[int]:
        if self._version_counter is None:
            self._version_counter = [0]
        return self._version_counter

    def _is_view(self) -> bool:
        """Whether this tensor is a view of another (shares its memory and version counter)."""
        return self._base is not None

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def _accumulator(self) -> AccumulateGrad:
        acc = self._acc_ref() if self._acc_ref is not None else None
        if acc is None:
            acc = AccumulateGrad(self)
            self._acc_ref = weakref.ref(acc)
        return acc

    def detach(self) -> Tensor:
        """The same data (shared, not copied) without a graph."""
        t = Tensor._wrap(self._data)
        t._version_counter = self._shared_counter()
        return t

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep it)."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on a tensor that has requires_grad=False")
        if self.grad_fn is None or self._retains_grad:
            return
        self._retains_grad = True
        ref = weakref.ref(self)

        def store(grad: Any) -> None:
            t = ref()
            if t is not None:
                with ACCUMULATE_LOCK:
                    t.grad = grad if t.grad is None else t.grad + grad

        self.grad_fn._add_tensor_pre_hook(self._output_nr, _RetainGradHook(store))

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> _RemovableHandle:
        """``hook(grad)`` runs when this tensor's gradient is computed; a returned tensor
        replaces the gradient."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            return self.grad_fn._add_tensor_pre_hook(self._output_nr, hook)
        if self._leaf_hooks is None:
            self._leaf_hooks = []
        self._leaf_hooks.append(hook)
        return _RemovableHandle(self._leaf_hooks, hook)

    def register_post_accumulate_grad_hook(
        self, hook: Callable[[Tensor], None]
    ) -> _RemovableHandle:
        """``hook(tensor)`` runs after a backward pass accumulated into this leaf's ``.grad``
        (e.g. to step an optimizer per parameter); leaves only, as in PyTorch."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            raise RuntimeError(
                "post accumulate grad hooks cannot be registered on non-leaf tensors"
            )
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = []
        self._post_accumulate_hooks.append(hook)
        return _RemovableHandle(self._post_accumulate_hooks, hook)

    # -- array attributes --------------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        return self.detach()

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value._data if isinstance(value, Tensor) else to_array(value, None)

    @property
    def shape(self) -> tuple[int, ...]:
        return Size(self._data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim


class SizeInt(int):
    """``tensor.size``: the number of elements, an ``int`` (the Array API's ``size``
    attribute) that is also callable as PyTorch's ``size(dim=None)`` method."""

    def __new__(cls, shape: tuple[int, ...]) -> SizeInt:
        n = 1
        for s in shape:
            n *= int(s)
        self = super().__new__(cls, n)
        self._shape = tuple(shape)
        return self

    def __call__(self, dim: int | None = None) -> Any:
        """The shape (a :class:`Size`), or the size of axis ``dim``."""
        return Size(self._shape) if dim is None else self._shape[dim]

    def __reduce__(self) -> tuple[Any, tuple[tuple[int, ...]]]:
        return SizeInt, (self._shape,)


class Size(tuple):
    """A tensor's shape: a tuple that prints like PyTorch's ``torch.Size``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"matgrad.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


class _RetainGradHook:
    """Pre-hook that stores a non-leaf's gradient on it (``retain_grad``); runs after the
    tensor's own hooks, so ``.grad`` sees their changes."""

    retain = True

    def __init__(self, store: Callable[[Any], None]) -> None:
        self.store = store

    def __call__(self, grad: Any) -> None:
        self.store(grad)


def to_array(data: Any, dtype: Any) -> Any:
    if isinstance(data, Tensor):
        data = data._data
    if not isinstance(data, np.ndarray | np.generic) and _backend.is_array(data):
        # a Dask or CuPy array stays in its library (converting would compute or copy it)
        if dtype is not None and data.dtype != np.dtype(dtype):
            data = data.astype(np.dtype(dtype))
        return data
    if isinstance(data, list | tuple) and any(isinstance(x, Tensor) for x in _flatten(data)):
        data = nested_to_arrays(data)
    arr = np.asarray(data, dtype=None if dtype is None else np.dtype(dtype))
    if (
        dtype is None
        and arr.dtype.kind == "f"
        and arr.dtype != get_default_dtype()
        and not isinstance(data, np.ndarray | np.generic)
    ):
        arr = arr.astype(get_default_dtype())
    if arr.dtype.kind not in "fciub":
        raise TypeError(f"cannot make a tensor of dtype {arr.dtype} from {type(data).__name__}")
    return arr


def _flatten(data: Any) -> Iterator[Any]:
    for x in data:
        if isinstance(x, list | tuple):
            yield from _flatten(x)
        else:
            yield x


def nested_to_arrays(data: Any) -> Any:
    if isinstance(data, Tensor):
        # inside a sequence a one-element tensor is a number, as in PyTorch:
        # tensor([tensor([1.]), tensor([2.])]) has shape (2,)
        return data._data.reshape(()) if data._data.size == 1 else data._data
    if isinstance(data, list | tuple):
        return [nested_to_arrays(x) for x in data]
    return data


def data_of(x: Any) -> Any:
    """The array behind a tensor (its graph is not read), or ``x`` itself."""
    return x._data if isinstance(x, Tensor) else x


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """``data`` as a tensor: returned as is when already a tensor of that dtype."""
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == np.dtype(dtype) else data.to(dtype)
    return Tensor(data, dtype=dtype)


_NOT_COPIED = {"__module__", "__qualname__", "__dict__", "__weakref__", "__slots__", "__doc__"}


def extend(methods: type) -> type[Tensor]:
    """Attach the attributes of ``methods`` (a class body of user-facing methods) to
    :class:`Tensor` and return :class:`Tensor`: the one registration of the upper layer."""
    for name, value in vars(methods).items():
        if name not in _NOT_COPIED:
            setattr(Tensor, name, value)
    if methods.__doc__:
        Tensor.__doc__ = methods.__doc__
    return Tensor
