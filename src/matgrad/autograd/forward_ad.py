"""Forward-mode automatic differentiation with dual tensors.

Inside ``with dual_level():``, ``make_dual(x, v)`` attaches a tangent ``v`` to ``x``; every
op applied to it pushes the tangent through its row's ``result`` formula in
``derivatives.yaml`` (a Jacobian-vector product), and ``unpack_dual(y).tangent`` reads it off.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..core.grad_mode import state
from ..tensor import Tensor, as_tensor

UnpackedDualTensor = namedtuple("UnpackedDualTensor", ["primal", "tangent"])


def _levels() -> list[list[weakref.ref]]:
    """Per open dual level of this thread, the dual tensors made in it (thread-local, like
    the level count itself)."""
    levels = getattr(state, "dual_tensors", None)
    if levels is None:
        levels = state.dual_tensors = []
    return levels


@contextmanager
def dual_level() -> Iterator[int]:
    """A scope for dual tensors; their tangents are dropped when it ends."""
    state.forward_level += 1
    _levels().append([])
    try:
        yield state.forward_level
    finally:
        for ref in _levels().pop():
            t = ref()
            if t is not None:
                t._fw_grad = None
        state.forward_level -= 1


def enter_dual_level() -> int:
    state.forward_level += 1
    _levels().append([])
    return state.forward_level


def exit_dual_level() -> None:
    for ref in _levels().pop():
        t = ref()
        if t is not None:
            t._fw_grad = None
    state.forward_level -= 1


def make_dual(
    tensor: Tensor, tangent: Any, *, level: int | None = None, batched: bool = False
) -> Tensor:
    """A tensor with the values of ``tensor`` carrying the tangent ``tangent`` (same shape
    and dtype; with ``batched=True`` the tangent has one extra leading axis of directions).
    The result keeps ``tensor``'s graph, so reverse mode can run through forward mode."""
    if state.forward_level == 0:
        raise RuntimeError("make_dual: must be called inside `with forward_ad.dual_level():`")
    tensor = as_tensor(tensor)
    tangent = as_tensor(tangent)
    expected = tuple(tensor.shape)
    got = tuple(tangent.shape)[1:] if batched else tuple(tangent.shape)
    if got != expected:
        raise ValueError(
            f"make_dual: tangent of shape {tuple(tangent.shape)} does not match the primal's "
            f"shape {expected}" + (" (after its leading batch axis)" if batched else "")
        )
    if tensor.dtype.kind not in "fc":
        raise ValueError(f"make_dual: the primal must be floating point, got {tensor.dtype}")
    if tangent.dtype != tensor.dtype:
        tangent = tangent.to(tensor.dtype)
    dual = tensor.clone() if tensor.requires_grad else tensor.detach()
    dual._fw_grad = tangent
    _levels()[-1].append(weakref.ref(dual))
    return dual


def unpack_dual(tensor: Tensor, *, level: int | None = None) -> UnpackedDualTensor:
    """``(primal, tangent)``: the values without the tangent, and the tangent (or None)."""
    primal = tensor.detach()
    if tensor.grad_fn is not None or tensor.requires_grad:
        primal = tensor.clone()
        primal._fw_grad = None
    return UnpackedDualTensor(primal, tensor._fw_grad)
