"""The standard's elementwise functions.

Most are the table's own ops: see ``_TABLE`` below. The ones written here do more than call an
op: real and complex cases (``conj``, ``real``, ``imag``, ``positive``), the standard's
signature over another op (``clip``, ``reciprocal``), the standard's special cases
(``floor_divide``), or no op at all (the functions without a gradient, on NumPy's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.tensor_base import Tensor
from ..ops import composite as _ops
from ..ops.registry import PRIMITIVES as _P
from ._creation import _tensor, zeros_like
from ._data_types import astype
from ._helpers import _from_table, _nograd

# The elementwise functions that are exactly one op of the table with positional tensor inputs
# (``exp(x, /)``, ``add(x1, x2, /)``, ``atan2(x1, x2, /)``, ...) are their rows' `array_api`
# variants in derivatives.yaml: the rows' entry points themselves, put in this module by name,
# with no wrapper in between (``divide`` is the row ``div``, ``multiply`` ``mul``, ...).
_TABLE: dict[str, Any] = _from_table("elementwise")
globals().update(_TABLE)

# differentiable, written: the standard's signature or its real/complex cases over the ops


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
    return _P.conj(x) if x.dtype.kind == "c" else _P.clone(x)  # differentiable (complex autograd)


def imag(x: Tensor, /) -> Tensor:
    x = _tensor(x)
    return _P.clone(_P.imag(x)) if x.dtype.kind == "c" else zeros_like(x)


def positive(x: Tensor, /) -> Tensor:
    return _P.clone(_tensor(x))


def real(x: Tensor, /) -> Tensor:
    x = _tensor(x)
    return _P.clone(_P.real(x)) if x.dtype.kind == "c" else _P.clone(x)


def reciprocal(x: Tensor, /) -> Tensor:
    return _P.div(1.0, x)


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


_WRITTEN = [
    "clip",
    "conj",
    "imag",
    "positive",
    "real",
    "reciprocal",
    "bitwise_and",
    "bitwise_left_shift",
    "bitwise_invert",
    "bitwise_or",
    "bitwise_right_shift",
    "bitwise_xor",
    "ceil",
    "equal",
    "floor",
    "floor_divide",
    "greater",
    "greater_equal",
    "isfinite",
    "isinf",
    "isnan",
    "less",
    "less_equal",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "nextafter",
    "not_equal",
    "round",
    "signbit",
    "trunc",
]
__all__ = sorted([*_TABLE, *_WRITTEN])
