"""The backward engine: runs a recorded graph in reverse. It knows no op.

Nodes are visited in dependency order (a node runs once, after every node that feeds it a
gradient has run), found with an iterative walk, so graphs of any depth work. Gradients are
raw arrays unless ``create_graph=True``, when they are tensors and the pass records a graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from . import grad_mode as _grad_mode
from . import nodes
from .graph import ACCUMULATE_LOCK, AccumulateGrad, Node, bump_version, walk
from .nodes import fit_gradient
from .tensor_base import Tensor, as_tensor


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _root_gradient(t: Tensor, g: Any, create_graph: bool, nbatch: int) -> Any:
    if g is None:
        if t.numel() != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; this output has "
                f"shape {tuple(t.shape)}: pass `gradient=` (backward) or `grad_outputs=` "
                "(autograd.grad) of the same shape"
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
    tensors: Sequence[Tensor],
    grad_tensors: Sequence[Any],
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs: Any = None,
) -> None:
    """Accumulate gradients of ``tensors`` into the ``.grad`` of leaves (all of them, or only
    ``inputs``)."""
    tensors = _as_list(tensors)
    grads = list(grad_tensors) if grad_tensors is not None else [None] * len(tensors)
    if retain_graph is None:
        retain_graph = create_graph
    input_list = _as_list(inputs)
    if inputs is not None and not input_list:
        raise RuntimeError("backward: 'inputs' argument should not be empty")
    for t in input_list:
        if not t.requires_grad:
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


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    is_grads_batched: bool = False,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """The gradients of ``outputs`` with respect to ``inputs`` (vector-Jacobian products with
    ``grad_outputs``), returned rather than accumulated into ``.grad``.

    With ``is_grads_batched=True`` every ``grad_outputs`` tensor has one extra leading axis;
    all rows go through the graph in one pass (rules see a batch of cotangents), which is how
    Jacobians are computed without a Python loop."""
    outputs_l = _as_list(outputs)
    inputs_l = _as_list(inputs)
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    for x in inputs_l:
        if not isinstance(x, Tensor):
            raise TypeError(f"grad: inputs must be tensors, got {type(x).__name__}")
        if not x.requires_grad:
            raise RuntimeError("grad: one of the differentiated Tensors does not require grad")
    for y in outputs_l:
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


def _run(
    outputs: list[Tensor],
    grad_outputs: list[Any],
    retain_graph: bool,
    create_graph: bool,
    inputs: list[Tensor] | None,
    *,
    accumulate: bool,
    allow_unused: bool,
    nbatch: int,
) -> list[Any]:
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"got {len(grad_outputs)} gradients for {len(outputs)} tensors")
    buffers: dict[Node, list[Any]] = {}
    roots: list[Node] = []
    handed: set[int] = set()  # ids of arrays already stored somewhere (copied before reuse)
    captured: dict[tuple[Node, int], Any] = {}
    for t, g in zip(outputs, grad_outputs, strict=True):
        if not isinstance(t, Tensor):
            raise TypeError(f"backward: expected tensors, got {type(t).__name__}")
        if not t.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        g = _root_gradient(t, g, create_graph, nbatch)
        handed.add(id(g))
        node = t.grad_fn if t.grad_fn is not None else t._accumulator()
        buf = buffers.setdefault(node, [None] * node.n_outputs)
        buf[t._output_nr] = _add(buf[t._output_nr], g)
        if node not in roots:
            roots.append(node)

    # where to capture gradients for autograd.grad / backward(inputs=...)
    targets: dict[tuple[Node, int], int] = {}
    if inputs is not None:
        for i, x in enumerate(inputs):
            key = (x.grad_fn, x._output_nr) if x.grad_fn is not None else (x._accumulator(), 0)
            targets[key] = i
    target_nodes = {k[0] for k in targets}

    reachable, dependencies = walk(roots, ordered=False)
    needed = _needed(reachable, target_nodes) if inputs is not None else None
    ready = [n for n in roots if dependencies.get(n, 0) == 0]
    grad_mode = _grad_mode.enable_grad() if create_graph else _grad_mode.no_grad()
    raw = not create_graph and nbatch == 0  # the common case: arrays, one cotangent
    with grad_mode:
        while ready:
            node = ready.pop()
            grads = buffers.pop(node)
            hooks = node._hooks
            if hooks is not None:
                grads = _run_pre_hooks(node, hooks, grads, create_graph)
            if targets:
                for nr, g in enumerate(grads):
                    if (node, nr) in targets:
                        captured[(node, nr)] = g
            if type(node) is AccumulateGrad:
                if accumulate and (inputs is None or node in target_nodes):
                    _accumulate(node.variable, grads[0], create_graph, handed)
                continue
            if (needed is not None and node not in needed) or (
                grads[0] is None if len(grads) == 1 else _all_none(grads)
            ):
                in_grads: list[Any] = [None] * len(node._next)
                released = False
            else:
                if raw and hooks is None:  # fitted in the loop below; frees saved values
                    in_grads = node._raw_input_grads(grads, not retain_graph)
                    released = True
                else:
                    in_grads = node._apply(grads, create_graph, nbatch)
                    released = False
                if hooks is not None and hooks.post:
                    outputs_grads = tuple(_to_tensor(g) for g in grads)
                    in_grads = run_hooks(hooks.post, list(in_grads), create_graph, outputs_grads)
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
                    buf[nr] = g if old is None else old + g
                remaining = dependencies[nxt] - 1
                dependencies[nxt] = remaining
                if remaining == 0:
                    ready.append(nxt)
    if inputs is None:
        return []
    if accumulate:  # backward(inputs=[...]): non-leaf inputs get .grad as well
        for x in inputs:
            g = captured.get((x.grad_fn, x._output_nr)) if x.grad_fn is not None else None
            if g is not None:
                g = _to_tensor(g)
                x.grad = g if x.grad is None else x.grad + g
    results = []
    for x in inputs:
        key = (x.grad_fn, x._output_nr) if x.grad_fn is not None else (x._accumulator(), 0)
        g = captured.get(key)
        if g is None and not allow_unused and not accumulate:
            raise RuntimeError(
                "One of the differentiated Tensors appears to not have been used in the graph "
                f"(shape {tuple(x.shape)}). Set allow_unused=True if this is the desired behavior."
            )
        results.append(g)
    return results


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


def _accumulate(leaf: Tensor, g: Any, create_graph: bool, handed: set[int]) -> None:
    """Add ``g`` into ``leaf.grad``, after the leaf's hooks."""
    if g is None:
        return
    with ACCUMULATE_LOCK:
        _accumulate_locked(leaf, g, create_graph, handed)


def _accumulate_locked(leaf: Tensor, g: Any, create_graph: bool, handed: set[int]) -> None:
    if leaf._leaf_hooks:
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
            handed.add(id(g))
            leaf.grad = Tensor._wrap(g)
        else:
            leaf.grad = Tensor._wrap(current._data + g)
        return
    if current is None:
        if (
            id(g) in handed
            or not isinstance(g, np.ndarray)
            or g.base is not None
            or not g.flags.writeable
        ):
            g = np.array(g, copy=True)  # never share memory with another gradient or input
        handed.add(id(g))
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
