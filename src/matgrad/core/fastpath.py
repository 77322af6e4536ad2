"""Generated entry points: each row's :meth:`Op.reference <matgrad.core.apply.Op.reference>`
unrolled into straight-line code (no loop over inputs, no argument tuples, the node's
recording inlined), which is what makes a chain of small ops cost about what PyTorch's does.

The generated source is registered with :mod:`linecache`, so tracebacks show its lines and
``inspect.getsource(matgrad.ops.OPS["mm"])`` prints it; :data:`SOURCES` keeps it by op.
``tests/test_fastpath.py`` runs every sample of the table through both paths and asserts
identical values, gradients and graphs.
"""

from __future__ import annotations

import linecache
import weakref
from typing import Any

import numpy as np

from ..backend import arrays as _backend
from .apply import (
    ATTR,
    BATCHING,
    DTYPE,
    INPUT,
    NDIM,
    OUTPUT,
    RSHAPE,
    SHAPE,
    SHAPES,
    VMAP_ACTIVE,
    Op,
    is_view_of,
    make_view,
    ndim_of,
    normalize_dim,
    normalize_dims,
    op_error,
    shape_of,
)
from .grad_mode import state
from .graph import HOOKS, NO_EDGE, NODE_WATCHERS, OP_OBSERVERS, observed_call, watch_new_node
from .table import Rule
from .tensor_base import Tensor

# (op name, function name) -> the generated source
SOURCES: dict[tuple[str, str], str] = {}


class _Names:
    """How generated code refers to an op's values: through the containers a separate
    ``record`` function receives (``inputs[0]``), or, inlined into the op's own function, by
    its local names (the parameter, ``d0``, ``result``, the attribute itself)."""

    def __init__(self, inline: bool, params: list[str] | None = None) -> None:
        self.inline = inline
        self.params = params or []

    def input(self, i: int) -> str:
        return self.params[i] if self.inline else f"inputs[{i}]"

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
        if kind == INPUT:
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
        elif kind == OUTPUT:
            # an output is held weakly (no cycle through its grad_fn) and recreated from its
            # data if freed; under forward AD it is held itself, since a recreated output would
            # lack the tangent that forward-over-reverse reads in a create_graph backward pass.
            # (Once it is gone, its memory's version is found from the saved array: see
            # graph.storage_version)
            out = n.output(key)
            arg_exprs.append(f"a{pos}")
            saved_lines.append(
                f"if {needed}:\n"
                f"    a{pos} = {out}._data\n"
                f"    vc = {out}._version_counter\n"
                f"    held = {out} if state.forward_level else weakref_ref({out})\n"
                f"    saved += ({pos}, held, 0 if vc is None else vc[0])\n"
                f"else:\n"
                f"    a{pos} = None"
            )
        elif kind == ATTR:
            arg_exprs.append(n.attr(key))
        elif kind == SHAPE:
            arg_exprs.append(f"shape_of({n.input(key)})")
        elif kind == NDIM:
            arg_exprs.append(f"len(shape_of({n.input(key)}))")
        elif kind == DTYPE:
            arg_exprs.append(f"getattr({n.input(key)}, 'dtype', None)")
        elif kind == SHAPES:
            arg_exprs.append(f"[shape_of(t) for t in {n.input(key)}]")
        elif kind == RSHAPE:
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
        "shape_of": shape_of,
        "NO_EDGE": NO_EDGE,
        # opt-in instrumentation (saved-tensor hooks, anomaly mode, profiler): lists that are
        # empty unless switched on, so each costs one truth test
        "node_watchers": NODE_WATCHERS,
        "watch_new_node": watch_new_node,
        "op_observers": OP_OBSERVERS,
        "observed_call": observed_call,
        "hooks": HOOKS,
        **names,
    }
    filename = f"<matgrad.core.fastpath: {name} for {rule.name}>"
    # registered with linecache: tracebacks and inspect.getsource show the generated code
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - generated from the table
    SOURCES[(rule.name, name)] = source
    return namespace[name]


