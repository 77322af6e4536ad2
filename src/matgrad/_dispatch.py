"""``Op``: runs a primitive's forward on raw arrays and, when needed, records its graph node.

This is the only place where tensors are unwrapped, nodes are made and forward-mode tangents
are pushed through a row's ``result`` formula. It knows no particular op.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import _array_fns, _backend
from ._grad_mode import state
from ._graph import NO_EDGE, BatchingUnsupported, InputEdge
from ._rules import RULES, Rule
from .tensor import Tensor

# what a saved argument of a rule is, computed once per rule
_INPUT, _OUTPUT, _SHAPE, _NDIM, _DTYPE, _SHAPES, _RSHAPE, _RNDIM, _ATTR = range(9)


def _plan(rule: Rule) -> tuple[tuple[int, Any], ...]:
    plan = []
    for name in rule.vjp_args:
        if name in rule.inputs:
            plan.append((_INPUT, rule.inputs.index(name)))
        elif name in rule.outputs:
            plan.append((_OUTPUT, rule.outputs.index(name)))
        elif name == "result_shape":
            plan.append((_RSHAPE, 0))
        elif name == "result_ndim":
            plan.append((_RNDIM, 0))
        elif name in rule.attrs:
            plan.append((_ATTR, name))
        else:
            base, _, suffix = name.rpartition("_")
            kind = {"shape": _SHAPE, "ndim": _NDIM, "dtype": _DTYPE, "shapes": _SHAPES}[suffix]
            plan.append((kind, rule.inputs.index(base)))
    return tuple(plan)


class _Names:
    """How generated code refers to an op's values: through the containers a separate
    ``record`` function receives (``inputs[0]``), or, inlined into the op's own function, by
    its local names (``x0``, ``d0``, ``result``, the attribute itself)."""

    def __init__(self, inline: bool) -> None:
        self.inline = inline

    def input(self, i: int) -> str:
        return f"x{i}" if self.inline else f"inputs[{i}]"

    def data(self, i: int) -> str:
        return f"d{i}" if self.inline else f"datas[{i}]"

    def output(self, j: int) -> str:
        return "result" if self.inline else f"outs[{j}]"

    def attr(self, name: str) -> str:
        return name if self.inline else f"attrs[{name!r}]"


def _gather_lines(rule: Rule, plan: tuple[tuple[int, Any], ...], names: _Names) -> list[str]:
    """Source lines that set ``args`` (the values a rule's formulas read) and ``saved`` (the
    tensors among them with their versions, for the in-place check) from the op's inputs,
    their data, its outputs and attributes and ``need0, need1, ...`` (does input i need a
    gradient). A tensor is saved only if the formula of an input that needs a gradient reads
    it."""
    n = names
    arg_exprs, saved_lines = [], []
    for pos, (kind, key) in enumerate(plan):
        users = rule.arg_users[rule.vjp_args[pos]]
        needed = " or ".join(f"need{i}" for i in users) or "False"
        if kind == _INPUT:
            arg_exprs.append(f"a{pos}")
            saved_lines.append(
                f"x = {n.input(key)}\n"
                f"if {needed}:\n"
                f"    a{pos} = {n.data(key)}\n"
                f"    if isinstance(x, Tensor):\n"
                f"        vc = x._version_counter\n"
                f"        saved += ({pos}, x, 0 if vc is None else vc[0])\n"
                f"else:\n"
                f"    a{pos} = None"
            )
        elif kind == _OUTPUT:
            # an output is held weakly (no cycle through its grad_fn) and recreated from its
            # data if freed; under forward AD it is held itself, since a recreated output would
            # lack the tangent that forward-over-reverse reads in a create_graph backward pass
            out = n.output(key)
            arg_exprs.append(f"a{pos}")
            saved_lines.append(
                f"if {needed}:\n"
                f"    a{pos} = {out}._data\n"
                f"    saved += ({pos}, {out} if state.forward_level else weakref_ref({out}), 0)\n"
                f"else:\n"
                f"    a{pos} = None"
            )
        elif kind == _ATTR:
            arg_exprs.append(n.attr(key))
        elif kind == _SHAPE:
            arg_exprs.append(f"shape_of({n.input(key)})")
        elif kind == _NDIM:
            arg_exprs.append(f"len(shape_of({n.input(key)}))")
        elif kind == _DTYPE:
            arg_exprs.append(f"getattr({n.input(key)}, 'dtype', None)")
        elif kind == _SHAPES:
            arg_exprs.append(f"[shape_of(t) for t in {n.input(key)}]")
        elif kind == _RSHAPE:
            arg_exprs.append(f"{n.output(0)}._data.shape")
        else:
            arg_exprs.append(f"{n.output(0)}._data.ndim")
    body = ["saved = ()", *saved_lines, f"args = ({''.join(e + ', ' for e in arg_exprs)})"]
    return [part for line in body for part in line.split("\n")]


def _record_lines(rule: Rule, plan: tuple[tuple[int, Any], ...], names: _Names) -> list[str]:
    """Source lines that build the node of one op (its input edges, saved values) as
    ``node``, for a row without list inputs; unrolled over the row's inputs."""
    lines = []
    for i in range(len(rule.inputs)):
        lines += [
            f"x = {names.input(i)}",
            "if isinstance(x, Tensor):",
            "    data = x._data",
            "    dt = data.dtype",
            "    if dt.kind not in 'fc':",
            f"        e{i} = NO_EDGE",
            "    elif x._requires_grad:",
            "        fn = x.grad_fn",
            f"        e{i} = ((fn, x._output_nr, data.shape, dt) if fn is not None",
            "              else (x._accumulator(), 0, data.shape, dt))",
            "    else:",
            f"        e{i} = (None, 0, data.shape, dt)",
            "else:",
            f"    e{i} = NO_EDGE",
        ]
    n = len(rule.inputs)
    edges = "(" + "".join(f"e{i}, " for i in range(n)) + ")"
    lines += [f"need{i} = e{i}[0] is not None" for i in range(n)]
    lines += [*_gather_lines(rule, plan, names), f"node = node_class({edges}, args, saved, None)"]
    return lines


