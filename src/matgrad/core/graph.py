"""Graph nodes: the base of every ``grad_fn`` object (edges, hooks) and ``AccumulateGrad``.

The nodes made from rows of the rule table are in :mod:`matgrad.core.nodes`; this module sits
below the tensor record, which needs ``AccumulateGrad`` and hook handles.
"""

from __future__ import annotations

import os
import threading
import traceback
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .tensor_base import Tensor

Edge = tuple["Node | None", int]
# What a node keeps per input: (node, output_nr, shape, dtype). The node is the input's
# grad_fn, its leaf's AccumulateGrad, or None when no gradient is needed; shape and dtype (None
# for non-float or non-tensor inputs) are what the input's gradient is fitted to.
InputEdge = tuple["Node | None", int, "tuple[int, ...] | None", Any]
NO_EDGE: InputEdge = (None, 0, None, None)
_WANT = (True,)  # stands for an edge whose gradient is wanted (see Rule.vjp's `needs`)

# `.grad` (and a retained gradient) is read, added to and written back: threads running
# backward passes into one leaf (a shared parameter) take turns, so no contribution is lost.
# Re-entrant: a hook that runs inside may start a backward pass of its own
ACCUMULATE_LOCK = threading.RLock()

# Counts in-place changes to any tensor. A node remembers the count when it is made; while it
# is unchanged, none of its saved tensors can have been modified and the per-tensor version
# check is skipped (it is the common case, and the check is not free).
inplace_epoch = [0]


# The version counter of each memory written in place, by the id of the array owning it, for
# as long as that array lives: a node whose saved output (held weakly) is gone finds the
# version of the output's memory here, from the array it saved
_STORAGE_COUNTERS: dict[int, list[int]] = {}


def _owner(data: Any) -> Any:
    base = getattr(data, "base", None)
    return data if base is None else base  # NumPy points a view's base at the owner


def bump_version(tensor: Tensor) -> None:
    """Record an in-place change of ``tensor`` (its version and the global epoch)."""
    counter = tensor._shared_counter()
    counter[0] += 1
    inplace_epoch[0] += 1
    owner = _owner(tensor._data)
    key = id(owner)
    if _STORAGE_COUNTERS.get(key) is not counter:
        try:
            weakref.finalize(owner, _STORAGE_COUNTERS.pop, key, None)
        except TypeError:  # memory not owned by an array (no weak references): not tracked
            return
        _STORAGE_COUNTERS[key] = counter


def storage_version(data: Any, default: int) -> int:
    """The in-place version of the memory behind ``data`` (``default`` if never written)."""
    counter = _STORAGE_COUNTERS.get(id(_owner(data)))
    return default if counter is None else counter[0]


# -- opt-in instrumentation -----------------------------------------------------------------------
# Saved-tensor hooks, anomaly mode and the profiler are off by default. Where they hook in
# (a node is made, an op runs) the cost when off is one truth test of a module-level list.

#: non-empty while every new node must be seen: saved-tensor hooks open in some thread
#: (one token per open context), anomaly mode on. Tested as ``if NODE_WATCHERS:``.
NODE_WATCHERS: list[object] = []
#: the profilers recording now; non-empty makes each op call go through :func:`observed_call`
OP_OBSERVERS: list[Any] = []


class _ThreadHooks(threading.local):
    def __init__(self) -> None:
        self.saved: list[tuple[Callable, Callable]] = []  # (pack, unpack), innermost last
        self.disabled: str | None = None  # the error message while hooks are disabled
        self.observing = False  # inside an observed op call (nested calls are not timed)
        self.executing: Node | None = None  # the node the engine runs (anomaly mode's parent)


HOOKS = _ThreadHooks()


def current_saved_hooks() -> tuple[Callable, Callable] | None:
    """The innermost ``(pack, unpack)`` pair of this thread, or None."""
    saved = HOOKS.saved
    return saved[-1] if saved else None


def push_saved_hooks(pack: Callable, unpack: Callable) -> None:
    if HOOKS.disabled is not None:
        raise RuntimeError(HOOKS.disabled)
    HOOKS.saved.append((pack, unpack))
    NODE_WATCHERS.append(pack)


def pop_saved_hooks() -> None:
    pack, _ = HOOKS.saved.pop()
    for i in range(len(NODE_WATCHERS) - 1, -1, -1):
        if NODE_WATCHERS[i] is pack:
            del NODE_WATCHERS[i]
            break


