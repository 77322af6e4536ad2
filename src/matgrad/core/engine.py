"""The backward engine: runs a recorded graph in reverse. It knows no op.

Nodes are visited in dependency order (a node runs once, after every node that feeds it a
gradient has run), found with an iterative walk, so graphs of any depth work. Gradients are
raw arrays unless ``create_graph=True``, when they are tensors and the pass records a graph.
"""

from __future__ import annotations

import itertools
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from . import grad_mode as _grad_mode
from . import nodes
from .graph import (
    ACCUMULATE_LOCK,
    ANOMALY,
    HOOKS,
    OP_OBSERVERS,
    AccumulateGrad,
    GradientEdge,
    Node,
    bump_version,
    walk,
)
from .nodes import RuleNode, fit_gradient
from .tensor_base import Tensor, as_tensor


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, Tensor | GradientEdge):
        return [x]
    return list(x)


# -- the graph task: what one backward pass is doing, for hooks that ask ---------------------------
class GraphTask:
    """One running backward pass (PyTorch's graph task): its id, which nodes it will run,
    and callbacks queued to run when it ends."""

    __slots__ = ("id", "reachable", "needed", "targets", "accumulate", "callbacks")

    def __init__(self, task_id: int, accumulate: bool) -> None:
        self.id = task_id
        self.accumulate = accumulate
        self.reachable: set[Node] = set()
        self.needed: set[Node] | None = None
        self.targets: set[Node] = set()
        self.callbacks: list[Callable[[], Any]] = []

    def will_execute(self, node: Node) -> bool:
        """Whether this pass runs ``node`` (for an ``AccumulateGrad``: the leaf's hooks)."""
        if not isinstance(self.reachable, set):  # the engine hands over its list
            self.reachable = set(self.reachable)
        if node not in self.reachable:
            return False
        if type(node) is AccumulateGrad:
            return node in self.targets if (self.targets or not self.accumulate) else True
        return self.needed is None or node in self.needed


class _Tasks(threading.local):
    def __init__(self) -> None:
        self.stack: list[GraphTask] = []


_TASKS = _Tasks()
_TASK_IDS = itertools.count()


def current_graph_task() -> GraphTask | None:
    """The backward pass running in this thread (the innermost), or None outside one."""
    stack = _TASKS.stack
    return stack[-1] if stack else None


def current_graph_task_id() -> int:
    """The id of the running backward pass, -1 outside one (PyTorch's convention)."""
    task = current_graph_task()
    return -1 if task is None else task.id


def will_engine_execute_node(node: Node) -> bool:
    """Whether the running backward pass will run ``node``; raises outside a backward pass."""
    task = current_graph_task()
    if task is None:
        raise RuntimeError(
            "_will_engine_execute_node should only be called during the backward pass"
        )
    return task.will_execute(node)


def queue_callback(fn: Callable[[], Any]) -> None:
    """Run ``fn()`` when the running backward pass has finished (PyTorch's
    ``Variable._execution_engine.queue_callback``)."""
    task = current_graph_task()
    if task is None:
        raise RuntimeError("queue_callback can only be called during the backward pass")
    task.callbacks.append(fn)


def _edge_key(x: Any) -> tuple[Node, int]:
    """The (node, input index) where the gradient of tensor or edge ``x`` arrives."""
    if isinstance(x, GradientEdge):
        return (x.node, x.output_nr)
    return (x.grad_fn, x._output_nr) if x.grad_fn is not None else (x._accumulator(), 0)


def _root_gradient(t: Tensor, g: Any, create_graph: bool, nbatch: int) -> Any:
    if g is None:
        if t.numel() != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; this output has "
                f"shape {tuple(t.shape)}: pass `gradient=` (backward) or `grad_outputs=` "
                "(autograd.grad) of the same shape"
            )
        if t.dtype.kind == "c":
            raise RuntimeError(
                f"grad can be implicitly created only for real scalar outputs but got {t.dtype}"
            )
        g = np.ones_like(t._data)
    else:
        g = as_tensor(g)
        expected = tuple(g.shape[:nbatch]) + tuple(t.shape)
        if tuple(g.shape) != expected:
            raise RuntimeError(
                f"Mismatch in shape: grad_output has shape {tuple(g.shape)} and output has "
                f"shape {tuple(t.shape)}"
                + (f" (with {nbatch} leading batch axis)" if nbatch else "")
            )
        g = g if create_graph else g._data
    if create_graph and not isinstance(g, Tensor):
        g = Tensor._wrap(g)
    return g


