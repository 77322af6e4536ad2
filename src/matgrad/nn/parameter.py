"""``nn.Parameter``: a tensor that a :class:`~matgrad.nn.Module` registers as a parameter."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.tensor_base import to_array
from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad (by default) and that a Module attribute assignment
    registers as a parameter. It shares the data of the tensor it is made from, as
    PyTorch's; every op on it returns a plain :class:`~matgrad.Tensor`."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0, dtype=np.float64)
        if isinstance(data, Tensor):
            arr = data._data
            counter = data._shared_counter()
        else:
            arr = to_array(data, None)
            counter = None
        Tensor.__init__(self, arr, requires_grad=requires_grad)
        self._version_counter = counter

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_rebuild_parameter, (np.array(self._data), self.requires_grad))

    def __deepcopy__(self, memo: dict) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(np.array(self._data, copy=True), self.requires_grad)
        memo[id(self)] = out
        return out


def _rebuild_parameter(data: Any, requires_grad: bool) -> Parameter:
    return Parameter(data, requires_grad)
