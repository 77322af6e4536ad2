"""``Op``: runs a primitive's forward on raw arrays and, when needed, records its graph node.

This is the only place where tensors are unwrapped, nodes are made and forward-mode tangents
are pushed through a row's ``result`` formula (the generated entry points of
:mod:`matgrad.core.fastpath` unroll the same steps per row). It knows no particular op.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..backend import arrays as _backend
from . import nodes
from .grad_mode import state
from .graph import (
    HOOKS,
    NO_EDGE,
    NODE_WATCHERS,
    OP_OBSERVERS,
    BatchingUnsupported,
    InputEdge,
    observed_call,
    watch_new_node,
)
from .table import Rule
from .tensor_base import Tensor

# the batching dispatcher, set by matgrad.ops.batching (the core knows no op's rule): an op
# whose entry point runs while grad_mode.state.vmap is set calls BATCHING[0](op, inputs, attrs)
BATCHING: list[Any] = [None]
# how many vmap levels are open in the whole process: the entry points test this plain list
# first (cheaper than the thread-local state.vmap) so that no vmap anywhere costs one lookup
VMAP_ACTIVE: list[int] = [0]

# what a saved argument of a rule is, computed once per rule
INPUT, OUTPUT, SHAPE, NDIM, DTYPE, SHAPES, RSHAPE, RNDIM, ATTR = range(9)


def plan_of(rule: Rule) -> tuple[tuple[int, Any], ...]:
    plan = []
    for name in rule.vjp_args:
        if name in rule.inputs:
            plan.append((INPUT, rule.inputs.index(name)))
        elif name in rule.outputs:
            plan.append((OUTPUT, rule.outputs.index(name)))
        elif name == "result_shape":
            plan.append((RSHAPE, 0))
        elif name == "result_ndim":
            plan.append((RNDIM, 0))
        elif name in rule.attrs:
            plan.append((ATTR, name))
        else:
            base, _, suffix = name.rpartition("_")
            kind = {"shape": SHAPE, "ndim": NDIM, "dtype": DTYPE, "shapes": SHAPES}[suffix]
            plan.append((kind, rule.inputs.index(base)))
    return tuple(plan)


def normalize_dim(op: str, dim: int, ndim: int) -> int:
    if not isinstance(dim, int | np.integer):
        raise TypeError(f"{op}: dim must be an integer, got {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(
            f"{op}: dimension {dim} is out of range for a tensor of {ndim} dimension(s) "
            f"(expected in [{-ndim}, {ndim - 1}])"
        )
    return int(dim) - ndim if dim >= 0 else int(dim)


def normalize_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...]:
    """None -> every axis; an int or a sequence -> a sorted tuple of negative axes. A 0-d
    tensor takes 0 and -1 as PyTorch does (once each), which name no axis: ``()``."""
    if dim is None:
        return tuple(range(-ndim, 0))
    if ndim == 0:
        normalize_dims(op, dim, 1)  # validates
        return ()
    dims = (dim,) if isinstance(dim, int | np.integer) else tuple(dim)
    out = tuple(sorted({normalize_dim(op, d, ndim) for d in dims}))
    if len(out) != len(dims):
        raise ValueError(f"{op}: dim {dim!r} names an axis twice")
    return out


def normalize_attrs(rule: Rule, first: Any, attrs: dict[str, Any]) -> None:
    """Normalise ``rule``'s typed attributes in ``attrs`` against the ndim of ``first`` (the
    op's first input): ``Dim`` -> a negative axis, ``Dims`` -> a sorted tuple of them."""
    ndim = ndim_of(first)
    for name, kind in rule.attr_types.items():
        if kind == "Dim":
            attrs[name] = normalize_dim(rule.name, attrs[name], ndim)
        else:
            attrs[name] = normalize_dims(rule.name, attrs[name], ndim)


def is_view_of(out: Any, data: Any) -> bool:
    """Whether NumPy array ``out`` is a view of ``data``'s memory (NumPy sets a view's
    ``base`` to the array owning the memory, or to an intermediate for broadcasts)."""
    if type(out) is not np.ndarray or type(data) is not np.ndarray:
        return False
    owner = data if data.base is None else data.base
    base = out.base
    while base is not None:
        if base is owner or base is data:
            return True
        base = getattr(base, "base", None)
    return False


def make_view(view: Tensor, source: Tensor, op: Op, attrs: dict[str, Any]) -> None:
    """Make ``view`` (the output of view op ``op`` on ``source``) a view of ``source``'s base:
    it shares the base's version counter and remembers the ops that make it from the base, so
    an in-place op on it can rewrite the base's history (see ``Tensor._inplace``)."""
    base = source._base if source._base is not None else source
    view._version_counter = source._shared_counter()
    view._base = base
    view._view_chain = (*source._view_chain, (op, dict(attrs)))
    views = base._views
    if views is None:
        views = base._views = []
    elif len(views) > 64:  # drop the references to views that are gone
        views[:] = [r for r in views if r() is not None]
    views.append(weakref.ref(view))


