"""``Op``: runs a primitive's forward on raw arrays and, when needed, records its graph node.

This is the only place where tensors are unwrapped, nodes are made and forward-mode tangents
are pushed through a row's ``result`` formula. It knows no particular op.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import _array_fns
from ._grad_mode import state
from ._graph import BatchingUnsupported
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


def _is_differentiable_dtype(dtype: Any) -> bool:
    return dtype.kind in "fc"


class Op:
    """A callable primitive: ``Op(rule)(*tensor_inputs, **attrs)`` -> Tensor (or tuple)."""

    __slots__ = ("rule", "name", "forward", "node_class", "plan", "has_list", "multi")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.name = rule.name
        self.forward = getattr(_array_fns, rule.name)
        self.node_class = rule.node_class
        self.plan = _plan(rule)
        self.has_list = any(rule.input_is_list)
        self.multi = rule.n_outputs > 1

    def __call__(self, *inputs: Any, **attrs: Any) -> Any:
        if self.has_list:
            flat = [x for group in inputs for x in (group if isinstance(group, list | tuple)
                                                      else (group,))]
        else:
            flat = inputs
        requires = False
        tangent = False
        for x in flat:
            if isinstance(x, Tensor):
                if x.requires_grad:
                    requires = True
                if x._fw_grad is not None:
                    tangent = True
        if self.has_list:
            datas = [[x._data if isinstance(x, Tensor) else x for x in group]
                     if isinstance(group, list | tuple) else
                     (group._data if isinstance(group, Tensor) else group) for group in inputs]
        else:
            datas = [x._data if isinstance(x, Tensor) else x for x in inputs]
        try:
            out = self.forward(*datas, **attrs)
        except (ValueError, TypeError, IndexError) as exc:
            raise _op_error(self.name, flat, exc) from None
        record = requires and state.enabled
        if self.multi:
            outs = tuple(Tensor._wrap(o) for o in out)
        else:
            outs = (Tensor._wrap(out),)
        if record:
            self._record(inputs, flat, outs, attrs)
        if tangent and state.forward_level:
            self._push_tangent(inputs, outs, attrs)
        return outs if self.multi else outs[0]

    def _record(self, inputs: tuple, flat: Any, outs: tuple[Tensor, ...], attrs: dict) -> None:
        rule = self.rule
        edges = []
        in_meta = []
        for x in flat:
            if isinstance(x, Tensor):
                dt = x._data.dtype
                in_meta.append((x._data.shape, dt) if _is_differentiable_dtype(dt) else None)
                if x.requires_grad:
                    fn = x.grad_fn
                    edges.append((fn, x._output_nr) if fn is not None else (x._accumulator(), 0))
                else:
                    edges.append((None, 0))
            else:
                in_meta.append(None)
                edges.append((None, 0))
        args = []
        saved = []
        for pos, (kind, key) in enumerate(self.plan):
            if kind == _INPUT:
                x = inputs[key]
                if isinstance(x, Tensor):
                    args.append(x._data)
                    saved.append((pos, x, x._version_counter[0]))
                elif isinstance(x, list | tuple):
                    args.append([t._data if isinstance(t, Tensor) else t for t in x])
                else:
                    args.append(x)
            elif kind == _OUTPUT:
                o = outs[key]
                args.append(o._data)
                saved.append((pos, weakref.ref(o), o._version_counter[0]))
            elif kind == _ATTR:
                args.append(attrs[key])
            elif kind == _SHAPE:
                args.append(_shape_of(inputs[key]))
            elif kind == _NDIM:
                args.append(len(_shape_of(inputs[key])))
            elif kind == _DTYPE:
                args.append(getattr(inputs[key], "dtype", None))
            elif kind == _SHAPES:
                args.append([_shape_of(t) for t in inputs[key]])
            elif kind == _RSHAPE:
                args.append(outs[0]._data.shape)
            else:
                args.append(outs[0]._data.ndim)
        if self.has_list:
            list_lens = tuple(len(x) if isinstance(x, list | tuple) else 1 for x in inputs)
        else:
            list_lens = (1,) * len(inputs)
        node = self.node_class(tuple(edges), tuple(in_meta), tuple(args), tuple(saved), list_lens)
        for i, o in enumerate(outs):
            if _is_differentiable_dtype(o._data.dtype):
                o.grad_fn = node
                o._output_nr = i
                o.requires_grad = True
        node._outputs = tuple(weakref.ref(o) for o in outs)

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
            names[name] = o.detach()
        names["result_shape"] = outs[0].shape
        names["result_ndim"] = outs[0].ndim
        for name, x in zip(rule.inputs, inputs, strict=True):
            if isinstance(x, list | tuple):
                names[f"{name}_shapes"] = [_shape_of(t) for t in x]
            else:
                names[f"{name}_shape"] = _shape_of(x)
                names[f"{name}_ndim"] = len(_shape_of(x))
                names[f"{name}_dtype"] = getattr(x, "dtype", None)
        # list inputs with some tangents absent: those elements get zero tangents
        for i, x in enumerate(inputs):
            if isinstance(tangents[i], list):
                tangents[i] = [t if t is not None else _ops.zeros_like(p)
                               for t, p in zip(tangents[i], x, strict=True)]
        if not rule.batched:
            for x, t in zip(inputs, tangents, strict=True):
                if isinstance(t, Tensor) and t.ndim > _ndim_of(x):
                    raise BatchingUnsupported(rule.name)
        # tangents are computed once: no tangents of tangents while the formula runs
        level, state.forward_level = state.forward_level, 0
        try:
            result_t = rule.jvp(_ops, *tangents, *(names[a] for a in rule.jvp_args))
        finally:
            state.forward_level = level
        if result_t is None:
            return
        batch_shape: tuple[int, ...] = ()
        for x, t in zip(inputs, tangents, strict=True):
            if isinstance(t, Tensor) and t.ndim > _ndim_of(x):
                batch_shape = tuple(t.shape[: t.ndim - _ndim_of(x)])
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
    return tuple(np.shape(x._data if isinstance(x, Tensor) else x))


def _op_error(name: str, inputs: Any, exc: Exception) -> Exception:
    shapes = ", ".join(
        f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else repr(x)
        for x in inputs
    )
    return type(exc)(f"{name}: {exc} (inputs: {shapes})")


OPS: dict[str, Op] = {name: Op(rule) for name, rule in RULES.items()}
