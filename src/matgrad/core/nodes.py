"""Nodes made from rows of the rule table, and the one place gradients are fitted to inputs.

A :class:`RuleNode` is made per recorded operation from its row in ``derivatives.yaml``. It
holds exactly the values the row's formulas read (``_saved_<name>``), its edges to the nodes
that made its inputs (``next_functions``), and applies the row's vector-Jacobian product when
called. Nothing here knows a particular op: the row's compiled formulas do the work, on the
formula namespace the op layer provides (:func:`set_formula_namespaces`).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from . import grad_mode
from .graph import (
    _WANT,
    NO_EDGE,
    BatchingUnsupported,
    InputEdge,
    Node,
    inplace_epoch,
    storage_version,
)
from .tensor_base import Tensor, as_tensor

if TYPE_CHECKING:
    from .table import Rule

# The namespaces formulas run with (``F``): raw arrays (the backward pass without a graph) and
# tensors (``create_graph=True``: the backward pass records a graph). The core knows no op; the
# op layer builds both from the table and hands them over once.
RAW: Any = None
TENSOR: Any = None


def set_formula_namespaces(raw: Any, tensor: Any) -> None:
    """Install the formula namespaces: each has a function per row of the table (its forward
    on raw arrays; its recorded op on tensors) and the helpers formulas call."""
    global RAW, TENSOR
    RAW, TENSOR = raw, tensor


def freed_error(node_name: str) -> RuntimeError:
    """Saved values used after a backward pass freed them."""
    return RuntimeError(
        f"Trying to backward through {node_name} a second time (or to use its saved "
        "tensors after they were freed). Saved tensors are freed after a backward pass; "
        "specify retain_graph=True on the first backward() or autograd.grad() call if "
        "you need to backward through the graph again."
    )


def check_version(node_name: str, what: str, tensor: Tensor, version: int) -> None:
    """The one saved-tensor check: raise if ``tensor`` changed in place since a node saved it
    at ``version`` (``what`` names the saved value)."""
    if tensor._version != version:
        raise version_error(node_name, what, tensor.shape, version, tensor._version)


def version_error(
    node_name: str, what: str, shape: tuple[int, ...], version: int, current: int
) -> RuntimeError:
    return RuntimeError(
        f"one of the variables needed for gradient computation has been modified "
        f"by an inplace operation: {node_name} saved {what} (shape {tuple(shape)}) at "
        f"version {version}, and it is now at version {current}. Use an out-of-place "
        "operation or clone() the tensor before modifying it."
    )


class RuleNode(Node):
    """A node made from a row of the rule table; subclasses are generated per row with the
    class attribute ``rule`` and are named like PyTorch's (``MmBackward0``)."""

    __slots__ = ("_args", "_saved", "_list_lens", "_epoch")
    rule: Rule
    _vjp: Any  # the rule's compiled VJP (a staticmethod of each generated class)

    def __init__(
        self,
        next_edges: tuple[InputEdge, ...],
        args: tuple[Any, ...],
        saved: tuple[Any, ...],
        list_lens: tuple[int, ...] | None,
    ) -> None:
        self._next = next_edges
        self._epoch = inplace_epoch[0]
        self._hooks = None
        self._args: tuple[Any, ...] | None = args  # raw values, in the order of rule.vjp_args
        # the tensors among the args, flat: (arg position, tensor or weakref, version) * k
        self._saved = saved
        self._list_lens = list_lens  # lengths of list inputs (None: the row has none)

    def _release(self) -> None:
        self._args = None
        self._saved = ()

    def _raw_input_grads(self, grads: list[Any], release: bool) -> list[Any]:
        if self._list_lens is not None:
            return Node._raw_input_grads(self, grads, release)
        args = self._args
        if args is None or (self._saved and self._epoch != inplace_epoch[0]):
            self._check_versions()
        if release:
            self._args = None
            self._saved = ()
        # a rule's `needs` argument takes the edges themselves (edge[0] is None: not needed)
        return self._vjp(RAW, self._next, *grads, *args)

    # -- saved values --------------------------------------------------------------------------
    def _check_versions(self) -> None:
        if self._args is None:
            raise freed_error(self.name())
        saved = self._saved
        for k in range(0, len(saved), 3):
            pos, holder, version = saved[k : k + 3]
            tensor = holder() if isinstance(holder, weakref.ref) else holder
            if tensor is not None:
                current = tensor._version
            else:  # a saved output that is gone: the version of its memory
                current = storage_version(self._args[pos], version)
            if current != version:
                what = f"'{self.rule.vjp_args[pos]}'"
                raise version_error(self.name(), what, self._args[pos].shape, version, current)

    def _tensor_args(self) -> list[Any]:
        """The saved values as tensors (for formulas that must record a graph)."""
        args = list(self._args)
        saved = self._saved
        for k in range(0, len(saved), 3):
            pos, holder = saved[k], saved[k + 1]
            if isinstance(holder, weakref.ref):  # an output of this node
                out_nr = self.rule.outputs.index(self.rule.vjp_args[pos])
                tensor = holder()
                if tensor is None:  # freed: recreate it (integer outputs get no graph)
                    data = args[pos]
                    tensor = (
                        Tensor._make_result(data, self, out_nr)
                        if data.dtype.kind == "f"
                        else Tensor._wrap(data)
                    )
                args[pos] = tensor
            else:
                args[pos] = holder
        return args

    def _lookup_saved(self, name: str) -> Any:
        if self._args is None:
            raise RuntimeError(
                f"{self.name()}._saved_{name}: the saved values were freed by a backward pass "
                "without retain_graph=True."
            )
        pos = self.rule.vjp_args.index(name)
        if pos in self._saved[::3]:
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
        rule = self.rule
        if self._args is None or (self._saved and self._epoch != inplace_epoch[0]):
            self._check_versions()
        if nbatch and not rule.batched:
            raise BatchingUnsupported(rule.name)
        edges = self._next
        wanted = [e[2] is not None if want_all else e[0] is not None for e in edges]
        list_lens = self._list_lens
        if list_lens is None:
            needs = [_WANT if w else NO_EDGE for w in wanted]
        else:
            needs, k = [], 0
            for n in list_lens:
                needs.append(_WANT if any(wanted[k : k + n]) else NO_EDGE)
                k += n
        if create_graph:
            F = TENSOR  # noqa: N806 - the formula namespace
            args = self._tensor_args()
        else:
            F = RAW  # noqa: N806
            args = self._args
        per_input = rule.vjp(F, needs, *grads, *args)
        if list_lens is not None:
            flat: list[Any] = []
            for i, n in enumerate(list_lens):
                g = per_input[i]
                if rule.input_is_list[i]:
                    flat.extend(g if g is not None else [None] * n)
                else:
                    flat.append(g)
            per_input = flat
        out = []
        for g, w, e in zip(per_input, wanted, edges, strict=True):
            if g is None or not w:
                out.append(None)
            elif nbatch == 0 and getattr(g, "shape", None) == e[2] and g.dtype == e[3]:
                out.append(g)  # the common case: nothing to reduce or cast
            else:
                out.append(fit_gradient(F, g, e[2], e[3], nbatch))
        return out

    def __call__(self, *grad_outputs: Any) -> tuple[Any, ...] | Any:
        """Apply this node's vector-Jacobian product to output gradients: returns the gradient
        of every tensor input, reduced to that input's shape (None for non-tensor inputs).
        Records a graph when grad mode is on and a gradient requires grad."""
        if len(grad_outputs) != self.rule.n_outputs:
            raise TypeError(
                f"{self.name()} takes {self.rule.n_outputs} output gradient(s), "
                f"got {len(grad_outputs)}"
            )
        grads = [None if g is None else as_tensor(g) for g in grad_outputs]
        record = grad_mode.state.enabled and any(g is not None and g.requires_grad for g in grads)
        if record:  # the gradient is itself differentiable: evaluate on tensors
            out = self._apply(grads, True, 0, want_all=True)
        else:
            out = self._apply(
                [None if g is None else g._data for g in grads], False, 0, want_all=True
            )
        results = tuple(g if g is None or isinstance(g, Tensor) else Tensor._wrap(g) for g in out)
        return results[0] if len(results) == 1 else results


def fit_gradient(F: Any, g: Any, shape: tuple[int, ...], dtype: Any, nbatch: int) -> Any:
    """Reduce a gradient to its input's shape and dtype: the one place where broadcasting is
    undone (sum over broadcast axes) and dtypes are matched. ``nbatch`` leading axes are
    batch axes of vectorized cotangents and are kept."""
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