def backward(
    tensors: Sequence[Tensor] | Tensor,
    grad_tensors: Sequence[Any] | Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs: Any = None,
) -> None:
    """Accumulate gradients of ``tensors`` into the ``.grad`` of leaves (all of them, or only
    ``inputs``: tensors or :class:`GradientEdge` s). ``grad_tensors`` may be left out for
    outputs of one element."""
    if _grad_mode.state.vmap_levels:  # as PyTorch: it would sum over the batch
        raise RuntimeError(
            "backward() called inside a functorch transform. This is not supported, please "
            "use functorch.grad or functorch.vjp instead or call backward() outside of "
            "functorch transforms."
        )
    tensors = _as_list(tensors)
    grads = _as_list(grad_tensors) if grad_tensors is not None else [None] * len(tensors)
    if len(grads) != len(tensors):
        raise RuntimeError(f"backward: got {len(grads)} grad_tensors for {len(tensors)} tensors")
    if retain_graph is None:
        retain_graph = create_graph
    input_list = _as_list(inputs)
    if inputs is not None and not input_list:
        raise RuntimeError("backward: 'inputs' argument should not be empty")
    for t in input_list:
        if not isinstance(t, GradientEdge) and not t.requires_grad:
            raise RuntimeError("backward: one of the 'inputs' does not require grad")
    _run(
        tensors,
        grads,
        retain_graph,
        create_graph,
        input_list or None,
        accumulate=True,
        allow_unused=True,
        nbatch=0,
    )


def autograd_backward(
    tensors: Sequence[Tensor] | Tensor,
    grad_tensors: Sequence[Any] | Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    grad_variables: Any = None,
    inputs: Any = None,
) -> None:
    """``autograd.backward`` with PyTorch's parameters (``grad_variables`` is its old name for
    ``grad_tensors``)."""
    if grad_variables is not None:
        if grad_tensors is not None:
            raise RuntimeError(
                "backward: 'grad_tensors' and 'grad_variables' (deprecated) arguments both "
                "passed to backward(). Please only use 'grad_tensors'."
            )
        warnings.warn(
            "'grad_variables' is deprecated. Use 'grad_tensors' instead.",
            FutureWarning,
            stacklevel=2,
        )
        grad_tensors = grad_variables
    backward(tensors, grad_tensors, retain_graph, create_graph, inputs)


