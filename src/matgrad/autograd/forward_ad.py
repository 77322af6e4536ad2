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


def _levels() -> list[dict[int, weakref.ref]]:
    """Per open dual level of this thread, the tensors that got a tangent in it, as
    ``{id(tensor): weakref.ref(tensor)}`` (thread-local, like the level count itself; a new
    tensor at a reused id replaces the dead entry, so a level holds no more entries than
    tensors lived at once): the duals made here and the results of ops on them (noted by the
    core where it pushes tangents)."""
    levels = getattr(state, "dual_tensors", None)
    if levels is None:
        levels = state.dual_tensors = []
    return levels


def _drop_level() -> None:
    """Close the innermost level: every tensor that got a tangent in it loses it (PyTorch:
    tangents live only as long as their level)."""
    for ref in _levels().pop().values():
        t = ref()
        if t is not None:
            t._fw_grad = None
    state.forward_level -= 1


@contextmanager
def dual_level() -> Iterator[int]:
    """A scope for dual tensors; their tangents are dropped when it ends."""
    level = enter_dual_level()
    try:
        yield level
    finally:
        _drop_level()


def enter_dual_level() -> int:
    state.forward_level += 1
    _levels().append({})
    return state.forward_level


def exit_dual_level(*, level: int | None = None) -> None:
    if state.forward_level == 0:
        raise RuntimeError("exit_dual_level: no dual level is open")
    _drop_level()


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
    _levels()[-1][id(dual)] = weakref.ref(dual)
    return dual


def unpack_dual(tensor: Tensor, *, level: int | None = None) -> UnpackedDualTensor:
    """``(primal, tangent)``: the values without the tangent, and the tangent (None outside
    a dual level, where no tensor carries one)."""
    tangent = tensor._fw_grad if state.forward_level else None
    primal = tensor.detach()
    if tensor.grad_fn is not None or tensor.requires_grad:
        level, state.forward_level = state.forward_level, 0  # the primal gets no tangent
        try:
            primal = tensor.clone()
        finally:
            state.forward_level = level
        primal._fw_grad = None
    return UnpackedDualTensor(primal, tangent)
