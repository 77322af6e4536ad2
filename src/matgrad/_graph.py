"""Graph nodes: the ``grad_fn`` objects a forward pass records.

A :class:`Node` is made per recorded operation from its row in ``derivatives.yaml``. It holds
exactly the values the row's formulas read (``_saved_<name>``), its edges to the nodes that made
its inputs (``next_functions``), and applies the row's vector-Jacobian product when called.
Nothing here knows a particular op: the row's compiled formulas do the work.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _array_fns

if TYPE_CHECKING:
    from ._rules import Rule
    from .tensor import Tensor

Edge = tuple["Node | None", int]


class Node:
    """Base of every graph node: ``next_functions``, ``name()``, hooks and calling."""

    __slots__ = (
        "_next",
        "_in_meta",
        "_released",
        "_pre_hooks",
        "_post_hooks",
        "_tensor_pre_hooks",
        "__weakref__",
    )

    def __init__(self) -> None:
        self._next: tuple[Edge, ...] = ()
        self._in_meta: tuple[Any, ...] = ()
        self._released = False
        self._pre_hooks: list[Callable] | None = None
        self._post_hooks: list[Callable] | None = None
        self._tensor_pre_hooks: dict[int, list[Callable]] | None = None

    # -- inspection ----------------------------------------------------------------------------
    n_outputs = 1

    def name(self) -> str:
        return type(self).__name__

    @property
    def next_functions(self) -> tuple[Edge, ...]:
        """One ``(node, output_index)`` pair per input: the node that made the input, an
        ``AccumulateGrad`` for a leaf that requires grad, ``(None, 0)`` otherwise."""
        return self._next

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self):#x}>"

    # -- hooks ---------------------------------------------------------------------------------
    def register_hook(self, fn: Callable) -> _RemovableHandle:
        """``fn(grad_inputs, grad_outputs)`` runs after this node computed its input
        gradients; a non-None return replaces ``grad_inputs``."""
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(fn)
        return _RemovableHandle(self._post_hooks, fn)

    def register_prehook(self, fn: Callable) -> _RemovableHandle:
        """``fn(grad_outputs)`` runs before this node; a non-None return replaces them."""
        if self._pre_hooks is None:
            self._pre_hooks = []
        self._pre_hooks.append(fn)
        return _RemovableHandle(self._pre_hooks, fn)

    def _add_tensor_pre_hook(self, output_nr: int, fn: Callable) -> _RemovableHandle:
        if self._tensor_pre_hooks is None:
            self._tensor_pre_hooks = {}
        hooks = self._tensor_pre_hooks.setdefault(output_nr, [])
        hooks.append(fn)
        return _RemovableHandle(hooks, fn)

    # -- evaluation (overridden) ---------------------------------------------------------------
    def _apply(self, grads: list[Any], create_graph: bool, nbatch: int) -> list[Any]:
        raise NotImplementedError

    def _release(self) -> None:
        self._released = True


class BatchingUnsupported(RuntimeError):
    """A rule marked ``batched: false`` met a batch of cotangents or tangents; vectorized
    callers catch this and fall back to one pass per row."""

    def __init__(self, op: str) -> None:
        super().__init__(f"the rule for '{op}' does not take batched cotangents/tangents")
        self.op = op


class _RemovableHandle:
    def __init__(self, hooks: list[Callable], fn: Callable) -> None:
        self._hooks, self._fn = hooks, fn

    def remove(self) -> None:
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


class AccumulateGrad(Node):
    """The node at a leaf that requires grad: adds the incoming gradient into ``.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable: Tensor) -> None:
        super().__init__()
        self.variable = variable

    def _apply(self, grads: list[Any], create_graph: bool, nbatch: int) -> list[Any]:
        return []


