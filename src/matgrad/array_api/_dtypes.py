"""The standard's data types: NumPy's scalar types, as in NumPy's own namespace.

They compare equal to the tensors' ``dtype`` (``x.dtype == float32``) and, unlike
``numpy.dtype`` instances, not to None (``np.dtype(None)`` is float64, so
``np.dtype("float64") == None`` holds). ``__array_namespace_info__().dtypes()`` gives the
``numpy.dtype`` instances themselves (see :mod:`._info`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.tensor_base import get_default_dtype

__all__ = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "complex64",
    "complex128",
]

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


def _default_float() -> Any:
    return float32 if get_default_dtype() == float32 else float64


def _default_complex() -> Any:
    return complex64 if get_default_dtype() == float32 else complex128
