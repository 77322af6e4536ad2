"""The user-facing Tensor: its methods and operators, attached once to the core's record.

Methods forward to the op bindings made from the rule table (:mod:`matgrad.ops`), which record
the graph; the autograd attributes live on the record (:mod:`matgrad.core.tensor_base`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import devices as _devices
from .backend import arrays as _backend
from .core import engine
from .core import grad_mode as _grad_mode
from .core.graph import bump_version
from .core.tensor_base import (
    SizeInt,
    as_tensor,
    extend,
    get_default_dtype,
)
from .core.tensor_base import Tensor as _Record
from .ops import composite as _ops
from .ops import linalg as _linalg
from .ops import toplevel as _toplevel
from .ops.bindings import INPLACE, METHODS
from .ops.registry import PRIMITIVES as _P


@extend
class Tensor(_Record):
    """An n-dimensional array that can record the operations applied to it.

    ``requires_grad=True`` marks a leaf whose gradient ``backward()`` accumulates in ``.grad``;
    results of recorded operations carry ``grad_fn``, the graph node that made them.
    """

    __slots__ = ()

    def backward(
        self,
        gradient: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Any = None,
    ) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad
        (or of ``inputs`` only). ``gradient`` is the vector of the vector-Jacobian product;
        it may be left out only when ``self`` has one element."""
        engine.backward([self], [gradient], retain_graph, create_graph, inputs)

    @property
    def backend(self) -> str:
        """The array library holding the data: 'numpy', 'dask' or 'cupy'."""
        return _backend.backend_of(self._data)

    @property
    def device(self) -> _devices.device:
        """``device(type='cpu')`` for NumPy and Dask data (Dask may spread it over a cluster),
        ``device(type='cuda', index=i)`` for CuPy data on GPU i. Compares equal to 'cpu'."""
        if self.backend in ("numpy", "dask"):
            return _CPU
        return _devices.device("cuda", int(getattr(self._data.device, "id", 0)))

    @property
    def is_cuda(self) -> bool:
        return self.backend == "cupy"

    def to_device(self, device: Any, /, *, stream: Any = None) -> Tensor:
        """The Array API's move: ``'cpu'`` (NumPy; the data of a CPU tensor stays where it
        is), a CUDA device (CuPy: ``'cuda'`` or a CuPy tensor's ``device``), or a library
        name as for :meth:`to`."""
        if device is None or device == self.device:
            return self
        if isinstance(device, str) and device in (*_backend.BACKENDS, "cpu"):
            return self.to(device)
        if "cuda" in str(device).lower() or type(device).__module__.startswith("cupy"):
            return self.to("cupy")
        raise ValueError(f"to_device: unknown device {device!r} (expected 'cpu' or a GPU)")

    def __array_namespace__(self, /, *, api_version: str | None = None) -> Any:
        """The Array API standard namespace for matgrad tensors: :mod:`matgrad.array_api`."""
        from . import array_api

        if api_version is not None and api_version not in array_api.SUPPORTED_VERSIONS:
            raise ValueError(
                f"matgrad.array_api implements the Array API versions "
                f"{', '.join(array_api.SUPPORTED_VERSIONS)}, not {api_version!r}"
            )
        return array_api

    def __dlpack__(
        self,
        /,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: Any = None,
        copy: bool | None = None,
    ) -> Any:
        """The data as a DLPack capsule (no graph: the consumer gets the values)."""
        kwargs: dict[str, Any] = {"stream": stream}
        if max_version is not None:
            kwargs["max_version"] = max_version
        if dl_device is not None:
            kwargs["dl_device"] = dl_device
        if copy is not None:
            kwargs["copy"] = copy
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self, /) -> tuple[Any, int]:
        return self._data.__dlpack_device__()

    def dim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> SizeInt | None:
        """The number of elements: an int (the Array API's attribute) that is also callable
        as PyTorch's method, ``x.size()`` -> the shape, ``x.size(dim)`` -> one dimension.
        None where a lazy (Dask) array does not know its shape yet."""
        shape = self._data.shape
        if not isinstance(self._data, np.ndarray) and any(s != s or s is None for s in shape):
            return None
        return SizeInt(shape)

    def numel(self) -> int:
        return int(self._data.size)

    def nelement(self) -> int:
        return int(self._data.size)

    def element_size(self) -> int:
        return self._data.itemsize

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def numpy(self, force: bool = False) -> np.ndarray:
        """The data as a NumPy array (shared, not copied, for NumPy data; computed for Dask
        data, copied from the GPU for CuPy data). Raises if the tensor requires grad while
        grad mode is on, as PyTorch does (use ``.detach().numpy()``); under ``no_grad``, as
        inside a custom Function's forward, it returns the data."""
        if self._requires_grad and not force and _grad_mode.is_grad_enabled():
            raise RuntimeError(
                "Can't call numpy() on a Tensor that requires grad. Use tensor.detach().numpy()"
            )
        return _backend.to_backend(self._data, "numpy")

    def compute(self) -> Tensor:
        """The values, computed: a NumPy-backed tensor without a graph. For Dask data this
        runs the task graph (use ``matgrad.compute(a, b, ...)`` to share work between
        several results); other data is returned as a detached tensor."""
        if self.backend != "dask":
            return self.detach()
        return Tensor._wrap(np.asarray(self._data.compute()))

    def item(self) -> Any:
        if self._data.size != 1:
            raise RuntimeError(
                f"a Tensor with {self._data.size} elements cannot be converted to a scalar"
            )
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """``np.asarray(t)``: the data, for a tensor that does not require grad. A tensor that
        does raises, as ``.numpy()`` does: NumPy code (``scipy.special.erf(t)``) would compute
        on the values and silently drop the graph."""
        if self._requires_grad:
            raise RuntimeError(
                "Can't convert a Tensor that requires grad to a NumPy array (np.asarray, or a "
                "NumPy/SciPy function applied to it): the result would not be differentiated. "
                "Use tensor.detach() for the values, or matgrad's own function for the op."
            )
        arr = np.asarray(self._data)
        return arr if dtype is None else arr.astype(dtype)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(
                f"Boolean value of Tensor with {self._data.size} values is ambiguous"
            )
        return bool(self._data.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        return int(self.item())

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        if self.backend == "numpy":
            body = np.array2string(
                self._data,
                separator=", ",
                prefix="tensor(",
                precision=4,
                floatmode="fixed" if self._data.dtype.kind == "f" else "maxprec",
                threshold=200,
            )
        else:  # never compute lazy data just to print it
            body = repr(self._data)
        extras = []
        if self._data.dtype not in (get_default_dtype(), np.dtype(np.int64), np.dtype(bool)):
            extras.append(f"dtype={_dtype_name(self._data.dtype)}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name()}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        if self._fw_grad is not None:
            extras.append("tangent=...")
        if self.backend != "numpy":
            extras.append(f"backend={self.backend}")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # -- conversions ---------------------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """PyTorch's ``to``: a dtype (``to(matgrad.float32)``, recorded and differentiable), a
        device (``to('cpu')``, ``to(device('cuda'))``; 'cuda' is CuPy), both (``to('cpu',
        matgrad.float32)``, ``to(device=..., dtype=...)``), or another tensor's dtype and
        device (``to(other)``); also an array library by name (``to('dask', chunks=...)``,
        ``to('numpy')``). Moving keeps no graph: the result is a new leaf."""
        place = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        copy = bool(kwargs.pop("copy", False))
        kwargs.pop("memory_format", None)  # NumPy arrays have no memory formats to choose
        flags = [a for a in args if isinstance(a, bool)]  # to(..., non_blocking, copy)
        args = tuple(a for a in args if not isinstance(a, bool))
        copy = copy or (len(flags) > 1 and flags[1])
        for arg in args:
            if isinstance(arg, Tensor):
                place, dtype = arg.device, arg.dtype
            elif (
                isinstance(arg, _devices.device)
                or (isinstance(arg, str) and arg.partition(":")[0] in ("cpu", "cuda"))
                or isinstance(arg, str)
                and arg in _backend.BACKENDS
            ):
                place = arg
            elif arg is not None:
                dtype = arg
        out = self
        if place is not None:
            name = place if place in _backend.BACKENDS else _devices.backend_for(place)
            if name != out.backend:
                moved = Tensor(_backend.to_backend(out._data, name, **kwargs))
                wants = out._requires_grad and moved.dtype.kind == "f"
                out = moved.requires_grad_() if wants else moved
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = _ops.to_dtype(out, np.dtype(dtype))
        elif copy and out is self:  # copy=True: new memory even where nothing changes
            out = _P.clone(out)
        return out

    def type(self, dtype: Any) -> Tensor:
        return self.to(dtype)

    def double(self, memory_format: Any = None) -> Tensor:
        return self.to(np.float64)

    def float(self, memory_format: Any = None) -> Tensor:
        return self.to(np.float32)

    def half(self, memory_format: Any = None) -> Tensor:
        return self.to(np.float16)

    def long(self, memory_format: Any = None) -> Tensor:
        return self.to(np.int64)

    def int(self, memory_format: Any = None) -> Tensor:
        return self.to(np.int32)

    def bool(self, memory_format: Any = None) -> Tensor:
        return self.to(np.bool_)

    def contiguous(self) -> Tensor:
        return self

    def cuda(self, device: Any = None) -> Tensor:
        """The tensor on the GPU (CuPy); raises where CUDA is not available."""
        return self.to(_devices.device("cuda") if device is None else _devices.device(device))

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def ndimension(self) -> int:
        return self._data.ndim

    def new_tensor(
        self, data: Any, dtype: Any = None, requires_grad: bool = False, **place: Any
    ) -> Tensor:
        """A new tensor of ``data`` with this tensor's dtype and device (unless given:
        ``dtype=``, ``device=``; PyTorch's ``layout=`` and ``pin_memory=`` are accepted)."""
        out = Tensor(
            np.array(
                data._data if isinstance(data, Tensor) else data,
                dtype=self.dtype if dtype is None else dtype,
            )
        )
        return self._new_like(out, requires_grad, place.get("device"))

    def new_zeros(
        self, *size: Any, dtype: Any = None, requires_grad: bool = False, **place: Any
    ) -> Tensor:
        return self.new_full(_sizes(size), 0, dtype=dtype, requires_grad=requires_grad, **place)

    def new_ones(
        self, *size: Any, dtype: Any = None, requires_grad: bool = False, **place: Any
    ) -> Tensor:
        return self.new_full(_sizes(size), 1, dtype=dtype, requires_grad=requires_grad, **place)

    def new_empty(
        self, *size: Any, dtype: Any = None, requires_grad: bool = False, **place: Any
    ) -> Tensor:
        return self.new_full(_sizes(size), 0, dtype=dtype, requires_grad=requires_grad, **place)

    def new_full(
        self,
        size: Any,
        fill_value: Any,
        dtype: Any = None,
        requires_grad: bool = False,
        **place: Any,
    ) -> Tensor:
        dt = self.dtype if dtype is None else np.dtype(dtype)
        out = Tensor(np.full(tuple(size), fill_value, dtype=dt))
        return self._new_like(out, requires_grad, place.get("device"))

    def _new_like(self, out: Tensor, requires_grad: bool, device: Any = None) -> Tensor:
        if device is not None:
            out = out.to(device)
        elif self.backend == "cupy":
            out = out.to("cupy")
        return out.requires_grad_() if requires_grad else out

    def __format__(self, spec: str) -> str:
        """``f"{loss:.4f}"`` formats a one-element tensor's value, and ``f"{loss}"`` of a 0-d
        tensor is its value (``1.5``, not ``tensor(1.5000)``), as in PyTorch; lazy (Dask)
        data is not computed for an empty spec."""
        if self._data.size == 1 and (spec or (self._data.ndim == 0 and self.backend != "dask")):
            return format(self.item(), spec)
        return format(repr(self), spec)

    def cpu(self) -> Tensor:
        """The tensor on the CPU: itself for NumPy and Dask data, a copy of GPU data."""
        return self if self.backend != "cupy" else self.to("cpu")

    # -- operators -----------------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _ops.OPS["add"](self, other)

    # reflected operators record this tensor first, as PyTorch's do (`2 * b` is mul(b, 2),
    # `2 - b` rsub(b, 2), `2 / b` reciprocal(b) * 2, `2 ** b` pow with b first), so
    # grad_fn.next_functions[0] is b's node
    def __radd__(self, other: Any) -> Tensor:
        return _ops.OPS["add"](self, other)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.OPS["sub"](self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _P.rsub(self, other)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.OPS["mul"](self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _P.mul(self, other)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.OPS["div"](self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _P.mul(_P.reciprocal(self), other)

    def __pow__(self, exponent: Any) -> Tensor:
        return _P.pow(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return _P.rpow(self, base)

    def __floordiv__(self, other: Any) -> Tensor:
        return _ops.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return _ops.floor_divide(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return _P.remainder(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return _P.remainder(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _P.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _P.abs(self)

    def __gt__(self, other: Any) -> Tensor:
        return _ops.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _ops.ge(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return _ops.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return _ops.le(self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.ne(self, other)

    # bitwise for integers, logical for booleans (NumPy's and the Array API's semantics)
    def __and__(self, other: Any) -> Tensor:
        return _ops.bitwise_and(self, other)

    def __rand__(self, other: Any) -> Tensor:
        return _ops.bitwise_and(other, self)

    def __or__(self, other: Any) -> Tensor:
        return _ops.bitwise_or(self, other)

    def __ror__(self, other: Any) -> Tensor:
        return _ops.bitwise_or(other, self)

    def __xor__(self, other: Any) -> Tensor:
        return _ops.bitwise_xor(self, other)

    def __rxor__(self, other: Any) -> Tensor:
        return _ops.bitwise_xor(other, self)

    def __invert__(self) -> Tensor:
        return _ops.bitwise_invert(self)

    def __lshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_left_shift(self, other)

    def __rlshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_left_shift(other, self)

    def __rshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_right_shift(self, other)

    def __rrshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_right_shift(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        raw = _ops.raw_index(index)
        if not (
            self._requires_grad
            or self._fw_grad is not None
            or (isinstance(value, Tensor) and (value._requires_grad or value._fw_grad is not None))
        ):  # nothing to differentiate: write into the memory directly
            data = self._data
            if isinstance(data, np.ndarray) and not data.flags.writeable:
                data = self._data = np.array(data)  # a broadcast view: own the memory first
            data[raw] = value._data if isinstance(value, Tensor) else value
            bump_version(self)
            return
        self._inplace("__setitem__", lambda old: _P.index_put(old, value, raw))

    # -- in-place ops --------------------------------------------------------------------------
    def _inplace(self, name: str, compute: Callable[[Tensor], Tensor]) -> Tensor:
        """Run ``compute`` out of place on this tensor's current value, then write the result
        into its memory, bump the (shared) version counter and make this tensor the result in
        the graph.

        The current value is copied first when recording, so nodes that save it (``mul_`` by a
        tensor that requires grad, ``exp_``, ...) keep the value they need. On a view, the
        write lands in the base's memory, and the base's history is rewritten as PyTorch's
        CopySlices does: the base becomes ``index_put(base, new value, the view's positions)``,
        so gradients reach both the region written through the view and the rest of the base;
        every live view of the base then gets its graph from the new base."""
        recording = _grad_mode.state.enabled
        base = self._base
        if recording:
            if self._requires_grad and self.grad_fn is None:
                raise RuntimeError(
                    f"{name}: a leaf Variable that requires grad is being used in an in-place "
                    "operation. Wrap it in `with matgrad.no_grad():` (e.g. for a parameter "
                    "update) or clone() it first."
                )
            if base is not None and base._requires_grad and base.grad_fn is None:
                raise RuntimeError(
                    f"{name}: a view of a leaf Variable that requires grad is being used in an "
                    "in-place operation. Wrap it in `with matgrad.no_grad():` or clone() the "
                    "leaf first."
                )
        data = self._data
        if isinstance(data, np.ndarray) and not data.flags.writeable:
            if base is not None:
                raise RuntimeError(
                    f"{name}: unsupported operation: this view's memory cannot be written (more "
                    "than one element of an expanded view refers to a single memory location, "
                    "or the base is read-only). Please clone() the tensor before performing the "
                    "operation."
                )
            data = self._data = np.array(data)  # a broadcast array: own the memory first
        if recording:
            old = Tensor._wrap(data.copy() if isinstance(data, np.ndarray) else data)
            old.grad_fn, old._output_nr = self.grad_fn, self._output_nr
            old._requires_grad, old._fw_grad = self._requires_grad, self._fw_grad
            new = compute(old)
        else:
            new = compute(self)
        result = new._data
        if result.shape != data.shape:
            raise RuntimeError(
                f"{name}: the result of shape {tuple(result.shape)} cannot be written in place "
                f"into a tensor of shape {tuple(data.shape)}"
            )
        if not np.can_cast(result.dtype, data.dtype, casting="same_kind"):
            raise InplaceCastError(
                f"{name}: result type {result.dtype} can't be cast to the tensor's dtype "
                f"{data.dtype} in place"
            )
        _backend.check_inplace(name, data, result)  # numpy_tensor += dask_tensor: refused
        rewrite = recording and new.grad_fn is not None
        new_base = _written_base(base, self, new) if rewrite and base is not None else None
        data[...] = result  # for a view: into the base's memory
        bump_version(self)
        if rewrite:
            self.grad_fn, self._output_nr = new.grad_fn, new._output_nr
            self._requires_grad = True
            if new_base is not None:
                base.grad_fn, base._output_nr = new_base.grad_fn, new_base._output_nr
                base._requires_grad = True
                base._fw_grad = new_base._fw_grad
                if base._fw_grad is not None:
                    _grad_mode.note_tangent(base)
                _refresh_views(base)
            elif self._views:
                _refresh_views(self)
        self._fw_grad = new._fw_grad
        if self._fw_grad is not None:
            _grad_mode.note_tangent(self)
        return self

    def zero_(self) -> Tensor:
        return self._inplace("zero_", lambda s: _overwrite(s, 0.0))

    def fill_(self, value: Any) -> Tensor:
        return self._inplace("fill_", lambda s: _overwrite(s, value))

    def uniform_(self, from_: float = 0.0, to: float = 1.0, *, generator: Any = None) -> Tensor:
        """Overwrite with U(from_, to) draws (``weight.data.uniform_(-r, r)``)."""
        return self._random_("uniform_", "uniform", from_, to, generator)

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator: Any = None) -> Tensor:
        """Overwrite with N(mean, std^2) draws."""
        return self._random_("normal_", "normal", mean, std, generator)

    def _random_(self, name: str, law: str, a: float, b: float, generator: Any) -> Tensor:
        if self.dtype.kind != "f":
            raise RuntimeError(f"{name}: not implemented for dtype {self.dtype}")
        from .creation import _numpy_rng  # same layer; creation imports nothing of tensor

        draws = getattr(_numpy_rng(generator), law)(a, b, tuple(self.shape))
        return self._inplace(name, lambda s: _overwrite(s, draws.astype(self.dtype)))

    def copy_(self, src: Any) -> Tensor:
        return self._inplace("copy_", lambda s: _overwrite(s, src))

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    def __ipow__(self, other: Any) -> Tensor:
        return self.pow_(other)

    def __ifloordiv__(self, other: Any) -> Tensor:
        return self._inplace("__ifloordiv__", lambda s: _ops.floor_divide(s, other))

    def __imod__(self, other: Any) -> Tensor:
        return self._inplace("__imod__", lambda s: _P.remainder(s, other))

    def __imatmul__(self, other: Any) -> Tensor:
        return self._inplace("__imatmul__", lambda s: _ops.matmul(s, other))

    def __iand__(self, other: Any) -> Tensor:
        return self._inplace("__iand__", lambda s: _ops.bitwise_and(s, other))

    def __ior__(self, other: Any) -> Tensor:
        return self._inplace("__ior__", lambda s: _ops.bitwise_or(s, other))

    def __ixor__(self, other: Any) -> Tensor:
        return self._inplace("__ixor__", lambda s: _ops.bitwise_xor(s, other))

    def __ilshift__(self, other: Any) -> Tensor:
        return self._inplace("__ilshift__", lambda s: _ops.bitwise_left_shift(s, other))

    def __irshift__(self, other: Any) -> Tensor:
        return self._inplace("__irshift__", lambda s: _ops.bitwise_right_shift(s, other))

    # -- methods forwarding to matgrad functions ---------------------------------------------

    def where(self, condition: Any, other: Any) -> Tensor:
        return _P.where(condition, self, other)

    def max(self, dim: Any = None, keepdim: bool = False) -> Any:
        return _ops.max(self, dim, keepdim)

    def min(self, dim: Any = None, keepdim: bool = False) -> Any:
        return _ops.min(self, dim, keepdim)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return _ops.argmax(self, dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return _ops.argmin(self, dim, keepdim)

    def var(self, *args: Any, **kwargs: Any) -> Tensor:
        """PyTorch's overloads: ``var(dim=None, *, correction=1, keepdim=False)``,
        ``var(dim, unbiased, keepdim=False)``, ``var(unbiased)``."""
        return _ops.var(self, *args, **kwargs)

    def std(self, *args: Any, **kwargs: Any) -> Tensor:
        """The overloads of :meth:`var`."""
        return _ops.std(self, *args, **kwargs)

    def logsumexp(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _ops.logsumexp(self, dim, keepdim)

    def softmax(self, dim: int = -1, dtype: Any = None) -> Tensor:
        return _ops.softmax(self, dim, dtype)

    def log_softmax(self, dim: int = -1, dtype: Any = None) -> Tensor:
        return _ops.log_softmax(self, dim, dtype)

    def view(self, *shape: Any) -> Tensor:
        return _ops.view(self, *shape)

    def view_as(self, other: Tensor) -> Tensor:
        return _ops.reshape(self, other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return _ops.reshape(self, other.shape)

    def t(self) -> Tensor:
        return _ops.t(self)

    def expand_as(self, other: Tensor) -> Tensor:
        return _ops.expand(self, other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return _ops.flatten(self, start_dim, end_dim)

    def unflatten(self, dim: int, sizes: Any) -> Tensor:
        return _ops.unflatten(self, dim, sizes)

    def split(self, split_size: Any, dim: int = 0) -> tuple[Tensor, ...]:
        return _ops.split(self, split_size, dim)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        return _ops.chunk(self, chunks, dim)

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        return _ops.narrow(self, dim, start, length)

    def select(self, dim: int, index: int) -> Tensor:
        return _ops.select(self, dim, index)

    def unbind(self, dim: int = 0) -> tuple[Tensor, ...]:
        return _ops.unbind(self, dim)

    def diag(self, diagonal: int = 0) -> Tensor:
        return _ops.diag(self, diagonal)

    def trace(self) -> Tensor:
        return _ops.trace(self)

    def eq(self, other: Any) -> Tensor:
        return _ops.eq(self, other)

    def ne(self, other: Any) -> Tensor:
        return _ops.ne(self, other)

    def gt(self, other: Any) -> Tensor:
        return _ops.gt(self, other)

    def ge(self, other: Any) -> Tensor:
        return _ops.ge(self, other)

    def lt(self, other: Any) -> Tensor:
        return _ops.lt(self, other)

    def le(self, other: Any) -> Tensor:
        return _ops.le(self, other)

    def allclose(self, other: Any, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        return _ops.allclose(self, other, rtol, atol)

    def equal(self, other: Any) -> bool:
        return _ops.equal(self, other)

    def norm(
        self, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None
    ) -> Tensor:
        """``torch.norm``: the p-norm of the elements over ``dim`` (all when None)."""
        return _linalg.tensor_norm(self, p, dim, keepdim, dtype)

    # -- shape properties ----------------------------------------------------------------------
    @property
    def T(self) -> Tensor:  # noqa: N802
        return _ops.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:  # noqa: N802
        return _ops.transpose(self, -2, -1)

    # -- complex numbers -----------------------------------------------------------------------
    @property
    def mH(self) -> Tensor:  # noqa: N802
        """The conjugate transpose of the last two axes (``mT`` for real tensors)."""
        t = _ops.transpose(self, -2, -1)
        return _P.conj(t) if self._data.dtype.kind == "c" else t

    @property
    def H(self) -> Tensor:  # noqa: N802
        """The conjugate transpose of a matrix (2-D only, as PyTorch's)."""
        if self.ndim != 2:
            raise RuntimeError(
                f"tensor.H is only supported on matrices (2-D tensors), got {self.ndim}-D; use "
                ".mH for batches of matrices"
            )
        return self.mH

    @property
    def real(self) -> Tensor:
        """The real part: a view sharing this tensor's memory (the tensor itself, as a view,
        when it is real)."""
        return _P.real(self)

    @property
    def imag(self) -> Tensor:
        """The imaginary part of a complex tensor: a view sharing its memory."""
        return _P.imag(self)

    def is_complex(self) -> bool:
        return self._data.dtype.kind == "c"

    def is_conj(self) -> bool:
        """Always False: ``conj()`` makes the conjugate at once (no lazy conjugate bit)."""
        return False

    def resolve_conj(self) -> Tensor:
        """The tensor itself (``conj()`` is never lazy here)."""
        return self

    def resolve_neg(self) -> Tensor:
        return self


def _view_positions(base: Tensor, view: Tensor) -> tuple[np.ndarray, ...]:
    """The index into ``base`` of each element of ``view`` (one array per axis of the base,
    flattened in the view's order): the view's ops replayed on the positions of the base."""
    positions = np.arange(base._data.size).reshape(base._data.shape)
    for op, attrs in view._view_chain:
        positions = op.forward(positions, **attrs)
    return np.unravel_index(np.ravel(positions), base._data.shape)


def _written_base(base: Tensor, view: Tensor, new: Tensor) -> Tensor:
    """The base after ``new`` is written through ``view``, as a recorded op of the base's
    current value and ``new`` (PyTorch's CopySlices): the gradient of the written region
    goes to ``new``, the rest to the old base."""
    for op, _ in view._view_chain:
        if op.name in ("real", "imag", "view_as_real", "view_as_complex"):
            # the write changes part of each complex element: index_put cannot express it
            raise NotImplementedError(
                f"an in-place operation on a view made by {op.name} of a tensor that requires "
                "grad is not supported (it would write part of each complex element); use an "
                "out-of-place form, e.g. matgrad.complex(2 * z.real, z.imag)"
            )
    old = Tensor._wrap(base._data)  # read now, before the write (index_put copies it)
    old.grad_fn, old._output_nr = base.grad_fn, base._output_nr
    old._requires_grad, old._fw_grad = base._requires_grad, base._fw_grad
    return _P.index_put(old, _ops.reshape(new, (-1,)), _view_positions(base, view))


def _refresh_views(base: Tensor) -> None:
    """Give every live view of ``base`` a graph from the base's current history (after the
    base was written in place): its view ops replayed on the base."""
    if not base._requires_grad:
        return
    for ref in list(base._views or ()):
        view = ref()
        if view is None:
            continue
        replayed = base
        with _grad_mode.enable_grad():
            for op, attrs in view._view_chain:
                replayed = op.reference(replayed, **attrs)
        view.grad_fn, view._output_nr = replayed.grad_fn, replayed._output_nr
        view._requires_grad = replayed._requires_grad


def _sizes(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], list | tuple):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


_CPU = _devices.device("cpu")


def _inplace_method(name: str, fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``x.<name>(*args)``: ``fn(x, *args)`` written into ``x``'s memory (see ``_inplace``)."""

    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return self._inplace(name, lambda s: fn(s, *args, **kwargs))

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"In-place version of :meth:`Tensor.{name[:-1]}`."
    return method


# the methods the table declares (`variants: [method, inplace]`), registered once
for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _fn)
for _name, _fn in INPLACE.items():
    setattr(Tensor, _name, _inplace_method(_name, _fn))

# PyTorch's Tensor methods for functions written over the rows (matgrad.ops.composite and the
# top-level linalg names): each is the function itself, the tensor as its first argument
_FUNCTION_METHODS = (
    "addbmm", "addcdiv", "addcmul", "addmm", "addmv", "addr", "all", "aminmax", "any", "baddbmm",
    "frexp", "resolve_neg",
    "argsort", "as_strided", "as_strided_scatter", "broadcast_to", "count_nonzero", "corrcoef",
    "cov", "cummax", "cummin", "deg2rad", "diagflat", "diagonal_scatter", "diff", "dist",
    "dsplit", "fliplr", "flipud", "float_power", "fmax", "fmin", "gather", "hsplit",
    "index_add", "index_copy", "index_fill", "index_put", "index_reduce", "index_select",
    "inner", "isclose", "isfinite", "isinf", "isnan", "isneginf", "isposinf", "isreal",
    "kthvalue", "ldexp", "lerp", "logaddexp2", "logcumsumexp", "logical_and", "logical_not",
    "logical_or", "masked_fill", "masked_scatter", "masked_select", "median", "mode",
    "moveaxis", "movedim", "msort", "nan_to_num", "nanmean", "nanmedian", "nanquantile",
    "nansum", "narrow_copy", "positive", "put", "quantile", "rad2deg", "ravel", "renorm",
    "repeat", "repeat_interleave", "rot90", "scatter", "scatter_add", "scatter_reduce",
    "select_scatter", "signbit", "slice_scatter", "sort", "split_with_sizes", "sum_to_size",
    "swapdims", "take", "take_along_dim", "tensor_split", "tile", "topk", "true_divide",
    "unfold", "unsafe_chunk", "unsafe_split", "unsafe_split_with_sizes", "vsplit",
    "clamp_min", "clamp_max", "floor_divide",
)  # fmt: skip
# Tensor methods of the linalg functions that PyTorch also has at the top level
_LINALG_METHODS = (
    "cholesky_inverse", "cholesky_solve", "cross", "kron", "logdet",
    "matrix_power", "pinverse", "qr", "svd", "triangular_solve", "lu", "lu_solve", "ormqr",
    "geqrf", "orgqr",
)  # fmt: skip
# their in-place forms (``x.index_add_(...)``: the function's result written into x)
_FUNCTION_INPLACE = (
    "addbmm_", "addcdiv_", "addcmul_", "addmm_", "addmv_", "addr_", "baddbmm_", "clamp_max_",
    "clamp_min_",
    "deg2rad_", "float_power_", "index_add_", "index_copy_", "index_fill_", "index_put_",
    "index_reduce_", "ldexp_", "lerp_", "masked_fill_", "masked_scatter_", "nan_to_num_",
    "put_", "rad2deg_", "renorm_", "scatter_", "scatter_add_", "scatter_reduce_",
    "true_divide_", "logical_and_", "logical_not_", "logical_or_", "floor_divide_", "cumsum_",
    "cumprod_", "tril_", "triu_", "eq_", "ne_", "lt_", "le_", "gt_", "ge_",
)  # fmt: skip
for _name in _FUNCTION_METHODS:
    setattr(Tensor, _name, getattr(_ops, _name))
_TOP_LEVEL = _toplevel.functions()
for _name in _LINALG_METHODS:
    setattr(Tensor, _name, _TOP_LEVEL[_name])
for _name in _FUNCTION_INPLACE:
    setattr(Tensor, _name, _inplace_method(_name, getattr(_ops, _name[:-1])))
Tensor.__rdiv__ = Tensor.__rtruediv__  # PyTorch keeps Python 2's name


class InplaceCastError(RuntimeError, TypeError):
    """An in-place operation whose result has a dtype of another kind than the tensor's
    (``int_tensor += 0.5``): refused, as the Array API's in-place rules and PyTorch do."""


def _overwrite(old: Tensor, value: Any) -> Tensor:
    """``value`` broadcast to ``old``'s shape and dtype; the gradient reaching ``old``'s
    previous value is zero, and ``value``'s gradient is summed to its shape."""
    value = as_tensor(value)
    if value.dtype != old.dtype:
        value = _ops.to_dtype(value, old.dtype)
    out = _ops.expand(value, old.shape)
    # old * 0.0 keeps old's graph; without one, adding a float 0.0 would promote an integer
    # tensor to float64 (and copy_/fill_/zero_ of it would fail)
    return out + old * 0.0 if old.requires_grad else out


def _dtype_name(dtype: np.dtype) -> str:
    return f"matgrad.{dtype.name}"