def _compile_record(op: Op) -> Any:
    """Make ``record(inputs, datas, outs, attrs)`` for a row without list inputs: it
    builds the node and attaches it to the outputs (ops with one output inline this)."""
    rule = op.rule
    lines = _record_lines(rule, op.plan, _Names(inline=False)) + [
        "for i, o in enumerate(outs):",
        "    if o._data.dtype.kind in 'fc':",
        "        o.grad_fn = node",
        "        o._output_nr = i",
        "        o._requires_grad = True",
        "if node_watchers:",
        "    watch_new_node(node)",
    ]
    return _compile("record", "inputs, datas, outs, attrs", lines, rule, node_class=op.node_class)


def public_parameters(rule: Rule) -> list[str]:
    """The entry point's parameter names: the row's, with ``self`` called ``input`` as in
    PyTorch's Python functions (``matgrad.mul(input, other)``)."""
    return ["input" if name == "self" else name for name in rule.inputs]


def entry_point(op: Op) -> Any:
    """The function the public API calls for ``op``: for a row without list inputs, made
    here, unrolled over its inputs (``fn(*tensor_inputs, **attrs)`` unwraps tensors, runs the
    forward on raw arrays, and records a node and pushes tangents only when an input asks for
    it); a row with a list input takes :meth:`Op.reference`."""
    if op.has_list:
        return op.reference
    rule = op.rule
    params = public_parameters(rule)
    kw = [f"{a}={rule.attr_defaults[a]!r}" if a in rule.attr_defaults else a for a in rule.attrs]
    signature = ", ".join(params + kw)
    attr_dict = "{" + ", ".join(f"{a!r}: {a}" for a in rule.attrs) + "}"
    lines = [
        # inside func.vmap, before anything reads a shape: the op's batching rule
        "if vmap_active[0] and state.vmap:",
        f"    return batching[0](op, ({''.join(f'{x}, ' for x in params)}), {attr_dict})",
        # a profiler records: time this call (it runs again, inside observed_call)
        "if op_observers and not hooks.observing:",
        f"    return observed_call(call_{rule.name}, {rule.name!r}, "
        f"({''.join(f'{x}, ' for x in params)}), "
        + "{"
        + ", ".join(f"{a!r}: {a}" for a in rule.attrs)
        + "})",
        "rq = tg = foreign = False",
    ]
    for name, kind in rule.attr_types.items():  # typed attributes: see core.table.ATTR_TYPES
        normalize = "normalize_dim" if kind == "Dim" else "normalize_dims"
        lines.append(f"{name} = {normalize}({rule.name!r}, {name}, ndim_of({params[0]}))")
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
        lines += [
            "outs = tuple(wrap(o) for o in out)",
            "if foreign or any(type(o._data) is not ndarray for o in outs):",
            f"    check_backends({rule.name!r}, ({inputs}), *(o._data for o in outs))",
        ]
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
            "result._version_counter = None",
            *(
                [  # a view op: the output may share the input's memory (see apply.make_view)
                    f"if isinstance({params[0]}, Tensor) and is_view_of(out, d0):",
                    f"    make_view(result, {params[0]}, op, {attrs})",
                ]
                if rule.view
                else []
            ),
            # recording, inlined: this runs for every op that an input asks a gradient of
            "if rq and state.enabled and out.dtype.kind in 'fc':",
            *(f"    {line}" for line in _record_lines(rule, op.plan, _Names(True, params))),
            "    result.grad_fn = node",
            "    result._requires_grad = True",
            "    if node_watchers:",
            "        watch_new_node(node)",
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
        record=_compile_record(op) if op.multi else None,
        node_class=op.node_class,
        push_tangent=op._push_tangent,
        op_error=op_error,
        wrap=Tensor._wrap,
        new=Tensor.__new__,
        ndarray=np.ndarray,
        generic=np.generic,
        asarray=np.asarray,
        check_backends=_check_backends,
        normalize_dim=normalize_dim,
        normalize_dims=normalize_dims,
        ndim_of=ndim_of,
        is_view_of=is_view_of,
        make_view=make_view,
        op=op,
        batching=BATCHING,
        vmap_active=VMAP_ACTIVE,
    )


def _check_backends(op: str, inputs: tuple, *outs: Any) -> None:
    arrays = [x._data for x in inputs if isinstance(x, Tensor)]
    _backend.check_backends(op, arrays, outs)
