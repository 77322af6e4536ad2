"""The standard's inspection: ``__array_namespace_info__()``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._data_types import isdtype
from ._dtypes import _ALL_DTYPES, _default_complex, _default_float, int64

__all__ = ["__array_namespace_info__"]


def _check_device(device: Any) -> None:
    if device is not None and device != "cpu":
        raise ValueError(f"unsupported device {device!r} (the devices: {_Info().devices()})")


class _Info:
    """What ``__array_namespace_info__()`` returns: capabilities, devices and dtypes.

    The dtypes are ``numpy.dtype`` instances, the very objects a tensor's ``dtype`` is (as
    NumPy's own namespace info gives them): dicts keyed by them can be looked up with
    ``x.dtype``, which NumPy's scalar types (the namespace's ``float32``...) compare equal to
    but do not hash like."""

    __module__ = "matgrad.array_api"

    def capabilities(self) -> dict[str, Any]:
        return {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}

    def default_device(self) -> str:
        return "cpu"

    def default_dtypes(self, *, device: Any = None) -> dict[str, np.dtype]:
        _check_device(device)
        return {
            "real floating": np.dtype(_default_float()),
            "complex floating": np.dtype(_default_complex()),
            "integral": np.dtype(int64),
            "indexing": np.dtype(int64),
        }

    def dtypes(self, *, device: Any = None, kind: Any = None) -> dict[str, np.dtype]:
        _check_device(device)
        return {
            np.dtype(dt).name: np.dtype(dt)
            for dt in _ALL_DTYPES
            if kind is None or isdtype(dt, kind)
        }

    def devices(self) -> list[str]:
        return ["cpu"]


def __array_namespace_info__() -> _Info:  # noqa: N807 - the standard's name
    return _Info()