class RuleNode(Node):
    """A node made from a row of the rule table; subclasses are generated per row with the
    class attribute ``rule`` and are named like PyTorch's (``MmBackward0``)."""

    __slots__ = ("_args", "_saved", "_outputs", "_list_lens")
    rule: Rule

    @property
    def n_outputs(self) -> int:  # type: ignore[override]
        return self.rule.n_outputs

    def __init__(
        self,
        next_edges: tuple[Edge, ...],
        in_meta: tuple[Any, ...],
        args: tuple[Any, ...],
        saved: tuple[Any, ...],
        list_lens: tuple[int, ...],
    ) -> None:
        self._next = next_edges
        self._in_meta = in_meta
        self._released = False
        self._pre_hooks = None
        self._post_hooks = None
        self._tensor_pre_hooks = None
        self._args = args  # raw values in the order of rule.vjp_args
        self._saved = saved  # per saved tensor: (arg position, tensor or weakref, version)
        self._outputs: tuple[weakref.ref, ...] = ()
        self._list_lens = list_lens

    # -- saved values --------------------------------------------------------------------------
    def _check_versions(self) -> None:
        if self._released:
            raise RuntimeError(
                f"Trying to backward through {self.name()} a second time (or to use its saved "
                "tensors after they were freed). Saved tensors are freed after a backward pass; "
                "specify retain_graph=True on the first backward() or autograd.grad() call if "
                "you need to backward through the graph again."
            )
        for pos, holder, version in self._saved:
            tensor = holder() if isinstance(holder, weakref.ref) else holder
            if tensor is not None and tensor._version_counter[0] != version:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: {self.name()} saved "
                    f"'{self.rule.vjp_args[pos]}' (shape {tuple(tensor.shape)}) at version "
                    f"{version}, and it is now at version {tensor._version_counter[0]}. "
                    "Use an out-of-place operation or clone() the tensor before modifying it."
                )

    def _tensor_args(self) -> list[Any]:
        """The saved values as tensors (for formulas that must record a graph)."""
        from .tensor import Tensor

        args = list(self._args)
        for pos, holder, _ in self._saved:
            if isinstance(holder, weakref.ref):  # an output of this node
                out_nr = self.rule.outputs.index(self.rule.vjp_args[pos])
                tensor = holder()
                if tensor is None:
                    tensor = Tensor._make_result(args[pos], self, out_nr)
                args[pos] = tensor
            else:
                args[pos] = holder
        return args

    def _lookup_saved(self, name: str) -> Any:
        if self._released:
            raise RuntimeError(
                f"{self.name()}._saved_{name}: the saved values were freed by a backward pass "
                "without retain_graph=True."
            )
        pos = self.rule.vjp_args.index(name)
        for p, holder, _ in self._saved:
            if p == pos:
                return self._tensor_args()[pos]
        return self._args[pos]

    def __getattr__(self, attr: str) -> Any:
        # `_saved_<name>` gives what the node saved for its formulas (PyTorch's convention)
        if attr.startswith("_saved_"):
            name = attr[len("_saved_") :]
            if name in type(self).rule.vjp_args:
                return self._lookup_saved(name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{attr}'")

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *(f"_saved_{n}" for n in self.rule.vjp_args)]

    # -- evaluation ----------------------------------------------------------------------------
    def _apply(
        self, grads: list[Any], create_graph: bool, nbatch: int, want_all: bool = False
    ) -> list[Any]:
        """Input gradients for the output gradients ``grads`` (None for a missing one).

        With ``create_graph`` the formulas run on tensors and record a graph; otherwise they
        run on raw arrays. ``want_all`` asks for every tensor input's gradient, not only those
        of inputs that require grad (used by ``node(grad)``)."""
        self._check_versions()
        rule = self.rule
        if nbatch and not rule.batched:
            raise BatchingUnsupported(rule.name)
        in_meta = self._in_meta
        needs = [False] * len(rule.inputs)
        k = 0
        for i, n in enumerate(self._list_lens):
            for j in range(k, k + n):
                if self._next[j][0] is not None or (want_all and in_meta[j] is not None):
                    needs[i] = True
            k += n
        if create_graph:
            from . import _ops as F

            args = self._tensor_args()
        else:
            F = _array_fns  # noqa: N806 - the formula namespace
            args = self._args
        per_input = rule.vjp(F, needs, *grads, *args)
        flat: list[Any] = []
        for i, n in enumerate(self._list_lens):
            g = per_input[i]
            if rule.input_is_list[i]:
                flat.extend(g if g is not None else [None] * n)
            else:
                flat.append(g)
        for j, g in enumerate(flat):
            wanted = self._next[j][0] is not None or (want_all and in_meta[j] is not None)
            flat[j] = fit_gradient(F, g, in_meta[j], nbatch) if g is not None and wanted else None
        return flat

    def __call__(self, *grad_outputs: Any) -> tuple[Any, ...] | Any:
        """Apply this node's vector-Jacobian product to output gradients: returns the gradient
        of every tensor input, reduced to that input's shape (None for non-tensor inputs).
        Records a graph when grad mode is on and a gradient requires grad."""
        from .tensor import Tensor, as_tensor

        if len(grad_outputs) != self.rule.n_outputs:
            raise TypeError(
                f"{self.name()} takes {self.rule.n_outputs} output gradient(s), "
                f"got {len(grad_outputs)}"
            )
        from . import _grad_mode

        grads = [None if g is None else as_tensor(g) for g in grad_outputs]
        record = _grad_mode.state.enabled and any(g is not None and g.requires_grad for g in grads)
        if record:  # the gradient is itself differentiable: evaluate on tensors
            out = self._apply(grads, True, 0, want_all=True)
        else:
            out = self._apply([None if g is None else g._data for g in grads], False, 0,
                              want_all=True)
        results = tuple(g if g is None or isinstance(g, Tensor) else Tensor._wrap(g) for g in out)
        return results[0] if len(results) == 1 else results


def fit_gradient(F: Any, g: Any, meta: tuple[tuple[int, ...], Any], nbatch: int) -> Any:
    """Reduce a gradient to its input's shape and dtype: the one place where broadcasting is
    undone (sum over broadcast axes) and dtypes are matched. ``nbatch`` leading axes are
    batch axes of vectorized cotangents and are kept."""
    shape, dtype = meta
    gshape = getattr(g, "shape", None)
    if gshape is None:  # a Python scalar from a formula
        g = F.full_like_shape(g, shape, dtype)
        gshape = g.shape
    target = gshape[:nbatch] + shape
    if gshape != target:
        core = gshape[nbatch:]
        lead = len(core) - len(shape)
        if lead < 0 or any(c == 1 and s != 1 for c, s in zip(core[lead:], shape, strict=True)):
            g = F.expand(g, target)  # fewer or size-1 axes than the input: broadcast up
        else:
            axes = tuple(range(nbatch, nbatch + lead)) + tuple(
                nbatch + lead + i
                for i, (c, s) in enumerate(zip(core[lead:], shape, strict=True))
                if s == 1 and c != 1
            )
            if axes:
                g = F.sum(g, tuple(a - len(gshape) for a in axes), True)
            if g.shape != target:
                g = F.reshape(g, target)
    if g.dtype != dtype and dtype is not None:
        g = F.to_dtype(g, dtype)
    return g


def is_float_dtype(dtype: Any) -> bool:
    return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating)
