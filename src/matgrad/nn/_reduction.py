"""What ``nn.functional``'s modules share: the ``reduction=`` argument of the losses (with
PyTorch's deprecated ``size_average``/``reduce`` flags) and the ``inplace=`` result of the
activations. A module of its own, below ``functional`` and ``functional_more``, so neither
imports the other."""

from __future__ import annotations

import warnings
from typing import Any

from ..ops import composite as C
from ..tensor import Tensor

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """``loss`` as it is (``'none'``), its mean or its sum."""
    check_reduction(reduction)
    if reduction == "none":
        return loss
    return C.mean(loss) if reduction == "mean" else C.sum(loss)


def legacy_reduction(size_average: Any, reduce: Any, reduction: str) -> str:
    """PyTorch's deprecated ``size_average``/``reduce`` flags, mapped to ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    warnings.warn(
        "size_average and reduce args will be deprecated, please use reduction instead.",
        stacklevel=3,
    )
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        return "mean"
    return "sum" if reduce else "none"


def inplace_result(input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    """``out``, or (``inplace=True``) ``input`` with ``out`` written into it."""
    return input.copy_(out) if inplace else out