def tensor_edge(x: Any) -> InputEdge:
    """The input edge a node keeps for ``x`` (see ``_graph.InputEdge``)."""
    if not isinstance(x, Tensor):
        return NO_EDGE
    data = x._data
    dt = data.dtype
    if dt.kind not in "fc":  # floating and complex tensors take gradients
        return NO_EDGE
    if not x._requires_grad:
        return (None, 0, data.shape, dt)
    fn = x.grad_fn
    if fn is None:
        return (x._accumulator(), 0, data.shape, dt)
    return (fn, x._output_nr, data.shape, dt)


class Op:
    """A primitive: its row (``rule``), its forward on raw arrays and its node class.

    :meth:`reference` is the plain path every op can take: unwrap the inputs, run the forward,
    record a node when an input needs a gradient, push tangents in forward mode. The entry
    points the public API calls are generated from it per row (:mod:`matgrad.core.fastpath`)
    and are tested to give identical values, gradients and graphs."""

    __slots__ = ("plan", "rule", "name", "forward", "node_class", "has_list", "multi")

    def __init__(self, rule: Rule, forward: Any) -> None:
        self.rule = rule
        self.name = rule.name
        self.forward = forward
        self.node_class = rule.node_class
        self.plan = plan_of(rule)
        self.has_list = any(rule.input_is_list)
        self.multi = rule.n_outputs > 1

    def __repr__(self) -> str:
        return f"<Op {self.name}>"

    def reference(self, *inputs: Any, **attrs: Any) -> Any:
        """Run the op: ``inputs`` are its tensor parameters in order (a list for a list
        parameter), ``attrs`` its other parameters by name."""
        rule = self.rule
        n = len(rule.inputs)
        if len(inputs) > n:  # attributes given by position, as the entry points take them
            if len(inputs) > n + len(rule.attrs):
                raise TypeError(f"{rule.name}() takes {n + len(rule.attrs)} arguments")
            attrs.update(zip(rule.attrs, inputs[n:], strict=False))
            inputs = inputs[:n]
        for name in rule.attrs:
            if name not in attrs:
                if name not in rule.attr_defaults:
                    raise TypeError(f"{rule.name}() missing the keyword argument '{name}'")
                attrs[name] = rule.attr_defaults[name]
        if VMAP_ACTIVE[0] and state.vmap:  # inside func.vmap: the op's batching rule
            return BATCHING[0](self, inputs, attrs)
        if OP_OBSERVERS and not HOOKS.observing:  # a profiler records: time this call
            return observed_call(self.reference, self.name, inputs, attrs)
        if rule.attr_types:
            normalize_attrs(rule, inputs[0], attrs)
        flat = [
            x for group in inputs for x in (group if isinstance(group, list | tuple) else (group,))
        ]
        requires = any(isinstance(x, Tensor) and x._requires_grad for x in flat)
        tangent = any(isinstance(x, Tensor) and x._fw_grad is not None for x in flat)
        datas = [
            [x._data if isinstance(x, Tensor) else x for x in group]
            if isinstance(group, list | tuple)
            else (group._data if isinstance(group, Tensor) else group)
            for group in inputs
        ]
        try:
            out = self.forward(*datas, **attrs)
        except (ValueError, TypeError, IndexError, ArithmeticError, NotImplementedError) as exc:
            raise op_error(self.name, flat, exc) from None
        outs = tuple(Tensor._wrap(o) for o in out) if self.multi else (Tensor._wrap(out),)
        arrays = [x._data for x in flat if isinstance(x, Tensor)]
        results = [o._data for o in outs]
        if any(type(a) is not np.ndarray for a in arrays + results):  # libraries mix as theirs do
            _backend.check_backends(self.name, arrays, results)
        if rule.view and isinstance(inputs[0], Tensor) and is_view_of(outs[0]._data, datas[0]):
            make_view(outs[0], inputs[0], self, attrs)
        if requires and state.enabled:
            self._record(inputs, flat, datas, outs, attrs)
        if tangent and state.forward_level:
            self._push_tangent(inputs, outs, attrs)
        return outs if self.multi else outs[0]

    def _record(
        self, inputs: tuple, flat: list, datas: list, outs: tuple[Tensor, ...], attrs: dict
    ) -> None:
        edges = tuple(tensor_edge(x) for x in flat)
        lens = tuple(len(x) if isinstance(x, list | tuple) else 1 for x in inputs)
        needs, k = [], 0
        for n in lens:
            needs.append(any(e[0] is not None for e in edges[k : k + n]))
            k += n
        args, saved = self._gather(inputs, datas, outs, attrs, needs)
        node = self.node_class(edges, args, saved, lens if self.has_list else None)
        for i, o in enumerate(outs):
            if o._data.dtype.kind in "fc":
                o.grad_fn = node
                o._output_nr = i
                o._requires_grad = True
        if NODE_WATCHERS:  # saved-tensor hooks, anomaly mode
            watch_new_node(node)

    def _gather(
        self, inputs: tuple, datas: list, outs: tuple[Tensor, ...], attrs: dict, needs: list
    ) -> tuple[tuple, tuple]:
        """The values the row's formulas read (in the order of ``rule.vjp_args``) and the
        tensors among them, flat: ``(position, tensor or weak reference, version) * k`` (for
        the in-place check). A value is saved
        only if the formula of an input that needs a gradient reads it."""
        rule = self.rule
        args: list[Any] = []
        saved: tuple[Any, ...] = ()
        for pos, (kind, key) in enumerate(self.plan):
            needed = any(needs[i] for i in rule.arg_users[rule.vjp_args[pos]])
            if kind == INPUT:
                x = inputs[key]
                args.append(datas[key] if needed else None)
                if needed and isinstance(x, Tensor):
                    saved += (pos, x, x._version)
            elif kind == OUTPUT:
                # an output is held weakly (no cycle through its grad_fn) and recreated from its
                # data if freed; under forward AD it is held itself, since a recreated output
                # would lack the tangent that forward-over-reverse reads (once it is gone, its
                # memory's version is found from the saved array: see graph.storage_version)
                o = outs[key]
                args.append(o._data if needed else None)
                if needed:
                    held = o if state.forward_level else weakref.ref(o)
                    saved += (pos, held, o._version)
            elif kind == ATTR:
                args.append(attrs[key])
            elif kind == SHAPE:
                args.append(shape_of(inputs[key]))
            elif kind == NDIM:
                args.append(len(shape_of(inputs[key])))
            elif kind == DTYPE:
                args.append(getattr(inputs[key], "dtype", None))
            elif kind == SHAPES:
                args.append([shape_of(t) for t in inputs[key]])
            elif kind == RSHAPE:
                args.append(outs[0]._data.shape)
            else:
                args.append(outs[0]._data.ndim)
        return tuple(args), saved

    def _push_tangent(self, inputs: tuple, outs: tuple[Tensor, ...], attrs: dict) -> None:
        """Forward mode: the results' tangents from the row's ``result`` formula, evaluated on
        tensors (so tangents are themselves differentiable), once per open dual level that an
        input has a tangent at (``_fw_grad`` maps level -> tangent), innermost last. The
        formula of level L runs with only the levels below L active, so the tangent it makes
        carries their tangents (forward-over-forward: ``jacfwd(jacfwd(f))``) and no
        tangent-of-tangent at its own level."""
        active = state.forward_level
        levels: set[int] = set()
        for x in inputs:
            for t in x if isinstance(x, list | tuple) else (x,):
                if isinstance(t, Tensor) and t._fw_grad is not None:
                    levels.update(lv for lv in tangents_of(t) if lv <= active)
        for level in sorted(levels):
            self._push_level(inputs, outs, attrs, level)

    def _push_level(self, inputs: tuple, outs: tuple[Tensor, ...], attrs: dict, level: int) -> None:
        F = nodes.TENSOR  # noqa: N806 - the tensor formula namespace
        rule = self.rule

        def at(t: Any) -> Any:
            fw = t._fw_grad if isinstance(t, Tensor) else None
            return None if fw is None else tangents_of(t).get(level)

        tangents = []
        for x in inputs:
            if isinstance(x, list | tuple):
                ts = [at(t) for t in x]
                tangents.append(None if all(t is None for t in ts) else ts)
            else:
                tangents.append(at(x))
        if all(t is None for t in tangents):
            return
        names: dict[str, Any] = dict(zip(rule.inputs, inputs, strict=True))
        names.update(attrs)
        for name, o in zip(rule.outputs, outs, strict=True):
            # not detached: a tangent computed with a graph (reverse-over-forward) depends on
            # the result too (tanh: self_t * (1 - result * result))
            names[name] = o
        names["result_shape"] = shape_of(outs[0])
        names["result_ndim"] = len(shape_of(outs[0]))
        for name, x in zip(rule.inputs, inputs, strict=True):
            if isinstance(x, list | tuple):
                names[f"{name}_shapes"] = [shape_of(t) for t in x]
            else:
                names[f"{name}_shape"] = shape_of(x)
                names[f"{name}_ndim"] = len(shape_of(x))
                names[f"{name}_dtype"] = getattr(x, "dtype", None)
        # leading batch axes of the tangents (vectorized forward mode)
        batch_shape: tuple[int, ...] = ()
        for x, t in zip(inputs, tangents, strict=True):
            for xi, ti in zip(x, t, strict=True) if isinstance(t, list) else ((x, t),):
                if isinstance(ti, Tensor) and ti.ndim > ndim_of(xi):
                    batch_shape = tuple(ti.shape[: ti.ndim - ndim_of(xi)])
        if batch_shape and not rule.batched:
            raise BatchingUnsupported(rule.name)
        # the formula runs with the levels below this one active (see _push_tangent)
        active, state.forward_level = state.forward_level, level - 1
        try:
            # list inputs with some tangents absent: those elements get zero tangents
            for i, x in enumerate(inputs):
                if isinstance(tangents[i], list):
                    tangents[i] = [
                        t
                        if t is not None
                        else F.expand(F.zeros_like(p.detach()), batch_shape + shape_of(p))
                        for t, p in zip(tangents[i], x, strict=True)
                    ]
            if batch_shape and rule.broadcasts:
                # NumPy aligns axes from the right: the tangent of a lower-rank (broadcast)
                # input gets size-1 axes between the batch axes and its own
                nd = max(ndim_of(x) for x in inputs if isinstance(x, Tensor))
                for i, (x, t) in enumerate(zip(inputs, tangents, strict=True)):
                    if isinstance(t, Tensor) and ndim_of(x) < nd:
                        tangents[i] = F.reshape(
                            t, batch_shape + (1,) * (nd - ndim_of(x)) + shape_of(x)
                        )
            result_t = rule.jvp(F, *tangents, *(names[a] for a in rule.jvp_args))
            if result_t is None:
                return
            results_t = result_t if self.multi else (result_t,)
            for o, t in zip(outs, results_t, strict=True):
                if t is not None and o._data.dtype.kind in "fc":
                    t = t if isinstance(t, Tensor) else Tensor._wrap(np.asarray(t))
                    target = batch_shape + shape_of(o)
                    if tuple(t.shape) != target:  # a tangent from a broadcast input
                        t = F.expand(t, target)
                    if t.dtype != o.dtype:
                        if t.dtype.kind == "c" and o._data.dtype.kind != "c":
                            t = F.real(t)  # a real output's tangent: the real part (PyTorch's)
                        t = F.to_dtype(t, o.dtype)
                    set_tangent(o, level, t)
        finally:
            state.forward_level = active


