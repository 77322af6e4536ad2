"""Thread-local switches for gradient recording: no_grad, enable_grad, set_grad_enabled,
inference_mode. Each works as a context manager and as a decorator."""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class _State(threading.local):
    def __init__(self) -> None:
        self.enabled = True
        self.inference = False
        self.forward_level = 0  # > 0 inside forward_ad.dual_level()
        # per open dual level, the tensors given a tangent in it ({id: weakref}): the level
        # drops their tangents when it ends
        self.dual_tensors: list[dict[int, weakref.ref]] = []
        # > 0 while ops dispatch to batching rules (inside func.vmap, outside the physical
        # calls the rules make); the open vmap levels, outermost first: [(level, size), ...]
        self.vmap = 0
        self.vmap_levels: list[tuple[int, int]] = []


state = _State()


def note_tangent(tensor: Any) -> None:
    """Remember ``tensor``, just given a tangent, in the innermost open dual level, which
    drops the tangent when it ends (a tensor at a reused id replaces the dead entry)."""
    levels = state.dual_tensors
    if levels:
        levels[-1][id(tensor)] = weakref.ref(tensor)


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad record a graph."""
    return state.enabled


def is_inference_mode_enabled() -> bool:
    return state.inference


class _GradModeContext:
    """Base for the switches: subclasses set ``_target`` and may override ``_enter``."""

    _target: bool = True

    def _enter(self) -> None:
        self._prev = (state.enabled, state.inference)
        state.enabled = self._target

    def __enter__(self) -> None:
        self._enter()

    def __exit__(self, *exc: object) -> None:
        state.enabled, state.inference = self._prev

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__(*self._ctor_args()):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def _ctor_args(self) -> tuple:
        return ()


class no_grad(_GradModeContext):  # noqa: N801 - PyTorch's name
    """Do not record operations: results have ``requires_grad=False`` and no ``grad_fn``."""

    _target = False


class enable_grad(_GradModeContext):  # noqa: N801
    """Record operations again inside a ``no_grad`` block."""

    _target = True


class set_grad_enabled(_GradModeContext):  # noqa: N801
    """Switch recording on or off; takes effect at once, and as a context manager restores
    the previous mode on exit."""

    def __init__(self, mode: bool) -> None:
        self._target = bool(mode)
        self._prev = (state.enabled, state.inference)
        state.enabled = self._target

    def __enter__(self) -> None:
        pass  # already switched in __init__, as in PyTorch

    def __call__(self, func: F) -> F:
        # used as a decorator, the switch applies only while the function runs
        state.enabled, state.inference = self._prev
        return super().__call__(func)

    def _ctor_args(self) -> tuple:
        return (self._target,)


class inference_mode(_GradModeContext):  # noqa: N801
    """Like ``no_grad``, for code that will never need gradients of what it computes."""

    def __init__(self, mode: bool = True) -> None:
        self._mode = bool(mode)
        self._target = not self._mode

    def _enter(self) -> None:
        self._prev = (state.enabled, state.inference)
        if self._mode:
            state.enabled = False
            state.inference = True

    def _ctor_args(self) -> tuple:
        return (self._mode,)