def _compile(name: str, params: str, lines: list[str], rule: Rule, **names: Any) -> Any:
    source = f"def {name}({params}):\n" + "".join(f"    {line}\n" for line in lines)
    namespace = {
        "state": state,
        "Tensor": Tensor,
        "weakref_ref": weakref.ref,
        "shape_of": _shape_of,
        "NO_EDGE": NO_EDGE,
        **names,
    }
    exec(compile(source, f"<{name} for {rule.name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def _compile_gather(rule: Rule, plan: tuple[tuple[int, Any], ...]) -> Any:
    """Make ``gather(inputs, datas, outs, attrs, needs) -> (args, saved)`` for one rule
    (``needs[i]``: input i needs a gradient). Generated per rule so that recording a node
    runs no interpretive loop."""
    lines = [f"need{i} = needs[{i}]" for i in range(len(rule.inputs))]
    lines += [*_gather_lines(rule, plan, _Names(inline=False)), "return args, saved"]
    return _compile("gather", "inputs, datas, outs, attrs, needs", lines, rule)


def _compile_record(rule: Rule, node_class: type, plan: tuple[tuple[int, Any], ...]) -> Any:
    """Make ``record(inputs, datas, outs, attrs)`` for a row without list inputs: it
    builds the node and attaches it to the outputs (ops with one output inline this)."""
    lines = _record_lines(rule, plan, _Names(inline=False)) + [
        "for i, o in enumerate(outs):",
        "    if o._data.dtype.kind in 'fc':",
        "        o.grad_fn = node",
        "        o._output_nr = i",
        "        o._requires_grad = True",
    ]
    return _compile("record", "inputs, datas, outs, attrs", lines, rule, node_class=node_class)


def tensor_edge(x: Any) -> InputEdge:
    """The input edge a node keeps for ``x`` (see ``_graph.InputEdge``)."""
    if not isinstance(x, Tensor):
        return NO_EDGE
    data = x._data
    dt = data.dtype
    if dt.kind not in "fc":
        return NO_EDGE
    if not x._requires_grad:
        return (None, 0, data.shape, dt)
    fn = x.grad_fn
    if fn is None:
        return (x._accumulator(), 0, data.shape, dt)
    return (fn, x._output_nr, data.shape, dt)


def _compile_call(op: Op) -> Any:
    """Make the function that runs a row without list inputs, unrolled over its inputs:
    ``fn(*tensor_inputs, **attrs)`` unwraps tensors, runs the forward on raw arrays, and
    records a node and pushes tangents only when an input asks for it."""
    rule = op.rule
    params = [f"x{i}" for i in range(len(rule.inputs))]
    kw = [f"{a}={rule.attr_defaults[a]!r}" if a in rule.attr_defaults else a for a in rule.attrs]
    signature = ", ".join(params + (["*", *kw] if kw else []))
    lines = ["rq = tg = foreign = False"]
    for i, x in enumerate(params):
        lines += [
            f"if isinstance({x}, Tensor):",
            f"    d{i} = {x}._data",
            f"    if type(d{i}) is not ndarray:",
            "        foreign = True",
            f"    if {x}._requires_grad:",
            "        rq = True",
            f"    if {x}._fw_grad is not None:",
            "        tg = True",
            "else:",
            f"    d{i} = {x}",
        ]
    datas = "".join(f"d{i}, " for i in range(len(params)))
    inputs = "".join(f"{x}, " for x in params)
    attrs = "{" + ", ".join(f"{a!r}: {a}" for a in rule.attrs) + "}"
    call_args = datas + "".join(f"{a}={a}, " for a in rule.attrs)
    lines += [
        "try:",
        f"    out = forward({call_args})",
        "except (ValueError, TypeError, IndexError, ArithmeticError, NotImplementedError) as exc:",
        f"    raise op_error({rule.name!r}, ({inputs}), exc) from None",
    ]
    if op.multi:
        lines += ["outs = tuple(wrap(o) for o in out)"]
    else:
        lines += [
            "if type(out) is not ndarray:",
            "    if isinstance(out, generic):",
            "        out = asarray(out)",
            "    else:  # another array library: all tensor inputs must live in it",
            "        foreign = True",
            "if foreign:  # and the output too (no silent conversion to NumPy)",
            f"    check_backends({rule.name!r}, ({inputs}), out)",
            "result = new(Tensor)",
            "result._data = out",
            "result._output_nr = 0",
            "result._fw_grad = None",
            # recording, inlined: this runs for every op that an input asks a gradient of
            "if rq and state.enabled and out.dtype.kind in 'fc':",
            *(f"    {line}" for line in _record_lines(rule, op.plan, _Names(inline=True))),
            "    result.grad_fn = node",
            "    result._requires_grad = True",
            "else:",
            "    result.grad_fn = None",
            "    result._requires_grad = False",
        ]
    outs = "outs" if op.multi else "(result,)"
    if op.multi:
        lines += [
            "if rq and state.enabled:",
            f"    record(({inputs}), ({datas}), {outs}, {attrs})",
        ]
    lines += [
        "if tg and state.forward_level:",
        f"    push_tangent(({inputs}), {outs}, {attrs})",
        f"return {outs if op.multi else 'result'}",
    ]
    return _compile(
        f"call_{rule.name}",
        signature,
        lines,
        rule,
        forward=op.forward,
        record=op.record,
        node_class=op.node_class,
        push_tangent=op._push_tangent,
        state=state,
        op_error=_op_error,
        wrap=Tensor._wrap,
        new=Tensor.__new__,
        ndarray=np.ndarray,
        generic=np.generic,
        asarray=np.asarray,
        check_backends=_check_backends,
    )


def _check_backends(op: str, inputs: tuple, out: Any) -> None:
    arrays = [x._data for x in inputs if isinstance(x, Tensor)]
    _backend.check_same_backend(op, [*arrays, out])


def _is_differentiable_dtype(dtype: Any) -> bool:
    return dtype.kind in "fc"


class Op:
    """A callable primitive: ``Op(rule)(*tensor_inputs, **attrs)`` -> Tensor (or tuple)."""

    __slots__ = (
        "plan",
        "rule",
        "name",
        "forward",
        "node_class",
        "gather",
        "record",
        "has_list",
        "multi",
        "fn",
    )

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.name = rule.name
        self.forward = getattr(_array_fns, rule.name)
        self.node_class = rule.node_class
        self.plan = plan = _plan(rule)
        self.has_list = any(rule.input_is_list)
        self.multi = rule.n_outputs > 1
        # generated helpers: lists need the general recorder, several outputs a separate one;
        # a single output's recording is inlined into its entry point (_compile_call)
        self.gather = _compile_gather(rule, plan) if self.has_list else None
        several = self.multi and not self.has_list
        self.record = _compile_record(rule, rule.node_class, plan) if several else None
        # the function the public API calls (generated, unrolled) for rows without lists
        self.fn = self._call_with_lists if self.has_list else _compile_call(self)

    def __call__(self, *inputs: Any, **attrs: Any) -> Any:
        return self.fn(*inputs, **attrs)

    def _call_with_lists(self, *inputs: Any, **attrs: Any) -> Any:
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
            raise _op_error(self.name, flat, exc) from None
        outs = tuple(Tensor._wrap(o) for o in out) if self.multi else (Tensor._wrap(out),)
        if requires and state.enabled:
            lens = tuple(len(x) if isinstance(x, list | tuple) else 1 for x in inputs)
            self._record(inputs, flat, datas, outs, attrs, lens)
        if tangent and state.forward_level:
            self._push_tangent(inputs, outs, attrs)
        return outs if self.multi else outs[0]

    def _record(
        self,
        inputs: tuple,
        flat: Any,
        datas: list,
        outs: tuple[Tensor, ...],
        attrs: dict,
        list_lens: tuple[int, ...] | None,
    ) -> None:
        edges = [tensor_edge(x) for x in flat]
        needs, k = [], 0
        for n in list_lens:
            needs.append(any(e[0] is not None for e in edges[k : k + n]))
            k += n
        args, saved = self.gather(inputs, datas, outs, attrs, needs)
        node = self.node_class(tuple(edges), args, saved, list_lens)
        for i, o in enumerate(outs):
            if o._data.dtype.kind in "fc":
                o.grad_fn = node
                o._output_nr = i
                o._requires_grad = True

    def _push_tangent(self, inputs: tuple, outs: tuple[Tensor, ...], attrs: dict) -> None:
        """Forward mode: the result's tangent from the row's ``result`` formula, evaluated on
        tensors (so tangents are themselves differentiable)."""
        from . import _ops

        rule = self.rule
        tangents = []
        for x in inputs:
            if isinstance(x, list | tuple):
                ts = [t._fw_grad if isinstance(t, Tensor) else None for t in x]
                tangents.append(None if all(t is None for t in ts) else ts)
            else:
                tangents.append(x._fw_grad if isinstance(x, Tensor) else None)
        names: dict[str, Any] = dict(zip(rule.inputs, inputs, strict=True))
        names.update(attrs)
        for name, o in zip(rule.outputs, outs, strict=True):
            # not detached: a tangent computed with a graph (reverse-over-forward) depends on
            # the result too (tanh: self_t * (1 - result * result))
            names[name] = o
        names["result_shape"] = outs[0].shape
        names["result_ndim"] = outs[0].ndim
        for name, x in zip(rule.inputs, inputs, strict=True):
            if isinstance(x, list | tuple):
                names[f"{name}_shapes"] = [_shape_of(t) for t in x]
            else:
                names[f"{name}_shape"] = _shape_of(x)
                names[f"{name}_ndim"] = len(_shape_of(x))
                names[f"{name}_dtype"] = getattr(x, "dtype", None)
        # leading batch axes of the tangents (vectorized forward mode)
        batch_shape: tuple[int, ...] = ()
        for x, t in zip(inputs, tangents, strict=True):
            for xi, ti in zip(x, t, strict=True) if isinstance(t, list) else ((x, t),):
                if isinstance(ti, Tensor) and ti.ndim > _ndim_of(xi):
                    batch_shape = tuple(ti.shape[: ti.ndim - _ndim_of(xi)])
        if batch_shape and not rule.batched:
            raise BatchingUnsupported(rule.name)
        # list inputs with some tangents absent: those elements get zero tangents
        for i, x in enumerate(inputs):
            if isinstance(tangents[i], list):
                tangents[i] = [
                    t
                    if t is not None
                    else _ops.expand(_ops.zeros_like(p.detach()), batch_shape + _shape_of(p))
                    for t, p in zip(tangents[i], x, strict=True)
                ]
        if batch_shape and rule.broadcasts:
            # NumPy aligns axes from the right: the tangent of a lower-rank (broadcast) input
            # gets size-1 axes between the batch axes and its own
            nd = max(_ndim_of(x) for x in inputs if isinstance(x, Tensor))
            for i, (x, t) in enumerate(zip(inputs, tangents, strict=True)):
                if isinstance(t, Tensor) and _ndim_of(x) < nd:
                    tangents[i] = _ops.reshape(
                        t, batch_shape + (1,) * (nd - _ndim_of(x)) + _shape_of(x)
                    )
        # tangents are computed once: no tangents of tangents while the formula runs
        level, state.forward_level = state.forward_level, 0
        try:
            result_t = rule.jvp(_ops, *tangents, *(names[a] for a in rule.jvp_args))
        finally:
            state.forward_level = level
        if result_t is None:
            return
        results_t = result_t if self.multi else (result_t,)
        for o, t in zip(outs, results_t, strict=True):
            if t is not None and _is_differentiable_dtype(o._data.dtype):
                t = t if isinstance(t, Tensor) else Tensor._wrap(np.asarray(t))
                target = batch_shape + tuple(o.shape)
                if tuple(t.shape) != target:  # a tangent from a broadcast input
                    t = _ops.expand(t, target)
                if t.dtype != o.dtype:
                    t = _ops.to_dtype(t, o.dtype)
                o._fw_grad = t


def _ndim_of(x: Any) -> int:
    return x.ndim if isinstance(x, Tensor) else np.ndim(x)


def _shape_of(x: Any) -> tuple[int, ...]:
    data = x._data if isinstance(x, Tensor) else x
    if type(data) is np.ndarray:
        return data.shape
    return _backend.shape_of(data)


def _op_error(name: str, inputs: Any, exc: Exception) -> Exception:
    def describe(x: Any) -> str:
        if not isinstance(x, Tensor):
            return repr(x)
        where = "" if x.backend == "numpy" else f" {x.backend}"
        return f"{tuple(x.shape)} {x.dtype}{where}"

    shapes = ", ".join(describe(x) for x in inputs)
    return type(exc)(f"{name}: {exc} (inputs: {shapes})")


OP_OBJECTS: dict[str, Op] = {name: Op(rule) for name, rule in RULES.items()}
# what callers use: each op's generated entry point, ``OPS["mm"](A, B)``
OPS: dict[str, Any] = {name: op.fn for name, op in OP_OBJECTS.items()}