# autograd.grad inside func.vmap (batched tensors: per-sample vector-Jacobian products), set by
# matgrad.ops.batching
VMAP_GRAD: list[Any] = [None]


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    only_inputs: bool = True,
    allow_unused: bool | None = None,
    is_grads_batched: bool = False,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...] | dict[str, Tensor | None]:
    """The gradients of ``outputs`` with respect to ``inputs`` (vector-Jacobian products with
    ``grad_outputs``), returned rather than accumulated into ``.grad``.

    With ``is_grads_batched=True`` every ``grad_outputs`` tensor has one extra leading axis;
    all rows go through the graph in one pass (rules see a batch of cotangents), which is how
    Jacobians are computed without a Python loop.

    ``inputs`` and ``outputs`` may be :class:`GradientEdge` s (``get_gradient_edge(t)``): the
    gradient flowing into an input edge; an output edge needs its ``grad_outputs``. A dict
    of named inputs gives a dict of gradients. ``only_inputs`` is accepted (and ignored, as
    PyTorch does)."""
    if not only_inputs:
        warnings.warn(
            "only_inputs argument is deprecated and is ignored now (defaults to True). To "
            "accumulate gradient for other parts of the graph, please use autograd.backward.",
            FutureWarning,
            stacklevel=2,
        )
    if isinstance(inputs, dict):
        names = list(inputs)
        values = grad(
            outputs,
            [inputs[k] for k in names],
            grad_outputs,
            retain_graph,
            create_graph,
            True,
            allow_unused,
            is_grads_batched,
            materialize_grads,
        )
        return dict(zip(names, values, strict=True))
    if _grad_mode.state.vmap and VMAP_GRAD[0] is not None:  # inside func.vmap: ops.batching
        if is_grads_batched or materialize_grads:
            raise NotImplementedError("grad: is_grads_batched/materialize_grads inside vmap")
        return VMAP_GRAD[0](outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused)
    outputs_l = _as_list(outputs)
    inputs_l = _as_list(inputs)
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    for x in inputs_l:
        if isinstance(x, GradientEdge):
            continue
        if not isinstance(x, Tensor):
            raise TypeError(
                f"grad: inputs must be tensors or GradientEdges, got {type(x).__name__}"
            )
        if not x.requires_grad:
            raise RuntimeError("grad: one of the differentiated Tensors does not require grad")
    for y in outputs_l:
        if isinstance(y, GradientEdge):
            continue
        if not y.requires_grad:
            raise RuntimeError(
                "grad: element 0 of tensors does not require grad and does not have a grad_fn "
                "(was it computed under no_grad, or from inputs that do not require grad?)"
            )
    gouts = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outputs_l)
    if len(gouts) != len(outputs_l):
        raise RuntimeError(f"grad: got {len(gouts)} grad_outputs for {len(outputs_l)} outputs")
    nbatch = 1 if is_grads_batched else 0
    if is_grads_batched and any(g is None for g in gouts):
        raise RuntimeError("grad: is_grads_batched=True needs every grad_output")
    captured = _run(
        outputs_l,
        gouts,
        retain_graph,
        create_graph,
        inputs_l,
        accumulate=False,
        allow_unused=allow_unused,
        nbatch=nbatch,
    )
    results: list[Tensor | None] = []
    for x, g in zip(inputs_l, captured, strict=True):
        if g is None:
            if materialize_grads:
                if isinstance(x, GradientEdge):
                    if type(x.node) is not AccumulateGrad:
                        raise RuntimeError(
                            "grad: materialize_grads=True cannot make the zeros of an unused "
                            f"GradientEdge into {x.node.name()} (its shape is not known)"
                        )
                    x = x.node.variable
                shape = (gouts[0].shape[0],) + tuple(x.shape) if nbatch else tuple(x.shape)
                g = np.zeros(shape, dtype=x.dtype)
            else:
                results.append(None)
                continue
        results.append(g if isinstance(g, Tensor) else Tensor._wrap(g))
    return tuple(results)


def _needed(nodes: list[Node], targets: set[Node]) -> set[Node]:
    """The nodes of ``nodes`` that lie on a path to a target (only those need to run): the
    targets and everything above them, found by walking the edges backwards."""
    consumers: dict[Node, list[Node]] = {}
    for node in nodes:
        for edge in node._next:
            if edge[0] is not None:
                consumers.setdefault(edge[0], []).append(node)
    needed = {t for t in targets if t in consumers or t in nodes}
    stack = list(needed)
    while stack:
        for parent in consumers.get(stack.pop(), ()):
            if parent not in needed:
                needed.add(parent)
                stack.append(parent)
    return needed


def _add(a: Any, b: Any) -> Any:
    return b if a is None else a + b


class _Handed(dict):
    """The arrays a pass has stored somewhere (root gradients, leaf gradients), by id: an
    array in it is copied before it is stored again. They are kept alive for the pass, so an
    id is never taken over by a new array. The key ``_EXPOSED`` marks that the pass showed
    gradients to code outside the rule table (hooks, custom Functions) or captured them:
    those may hold any gradient array, so a view is then never kept as a leaf's gradient
    without a copy (see :func:`_adoptable`)."""

    def add(self, array: Any) -> None:
        self[id(array)] = array

    def expose(self) -> None:
        self[_EXPOSED] = None


_EXPOSED = -1  # the ids of live objects are never negative


