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


class Packed:
    """A saved tensor as a saved-tensor pack hook made it (``value``), with what unpacking
    needs: the unpack hook, and the graph of the original tensor (its ``grad_fn`` and output
    index, or its leaf's ``AccumulateGrad``), which the unpacked tensor gets again, as in
    PyTorch, so a ``create_graph`` backward pass reaches the original's graph."""

    __slots__ = ("value", "unpack", "grad_fn", "output_nr", "acc", "is_output", "shape", "dtype")

    def __init__(self, tensor: Tensor, pack: Any, unpack: Any, is_output: bool) -> None:
        with grad_mode.no_grad():  # as PyTorch: the hook records no graph (nothing is saved)
            self.value = pack(tensor)
        self.unpack = unpack
        self.is_output = is_output
        self.shape, self.dtype = tuple(tensor.shape), tensor.dtype
        self.grad_fn, self.output_nr, self.acc = None, 0, None
        if not is_output:
            if tensor.grad_fn is not None:
                self.grad_fn, self.output_nr = tensor.grad_fn, tensor._output_nr
            elif tensor._requires_grad:
                self.acc = tensor._accumulator()

    def unpacked(self, who: str) -> Tensor:
        """What the unpack hook returns, checked (``who`` names the saved value)."""
        t = self.unpack(self.value)
        if not isinstance(t, Tensor):
            raise TypeError(
                "Output of saved tensor unpack_hook expected to be a Tensor but got result of "
                f"type {type(t).__name__} (unpacking {who})"
            )
        if tuple(t.shape) != self.shape or t.dtype != self.dtype:
            raise RuntimeError(
                f"unpacking {who}: the saved tensor unpack_hook returned a tensor of shape "
                f"{tuple(t.shape)} and dtype {t.dtype}, but a tensor of shape {self.shape} and "
                f"dtype {self.dtype} was saved (unpack_hook(pack_hook(t)) must equal t)"
            )
        return t

    def tensor(self, who: str, node: Node | None = None, output_nr: int = 0) -> Tensor:
        """The unpacked value as a tensor with the original's graph (``node``: the node that
        saved it, for a saved output of that node)."""
        t = self.unpacked(who)
        out = Tensor._wrap(t._data)
        out._version_counter = t._shared_counter()
        if self.is_output and node is not None and t.dtype.kind in "fc":
            out.grad_fn, out._output_nr, out._requires_grad = node, output_nr, True
        elif self.grad_fn is not None:
            out.grad_fn, out._output_nr, out._requires_grad = self.grad_fn, self.output_nr, True
        elif self.acc is not None:
            out._requires_grad = True
            out._acc_ref = weakref.ref(self.acc)  # gradients reach the original leaf
        return out


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

    def _raw_input_grads(self, grads: list[Any], release: bool, needed: Any = None) -> list[Any]:
        """(``needed``: the nodes on a path to ``autograd.grad``'s inputs; the formulas of the
        other inputs are not run, as PyTorch's ``should_compute_output``.)"""
        if self._list_lens is not None or needed is not None:
            out = self._apply(grads, False, 0, needed=needed)
            if release:
                self._release()
            return out
        args = self._args
        if args is None or (self._saved and self._epoch != inplace_epoch[0]):
            args = self._checked_args()
        if release:
            self._args = None
            self._saved = ()
        # a rule's `needs` argument takes the edges themselves (edge[0] is None: not needed)
        return self._vjp(RAW, self._next, *grads, *args)

    # -- saved values --------------------------------------------------------------------------
    def _checked_args(self, unpack: bool = True) -> tuple[Any, ...]:
        """The saved values (the slow path): raises if they were freed or a saved tensor
        changed in place since; packed values (saved-tensor hooks) are unpacked, and, as in
        PyTorch, not version-checked (``unpack=False``: left as None)."""
        args = self._args
        if args is None:
            raise freed_error(self.name())
        saved = self._saved
        unpacked: list[Any] | None = None
        for k in range(0, len(saved), 3):
            pos, holder, version = saved[k : k + 3]
            if type(holder) is Packed:
                if unpack:
                    if unpacked is None:
                        unpacked = list(args)
                    unpacked[pos] = holder.unpacked(self._saved_name(pos))._data
                continue
            tensor = holder() if isinstance(holder, weakref.ref) else holder
            # (a saved output that is gone: the version of its memory)
            current = tensor._version if tensor is not None else storage_version(args[pos], version)
            if current != version:
                what = f"'{self.rule.vjp_args[pos]}'"
                raise version_error(self.name(), what, args[pos].shape, version, current)
        return args if unpacked is None else tuple(unpacked)

    def _check_versions(self) -> None:
        self._checked_args(unpack=False)

    def _saved_name(self, pos: int) -> str:
        return f"{self.name()}._saved_{self.rule.vjp_args[pos]}"

    def _saved_tensor(self, k: int, args: tuple[Any, ...]) -> Tensor:
        """The saved tensor of entry ``k`` of ``_saved``, with its graph."""
        pos, holder = self._saved[k], self._saved[k + 1]
        name = self.rule.vjp_args[pos]
        out_nr = self.rule.outputs.index(name) if name in self.rule.outputs else 0
        if type(holder) is Packed:
            return holder.tensor(self._saved_name(pos), self, out_nr)
        if isinstance(holder, weakref.ref):  # an output of this node
            tensor = holder()
            if tensor is None:  # freed: recreate it (integer outputs get no graph)
                data = args[pos]
                tensor = (
                    Tensor._make_result(data, self, out_nr)
                    if data.dtype.kind in "fc"
                    else Tensor._wrap(data)
                )
            return tensor
        return holder

    def _tensor_args(self) -> list[Any]:
        """The saved values as tensors (for formulas that must record a graph)."""
        args = self._checked_args(unpack=False)
        out = list(args)
        saved = self._saved
        for k in range(0, len(saved), 3):
            out[saved[k]] = self._saved_tensor(k, args)
        return out

    def _lookup_saved(self, name: str) -> Any:
        if self._args is None:
            raise RuntimeError(
                f"{self.name()}._saved_{name}: the saved values were freed by a backward pass "
                "without retain_graph=True."
            )
        pos = self.rule.vjp_args.index(name)
        saved = self._saved
        for k in range(0, len(saved), 3):
            if saved[k] == pos:
                return self._saved_tensor(k, self._args)
        return self._args[pos]

    def _pack_saved(self, pack: Any, unpack: Any) -> None:
        """Saved-tensor hooks: ``pack`` each saved tensor and keep only what it returns. The
        order is the formulas' (first use), which is PyTorch's too (``mul``: other, self)."""
        saved = self._saved
        if not saved or self._args is None:
            return
        rule = self.rule
        args = list(self._args)
        new = list(saved)
        for k in range(0, len(saved), 3):
            pos, holder = saved[k], saved[k + 1]
            if type(holder) is Packed:
                continue
            tensor = holder() if isinstance(holder, weakref.ref) else holder
            if tensor is None:  # an output already gone: its array stands in
                tensor = Tensor._wrap(args[pos])
            new[k + 1] = Packed(tensor, pack, unpack, rule.vjp_args[pos] in rule.outputs)
            args[pos] = None  # the node keeps only the packed value
        self._saved = tuple(new)
        self._args = tuple(args)
        self._epoch = -1  # never the current epoch: backward takes the slow path, which unpacks

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
        self,
        grads: list[Any],
        create_graph: bool,
        nbatch: int,
        want_all: bool = False,
        needed: Any = None,
    ) -> list[Any]:
        """Input gradients for the output gradients ``grads`` (None for a missing one).

        With ``create_graph`` the formulas run on tensors and record a graph; otherwise they
        run on raw arrays. ``want_all`` asks for every tensor input's gradient, not only those
        of inputs that require grad (used by ``node(grad)``); ``needed`` (a set of nodes)
        limits them to the inputs whose edge leads to one of those nodes."""
        rule = self.rule
        slow = self._args is None or (self._saved and self._epoch != inplace_epoch[0])
        if slow and not create_graph:
            checked = self._checked_args()
        elif slow:
            self._check_versions()
        if nbatch and not rule.batched:
            raise BatchingUnsupported(rule.name)
        edges = self._next
        wanted = [e[2] is not None if want_all else e[0] is not None for e in edges]
        if needed is not None:
            wanted = [w and e[0] in needed for w, e in zip(wanted, edges, strict=True)]
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
            args = checked if slow else self._args
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
        if g.dtype.kind == "c" and dtype.kind != "c":
            # a real input of an op with a complex result (real * complex): its gradient is
            # the real part (PyTorch's handle_r_to_c)
            g = F.real(g)
        g = F.to_dtype(g, dtype)
    return g
