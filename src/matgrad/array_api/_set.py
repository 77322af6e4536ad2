"""The standard's set functions: the unique values are a gather of the input at their first
occurrences (so they carry its gradient); indices and counts have none."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from ..core.tensor_base import Tensor
from ..ops import composite as _ops
from ._creation import _tensor
from ._dtypes import int64
from ._helpers import _eager_only, _wrap
from ._indexing import take

__all__ = [
    "UniqueAllResult",
    "UniqueCountsResult",
    "UniqueInverseResult",
    "unique_all",
    "unique_counts",
    "unique_inverse",
    "unique_values",
]

_NS = "matgrad.array_api"  # where the result types are public
UniqueAllResult = namedtuple(
    "UniqueAllResult", ["values", "indices", "inverse_indices", "counts"], module=_NS
)
UniqueCountsResult = namedtuple("UniqueCountsResult", ["values", "counts"], module=_NS)
UniqueInverseResult = namedtuple("UniqueInverseResult", ["values", "inverse_indices"], module=_NS)


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