def _run(
    outputs: list[Any],
    grad_outputs: list[Any],
    retain_graph: bool,
    create_graph: bool,
    inputs: list[Any] | None,
    *,
    accumulate: bool,
    allow_unused: bool,
    nbatch: int,
) -> list[Any]:
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"got {len(grad_outputs)} gradients for {len(outputs)} tensors")
    buffers: dict[Node, list[Any]] = {}
    # sums the engine made itself (``old + g`` of two gradients of one input), by id: held
    # only in ``buffers`` until their node runs, so later gradients are added in place
    owned: dict[int, Any] = {}
    roots: list[Node] = []
    handed = _Handed()  # arrays already stored somewhere (copied before reuse)
    captured: dict[tuple[Node, int], Any] = {}
    for t, g in zip(outputs, grad_outputs, strict=True):
        if isinstance(t, GradientEdge):  # an output edge: its gradient must be given
            if g is None:
                raise RuntimeError(
                    f"backward: the output GradientEdge into {t.node.name()} needs its gradient "
                    "(grad_outputs / grad_tensors)"
                )
            g = as_tensor(g)
            g = g if create_graph else g._data
            node, nr = t.node, t.output_nr
        else:
            if not isinstance(t, Tensor):
                raise TypeError(f"backward: expected tensors, got {type(t).__name__}")
            if not t.requires_grad:
                raise RuntimeError(
                    "element 0 of tensors does not require grad and does not have a grad_fn"
                )
            g = _root_gradient(t, g, create_graph, nbatch)
            node = t.grad_fn if t.grad_fn is not None else t._accumulator()
            nr = t._output_nr
        handed.add(g)
        buf = buffers.setdefault(node, [None] * node.n_outputs)
        buf[nr] = _add(buf[nr], g)
        if node not in roots:
            roots.append(node)

    # where to capture gradients for autograd.grad / backward(inputs=...)
    targets: dict[tuple[Node, int], int] = {}
    if inputs is not None:
        for i, x in enumerate(inputs):
            targets[_edge_key(x)] = i
    target_nodes = {k[0] for k in targets}

    reachable, dependencies = walk(roots, ordered=False)
    needed = _needed(reachable, target_nodes) if inputs is not None else None
    ready = [n for n in roots if dependencies.get(n, 0) == 0]
    grad_mode = _grad_mode.enable_grad() if create_graph else _grad_mode.no_grad()
    raw = not create_graph and nbatch == 0  # the common case: arrays, one cotangent
    # anomaly mode or a profiler: each node runs through _watched (one test per node when off)
    watch = ANOMALY.enabled or bool(OP_OBSERVERS)
    task = GraphTask(next(_TASK_IDS), accumulate)
    task.reachable = reachable  # type: ignore[assignment] - a list; made a set on demand
    task.needed, task.targets = needed, target_nodes
    _TASKS.stack.append(task)
    try:
        with grad_mode:
            while ready:
                node = ready.pop()
                grads = buffers.pop(node)
                if owned:  # handed to the node now: no longer the engine's alone
                    for g in grads:
                        owned.pop(id(g), None)
                hooks = node._hooks
                if hooks is not None:
                    handed.expose()
                    grads = _run_pre_hooks(node, hooks, grads, create_graph)
                if targets:
                    for nr, g in enumerate(grads):
                        if (node, nr) in targets:
                            captured[(node, nr)] = g
                            handed.expose()
                if type(node) is AccumulateGrad:
                    if accumulate and (inputs is None or node in target_nodes):
                        if watch and OP_OBSERVERS:
                            _watched_accumulate(node, grads[0], create_graph, handed)
                        else:
                            _accumulate(node.variable, grads[0], create_graph, handed)
                    elif not accumulate and node.variable._leaf_hooks and node in target_nodes:
                        # autograd.grad of a leaf: its tensor hooks see (and may replace) it
                        g = captured.get((node, 0))
                        if g is not None:
                            with ACCUMULATE_LOCK:
                                g = run_hooks(node.variable._leaf_hooks, g, create_graph)
                            captured[(node, 0)] = g
                    continue
                if (needed is not None and node not in needed) or (
                    grads[0] is None if len(grads) == 1 else _all_none(grads)
                ):
                    in_grads: list[Any] = [None] * len(node._next)
                    released = False
                else:
                    if not isinstance(node, RuleNode):  # a custom Function's backward, ...
                        handed.expose()
                    plain = raw and hooks is None  # fitted in the loop below; frees saved values
                    # autograd.grad: a rule's formulas run only for the inputs on a path to
                    # `inputs` (a formula may raise for the others: zeta's in its first input)
                    mask = needed if needed is not None and isinstance(node, RuleNode) else None
                    if watch:
                        in_grads = _watched(
                            node, grads, plain, create_graph, nbatch, retain_graph, mask
                        )
                    elif mask is not None:
                        in_grads = (
                            node._raw_input_grads(grads, not retain_graph, mask)
                            if plain
                            else node._apply(grads, create_graph, nbatch, needed=mask)
                        )
                    elif plain:
                        in_grads = node._raw_input_grads(grads, not retain_graph)
                    else:
                        in_grads = node._apply(grads, create_graph, nbatch)
                    released = plain
                    if hooks is not None and hooks.post:
                        outputs_grads = tuple(_to_tensor(g) for g in grads)
                        in_grads = run_hooks(
                            hooks.post, list(in_grads), create_graph, outputs_grads
                        )
                if not retain_graph and not released:
                    node._release()
                for edge, g in zip(node._next, in_grads, strict=True):
                    nxt = edge[0]
                    if nxt is None:
                        continue
                    nr = edge[1]
                    buf = buffers.get(nxt)
                    if buf is None:
                        buf = buffers[nxt] = [None] * nxt.n_outputs
                    if g is not None:
                        if raw and (getattr(g, "shape", None) != edge[2] or g.dtype != edge[3]):
                            g = fit_gradient(nodes.RAW, g, edge[2], edge[3], 0)
                        old = buf[nr]
                        if old is None:
                            buf[nr] = g
                        elif raw and owned.get(id(old)) is old and type(g) is np.ndarray:
                            np.add(old, g, out=old)  # a sum the engine made: in place
                        else:
                            total = old + g
                            if raw and type(total) is np.ndarray:
                                owned[id(total)] = total
                            buf[nr] = total
                    remaining = dependencies[nxt] - 1
                    dependencies[nxt] = remaining
                    if remaining == 0:
                        ready.append(nxt)
            # callbacks queued during the pass (they may queue more)
            while task.callbacks:
                task.callbacks.pop(0)()
    finally:
        _TASKS.stack.pop()
    if inputs is None:
        return []
    if accumulate:  # backward(inputs=[...]): non-leaf inputs get .grad as well
        for x in inputs:
            if isinstance(x, GradientEdge) or x.grad_fn is None:
                continue
            g = captured.get((x.grad_fn, x._output_nr))
            if g is not None:
                g = _to_tensor(g)
                x.grad = g if x.grad is None else x.grad + g
    results = []
    for x in inputs:
        g = captured.get(_edge_key(x))
        if g is None and not allow_unused and not accumulate:
            what = (
                f"the GradientEdge into {x.node.name()}"
                if isinstance(x, GradientEdge)
                else f"shape {tuple(x.shape)}"
            )
            raise RuntimeError(
                "One of the differentiated Tensors appears to not have been used in the graph "
                f"({what}). Set allow_unused=True if this is the desired behavior."
            )
        results.append(g)
    return results