def tangents_of(tensor: Tensor) -> dict[int, Tensor]:
    """A tensor's forward-mode tangents by dual level. ``_fw_grad`` holds None, the tangent
    itself when the tensor has one at level 1 only (the common case, read as is by custom
    Functions), or a ``{level: tangent}`` dict."""
    fw = tensor._fw_grad
    if fw is None:
        return {}
    return fw if isinstance(fw, dict) else {1: fw}


def set_tangent(tensor: Tensor, level: int, tangent: Tensor | None) -> None:
    """Give ``tensor`` the tangent ``tangent`` at dual level ``level`` (None removes it); the
    level remembers the tensor, to drop the tangent when it closes. Tangent dicts are never
    changed in place (tensors made by in-place ops share them)."""
    fw = dict(tangents_of(tensor))
    if tangent is None:
        fw.pop(level, None)
    else:
        fw[level] = tangent
        levels = state.dual_tensors
        if level <= len(levels):
            levels[level - 1][id(tensor)] = weakref.ref(tensor)
    if not fw:
        tensor._fw_grad = None
    elif len(fw) == 1 and 1 in fw:
        tensor._fw_grad = fw[1]
    else:
        tensor._fw_grad = fw


def ndim_of(x: Any) -> int:
    return x.ndim if isinstance(x, Tensor) else np.ndim(x)


def shape_of(x: Any) -> tuple[int, ...]:
    data = x._data if isinstance(x, Tensor) else x
    if type(data) is np.ndarray:
        return data.shape
    return _backend.shape_of(data)


def op_error(name: str, inputs: Any, exc: Exception) -> Exception:
    def describe(x: Any) -> str:
        if not isinstance(x, Tensor):
            return repr(x)
        where = "" if x.backend == "numpy" else f" {x.backend}"
        return f"{tuple(x.shape)} {x.dtype}{where}"

    shapes = ", ".join(describe(x) for x in inputs)
    return type(exc)(f"{name}: {exc} (inputs: {shapes})")
