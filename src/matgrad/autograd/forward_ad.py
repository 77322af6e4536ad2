"""Forward-mode automatic differentiation with dual tensors, at nested levels.

Inside ``with dual_level():``, ``make_dual(x, v)`` attaches a tangent ``v`` to ``x``; every
op applied to it pushes the tangent through its row's ``result`` formula in
``derivatives.yaml`` (a Jacobian-vector product), and ``unpack_dual(y).tangent`` reads it off.

Levels nest (PyTorch's ``dual_level``s): a tensor may carry one tangent per open level. The
formula of level L runs with the levels below L active, so a level-L tangent carries the
lower levels' tangents: forward-over-forward (``jacfwd(jacfwd(f))``) works, and tangents of
different levels never mix (no perturbation confusion). ``level=None`` means the innermost.
"""

from __future__ import annotations

import contextlib
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..core.apply import set_tangent, tangents_of
from ..core.grad_mode import state
from ..ops import batching as _batching
from ..ops.registry import PRIMITIVES as _P
from ..tensor import Tensor, as_tensor

UnpackedDualTensor = namedtuple("UnpackedDualTensor", ["primal", "tangent"])

__all__ = [
    "UnpackedDualTensor",
    "dual_level",
    "enter_dual_level",
    "exit_dual_level",
    "make_dual",
    "unpack_dual",
]


def _levels() -> list[dict[int, Any]]:
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
    """Close the innermost level: every tensor that got a tangent in it loses that tangent
    (PyTorch: tangents live only as long as their level); tangents of outer levels stay."""
    levels = _levels()
    level = len(levels)
    for ref in levels.pop().values():
        t = ref()
        if t is not None and t._fw_grad is not None:
            set_tangent(t, level, None)
    state.forward_level = min(state.forward_level, len(levels))


@contextmanager
def dual_level() -> Iterator[int]:
    """A scope for dual tensors; their tangents (at this level) are dropped when it ends."""
    level = enter_dual_level()
    try:
        yield level
    finally:
        _drop_level()


def enter_dual_level() -> int:
    """Open a new (innermost) dual level; returns its number (1 for the outermost)."""
    if state.forward_level != len(_levels()):
        raise RuntimeError("enter_dual_level: cannot open a level while a tangent formula runs")
    _levels().append({})
    state.forward_level = len(_levels())
    return state.forward_level


def exit_dual_level(*, level: int | None = None) -> None:
    if not _levels():
        raise RuntimeError("exit_dual_level: no dual level is open")
    if level is not None and level != len(_levels()):
        raise RuntimeError(
            f"exit_dual_level: level {level} is not the innermost open level ({len(_levels())})"
        )
    _drop_level()


def _level(level: int | None, fn: str) -> int:
    n = state.forward_level
    if n == 0:
        raise RuntimeError(f"{fn}: must be called inside `with forward_ad.dual_level():`")
    if level is None:
        return n
    if not 1 <= level <= n:
        raise RuntimeError(f"{fn}: level {level} is not open (open levels: 1 to {n})")
    return level


@contextlib.contextmanager
def _only_below(level: int) -> Iterator[None]:
    """Ops push tangents of the levels below ``level`` only."""
    active, state.forward_level = state.forward_level, level - 1
    try:
        yield
    finally:
        state.forward_level = active


def _alias(tensor: Tensor, level: int) -> Tensor:
    """A new tensor with ``tensor``'s values, graph and tangents of the levels below
    ``level`` (and none at ``level`` or above)."""
    lower = {lv for lv in tangents_of(tensor) if lv < level}
    if not tensor.requires_grad and not lower:
        return tensor.detach()
    with _only_below(level):
        out = _P.clone(tensor)  # records CloneBackward; pushes the lower tangents along
    for lv in tangents_of(out):
        if lv >= level:
            set_tangent(out, lv, None)
    return out


def make_dual(
    tensor: Tensor, tangent: Any, *, level: int | None = None, batched: bool = False
) -> Tensor:
    """A tensor with the values of ``tensor`` carrying the tangent ``tangent`` at ``level``
    (same shape and dtype; with ``batched=True`` the tangent has one extra leading axis of
    directions). The result keeps ``tensor``'s graph (reverse mode can run through forward
    mode) and its tangents at outer levels (forward-over-forward)."""
    lv = _level(level, "make_dual")
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
    if _batching.levels_of(tangent) and not set(_batching.levels_of(tangent)) <= set(
        _batching.levels_of(tensor)
    ):  # vmap over tangents only: the primal gets the tangent's batch levels
        tensor = _batching.to_levels(tensor, _batching.levels_of(tangent))
    if tangent.dtype != tensor.dtype:
        tangent = tangent.to(tensor.dtype)
    dual = _alias(tensor, lv)
    set_tangent(dual, lv, _batching.physical_tangent(dual, tangent, batched))
    return dual


def unpack_dual(tensor: Tensor, *, level: int | None = None) -> UnpackedDualTensor:
    """``(primal, tangent)`` at ``level``: the values without that level's tangent (keeping
    outer levels'), and the tangent (None outside a dual level, or where there is none)."""
    if state.forward_level == 0:
        return UnpackedDualTensor(
            _alias(tensor, 1) if tensor.requires_grad else tensor.detach(), None
        )
    lv = _level(level, "unpack_dual")
    tangent = tangents_of(tensor).get(lv)
    primal = _alias(tensor, lv)
    return UnpackedDualTensor(primal, _batching.logical_tangent(tensor, tangent))
