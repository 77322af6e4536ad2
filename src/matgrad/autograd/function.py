"""Custom differentiable operations: ``matgrad.autograd.Function`` (PyTorch's
``torch.autograd.Function``).

A subclass gives the forward computation and its derivatives by hand:

- ``forward(ctx, *args)``, or ``forward(*args)`` with ``setup_context(ctx, inputs, output)``
  (the style ``torch.func`` needs); it runs without recording a graph and without tangents;
- ``backward(ctx, *grad_outputs)`` (alias ``vjp``): one gradient per forward argument;
- ``jvp(ctx, *tangents)``: one tangent per output, for forward mode (``forward_ad``,
  ``func.jvp``, ``func.jacfwd``);
- ``vmap(info, in_dims, *args)`` or ``generate_vmap_rule = True``, read by ``func.vmap``.

``ctx`` offers ``save_for_backward``/``saved_tensors``, ``save_for_forward``, ``mark_dirty`` (an
input modified in place: it is returned and its history becomes this node),
``mark_non_differentiable``, ``set_materialize_grads`` and ``needs_input_grad``. Misuse raises
PyTorch's errors (wrong number or shape of gradients, dirty inputs not returned, ...).
"""

from __future__ import annotations

import functools
import inspect
import warnings
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ..backend.structured import is_structured
from ..core import grad_mode as _grad_mode
from ..core import nodes
from ..core.apply import set_tangent, tangents_of, tensor_edge
from ..core.graph import NODE_WATCHERS, BatchingUnsupported, Node, current_saved_hooks
from ..core.nodes import Packed, check_version, fit_gradient, freed_error
from ..ops import batching as _batching
from ..ops import composite as _ops
from ..ops.registry import PRIMITIVES as _P
from ..tensor import Tensor

__all__ = ["Function", "FunctionCtx", "VmapInfo", "once_differentiable"]

_T = TypeVar("_T", bound=Callable[..., Any])


class _NotATensorError(TypeError, AssertionError):
    """``save_for_forward`` got something other than a tensor (PyTorch raises an
    AssertionError here; a TypeError is what the mistake is)."""


class FunctionCtx:
    """The ``ctx`` passed to a Function's ``forward`` (or ``setup_context``), ``backward`` and
    ``jvp``: where they keep what the derivatives need."""

    def __init__(self) -> None:
        self._saved: tuple[tuple[Tensor | None, int], ...] = ()
        self._released = False
        self.needs_input_grad: tuple[bool, ...] = ()
        self._node_name = "Function"
        self.materialize_grads = True
        self.dirty_tensors: tuple[Tensor, ...] = ()
        self.non_differentiable: tuple[Tensor, ...] = ()
        self.saved_for_forward: tuple[Tensor | None, ...] = ()
        self._in_jvp = False

    def set_materialize_grads(self, value: bool) -> None:
        """Whether ``backward`` (and ``jvp``) get zeros (True, the default) or None for the
        outputs that received no gradient (the inputs without a tangent)."""
        self.materialize_grads = bool(value)

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        """Keep tensors for ``backward``; they are checked for in-place changes on use."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"save_for_backward can only save tensors or None, got {type(t).__name__}"
                )
        self._saved = tuple((t, t._version if t is not None else 0) for t in tensors)
        self._packed: tuple[Packed | None, ...] | None = None
        hooks = current_saved_hooks() if NODE_WATCHERS else None
        if hooks is not None and any(self.needs_input_grad):
            # saved-tensor hooks: keep only what the pack hook makes of each tensor
            self._packed = tuple(None if t is None else Packed(t, *hooks, False) for t in tensors)
            self._saved = tuple((None, 0) for _ in tensors)

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        if self._in_jvp:  # as PyTorch: inside jvp, what save_for_forward kept
            return self.saved_for_forward
        if self._released:
            raise freed_error(self._node_name)
        packed = getattr(self, "_packed", None)
        if packed is not None:  # unpacked on each access, not version-checked (as PyTorch)
            return tuple(
                None if p is None else p.tensor(f"{self._node_name}.saved_tensors[{i}]")
                for i, p in enumerate(packed)
            )
        for i, (t, version) in enumerate(self._saved):
            if t is not None:
                check_version(self._node_name, f"saved_tensors[{i}]", t, version)
        return tuple(t for t, _ in self._saved)

    def _seal_saved(self) -> None:
        """Record the versions of the saved tensors once ``apply`` is done, as PyTorch saves
        them then: changes made by the forward itself (``mark_dirty``) are not errors."""
        self._saved = tuple((t, t._version if t is not None else 0) for t, _ in self._saved)

    def save_for_forward(self, *tensors: Tensor | None) -> None:
        """Keep tensors for ``jvp`` (read there as ``ctx.saved_tensors``)."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise _NotATensorError(
                    "save_for_forward expects all arguments to be tensors; you should save "
                    f"non-tensors as attributes on ctx (got {type(t).__name__})"
                )
        self.saved_for_forward = tensors

    def mark_dirty(self, *tensors: Tensor) -> None:
        """Declare inputs that ``forward`` modified in place; each must also be returned.
        It gets a new version and this Function's node as its history."""
        self.dirty_tensors = tensors

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """Declare outputs without a derivative (indices of a sort, ...): they do not require
        grad, and ``backward`` gets zeros (None without materialized grads) for them."""
        self.non_differentiable = tensors

    def mark_shared_storage(self, *pairs: Any) -> None:
        """Deprecated in PyTorch and a no-op there: memory sharing is tracked."""
        warnings.warn(
            "`mark_shared_storage` is deprecated. Tensors with shared storages are "
            "automatically tracked.",
            FutureWarning,
            stacklevel=2,
        )