class _Anomaly:
    """Anomaly mode's switches (process-wide, as PyTorch's)."""

    enabled = False
    check_nan = True
    check_inf = False  # matgrad's addition: PyTorch checks NaN only


ANOMALY = _Anomaly()
_ANOMALY_TOKEN = object()


def set_anomaly_enabled(enabled: bool, check_nan: bool = True, check_inf: bool = False) -> None:
    ANOMALY.enabled = bool(enabled)
    ANOMALY.check_nan = bool(check_nan)
    ANOMALY.check_inf = bool(check_inf)
    if any(w is _ANOMALY_TOKEN for w in NODE_WATCHERS):
        NODE_WATCHERS[:] = [w for w in NODE_WATCHERS if w is not _ANOMALY_TOKEN]
    if ANOMALY.enabled:
        NODE_WATCHERS.append(_ANOMALY_TOKEN)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_stack() -> list[str]:
    """The current Python stack without matgrad's own frames, as ``traceback.format_list``
    lines (outermost first): what anomaly mode stores as a node's ``traceback_``."""
    frames = [
        f
        for f in traceback.extract_stack()
        if not f.filename.startswith(_PACKAGE_DIR) and not f.filename.startswith("<matgrad.")
    ]
    return traceback.format_list(frames)


def watch_new_node(node: Node) -> None:
    """What the opt-in features do with a node just made (called only while
    :data:`NODE_WATCHERS` is non-empty): anomaly mode stores the forward stack (and, for a
    node made during a backward pass, the node being run); saved-tensor hooks pack."""
    if ANOMALY.enabled:
        meta = node.metadata
        meta["traceback_"] = user_stack()
        parent = HOOKS.executing
        if parent is not None:
            meta["parent_"] = parent
    if HOOKS.saved:
        node._pack_saved(*HOOKS.saved[-1])


def observed_call(fn: Callable, name: str, args: tuple, kwargs: dict) -> Any:
    """Run op ``fn`` (an entry point, called again) with every profiler timing it; calls it
    makes in turn are not timed separately."""
    observers = list(OP_OBSERVERS)
    HOOKS.observing = True
    try:
        tokens = [o.op_start(name, args) for o in observers]
        try:
            return fn(*args, **kwargs)
        finally:
            for o, token in zip(reversed(observers), reversed(tokens), strict=True):
                o.op_end(token)
    finally:
        HOOKS.observing = False


class _Hooks:
    """The hooks of one node (most nodes have none, so this is made on demand)."""

    __slots__ = ("pre", "post", "tensor_pre")

    def __init__(self) -> None:
        self.pre: list[Callable] = []
        self.post: list[Callable] = []
        self.tensor_pre: dict[int, list[Callable]] = {}


class Node:
    """Base of every graph node: ``next_functions``, ``name()``, hooks and calling."""

    __slots__ = ("_next", "_hooks", "_metadata", "__weakref__")
    n_outputs = 1

    def __init__(self) -> None:
        self._next: tuple[InputEdge, ...] = ()
        self._hooks: _Hooks | None = None
        if NODE_WATCHERS:
            watch_new_node(self)

    # -- inspection ----------------------------------------------------------------------------
    def name(self) -> str:
        return type(self).__name__

    @property
    def metadata(self) -> dict:
        """A dict kept with the node for the user (and for anomaly mode's ``traceback_``)."""
        try:
            return self._metadata
        except AttributeError:  # made on first use: most nodes never have one
            self._metadata: dict = {}
            return self._metadata

    @property
    def next_functions(self) -> tuple[Edge, ...]:
        """One ``(node, output_index)`` pair per input: the node that made the input, an
        ``AccumulateGrad`` for a leaf that requires grad, ``(None, 0)`` otherwise."""
        return tuple((e[0], e[1]) for e in self._next)

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self):#x}>"

    # -- hooks ---------------------------------------------------------------------------------
    def _get_hooks(self) -> _Hooks:
        if self._hooks is None:
            self._hooks = _Hooks()
        return self._hooks

    def register_hook(self, fn: Callable) -> _RemovableHandle:
        """``fn(grad_inputs, grad_outputs)`` runs after this node computed its input
        gradients; a non-None return replaces ``grad_inputs``."""
        hooks = self._get_hooks().post
        hooks.append(fn)
        return _RemovableHandle(hooks, fn)

    def register_prehook(self, fn: Callable) -> _RemovableHandle:
        """``fn(grad_outputs)`` runs before this node; a non-None return replaces them."""
        hooks = self._get_hooks().pre
        hooks.append(fn)
        return _RemovableHandle(hooks, fn)

    def _add_tensor_pre_hook(self, output_nr: int, fn: Callable) -> _RemovableHandle:
        hooks = self._get_hooks().tensor_pre.setdefault(output_nr, [])
        hooks.append(fn)
        return _RemovableHandle(hooks, fn)

    # -- evaluation (overridden) ---------------------------------------------------------------
    def _apply(
        self, grads: list[Any], create_graph: bool, nbatch: int, want_all: bool = False
    ) -> list[Any]:
        raise NotImplementedError

    def _raw_input_grads(self, grads: list[Any], release: bool) -> list[Any]:
        """Input gradients as raw arrays for one cotangent; the caller fits them to the
        inputs' shapes and dtypes (a fast path of ``_apply``). ``release`` frees the saved
        values afterwards."""
        out = self._apply(grads, False, 0)
        if release:
            self._release()
        return out

    def _release(self) -> None:
        """Drop saved values after a backward pass without ``retain_graph``."""

    def _pack_saved(self, pack: Callable, unpack: Callable) -> None:
        """Replace the saved tensors by what ``pack`` makes of them (saved-tensor hooks)."""


