"""Custom differentiable operations: ``matgrad.autograd.Function``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import grad_mode as _grad_mode
from ..core import nodes
from ..core.apply import tensor_edge
from ..core.graph import BatchingUnsupported, Node
from ..core.nodes import check_version, fit_gradient, freed_error
from ..tensor import Tensor


class FunctionCtx:
    """The ``ctx`` passed to a Function's ``forward`` and ``backward``."""

    def __init__(self) -> None:
        self._saved: tuple[tuple[Tensor | None, int], ...] = ()
        self._released = False
        self.needs_input_grad: tuple[bool, ...] = ()
        self._node_name = "Function"
        self._materialize_grads = True

    def set_materialize_grads(self, value: bool) -> None:
        """Whether ``backward`` gets zeros (True, the default) or None for the outputs that
        received no gradient (PyTorch's ``ctx.set_materialize_grads``)."""
        self._materialize_grads = bool(value)

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        """Keep tensors for ``backward``; they are checked for in-place changes on use."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"save_for_backward can only save tensors or None, got {type(t).__name__}"
                )
        self._saved = tuple((t, t._version if t is not None else 0) for t in tensors)

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        if self._released:
            raise freed_error(self._node_name)
        for i, (t, version) in enumerate(self._saved):
            if t is not None:
                check_version(self._node_name, f"saved_tensors[{i}]", t, version)
        return tuple(t for t, _ in self._saved)

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        self._non_differentiable = {id(t) for t in tensors}


class FunctionNode(Node):
    """Graph node of a custom Function; calls its ``backward`` on tensors."""

    __slots__ = ("ctx", "fn_cls", "_n_out", "_out_meta")

    def __init__(
        self, ctx: FunctionCtx, fn_cls: type, edges: tuple, n_out: int, out_meta: tuple = ()
    ) -> None:
        super().__init__()
        self.ctx, self.fn_cls, self._n_out = ctx, fn_cls, n_out
        self._next = edges
        # (shape, dtype) of each output: the zeros backward gets for an output without gradient
        self._out_meta = out_meta

    @property
    def n_outputs(self) -> int:  # type: ignore[override]
        return self._n_out

    def name(self) -> str:
        return f"{self.fn_cls.__name__}Backward"

    def _release(self) -> None:
        self.ctx._released = True

    def _apply(
        self, grads: list[Any], create_graph: bool, nbatch: int, want_all: bool = False
    ) -> list[Any]:
        if nbatch:
            raise BatchingUnsupported(self.name())
        tensors = [g if isinstance(g, Tensor) or g is None else Tensor._wrap(g) for g in grads]
        if self.ctx._materialize_grads:  # PyTorch's default: zeros, not None
            for i, (shape, dtype) in enumerate(self._out_meta):
                if i < len(tensors) and tensors[i] is None:
                    tensors[i] = Tensor._wrap(np.zeros(shape, dtype=dtype))
        with _grad_mode.set_grad_enabled(create_graph):
            out = self.fn_cls.backward(self.ctx, *tensors)
        out = out if isinstance(out, tuple) else (out,)
        n = len(self._next)
        # as PyTorch: one gradient per forward argument; extra trailing ones must be None
        if len(out) < n or any(g is not None for g in out[n:]):
            raise RuntimeError(
                f"function {self.name()} returned an incorrect number of gradients (expected "
                f"{n}, got {len(out)}): return one per forward argument (None for "
                "non-tensor arguments and those without a gradient)"
            )
        out = out[:n]
        F = nodes.TENSOR if create_graph else nodes.RAW  # noqa: N806
        result: list[Any] = []
        for g, edge in zip(out, self._next, strict=True):
            if g is None or (edge[0] is None and not want_all) or edge[2] is None:
                result.append(None)
                continue
            g = g if create_graph else (g._data if isinstance(g, Tensor) else g)
            try:
                result.append(fit_gradient(F, g, edge[2], edge[3], 0))
            except (ValueError, RuntimeError) as exc:
                raise RuntimeError(
                    f"{self.name()}: backward returned a gradient of shape "
                    f"{tuple(getattr(g, 'shape', ()))} for an input of shape {edge[2]}"
                ) from exc
        return result


class Function:
    """Base class for operations with a hand-written derivative.

    Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``
    (returning one gradient per forward argument, None for those without), then call
    ``MyFunction.apply(*args)``.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any) -> Any:
        raise NotImplementedError("Function subclasses must implement forward(ctx, ...)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        raise NotImplementedError("Function subclasses must implement backward(ctx, ...)")

    @classmethod
    def apply(cls, *args: Any) -> Any:
        ctx = FunctionCtx()
        ctx._node_name = f"{cls.__name__}Backward"
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with _grad_mode.no_grad():
            out = cls.forward(ctx, *args)
        outputs = out if isinstance(out, tuple) else (out,)
        outputs = tuple(o if isinstance(o, Tensor) else Tensor(o) for o in outputs)
        if any(ctx.needs_input_grad) and _grad_mode.state.enabled:
            edges = tuple(tensor_edge(a) for a in args)
            meta = tuple((tuple(o.shape), o.dtype) for o in outputs)
            node = FunctionNode(ctx, cls, edges, len(outputs), meta)
            non_diff = getattr(ctx, "_non_differentiable", set())
            fresh = []
            for i, o in enumerate(outputs):
                if any(o is a for a in args):
                    o = o.detach()  # an input returned as is: give the output its own identity
                if id(o) not in non_diff and o.dtype.kind in "fc":
                    o.grad_fn, o._output_nr, o._requires_grad = node, i, True
                fresh.append(o)
            outputs = tuple(fresh)
        return outputs if isinstance(out, tuple) else outputs[0]