class FunctionNode(Node):
    """Graph node of a custom Function (``<Name>Backward``); calls its ``backward`` on
    tensors. Attributes set on ``ctx`` read through it as in PyTorch, where the node is the
    ctx (``y.grad_fn.saved_tensors``, ``y.grad_fn.needs_input_grad``)."""

    __slots__ = ("ctx", "fn_cls", "_n_out", "_out_meta", "_arg_is_tensor")

    def __init__(
        self,
        ctx: FunctionCtx,
        fn_cls: type,
        edges: tuple,
        n_out: int,
        out_meta: tuple = (),
        arg_is_tensor: tuple[bool, ...] = (),
    ) -> None:
        super().__init__()
        self.ctx, self.fn_cls, self._n_out = ctx, fn_cls, n_out
        self._next = edges
        # (shape, dtype) of each output, None for non-tensor outputs: the zeros backward gets
        # for an output without gradient
        self._out_meta = out_meta
        self._arg_is_tensor = arg_is_tensor or tuple(True for _ in edges)

    def __getattr__(self, name: str) -> Any:
        # only public names the node lacks (never `rule`, which marks table nodes)
        if name.startswith("_") or name == "rule":
            raise AttributeError(name)
        try:
            ctx = object.__getattribute__(self, "ctx")
        except AttributeError:
            raise AttributeError(name) from None
        return getattr(ctx, name)

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
        batched_rule = _batched_rule(self.fn_cls, self.ctx)
        if nbatch and batched_rule is None:
            raise BatchingUnsupported(self.name())
        name = self.name()
        tensors = [g if isinstance(g, Tensor) or g is None else Tensor._wrap(g) for g in grads]
        lead: tuple[int, ...] = ()
        if nbatch:  # a generated vmap rule: the batch of cotangents is one more vmap level
            lead = next((tuple(g.shape[:nbatch]) for g in tensors if g is not None), ())
            self.ctx._vmap_nbatch = nbatch
        if self.ctx.materialize_grads:  # PyTorch's default: zeros, not None
            for i, meta in enumerate(self._out_meta):
                if meta is not None and i < len(tensors) and tensors[i] is None:
                    tensors[i] = Tensor._wrap(np.zeros(lead + meta[0], dtype=meta[1]))
        backward = batched_rule.backward if nbatch else _backward_of(self.fn_cls)
        with _grad_mode.set_grad_enabled(create_graph):
            out = backward(self.ctx, *tensors)
        out = out if isinstance(out, tuple) else (out,)
        n = len(self._next)
        # as PyTorch: one gradient per forward argument; extra trailing ones must be None
        if len(out) < n or any(g is not None for g in out[n:]):
            raise RuntimeError(
                f"function {name} returned an incorrect number of gradients (expected "
                f"{n}, got {len(out)}): return one per forward argument (None for "
                "non-tensor arguments and those without a gradient)"
            )
        F = nodes.TENSOR if create_graph else nodes.RAW  # noqa: N806
        result: list[Any] = []
        for i, (g, edge) in enumerate(zip(out[:n], self._next, strict=True)):
            if g is None:
                result.append(None)
                continue
            if not self._arg_is_tensor[i]:
                raise RuntimeError(
                    f"function {name} returned a gradient different than None at position "
                    f"{i + 1}, but the corresponding forward input was not a Variable (it was "
                    "not a tensor: return None for it)"
                )
            if not isinstance(g, Tensor):
                raise RuntimeError(
                    f"function {name}: expected Variable or None (got {type(g).__name__}) as "
                    f"the gradient at index {i}"
                )
            if (edge[0] is None and not want_all) or edge[2] is None:
                result.append(None)  # no gradient wanted: not checked, as in PyTorch
                continue
            shape = tuple(edge[2])
            got = tuple(g.shape[nbatch:])
            if got != shape and not _expandable(shape, got):
                raise RuntimeError(
                    f"Function {name} returned an invalid gradient at index {i} - got "
                    f"{list(got)} but expected shape compatible with {list(shape)}"
                )
            g = g if create_graph else g._data
            result.append(fit_gradient(F, g, shape, edge[3], nbatch))
        return result