class GradientEdge(NamedTuple):
    """Where a tensor's gradient flows in the graph: input ``output_nr`` of ``node`` (the
    tensor's ``grad_fn``, or its leaf's ``AccumulateGrad``). ``autograd.grad`` takes edges as
    ``inputs`` (the gradient flowing into the edge) and as ``outputs``."""

    node: Node
    output_nr: int
    ownership_token: Node | None = None  # PyTorch's field; matgrad's nodes need no token


class BatchingUnsupported(RuntimeError):
    """A rule marked ``batched: false`` met a batch of cotangents or tangents; vectorized
    callers catch this and fall back to one pass per row."""

    def __init__(self, op: str) -> None:
        super().__init__(f"the rule for '{op}' does not take batched cotangents/tangents")
        self.op = op


class _RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook out and lets go of it (the
    handle keeps no reference to a removed hook, so the hook can be freed)."""

    __slots__ = ("_hooks", "_fn")

    def __init__(self, hooks: list[Callable], fn: Callable) -> None:
        self._hooks: list[Callable] | None = hooks
        self._fn: Callable | None = fn

    def remove(self) -> None:
        hooks, fn = self._hooks, self._fn
        self._hooks = self._fn = None
        if hooks is not None:
            for i, h in enumerate(hooks):
                if h is fn:
                    del hooks[i]
                    break

    def __enter__(self) -> _RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class AccumulateGrad(Node):
    """The node at a leaf that requires grad: adds the incoming gradient into ``.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable: Tensor) -> None:
        super().__init__()
        self.variable = variable

    def _apply(self, grads: list[Any], create_graph: bool, nbatch: int) -> list[Any]:
        return []


def walk(roots: Iterable[Node | None], ordered: bool = True) -> tuple[list[Node], dict[Node, int]]:
    """Every node reachable from ``roots`` along the input edges, each once, and how many
    edges of those nodes enter each node; iterative, so graphs of any depth work. The one graph
    walk: the engine schedules nodes by the counts, ``viz`` and ``explain`` number nodes by the
    order, depth-first pre-order (a node's inputs in order). ``ordered=False`` (the engine's
    call, per backward pass) skips building that order and returns the nodes in the order
    they were found."""
    incoming: dict[Node, int] = {}
    start = [r for r in roots if r is not None]
    if not ordered:
        found = list(dict.fromkeys(start))
        stack = list(found)
        root_set = set(found)
        while stack:
            for edge in stack.pop()._next:
                nxt = edge[0]
                if nxt is None:
                    continue
                if nxt in incoming:
                    incoming[nxt] += 1
                else:  # first time found
                    incoming[nxt] = 1
                    if nxt not in root_set:
                        found.append(nxt)
                        stack.append(nxt)
        return found, incoming
    visited: dict[Node, None] = {}  # insertion-ordered: the pre-order
    stack = start[::-1]
    while stack:
        node = stack.pop()
        if node in visited:
            continue
        visited[node] = None
        for edge in reversed(node._next):
            nxt = edge[0]
            if nxt is not None:
                incoming[nxt] = incoming.get(nxt, 0) + 1
                if nxt not in visited:
                    stack.append(nxt)
    return list(visited), incoming