# -- anomaly mode and profilers: a node's run, watched ---------------------------------------------
def _watched(
    node: Node,
    grads: list[Any],
    plain: bool,
    create_graph: bool,
    nbatch: int,
    retain: bool,
    mask: Any = None,
) -> list[Any]:
    """A node's input gradients, computed as the loop does, timed by the profilers and
    checked by anomaly mode: an error names the node and shows the forward stack that made
    it; a NaN (or, with ``check_inf``, an infinity) in a gradient is such an error."""
    observers = list(OP_OBSERVERS)
    tokens = [o.node_start(node) for o in observers]
    previous = HOOKS.executing
    HOOKS.executing = node  # nodes made now (create_graph) record it as their parent
    try:
        if mask is not None:
            in_grads = (
                node._raw_input_grads(grads, not retain, mask)
                if plain
                else node._apply(grads, create_graph, nbatch, needed=mask)
            )
        elif plain:
            in_grads = node._raw_input_grads(grads, not retain)
        else:
            in_grads = node._apply(grads, create_graph, nbatch)
        if ANOMALY.enabled and (ANOMALY.check_nan or ANOMALY.check_inf):
            _check_values(node, in_grads)
    except Exception:
        if ANOMALY.enabled:
            warnings.warn(anomaly_message(node), UserWarning, stacklevel=2)
        raise
    finally:
        HOOKS.executing = previous
        for o, token in zip(reversed(observers), reversed(tokens), strict=True):
            o.op_end(token)
    return in_grads