def _expandable(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether ``shape`` broadcasts to ``target`` (PyTorch's ``is_expandable_to``): then a
    gradient of shape ``target`` is summed down to ``shape``."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target), strict=False))


class _DelayedErrorNode(Node):
    """Where the gradients computed by a ``@once_differentiable`` backward lead: running it
    (a second differentiation) raises."""

    __slots__ = ("_n_out",)
    message = "trying to differentiate twice a function that was marked with @once_differentiable"

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self._n_out = n_out

    @property
    def n_outputs(self) -> int:  # type: ignore[override]
        return self._n_out

    def name(self) -> str:
        return "DelayedError"

    def _apply(
        self, grads: list[Any], create_graph: bool, nbatch: int, want_all: bool = False
    ) -> list[Any]:
        raise RuntimeError(self.message)


def once_differentiable(fn: _T) -> _T:
    """Decorate a Function's ``backward`` that is not itself differentiable: it runs without
    recording, and differentiating its results again (double backward) raises."""

    @functools.wraps(fn)
    def wrapper(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        with _grad_mode.no_grad():
            outputs = fn(ctx, *args, **kwargs)
        if not _grad_mode.is_grad_enabled():
            return outputs  # backward without create_graph: nothing will differentiate them
        if not any(isinstance(a, Tensor) and a.requires_grad for a in args):
            return outputs
        many = isinstance(outputs, tuple)
        outs = outputs if many else (outputs,)
        node = _DelayedErrorNode(len(outs))
        marked = []
        for i, o in enumerate(outs):
            if isinstance(o, Tensor) and o.dtype.kind in "fc":
                o = Tensor._make_result(o._data, node, i)
            marked.append(o)
        return tuple(marked) if many else marked[0]

    return wrapper  # type: ignore[return-value]


class VmapInfo(NamedTuple):
    """What a ``vmap`` staticmethod receives first: the size of the mapped axis and the
    ``randomness`` option of ``vmap``."""

    batch_size: int
    randomness: str


_TRANSFORMS_DOC = "https://pytorch.org/docs/main/notes/extending.func.html"


class Function:
    """Base class for operations with a hand-written derivative.

    Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``
    (returning one gradient per forward argument, None for those without), then call
    ``MyFunction.apply(*args)``. Or write ``forward(*args)`` without ctx and a static
    ``setup_context(ctx, inputs, output)``. A static ``jvp(ctx, *tangents)`` adds forward
    mode. See the module docstring for ``ctx``.
    """

    # For func.vmap: run forward/backward/jvp on batched tensors as they are written (True),
    # or call the `vmap` staticmethod (it must then be overridden); not both.
    generate_vmap_rule: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn(
            f"{type(self)} should not be instantiated. Methods on autograd functions are all "
            "static, so you should invoke them on the class itself.",
            DeprecationWarning,
            stacklevel=2,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "Legacy autograd function with non-static forward method is deprecated. Please use "
            "new-style autograd function with static forward method: call "
            f"{type(self).__name__}.apply(...) on the class."
        )

    @staticmethod
    def forward(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "You must implement the forward function for custom autograd.Function."
        )

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple[Any, ...], output: Any) -> Any:
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        raise NotImplementedError(
            "You must implement either the backward or vjp method for your custom "
            "autograd.Function to use it with backward mode AD."
        )

    vjp = backward  # PyTorch's alias: a subclass defines one of the two

    @staticmethod
    def jvp(ctx: FunctionCtx, *tangents: Any) -> Any:
        raise NotImplementedError(
            "You must implement the jvp function for custom autograd.Function to use it with "
            "forward mode AD."
        )

    @staticmethod
    def vmap(info: VmapInfo, in_dims: tuple[int | None, ...], *args: Any) -> Any:
        raise NotImplementedError(
            "To use autograd.Function with vmap, you must either override the vmap "
            "staticmethod or set generate_vmap_rule=True."
        )

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` on ``args`` and record this Function's node for the outputs."""
        if _grad_mode.state.vmap and any(_batching.is_batched(a) for a in args):
            if kwargs:  # inside func.vmap: the vmap protocol takes positional arguments
                raise NotImplementedError(
                    f"{cls.__name__}.apply inside vmap: pass the arguments by position"
                )
            return _batching.FUNCTION_VMAP[0](cls, args)
        setup = _has_setup_context(cls)
        if setup:
            args = _bind_with_defaults(cls, args, kwargs)
        elif kwargs:
            args = _bind_by_position(cls, args, kwargs)
        ctx = FunctionCtx()
        ctx._node_name = f"{cls.__name__}Backward"
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        # the forward is a black box: it records no graph and pushes no tangents; the
        # inputs keep theirs (an in-place op in it would drop them: jvp updates them)
        fw_grads = [(a, a._fw_grad) for a in args if isinstance(a, Tensor)]
        level, _grad_mode.state.forward_level = _grad_mode.state.forward_level, 0
        try:
            with _grad_mode.no_grad():
                if setup:
                    raw = cls.forward(*args)
                    cls.setup_context(ctx, args, raw)
                else:
                    raw = cls.forward(ctx, *args)
        finally:
            _grad_mode.state.forward_level = level
            for a, fw in fw_grads:
                a._fw_grad = fw
        return _wrap_outputs(cls, ctx, args, raw)

    # -- for func.vmap (which wires these in) -------------------------------------------------
    @classmethod
    def _check_transform(cls, transform: str) -> None:
        """``func`` transforms need ``setup_context`` (PyTorch's rule)."""
        if not _has_setup_context(cls):
            raise RuntimeError(
                f"In order to use an autograd.Function with functorch transforms ({transform}, "
                f"...), it must override the setup_context staticmethod: {cls.__name__} "
                f"defines forward(ctx, ...). For more details, please see {_TRANSFORMS_DOC}"
            )

    @classmethod
    def _vmap_rule(cls) -> str:
        """How ``func.vmap`` runs this Function: ``"generate"`` (its methods run on the batched
        tensors) or ``"vmap"`` (its ``vmap`` staticmethod); PyTorch's errors otherwise."""
        cls._check_transform("vmap")
        overridden = cls.vmap is not Function.vmap
        if cls.generate_vmap_rule:
            if overridden:
                raise RuntimeError(
                    f"You tried to vmap over {cls.__name__}, but it has both "
                    "generate_vmap_rule=True and an overridden vmap staticmethod. Please set "
                    "generate_vmap_rule=False or delete the overridden vmap staticmethod to "
                    f"avoid ambiguity. For more details, please see {_TRANSFORMS_DOC}"
                )
            return "generate"
        if not overridden:
            raise RuntimeError(
                f"You tried to vmap over {cls.__name__}, but it does not have vmap support. "
                "Please override and implement the vmap staticmethod or set "
                f"generate_vmap_rule=True. For more details, please see {_TRANSFORMS_DOC}"
            )
        return "vmap"

    @classmethod
    def _apply_generated(cls, args: tuple[Any, ...]) -> Any:
        """``cls.apply(*args)`` inside vmap with ``generate_vmap_rule = True`` (see
        :func:`_generated`): outputs batched as ``cls.forward`` made them."""
        gen = _generated(cls)
        holder: dict[str, Any] = {}
        _PENDING.append(holder)
        try:
            with _batching.physical():
                out = gen.apply(*args)
        finally:
            _PENDING.pop()
        ctx = holder["ctx"]
        outs = out if isinstance(out, tuple) else (out,)
        for o, lv in zip(outs, ctx._vmap_out_levels, strict=True):
            # an input returned as it is came back as a new (plain) tensor of the same memory
            if isinstance(o, Tensor) and lv and not _batching.is_batched(o):
                _batching._as_batched(o, lv)
        return out

    @classmethod
    def _call_vmap(
        cls, info: VmapInfo, in_dims: tuple[int | None, ...], *args: Any
    ) -> tuple[Any, Any]:
        """``cls.vmap(info, in_dims, *args)``, checked to return ``(output, out_dims)``."""
        result = cls.vmap(info, in_dims, *args)
        base = (
            "Expected the vmap staticmethod to have two returns, an output and out_dims with "
            "pytree structure compatible with the output. "
        )
        if not isinstance(result, tuple):
            raise RuntimeError(base + f"Got a {type(result)} instead")
        if len(result) != 2:
            raise RuntimeError(base + f"Got {len(result)} returns instead")
        return result


# -- generate_vmap_rule = True: the Function's own methods, run with dispatch on ------------------
# As PyTorch's generated rule: inside func.vmap, ``cls.apply`` on batched tensors runs a Function
# made for ``cls`` (:func:`_generated`) on the physical tensors; its forward, setup_context, jvp
# and backward call ``cls``'s with dispatch on (the vmap levels open: reopened for a backward
# that runs after its vmap ended), so the ops in them batch by their rules, as everywhere in
# vmap. Its node, checks and saved values are the ordinary ones of a Function; what it adds is
# the translation of tangents and gradients between physical arrays and batched tensors.
_GENERATED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PENDING: list[dict[str, Any]] = []  # the apply in progress (forward hands it its ctx)


def _generated(cls: type) -> type:
    gen = _GENERATED.get(cls)
    if gen is None:
        gen = type(cls.__name__, (_GeneratedRule, Function), {"_original": cls})
        gen.__qualname__ = getattr(cls, "__qualname__", cls.__name__)
        _GENERATED[cls] = gen
    return gen


def _batched_rule(cls: type, ctx: FunctionCtx) -> Any:
    """The Function whose jvp/backward take a batch of tangents/cotangents (as one more vmap
    level) for ``cls``'s node: its generated rule, or None (then: one pass per row)."""
    if issubclass(cls, _GeneratedRule):
        return cls
    if cls.generate_vmap_rule and hasattr(ctx, "_vmap_in_levels"):
        return _generated(cls)
    return None


def _logical_shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t._data.shape[len(_batching.levels_of(t)) :])


class _GeneratedRule:
    """The methods of the Functions :func:`_generated` makes (a mixin before ``Function``)."""

    _original: type
    _batched_grads = True  # FunctionNode: a batch of cotangents is one more (temporary) level

    @classmethod
    def forward(gen, ctx: FunctionCtx, *args: Any) -> Any:  # noqa: N805
        orig = gen._original
        open_sizes = dict(_grad_mode.state.vmap_levels)
        ctx._vmap_in_levels = [_batching.levels_of(a) for a in args]
        used = {lv for lv_in in ctx._vmap_in_levels for lv in lv_in}
        ctx._vmap_sizes = {lv: open_sizes[lv] for lv in used}
        ctx._vmap_in_shapes = [_logical_shape(a) if isinstance(a, Tensor) else None for a in args]
        with _batching.dispatching(ctx._vmap_sizes):
            out = orig.forward(*args)
            orig.setup_context(ctx, args, out)
        outs = out if isinstance(out, tuple) else (out,)
        ctx._vmap_out_levels = [_batching.levels_of(o) for o in outs]
        ctx._vmap_out_shapes = [_logical_shape(o) if isinstance(o, Tensor) else None for o in outs]
        _PENDING[-1]["ctx"] = ctx
        return out

    @classmethod
    def jvp(gen, ctx: FunctionCtx, *tangents: Any) -> Any:  # noqa: N805
        orig = gen._original
        sizes = dict(ctx._vmap_sizes)
        extra: tuple[int, ...] = ()
        logical = []
        for t, lv, shape in zip(tangents, ctx._vmap_in_levels, ctx._vmap_in_shapes, strict=True):
            if t is None:
                logical.append(None)
                continue
            if t._data.ndim > len(lv) + len(shape):  # a batch of tangents (jacfwd): a level
                if not extra:
                    extra = (_batching.new_level_id(),)
                    sizes[extra[0]] = t._data.shape[0]
                with _batching.physical():
                    nd = t._data.ndim
                    perm = [*range(1, len(lv) + 1), 0, *range(len(lv) + 1, nd)]
                    t = _P.permute(t, dims=tuple(p - nd for p in perm))
                logical.append(_batching._as_batched(_batching._fresh(t), (*lv, *extra)))
            else:
                logical.append(_batching._as_batched(_batching._fresh(t), lv))
        with _batching.dispatching(sizes):
            result = orig.jvp(ctx, *logical)
        many = isinstance(result, tuple)
        results = list(result) if many else [result]
        if len(results) != len(ctx._vmap_out_levels):
            return result  # the caller raises PyTorch's error on the count
        out = []
        for i, (t, lv, shape) in enumerate(
            zip(results, ctx._vmap_out_levels, ctx._vmap_out_shapes, strict=True)
        ):
            if not isinstance(t, Tensor) or shape is None:
                out.append(t)
                continue
            if _logical_shape(t) != shape:
                raise RuntimeError(
                    f"{orig.__name__}: Trying to set a forward gradient that has a different size "
                    "than that of the original Tensor, this is not supported. Tensor is of size "
                    f"{list(shape)} while the given forward gradient is of size "
                    f"{list(_logical_shape(t))} (per batch element, inside vmap)."
                )
            if set(_batching.levels_of(t)) - set(lv) - set(extra):
                raise RuntimeError(
                    f"{orig.__name__} (generate_vmap_rule=True): jvp returned a tangent for "
                    f"output {i} that is batched over a vmap level the output is not; return "
                    "the output batched too (e.g. computed from the batched inputs)"
                )
            phys = _batching.reduce_to_levels(t, (*lv, *extra))
            if extra:  # the directions' axis back in front
                with _batching.physical():
                    nd, j = phys._data.ndim, len(lv)
                    perm = [j, *range(j), *range(j + 1, nd)]
                    phys = _P.permute(phys, dims=tuple(p - nd for p in perm))
            out.append(phys)
        return tuple(out) if many else out[0]

    @classmethod
    def backward(gen, ctx: FunctionCtx, *grads: Any) -> Any:  # noqa: N805
        orig = gen._original
        nbatch = getattr(ctx, "_vmap_nbatch", 0)
        ctx._vmap_nbatch = 0
        sizes = dict(ctx._vmap_sizes)
        extra: tuple[int, ...] = ()
        if nbatch:  # the leading axis of the cotangents: a level of its own, innermost
            n = next(g.shape[0] for g in grads if g is not None)
            extra = (_batching.new_level_id(),)
            sizes[extra[0]] = n
        logical = []
        for g, lv in zip(grads, ctx._vmap_out_levels, strict=True):
            if g is None:
                logical.append(None)
                continue
            if is_structured(g._data):
                g = Tensor._wrap(g._data.dense())
            if nbatch:
                with _batching.physical():
                    nd = g._data.ndim
                    perm = [*range(1, len(lv) + 1), 0, *range(len(lv) + 1, nd)]
                    g = _P.permute(g, dims=tuple(p - nd for p in perm))
            logical.append(_batching._as_batched(_batching._fresh(g), (*lv, *extra)))
        with _batching.dispatching(sizes):
            result = _backward_of(orig)(ctx, *logical)
        many = isinstance(result, tuple)
        results = list(result) if many else [result]
        out = []
        for i, r in enumerate(results):
            if i >= len(ctx._vmap_in_levels) or not isinstance(r, Tensor):
                out.append(r)
                continue
            lv, shape = ctx._vmap_in_levels[i], ctx._vmap_in_shapes[i]
            phys = _batching.reduce_to_levels(r, (*lv, *extra))
            k = len(lv) + len(extra)
            got = tuple(phys._data.shape[k:])
            if shape is not None and got != shape:
                if not _expandable(shape, got):
                    raise RuntimeError(
                        f"Function {orig.__name__}Backward returned an invalid gradient at index "
                        f"{i} - got {list(got)} but expected shape compatible with "
                        f"{list(shape)} (per batch element, inside vmap)"
                    )
                phys = fit_gradient(nodes.TENSOR, phys, shape, phys.dtype, k)
            if extra:  # the cotangents' axis back in front
                with _batching.physical():
                    nd = phys._data.ndim
                    j = k - 1  # the extra level sorts last of the batch axes
                    perm = [j, *range(j), *range(j + 1, nd)]
                    phys = _P.permute(phys, dims=tuple(p - nd for p in perm))
            out.append(phys)
        return tuple(out) if many else out[0]


# -- apply, step by step ------------------------------------------------------------------------
def _has_setup_context(cls: type) -> bool:
    return cls.setup_context is not Function.setup_context


def _backward_of(cls: type) -> Callable[..., Any]:
    backward_overridden = cls.backward is not Function.backward
    vjp_overridden = cls.vjp is not Function.vjp
    if backward_overridden and vjp_overridden and cls.backward is not cls.vjp:
        raise RuntimeError(
            "Implementing both 'backward' and 'vjp' for a custom Function is not allowed. You "
            f"should only implement one of them ({cls.__name__} defines both)."
        )
    return cls.vjp if vjp_overridden else cls.backward


def _bind_with_defaults(cls: type, args: tuple, kwargs: dict) -> tuple:
    """The arguments of a ``setup_context``-style forward, by its signature, with defaults
    filled in (what ``setup_context`` sees as ``inputs``)."""
    bound = inspect.signature(cls.forward).bind(*args, **kwargs)
    bound.apply_defaults()
    if bound.kwargs:  # keyword-only parameters: PyTorch's apply takes none
        key = next(iter(bound.kwargs))
        raise TypeError(f"forward() got an unexpected keyword argument '{key}'")
    return bound.args


def _bind_by_position(cls: type, args: tuple, kwargs: dict) -> tuple:
    """Keyword arguments of a ``forward(ctx, ...)`` placed at their positions, as PyTorch's
    apply does: no defaults are filled in, so every parameter up to the last one given must
    be given."""
    params = list(inspect.signature(cls.forward).parameters.values())[1:]  # after ctx
    names = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    slots: list[Any] = list(args)
    missing = object()
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(f"forward() got an unexpected keyword argument '{key}'")
        pos = names.index(key)
        if pos < len(args):
            raise TypeError(f"forward() got multiple values for argument '{key}'")
        slots.extend([missing] * (pos + 1 - len(slots)))
        slots[pos] = value
    for pos, value in enumerate(slots):
        if value is missing:
            raise TypeError(
                f"forward() missing required argument: '{names[pos]}' (position {pos}); "
                "Function.apply fills in no defaults before an argument given by keyword"
            )
    return tuple(slots)


def _alias(t: Tensor, grad_enabled: bool) -> Tensor:
    """An input returned as is (not marked dirty): a new tensor of the same memory, a view of
    it when recording (PyTorch's ``view_as(self)``), so in-place changes are seen by both."""
    if not grad_enabled:
        return t.detach()
    view = Tensor._wrap(t._data)
    view._version_counter = t._shared_counter()
    base = t._base if t._base is not None else t
    view._base = base
    view._view_chain = t._view_chain
    views = base._views
    if views is None:
        views = base._views = []
    elif len(views) > 64:  # drop the references to views that are gone (as make_view does)
        views[:] = [r for r in views if r() is not None]
    views.append(weakref.ref(view))
    return view


def _wrap_outputs(cls: type, ctx: FunctionCtx, args: tuple, raw: Any) -> Any:
    many = isinstance(raw, tuple)
    outs = list(raw) if many else [raw]
    input_pos = {id(a): i for i, a in enumerate(args) if isinstance(a, Tensor)}
    out_ids = {id(o) for o in outs if isinstance(o, Tensor)}
    dirty = []
    for t in ctx.dirty_tensors:
        if id(t) not in input_pos:
            warnings.warn(
                f"{cls.__name__}: ctx.mark_dirty() received a tensor that was not an input. "
                "Only input Tensors that have been mutated should be passed to "
                "ctx.mark_dirty().",
                UserWarning,
                stacklevel=3,
            )
            continue
        if id(t) not in out_ids:
            raise RuntimeError(
                f"{cls.__name__}: Some elements marked as dirty during the forward method were "
                "not returned as output. The inputs that are modified inplace must all be "
                "outputs of the Function."
            )
        dirty.append(t)
    dirty_ids = {id(t) for t in dirty}
    non_diff = {id(t) for t in ctx.non_differentiable}

    if cls.generate_vmap_rule and not issubclass(cls, _GeneratedRule):
        # outside vmap too, a batch of tangents or cotangents (jacfwd, jacrev) runs as one more
        # vmap level through the generated rule (no level of the inputs' own here)
        ctx._vmap_in_levels = [()] * len(args)
        ctx._vmap_in_shapes = [_logical_shape(a) if isinstance(a, Tensor) else None for a in args]
        ctx._vmap_out_levels = [()] * len(outs)
        ctx._vmap_out_shapes = [_logical_shape(o) if isinstance(o, Tensor) else None for o in outs]
        ctx._vmap_sizes = {}
    tangents = _run_jvp(cls, ctx, args, outs, dirty_ids)

    record = _grad_mode.state.enabled and any(ctx.needs_input_grad)
    node = None
    if record:
        meta = tuple((tuple(o.shape), o.dtype) if isinstance(o, Tensor) else None for o in outs)
        node = FunctionNode(
            ctx,
            cls,
            tuple(tensor_edge(a) for a in args),
            len(outs),
            meta,
            tuple(isinstance(a, Tensor) for a in args),
        )
    seen: set[int] = set()
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            continue
        is_dirty = id(o) in dirty_ids
        differentiable = node is not None and id(o) not in non_diff and o.dtype.kind in "fc"
        first = id(o) not in seen
        seen.add(id(o))
        if not is_dirty and (id(o) in input_pos or not first):
            # an input returned as is, or an output returned twice: a new tensor for it
            o = outs[i] = _alias(o, _grad_mode.state.enabled and id(o) not in non_diff)
        if is_dirty:
            _write_dirty(cls, o, node if differentiable else None, i)
        elif differentiable:
            o.grad_fn, o._output_nr, o._requires_grad = node, i, True
        for level, results in tangents:
            if results[i] is not None:
                set_tangent(o, level, results[i])
    ctx._seal_saved()
    return tuple(outs) if many else outs[0]


def _write_dirty(cls: type, t: Tensor, node: FunctionNode | None, nr: int) -> None:
    """An input the forward modified in place: a new version, and this Function's node as its
    history, written as an in-place op (``Tensor._inplace``: the base of a view gets the
    rewritten history; a leaf that requires grad is refused)."""

    def result(old: Tensor) -> Tensor:
        new = Tensor._wrap(t._data)  # the values are written already; the write is a no-op
        if node is not None:
            new.grad_fn, new._output_nr, new._requires_grad = node, nr, True
        return new

    fw_grad = t._fw_grad
    t._inplace(f"{cls.__name__}.apply (ctx.mark_dirty)", result)
    t._fw_grad = fw_grad  # the tangent, if any, is set from jvp by the caller


def _run_jvp(
    cls: type, ctx: FunctionCtx, args: tuple, outs: list[Any], dirty_ids: set[int]
) -> list[tuple[int, list[Any]]]:
    """Forward mode: per open dual level at which an input has a tangent (innermost last),
    the outputs' tangents from ``cls.jvp(ctx, *input_tangents)``; empty when no input has
    one. As for table ops, the jvp of level L runs with only the levels below L active."""
    active = _grad_mode.state.forward_level
    if not active:
        return []
    levels: set[int] = set()
    for a in args:
        if isinstance(a, Tensor) and a._fw_grad is not None:
            levels.update(lv for lv in tangents_of(a) if lv <= active)
    return [(lv, _jvp_at(cls, ctx, args, outs, dirty_ids, lv)) for lv in sorted(levels)]


def _jvp_at(
    cls: type, ctx: FunctionCtx, args: tuple, outs: list[Any], dirty_ids: set[int], level: int
) -> list[Any]:
    name = cls.__name__
    batched_rule = _batched_rule(cls, ctx)
    tangents: list[Any] = []
    for a in args:
        t = tangents_of(a).get(level) if isinstance(a, Tensor) else None
        if not isinstance(a, Tensor) or a.dtype.kind not in "fc":
            tangents.append(None)
        elif t is not None:
            if t.ndim > a.ndim and batched_rule is None:
                raise BatchingUnsupported(name)  # a batch of tangents (jacfwd): one pass each
            tangents.append(t)
        else:
            tangents.append(_ops.zeros_like(a.detach()) if ctx.materialize_grads else None)
    # no tangents of tangents at this level while jvp runs (its ops may record a graph:
    # reverse-over-forward)
    active, _grad_mode.state.forward_level = _grad_mode.state.forward_level, level - 1
    ctx._in_jvp = True
    try:
        dirs = any(t is not None and t.ndim > a.ndim for a, t in zip(args, tangents, strict=True))
        result = (batched_rule if dirs and batched_rule is not None else cls).jvp(ctx, *tangents)
    finally:
        ctx._in_jvp = False
        _grad_mode.state.forward_level = active
    results = list(result) if isinstance(result, tuple) else [result]
    if len(results) != len(outs):
        raise RuntimeError(
            f"{name}: Function's jvp returned an invalid number of forward gradients (expected "
            f"{len(outs)} but got {len(results)}): return one per output of forward"
        )
    input_tangent = {id(a): t for a, t in zip(args, tangents, strict=True)}
    non_diff = {id(t) for t in ctx.non_differentiable}
    for i, (o, t) in enumerate(zip(outs, results, strict=True)):
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise RuntimeError(
                f"{name}: expected Variable or None (got {type(t).__name__}) for grad output {i}."
            )
        if not isinstance(o, Tensor) or o.dtype.kind not in "fc" or id(o) in non_diff:
            results[i] = None
            continue
        dirs = t.ndim - o.ndim if batched_rule is not None else 0
        if tuple(t.shape)[dirs:] != tuple(o.shape):
            raise RuntimeError(
                f"{name}: Trying to set a forward gradient that has a different size than that "
                f"of the original Tensor, this is not supported. Tensor is of size "
                f"{list(o.shape)} while the given forward gradient is of size {list(t.shape)}."
            )
        if id(o) in dirty_ids and t is not input_tangent.get(id(o)):
            raise RuntimeError(
                f"{name}: An inplace custom Function is not modifying the forward mode "
                "gradients inplace. If the forward is modifying an input inplace, then the jvp "
                "function must modify the corresponding gradient inplace."
            )
        if t.dtype != o.dtype:
            t = t.to(o.dtype)
        results[i] = t
    return results
