"""What the namespace's modules share: argument conversion, placement on a device, functions
without gradients, and the functions that come from the rule table.

The standard's functions that are exactly one op of the table (positional tensor inputs and no
other parameter: ``exp(x, /)``, ``add(x1, x2, /)``) are not written in this package: they are
their rows' ``array_api`` variants in ``derivatives.yaml``, the rows' entry points themselves
(:data:`matgrad.ops.bindings.ARRAY_API`). :func:`_from_table` hands each module the ones of its
section of the standard.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import arrays as _backend
from ..core.tensor_base import Tensor, data_of
from ..ops import composite as _ops
from ..ops.bindings import ARRAY_API

# the sections of the table's Array API functions: elementwise, except the names listed here
# and dotted names (``linalg.det``: the extension's)
_SECTION_OF = {"where": "searching"}
_SECTIONS = ("elementwise", "searching", "linalg", "fft")


def _from_table(section: str) -> dict[str, Any]:
    """The table's Array API functions of ``section`` (see the module docstring), by their
    names in that (sub-)namespace."""
    out = {}
    for name, fn in ARRAY_API.items():
        extension, _, short = name.rpartition(".")
        where = extension or _SECTION_OF.get(name, "elementwise")
        if where not in _SECTIONS:
            raise ValueError(
                f"derivatives.yaml: array_api variant {name!r}: matgrad.array_api has no "
                f"'{where}' extension"
            )
        if where == section:
            out[short] = fn
    return out


def _dtype(dtype: Any) -> np.dtype | None:
    return None if dtype is None else np.dtype(dtype)


def _wrap(arr: Any) -> Tensor:
    return Tensor._wrap(arr)


_raw = data_of  # the array behind a tensor


def _place(t: Tensor, device: Any) -> Tensor:
    """``t`` on ``device`` (None: where it is; a CuPy tensor's ``device``: to CuPy)."""
    if device is None or device == t.device:
        return t
    return t.to_device(device)


def _nograd(fn: Any, *args: Any, **kwargs: Any) -> Tensor:
    return _ops._nograd(fn, *args, **kwargs)


def _cast(x: Tensor, dt: np.dtype) -> Tensor:
    """The tensor ``x`` converted to ``dt``, another dtype than its own: differentiable between
    floating dtypes (not from complex to real)."""
    if x.dtype.kind in "fc" and dt.kind in "fc" and not (x.dtype.kind == "c" != dt.kind):
        return _ops.to_dtype(x, dt)
    with np.errstate(invalid="ignore", over="ignore"):
        return _wrap(x._data.astype(dt))


def _shape_tuple(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _axes(axis: Any) -> Any:
    """None, an int, or a tuple of ints (lists become tuples)."""
    if axis is None or isinstance(axis, int | np.integer):
        return axis
    return tuple(int(a) for a in axis)


def _normalize_axis(axis: int, ndim: int, op: str) -> int:
    if not -ndim <= axis < ndim:
        raise IndexError(f"{op}: axis {axis} is out of range for {ndim} dimension(s)")
    return axis % ndim


def _eager_only(op: str, data: Any) -> None:
    """Refuse data-dependent ops that Dask lacks (NumPy's fallback would compute the whole
    array eagerly and silently)."""
    if _backend.backend_of(data) == "dask":
        raise _backend.unsupported(op, data, "compute the tensor first (tensor.compute())")
