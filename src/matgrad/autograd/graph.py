"""``matgrad.autograd.graph``: the graph's nodes and edges, and hooks on saved tensors.

Follows ``torch.autograd.graph``: :class:`Node` (every ``grad_fn``, ``AccumulateGrad`` and
custom ``Function`` node is one), :class:`GradientEdge` / :func:`get_gradient_edge`,
:func:`increment_version`, :class:`saved_tensors_hooks` (pack every tensor a node saves for
backward; unpack it when backward, or ``grad_fn._saved_<name>``, reads it), :class:`save_on_cpu`,
:func:`disable_saved_tensors_hooks`, :func:`register_multi_grad_hook` and
:func:`allow_mutation_on_saved_tensors`.

Saved-tensor hooks are per thread; only the innermost pair applies. As in PyTorch, the pack
hook runs under ``no_grad`` when the node is made (outputs a node saves are packed too, with
their ``grad_fn`` set), and a packed tensor is not checked for in-place changes (the hooks
decide what is kept). The unpacked tensor gets the original's graph back, so
``create_graph=True`` works through packed values.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, Literal

import numpy as np

from ..core import engine as _engine
from ..core.graph import (
    HOOKS,
    GradientEdge,
    Node,
    _RemovableHandle,
    bump_version,
    pop_saved_hooks,
    push_saved_hooks,
)
from ..tensor import Tensor

__all__ = [
    "GradientEdge",
    "Node",
    "allow_mutation_on_saved_tensors",
    "disable_saved_tensors_hooks",
    "get_gradient_edge",
    "increment_version",
    "register_multi_grad_hook",
    "save_on_cpu",
    "saved_tensors_hooks",
]


def _grad_fn_or_acc(t: Tensor | GradientEdge) -> Node:
    if isinstance(t, GradientEdge):
        return t.node
    if not isinstance(t, Tensor):
        raise TypeError(f"expected a tensor or a GradientEdge, got {type(t).__name__}")
    if not t.requires_grad:
        raise RuntimeError(
            f"a tensor of shape {tuple(t.shape)} that does not require grad has no gradient "
            "edge (no node receives its gradient)"
        )
    return t.grad_fn if t.grad_fn is not None else t._accumulator()


def get_gradient_edge(tensor: Tensor) -> GradientEdge:
    """The edge where ``tensor``'s gradient arrives: ``(tensor.grad_fn, output index)``, or
    the leaf's ``AccumulateGrad`` and 0. ``autograd.grad(loss, get_gradient_edge(x))`` equals
    ``autograd.grad(loss, x)``, and keeps working after ``x`` itself is gone or changed."""
    if not tensor.requires_grad:
        raise RuntimeError(
            "It is not possible to get the gradient edge for a Tensor that does not require "
            "gradients"
        )
    return GradientEdge(_grad_fn_or_acc(tensor), tensor._output_nr)


def increment_version(tensor: Tensor | Iterable[Tensor]) -> None:
    """Mark ``tensor`` (or each of several) as changed in place, for changes matgrad cannot
    see (writing into ``tensor.numpy()``): nodes that saved it then refuse to use it."""
    for t in (tensor,) if isinstance(tensor, Tensor) else tensor:
        if not isinstance(t, Tensor):
            raise TypeError(f"increment_version: expected tensors, got {type(t).__name__}")
        bump_version(t)


class saved_tensors_hooks:  # noqa: N801 - PyTorch's name
    """Pack each tensor a node saves for backward with ``pack_hook(tensor) -> Any`` and get it
    back with ``unpack_hook(packed) -> Tensor`` when it is needed (backward, or
    ``grad_fn._saved_<name>``). ``unpack_hook(pack_hook(t))`` must equal ``t`` (values, shape,
    dtype; matgrad checks shape and dtype). Per thread; nested, the innermost pair applies."""

    def __init__(
        self, pack_hook: Callable[[Tensor], Any], unpack_hook: Callable[[Any], Tensor]
    ) -> None:
        self.pack_hook = pack_hook
        self.unpack_hook = unpack_hook

    def __enter__(self) -> None:
        push_saved_hooks(self.pack_hook, self.unpack_hook)

    def __exit__(self, *exc: object) -> None:
        pop_saved_hooks()


class save_on_cpu(saved_tensors_hooks):  # noqa: N801
    """Keep saved tensors in host memory (NumPy) and move them back to their device for
    backward: for CuPy (GPU) data this frees GPU memory at the cost of two copies; NumPy and
    Dask data are kept as they are (no copy), as PyTorch does for CPU tensors."""

    def __init__(self, pin_memory: bool = False, device_type: str = "cuda") -> None:
        # pin_memory and device_type are accepted for PyTorch's signature: CuPy's copies to
        # the host are synchronous here
        def pack_to_cpu(tensor: Tensor) -> tuple[Any, Tensor]:
            return (tensor.device, tensor.detach().cpu())

        def unpack_from_cpu(packed: tuple[Any, Tensor]) -> Tensor:
            device, tensor = packed
            return tensor.to(device)

        super().__init__(pack_to_cpu, unpack_from_cpu)


@contextlib.contextmanager
def disable_saved_tensors_hooks(error_message: str) -> Generator[None, None, None]:
    """Inside, opening :class:`saved_tensors_hooks` raises ``RuntimeError(error_message)``
    (for features that cannot work with them); raises at once if hooks are open already."""
    if HOOKS.saved:
        raise RuntimeError(error_message)
    previous = HOOKS.disabled
    HOOKS.disabled = error_message
    try:
        yield
    finally:
        HOOKS.disabled = previous


class _MultiHandle(_RemovableHandle):
    """Removes the hooks of :func:`register_multi_grad_hook` together."""

    __slots__ = ("handles",)

    def __init__(self, handles: tuple[_RemovableHandle, ...]) -> None:
        self.handles = handles

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def register_multi_grad_hook(
    tensors: Sequence[Tensor],
    fn: Callable[[Sequence[Tensor | None]], None] | Callable[[Tensor], None],
    *,
    mode: Literal["all", "any"] = "all",
) -> _RemovableHandle:
    """Call ``fn`` once per backward pass over several tensors' gradients.

    ``mode="all"``: ``fn(grads)`` once the gradients of all of ``tensors`` that this pass
    computes are there (None for the others: not in the graph, or not needed for the
    ``inputs`` of this call). ``mode="any"``: ``fn(grad)`` with the first of them."""
    if mode not in ("all", "any"):
        raise ValueError(f"Expects mode to be one of ('all', 'any') but got {mode}")
    tensors = tuple(tensors)
    lock = threading.Lock()
    if mode == "all":
        nodes = [_grad_fn_or_acc(t) for t in tensors]
        n = len(tensors)
        # per backward pass (graph task id): [arrived, expected, grads, called]
        passes: dict[int, list[Any]] = {}

        def flush(task_id: int) -> None:
            # end of the pass: gradients that arrived but fewer than expected (a node that
            # ran without a gradient for one of the tensors) still reach fn, once
            state = passes.pop(task_id, None)
            if state is not None and not state[3] and state[0]:
                fn(state[2])  # type: ignore[arg-type]

        def inner_hook(idx: int) -> Callable[[Tensor], None]:
            def hook(grad: Tensor) -> None:
                task = _engine.current_graph_task()
                if task is None:
                    raise AssertionError("expected this hook to be called inside a backward call")
                with lock:
                    state = passes.get(task.id)
                    if state is None:
                        expected = sum(task.will_execute(node) for node in nodes)
                        state = passes[task.id] = [0, expected, [None] * n, False]
                        task.callbacks.append(lambda: flush(task.id))
                    state[2][idx] = grad
                    state[0] += 1
                    call = state[0] >= state[1] and not state[3]
                    if call:
                        state[3] = True
                if call:
                    fn(state[2])  # type: ignore[arg-type]

            return hook

        handles = tuple(t.register_hook(inner_hook(i)) for i, t in enumerate(tensors))
    else:
        seen: set[int] = set()

        def any_hook(grad: Tensor) -> None:
            task = _engine.current_graph_task()
            if task is None:
                raise AssertionError("expected this hook to be called inside a backward call")
            with lock:
                first = task.id not in seen
                if first:
                    seen.add(task.id)
                    task.callbacks.append(lambda: seen.discard(task.id))
            if first:
                fn(grad)  # type: ignore[arg-type]

        handles = tuple(t.register_hook(any_hook) for t in tensors if t.requires_grad)
    return _MultiHandle(handles)


# -- allow_mutation_on_saved_tensors ---------------------------------------------------------------
_MUTATION_CONTEXT: list[Any] = []  # the open context (they cannot nest)


class _Handle:
    """What a node keeps for a tensor saved under allow_mutation_on_saved_tensors."""

    __slots__ = ("__weakref__",)


class _AllowMutationOnSavedContext:
    """The state of :func:`allow_mutation_on_saved_tensors`: the saved values by handle."""

    def __init__(self) -> None:
        self.saved: weakref.WeakKeyDictionary[_Handle, Tensor] = weakref.WeakKeyDictionary()
        self.active = True

    def clear(self) -> None:
        self.saved.clear()


@contextlib.contextmanager
def allow_mutation_on_saved_tensors() -> Generator[_AllowMutationOnSavedContext, None, None]:
    """Inside, tensors saved for backward may be changed in place afterwards: backward uses
    the values they had when saved. Run forward and backward inside the same context.

    matgrad copies each saved tensor when it is saved (PyTorch copies lazily, on the first
    in-place change, which matgrad's in-place path has no hook for): it costs the memory of
    the saved tensors once more, freed when their nodes are or the context ends."""
    if _MUTATION_CONTEXT:
        raise RuntimeError("allow_mutation_on_saved_tensors contexts cannot be nested")
    ctx = _AllowMutationOnSavedContext()

    def pack(tensor: Tensor) -> _Handle:
        handle = _Handle()
        data = tensor._data
        ctx.saved[handle] = Tensor._wrap(
            np.array(data, copy=True) if isinstance(data, np.ndarray) else data.copy()
        )
        return handle

    def unpack(handle: _Handle) -> Tensor:
        if not ctx.active:
            raise RuntimeError(
                "Trying to backward outside of the 'allow_mutation_on_saved_tensors' context "
                "in which the graph was originally recorded."
            )
        return ctx.saved[handle]

    _MUTATION_CONTEXT.append(ctx)
    try:
        with saved_tensors_hooks(pack, unpack):
            yield ctx
    finally:
        ctx.active = False
        ctx.clear()
        _MUTATION_CONTEXT.clear()