def _watched_accumulate(node: AccumulateGrad, g: Any, create_graph: bool, handed: _Handed) -> None:
    observers = list(OP_OBSERVERS)
    tokens = [o.node_start(node) for o in observers]
    try:
        _accumulate(node.variable, g, create_graph, handed)
    finally:
        for o, token in zip(reversed(observers), reversed(tokens), strict=True):
            o.op_end(token)


def _check_values(node: Node, in_grads: list[Any]) -> None:
    for i, g in enumerate(in_grads):
        data = g._data if isinstance(g, Tensor) else g
        if data is None or getattr(data, "dtype", None) is None or data.dtype.kind not in "fc":
            continue
        if ANOMALY.check_nan and bool((data != data).any()):  # NaN is the one x != x
            raise RuntimeError(f"Function '{node.name()}' returned nan values in its {i}th output.")
        if ANOMALY.check_inf and bool((abs(data) == np.inf).any()):
            raise RuntimeError(f"Function '{node.name()}' returned inf values in its {i}th output.")


def anomaly_message(node: Node) -> str:
    """What anomaly mode warns when ``node`` fails in backward: the forward stack that made
    it, and of the nodes whose backward made it (``create_graph``), as PyTorch prints them."""
    meta = getattr(node, "_metadata", None) or {}
    trace = meta.get("traceback_")
    if trace is None:
        return (
            f"Error detected in {node.name()}. No forward pass information available. "
            "Enable detect anomaly during forward pass for more information."
        )
    text = (
        f"Error detected in {node.name()}. Traceback of forward call that caused the error:\n"
        + "".join(trace)
    )
    parent = meta.get("parent_")
    while parent is not None:
        pmeta = getattr(parent, "_metadata", None) or {}
        text += (
            f"\n\nPrevious calculation was induced by {parent.name()}. Traceback of forward "
            "call that induced the previous calculation:\n" + "".join(pmeta.get("traceback_", ()))
        )
        parent = pmeta.get("parent_")
    return text


def _to_tensor(g: Any) -> Any:
    return g if g is None or isinstance(g, Tensor) else Tensor._wrap(g)


def _from_tensor(g: Any, create_graph: bool) -> Any:
    if g is None or create_graph:
        return g if g is None or isinstance(g, Tensor) else Tensor._wrap(np.asarray(g))
    return g._data if isinstance(g, Tensor) else np.asarray(g)


def _all_none(grads: list[Any]) -> bool:
    return grads[0] is None if len(grads) == 1 else all(g is None for g in grads)


def run_hooks(hooks: Iterable[Callable], grads: Any, create_graph: bool, *context: Any) -> Any:
    """Call each hook on ``grads`` (one gradient, or a list of them: passed as a tuple) as
    tensors; a hook that returns something replaces them. The one place hooks are run."""
    for hook in hooks:
        if isinstance(grads, list):
            replaced = hook(tuple(_to_tensor(g) for g in grads), *context)
            if replaced is not None:
                grads = [_from_tensor(g, create_graph) for g in replaced]
        else:
            replaced = hook(_to_tensor(grads), *context)
            if replaced is not None:
                grads = _from_tensor(replaced, create_graph)
    return grads


def _run_pre_hooks(node: Node, hooks: Any, grads: list[Any], create_graph: bool) -> list[Any]:
    """Tensor hooks (per output, ``retain_grad`` last), then the node's pre-hooks."""
    grads = list(grads)
    for nr, tensor_hooks in hooks.tensor_pre.items():
        if grads[nr] is not None:
            ordered = sorted(tensor_hooks, key=lambda h: getattr(h, "retain", False))
            grads[nr] = run_hooks(ordered, grads[nr], create_graph)
    return run_hooks(hooks.pre, grads, create_graph)


def _accumulate(leaf: Tensor, g: Any, create_graph: bool, handed: _Handed) -> None:
    """Add ``g`` into ``leaf.grad``, after the leaf's hooks."""
    if g is None:
        return
    with ACCUMULATE_LOCK:
        _accumulate_locked(leaf, g, create_graph, handed)
    post = leaf._post_accumulate_hooks
    if post:  # register_post_accumulate_grad_hook: hook(leaf) once .grad holds the sum
        for hook in tuple(post):
            hook(leaf)


def _accumulate_locked(leaf: Tensor, g: Any, create_graph: bool, handed: _Handed) -> None:
    if leaf._leaf_hooks:
        handed.expose()
        g = run_hooks(leaf._leaf_hooks, g, create_graph)
    if create_graph:
        g = _to_tensor(g)
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        return
    if isinstance(g, Tensor):
        g = g._data
    current = leaf.grad
    if not isinstance(g, np.ndarray | np.generic):  # Dask (immutable) or CuPy data
        if current is None:
            if id(g) in handed and hasattr(g, "copy"):
                g = g.copy()
            handed.add(g)
            leaf.grad = Tensor._wrap(g)
        else:
            leaf.grad = Tensor._wrap(current._data + g)
        if isinstance(leaf._data, np.ndarray):  # a lazy (Dask) gradient of a NumPy leaf: it
            leaf.grad._lazy_leaf_grad = True  # becomes NumPy in place in matgrad.compute
        return
    if current is None:
        # the gradient takes the leaf's layout (PyTorch's "grad layout contract"): a
        # transposed gradient (W of x @ W.T) would make every optimizer update stride across
        # memory; and it never shares memory with another gradient or input
        row_major = isinstance(leaf._data, np.ndarray) and leaf._data.flags.c_contiguous
        if (
            id(g) in handed
            or not isinstance(g, np.ndarray)
            or not g.flags.writeable
            or (row_major and not g.flags.c_contiguous)
        ):
            g = np.array(g, copy=True, order="C" if row_major else "K")
        elif g.base is not None:
            kept = _adoptable(g, handed)
            g = np.array(g, copy=True, order="C" if row_major else "K") if kept is None else kept
        handed.add(g)
        leaf.grad = Tensor._wrap(g)
    elif (
        current.grad_fn is None
        and not current.requires_grad
        and isinstance(current._data, np.ndarray)
    ):
        np.add(current._data, g, out=current._data)
        bump_version(current)
    else:
        leaf.grad = current + g


# CPython's reference counts prove that nothing else refers to an array (PyPy has none; a
# free-threaded build's counts may be stale while other threads run)
_REFCOUNTS = hasattr(sys, "getrefcount") and getattr(sys, "_is_gil_enabled", lambda: True)()


def _adoptable(g: np.ndarray, handed: _Handed) -> np.ndarray | None:
    """The array to keep as a leaf's gradient for the contiguous view ``g`` without a copy
    (its base, or ``g`` itself), or None: copy it. A view qualifies when it spans its whole
    base, nothing but ``g`` refers to that base (its reference count), and this pass has not
    shown gradients to hooks or custom Functions, which might hold ``g`` itself. This is the
    gradient of ``W`` in ``x @ W.T``: the rule makes ``W.T``'s gradient column-major, and
    the transpose's gradient is a row-major view of it. (PyTorch's AccumulateGrad steals a
    gradient on the same kind of reference-count test.)"""
    if not _REFCOUNTS or _EXPOSED in handed:
        return None
    base = g.base
    if (
        type(base) is not np.ndarray
        or not (g.flags.c_contiguous or g.flags.f_contiguous)  # no element twice
        or base.base is not None
        or base.nbytes != g.nbytes
        or not base.flags.writeable
    ):
        return None
    # the references: g's, this function's `base`, and getrefcount's argument
    if sys.getrefcount(base) != 3:
        return None
    same = g.dtype == base.dtype and g.shape == base.shape and g.strides == base.strides
    return base if same else g
