"""Whole derivatives of functions: ``vjp``, ``jvp``, ``jacobian``, ``hessian``, ``hvp``, ``vhp``.

The signatures and result shapes are PyTorch's (``torch.autograd.functional``). For
``f: (x_1, ..., x_k) -> (y_1, ..., y_l)`` the Jacobian block ``J[i][j] = d y_i / d x_j`` has
shape ``y_i.shape + x_j.shape``; a single input (output) drops the inner (outer) tuple, so
``jacobian(f, A)`` reshaped to ``(y.numel(), A.numel())`` is the matrix
``d vec(y) / d vec(A)`` in row-major ``vec``.

**Vectorized.** ``vectorize=True`` computes all rows of a block in ONE pass through the graph:
reverse mode pushes the identity as a batch of cotangents, ``J = I @ J`` (one backward pass per
output, ``autograd.grad(..., is_grads_batched=True)``); forward mode pushes the identity as a
batch of tangents, ``J = J @ I`` (one forward pass per input,
``forward_ad.make_dual(x, eye, batched=True)``). A rule marked ``batched: false`` raises
:class:`~matgrad.autograd.BatchingUnsupported`; that pass then falls back to one pass per row
and emits a :class:`BatchingFallbackWarning` naming the op. ``vectorize=False`` is that loop
(PyTorch's default).

Second derivatives nest the two modes: ``hessian`` is the Jacobian of the gradient
(``outer_jacobian_strategy="forward-mode"``: forward-over-reverse), ``hvp`` is forward-over-
reverse (one forward pass with dual tensors around one backward pass), ``vhp`` is
reverse-over-reverse (double backward).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backend.structured import OneHotBatch, is_structured
from ..core import grad_mode as _grad_mode
from ..core.apply import tangents_of as _tangents_of
from ..core.engine import grad as _engine_grad
from ..core.graph import BatchingUnsupported
from ..ops import batching as _batching
from ..ops import composite as _ops
from ..ops.registry import PRIMITIVES as _P
from ..tensor import Tensor
from . import forward_ad

__all__ = ["BatchingFallbackWarning", "hessian", "hvp", "jacobian", "jvp", "vhp", "vjp"]

_STRATEGIES = ("reverse-mode", "forward-mode")


class BatchingFallbackWarning(UserWarning):
    """A vectorized (batched) pass met a rule that cannot take a batch (``op``, its name); the
    rows were computed one at a time."""

    def __init__(self, message: str, op: str | None = None) -> None:
        super().__init__(message)
        self.op = op


# -- inputs and outputs ---------------------------------------------------------------------------
def _as_tuple(x: Any, what: str, fn_name: str) -> tuple[bool, tuple[Tensor, ...]]:
    """``(was_a_tuple, tensors)``; NumPy arrays are accepted and wrapped."""
    is_tuple = isinstance(x, tuple | list)
    out = []
    for i, t in enumerate(x if is_tuple else (x,)):
        if isinstance(t, np.ndarray):
            t = Tensor(t)
        if not isinstance(t, Tensor):
            where = f"the value at index {i}" if is_tuple else f"the given {what}"
            raise TypeError(
                f"The {what} given to {fn_name} must be either a Tensor or a tuple of Tensors "
                f"but {where} has type {type(t).__name__}."
            )
        out.append(t)
    return is_tuple, tuple(out)


def _tuple_postprocess(res: Any, to_unpack: tuple[bool, bool] | bool) -> Any:
    """Undo ``_as_tuple`` (for nested Jacobian results: outer = outputs, inner = inputs)."""
    if isinstance(to_unpack, tuple):
        is_out_tuple, is_in_tuple = to_unpack
        if not is_in_tuple:
            res = tuple(r[0] for r in res)
        if not is_out_tuple:
            res = res[0]
    elif not to_unpack:
        res = res[0]
    return res


class _Outputs:
    """``func`` returning a tuple of tensors; remembers whether ``func`` returned a tuple."""

    def __init__(self, func: Callable[..., Any], fn_name: str) -> None:
        self.func, self.fn_name, self.is_tuple = func, fn_name, False

    def __call__(self, *args: Tensor) -> tuple[Tensor, ...]:
        what = "outputs of the user-provided function"
        self.is_tuple, outs = _as_tuple(self.func(*args), what, self.fn_name)
        return outs


def _scalar_output(func: Callable[..., Any], fn_name: str) -> Callable[..., Tensor]:
    def single(*args: Tensor) -> Tensor:
        is_tuple, outs = _as_tuple(func(*args), "outputs of the user-provided function", fn_name)
        if is_tuple and len(outs) != 1:
            raise RuntimeError(
                f"{fn_name}: the user-provided function must return a single Tensor, got a "
                f"tuple of {len(outs)}"
            )
        if outs[0].numel() != 1:
            raise RuntimeError(
                f"{fn_name}: the Tensor returned by the function given to {fn_name} should "
                f"contain a single element, got shape {tuple(outs[0].shape)}"
            )
        return outs[0]

    return single


def _vector(v: Any, ref: Sequence[Tensor], fn_name: str, ref_what: str) -> tuple[Tensor, ...]:
    """The vectors ``v`` (one per tensor of ``ref``, same shapes); ones when ``v`` is None and
    every tensor of ``ref`` has one element."""
    if v is None:
        if any(r.numel() != 1 for r in ref):
            where = (
                "the user-provided function returns"
                if ref_what == "outputs"
                else "the input to the user-provided function is"
            )
            raise RuntimeError(
                f"{fn_name}: the vector v can only be None if {where} a single Tensor with a "
                "single element."
            )
        return tuple(_ops.ones_like(r.detach()) for r in ref)
    _, vs = _as_tuple(v, "v", fn_name)
    if len(vs) != len(ref):
        raise RuntimeError(f"{fn_name}: v has {len(vs)} tensors, the {ref_what} have {len(ref)}")
    for i, (g, r) in enumerate(zip(vs, ref, strict=True)):
        if tuple(g.shape) != tuple(r.shape):
            raise RuntimeError(
                f"{fn_name}: entry {i} of v has shape {tuple(g.shape)}, the {ref_what} it goes "
                f"with has shape {tuple(r.shape)}"
            )
    return vs


def _autograd_grad(*args: Any, **kwargs: Any) -> Any:
    """``autograd.grad``; inside ``vmap`` the batch-aware one (per-sample gradients)."""
    if _grad_mode.state.vmap:
        return _batching.autograd_grad(*args, **kwargs)
    return _engine_grad(*args, **kwargs)


def _prepare_input(x: Tensor, create_graph: bool, need_graph: bool) -> Tensor:
    """A fresh input for ``func``: connected to ``x``'s graph when ``create_graph`` (so the
    derivative is itself differentiable), a new leaf otherwise (requiring grad when
    ``need_graph``). Forward-mode tangents that ``x`` carries are kept (forward-over-reverse).
    Inside ``vmap``, a reverse-mode input is expanded over every open vmap level first, so
    its gradient is per batch element, not summed over the batch."""
    if need_graph and _grad_mode.state.vmap:
        x = _batching.to_levels(x, _batching.active_levels())
    if create_graph and x.requires_grad:
        return _P.clone(x)  # records CloneBackward; pushes x's tangents along
    leaf = x.detach()
    if need_graph:
        leaf.requires_grad_(True)
    tangents = _tangents_of(x) if _grad_mode.state.forward_level else {}
    for level, tangent in sorted(tangents.items()):
        if level > _grad_mode.state.forward_level:
            continue
        # the stored tangent is physical; hand make_dual its logical view
        batched = tangent.ndim > x._data.ndim
        leaf = forward_ad.make_dual(
            leaf, _batching.logical_tangent(x, tangent), level=level, batched=batched
        )
    return leaf


def _requiring_grad(args: Sequence[Tensor]) -> list[Tensor]:
    """``args`` made to require grad (they are this module's own inputs, e.g. dual tensors)."""
    return [a if a.requires_grad else a.requires_grad_(True) for a in args]


def _detach(x: Tensor, create_graph: bool) -> Tensor:
    return x if create_graph else x.detach()


def _zeros(shape: tuple[int, ...], dtype: Any) -> Tensor:
    return Tensor._wrap(np.zeros(shape, dtype=dtype))


def _check_independent(strict: bool, fn_name: str, i: int, what: str = "output") -> None:
    if strict:
        raise RuntimeError(
            f"{fn_name}: the {what} of the user-provided function is independent of input {i}. "
            "This is not allowed in strict mode."
        )


# -- identity batches -----------------------------------------------------------------------------
_IDENTITIES: dict[tuple[int, np.dtype], np.ndarray] = {}
_IDENTITY_CACHE_BYTES = 64 << 20


def _identity(n: int, dtype: Any) -> np.ndarray:
    """The ``n x n`` identity, cached read-only (up to 64 MiB in all): it is a constant, and
    making it afresh (touching new memory) can cost as much as the pass that uses it. A rule
    may pass it through unchanged, so results are copied if read-only (``_owned``)."""
    key = (n, np.dtype(dtype))
    eye = _IDENTITIES.get(key)
    if eye is None:
        eye = np.eye(n, dtype=dtype)
        eye.flags.writeable = False
        if eye.nbytes <= _IDENTITY_CACHE_BYTES:
            if sum(e.nbytes for e in _IDENTITIES.values()) + eye.nbytes > _IDENTITY_CACHE_BYTES:
                _IDENTITIES.clear()
            _IDENTITIES[key] = eye
    return eye


def _densified(t: Tensor | None) -> Tensor | None:
    """``t`` with its data as a plain array (a structured batch that reached an input
    unchanged, e.g. through an identity function, is expanded here)."""
    if t is None or not is_structured(t._data):
        return t
    return Tensor._wrap(t._data.dense())


def _owned(t: Tensor, create_graph: bool) -> Tensor:
    """``t``, copied if its memory is read-only (the cached identity, a broadcast view)."""
    if t._data.flags.writeable:
        return t
    return (
        _P.clone(t) if create_graph or _batching.is_batched(t) else Tensor._wrap(np.array(t._data))
    )


def _stack(
    parts: list[Tensor | None], shape: tuple[int, ...], dtype: Any, create_graph: bool
) -> Tensor | None:
    """The rows (or columns) of one pass each, stacked; None if all are None (independent)."""
    if all(p is None for p in parts):
        return None
    if len(parts) == 1:  # a view, not a copy
        return _reshape(parts[0], (1, *shape), create_graph)
    parts = [p if p is not None else _zeros(shape, dtype) for p in parts]
    if create_graph or any(_batching.is_batched(p) for p in parts):
        return _ops.stack(parts, 0)
    return Tensor._wrap(np.stack([p._data for p in parts]))


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _warn_fallback(fn_name: str, op: str, what: str, n: int) -> None:
    """A :class:`BatchingFallbackWarning`, attributed to the first caller outside matgrad."""
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    message = (
        f"{fn_name}: the rule for '{op}' does not take a batch of {what}; falling back to {n} "
        "separate passes (a Python loop over rows)"
    )
    warnings.warn(BatchingFallbackWarning(message, op), stacklevel=level)


# -- reverse mode: rows of a Jacobian -------------------------------------------------------------
def _reverse_rows(
    output: Tensor, inputs: Sequence[Tensor], create_graph: bool, vectorize: bool, fn_name: str
) -> list[Tensor | None]:
    """For one output ``y`` with ``m`` elements, per input ``x``: the ``m`` rows ``e_r^T J`` of
    ``J = d vec(y) / d vec(x)`` as a tensor of shape ``(m, *x.shape)``, or None when ``y`` does
    not depend on ``x``. Vectorized: ``I_m @ J`` in one backward pass with a batch of ``m``
    cotangents; otherwise (or as the fallback, or for ``m == 1``) ``m`` plain passes."""
    m = output.numel()
    if not output.requires_grad or m == 0:
        return [None] * len(inputs)
    eye = _identity(m, output.dtype).reshape((m, *output.shape))
    inputs = list(inputs)
    if vectorize and m > 1 and _grad_mode.state.vmap:
        # inside vmap: the rows are one more vmap level over the cotangents I (vmap(vjp_fn))
        level = _batching.enter_level(m)
        try:
            seed = _batching.move_level_in(Tensor._wrap(eye), 0, level)
            rows = _autograd_grad(
                output,
                inputs,
                seed,
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
            )
            return [None if r is None else _batching.move_level_out(r, level, 0, m) for r in rows]
        finally:
            _batching.exit_level(level)
    if vectorize and m > 1:
        # without create_graph the identity goes in structured: rules that only scale it keep
        # it cheap, and a matrix product meets it as a scaling, not an n^3 product
        seed = eye if create_graph else OneHotBatch.identity(tuple(output.shape), output.dtype)
        try:
            rows = _autograd_grad(
                output,
                inputs,
                Tensor._wrap(seed),
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
                is_grads_batched=True,
            )
            return [_densified(r) for r in rows]
        except BatchingUnsupported as exc:
            _warn_fallback(fn_name, exc.op, "cotangents", m)
    passes = [
        _autograd_grad(
            output,
            inputs,
            Tensor._wrap(eye[r]),
            retain_graph=True,
            create_graph=create_graph,
            allow_unused=True,
        )
        for r in range(m)
    ]
    return [
        _stack([p[k] for p in passes], tuple(x.shape), x.dtype, create_graph)
        for k, x in enumerate(inputs)
    ]


# -- forward mode: columns of a Jacobian ----------------------------------------------------------
def _forward_pass(
    call: Callable[..., tuple[Tensor, ...]],
    primals: Sequence[Tensor],
    tangents: Sequence[Tensor | None],
    batched: bool,
) -> tuple[tuple[Tensor, ...], list[Tensor | None]]:
    """Run ``call`` on dual tensors (primals with ``tangents``, None: no tangent) at a new
    dual level (inside open ones: forward-over-forward); returns (outputs without this
    level's tangents, their tangents at it: logical, a directions axis first if
    ``batched``)."""
    with forward_ad.dual_level() as level:
        args = [
            p if t is None else forward_ad.make_dual(p, t, batched=batched)
            for p, t in zip(primals, tangents, strict=True)
        ]
        outs = call(*args)
        unpacked = [forward_ad.unpack_dual(o, level=level) for o in outs]
    return tuple(u.primal for u in unpacked), [u.tangent for u in unpacked]


def _forward_columns(
    call: Callable[..., tuple[Tensor, ...]],
    primals: Sequence[Tensor],
    j: int,
    create_graph: bool,
    vectorize: bool,
    fn_name: str,
) -> tuple[tuple[Tensor, ...], list[Tensor | None]]:
    """For input ``x = primals[j]`` with ``n`` elements: (outputs, per output ``y`` the ``n``
    columns ``J e_k`` of ``J = d vec(y) / d vec(x)`` as a tensor of shape ``(n, *y.shape)``, or
    None when ``y`` does not depend on ``x``). Vectorized: ``J @ I_n`` in one forward pass with
    a batch of ``n`` tangents; otherwise (or as the fallback, or for ``n == 1``) ``n`` plain
    passes."""
    x = primals[j]
    n = x.numel()
    only_j: list[Tensor | None] = [None] * len(primals)
    if n == 0:
        outs, _ = _forward_pass(call, primals, only_j, batched=False)
        return outs, [None] * len(outs)
    eye = _identity(n, x.dtype)
    if vectorize and n > 1:
        try:
            seed = (
                eye.reshape((n, *x.shape))
                if create_graph or _grad_mode.state.vmap
                else OneHotBatch.identity(tuple(x.shape), x.dtype)
            )
            only_j[j] = Tensor._wrap(seed)
            outs, cols = _forward_pass(call, primals, only_j, batched=True)
            return outs, [_densified(c) for c in cols]
        except BatchingUnsupported as exc:
            _warn_fallback(fn_name, exc.op, "tangents", n)
    passes = []
    for k in range(n):
        only_j[j] = Tensor._wrap(eye[k].reshape(x.shape))
        passes.append(_forward_pass(call, primals, only_j, batched=False))
    outs = passes[0][0]
    cols = [
        _stack([ts[i] for _, ts in passes], tuple(o.shape), o.dtype, create_graph)
        for i, o in enumerate(outs)
    ]
    return outs, cols


# -- Jacobian blocks (shared with matgrad.func) ---------------------------------------------------
def _jacobian_blocks(
    call: Callable[..., tuple[Tensor, ...]],
    xs: Sequence[Tensor],
    strategy: str,
    create_graph: bool,
    vectorize: bool,
    fn_name: str,
) -> tuple[tuple[Tensor, ...], list[list[Tensor | None]]]:
    """``(outputs, blocks)`` for ``outputs = call(*xs)``: ``blocks[i][j] = d outputs[i] / d
    xs[j]`` of shape ``outputs[i].shape + xs[j].shape``, None where independent. ``xs`` are
    inputs from ``_prepare_input`` (requiring grad for reverse mode).

    Reverse mode: one backward pass per output gives the block rows (a reshape, no copy).
    Forward mode: one forward pass per input gives the block columns (a transposed view)."""
    if strategy == "reverse-mode":
        outs = call(*xs)
        blocks = []
        for o in outs:
            rows = _reverse_rows(o, xs, create_graph, vectorize, fn_name)
            blocks.append(
                [
                    None
                    if r is None
                    else _reshape(_owned(r, create_graph), (*o.shape, *x.shape), create_graph)
                    for r, x in zip(rows, xs, strict=True)
                ]
            )
        return outs, blocks
    outs = None
    per_input = []  # per input, per output: columns (n, *y.shape) or None
    for j in range(len(xs)):
        outs, cols = _forward_columns(call, xs, j, create_graph, vectorize, fn_name)
        per_input.append(cols)
    if outs is None:  # no inputs: just the outputs
        outs, _ = _forward_pass(call, xs, [], batched=False)
    blocks = []
    for i, o in enumerate(outs):
        row = []
        for x, cols in zip(xs, per_input, strict=True):
            c = cols[i]
            if c is None:
                row.append(None)
                continue
            # (n, *y.shape) -> x.shape + y.shape -> y.shape + x.shape
            c = _reshape(_owned(c, create_graph), (*x.shape, *o.shape), create_graph)
            perm = tuple(range(x.ndim, x.ndim + o.ndim)) + tuple(range(x.ndim))
            row.append(
                _ops.permute(c, perm)
                if create_graph or _batching.is_batched(c)
                else Tensor._wrap(c._data.transpose(perm))
            )
        blocks.append(row)
    return outs, blocks


def _reshape(t: Tensor, shape: tuple[int, ...], create_graph: bool) -> Tensor:
    if create_graph or _batching.is_batched(t):
        return _ops.reshape(t, shape)
    return Tensor._wrap(t._data.reshape(shape))


# -- public API -----------------------------------------------------------------------------------
def vjp(
    func: Callable[..., Any],
    inputs: Any,
    v: Any = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """``(func(*inputs), v^T J)``: the vector-Jacobian product, ``sum_i v_i^T d y_i / d x_j``
    for every input ``x_j``. ``v`` may be left out when ``func`` returns one element."""
    is_in_tuple, xs = _as_tuple(inputs, "inputs", "vjp")
    call = _Outputs(func, "vjp")
    with _grad_mode.enable_grad():
        xs = tuple(_prepare_input(x, create_graph, True) for x in xs)
        outs = call(*xs)
        vs = _vector(v, outs, "vjp", "outputs")
        res = _pullback(outs, xs, vs, create_graph, strict, "vjp", "output")
    outs = tuple(_detach(o, create_graph) for o in outs)
    return _tuple_postprocess(outs, call.is_tuple), _tuple_postprocess(tuple(res), is_in_tuple)


def jvp(
    func: Callable[..., Any],
    inputs: Any,
    v: Any = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """``(func(*inputs), J v)``: the Jacobian-vector product ``sum_j d y_i / d x_j  v_j`` for
    every output ``y_i``, by forward mode (one pass with dual tensors). ``v`` may be left out
    when the input has one element."""
    _, xs = _as_tuple(inputs, "inputs", "jvp")
    vs = _vector(v, xs, "jvp", "inputs")
    call = _Outputs(func, "jvp")
    with _grad_mode.enable_grad():
        prims = [_prepare_input(x, create_graph, False) for x in xs]
        outs, tangents = _forward_pass(
            call, prims, [_detach(t, create_graph) for t in vs], batched=False
        )
    res = []
    for o, t in zip(outs, tangents, strict=True):
        if t is None:
            _check_independent(strict, "jvp", 0, "output")
            t = _zeros(tuple(o.shape), o.dtype)
        res.append(_detach(t, create_graph))
    outs = tuple(_detach(o, create_graph) for o in outs)
    return _tuple_postprocess(outs, call.is_tuple), _tuple_postprocess(tuple(res), call.is_tuple)


def jacobian(
    func: Callable[..., Any],
    inputs: Any,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    strategy: str = "reverse-mode",
) -> Any:
    """The Jacobian blocks ``J[i][j] = d y_i / d x_j`` of shape ``y_i.shape + x_j.shape``
    (reshape to ``(y_i.numel(), x_j.numel())`` for the matrix ``d vec(y_i) / d vec(x_j)``).

    ``strategy="reverse-mode"`` computes rows (``e_r^T J``), ``"forward-mode"`` columns
    (``J e_k``); ``vectorize=True`` computes all of them in one batched pass per output
    (reverse) or per input (forward), falling back, with a :class:`BatchingFallbackWarning`,
    where a rule cannot take a batch; ``vectorize=False`` makes one pass per row or column.
    ``create_graph=True`` makes the result differentiable; ``strict=True`` raises when an
    output does not depend on an input."""
    if strategy not in _STRATEGIES:
        raise ValueError(
            f'jacobian: expected strategy to be "forward-mode" or "reverse-mode", got {strategy!r}'
        )
    is_in_tuple, xs = _as_tuple(inputs, "inputs", "jacobian")
    call = _Outputs(func, "jacobian")
    with _grad_mode.enable_grad():
        prepared = [_prepare_input(x, create_graph, strategy == "reverse-mode") for x in xs]
        outs, blocks = _jacobian_blocks(
            call, prepared, strategy, create_graph, vectorize, "jacobian"
        )
    result = []
    for i, (o, row) in enumerate(zip(outs, blocks, strict=True)):
        for j, (x, b) in enumerate(zip(xs, row, strict=True)):
            if b is None:
                _check_independent(strict, "jacobian", j, f"output {i}")
                row[j] = _zeros((*o.shape, *x.shape), o.dtype)
        result.append(tuple(row))
    return _tuple_postprocess(tuple(result), (call.is_tuple, is_in_tuple))


def _pullback(
    ys: Sequence[Tensor],
    xs: Sequence[Tensor],
    vs: Sequence[Tensor],
    create_graph: bool,
    strict: bool,
    fn_name: str,
    what: str,
) -> list[Tensor]:
    """``sum_i v_i^T d y_i / d x_j`` for every ``x_j`` (zeros where independent)."""
    live = [(y, v) for y, v in zip(ys, vs, strict=True) if y.requires_grad]
    grads: Sequence[Tensor | None] = (None,) * len(xs)
    if live:
        grads = _autograd_grad(
            [y for y, _ in live],
            list(xs),
            [v for _, v in live],
            create_graph=create_graph,
            allow_unused=True,
        )
    res = []
    for i, (x, g) in enumerate(zip(xs, grads, strict=True)):
        if g is None:
            _check_independent(strict, fn_name, i, what)
            g = _zeros(tuple(x.shape), x.dtype)
        res.append(_detach(g, create_graph))
    return res


def _gradient(out: Tensor, xs: Sequence[Tensor], strict: bool, fn_name: str) -> list[Tensor]:
    """``grad f`` with ``create_graph=True`` (zeros, not None, for unused inputs)."""
    grads: Sequence[Tensor | None] = (None,) * len(xs)
    if out.requires_grad:
        grads = _autograd_grad(out, list(xs), create_graph=True, allow_unused=True)
    res = []
    for i, (x, g) in enumerate(zip(xs, grads, strict=True)):
        if g is None:
            _check_independent(strict, fn_name, i)
            g = _ops.zeros_like(x.detach())
        res.append(g)
    return res


def hessian(
    func: Callable[..., Any],
    inputs: Any,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    outer_jacobian_strategy: str = "reverse-mode",
) -> Any:
    """The Hessian of a scalar function: ``H[i][j] = d^2 f / d x_i d x_j`` of shape
    ``x_i.shape + x_j.shape`` (symmetric for twice continuously differentiable ``f``).

    The Jacobian of the gradient: the gradient by reverse mode with ``create_graph=True``, then
    its Jacobian by ``outer_jacobian_strategy`` (``"forward-mode"``: forward-over-reverse)."""
    if outer_jacobian_strategy not in _STRATEGIES:
        raise ValueError(
            'hessian: expected outer_jacobian_strategy to be "forward-mode" or '
            f'"reverse-mode", got {outer_jacobian_strategy!r}'
        )
    is_in_tuple, xs = _as_tuple(inputs, "inputs", "hessian")
    single = _scalar_output(func, "hessian")

    def gradient(*args: Tensor) -> tuple[Tensor, ...]:
        args = _requiring_grad(args)  # forward-over-reverse: dual tensors, made leaves here
        return tuple(_gradient(single(*args), args, strict, "hessian"))

    res = jacobian(gradient, xs, create_graph, strict, vectorize, outer_jacobian_strategy)
    return _tuple_postprocess(res, (is_in_tuple, is_in_tuple))


def vhp(
    func: Callable[..., Any],
    inputs: Any,
    v: Any = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """``(func(*inputs), v^T H)`` without forming ``H``: reverse-over-reverse,
    ``d/dx <grad f(x), v>`` (two backward passes)."""
    is_in_tuple, xs = _as_tuple(inputs, "inputs", "vhp")
    vs = _vector(v, xs, "vhp", "inputs")
    with _grad_mode.enable_grad():
        xs = tuple(_prepare_input(x, create_graph, True) for x in xs)
        out = _scalar_output(func, "vhp")(*xs)
        grads = _gradient(out, xs, strict, "vhp")
        res = _pullback(grads, xs, vs, create_graph, strict, "vhp", "gradient")
    return _detach(out, create_graph), _tuple_postprocess(tuple(res), is_in_tuple)


def hvp(
    func: Callable[..., Any],
    inputs: Any,
    v: Any = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """``(func(*inputs), H v)`` without forming ``H``: forward-over-reverse, the JVP of
    ``grad f`` in the direction ``v`` (one forward pass with dual tensors around one backward
    pass with ``create_graph=True``, whose ops carry the tangents)."""
    is_in_tuple, xs = _as_tuple(inputs, "inputs", "hvp")
    vs = _vector(v, xs, "hvp", "inputs")
    single = _scalar_output(func, "hvp")
    value: list[Tensor] = []

    def gradient(*args: Tensor) -> tuple[Tensor, ...]:
        args = _requiring_grad(args)
        out = single(*args)
        value.append(out)
        return tuple(_gradient(out, args, strict, "hvp"))

    with _grad_mode.enable_grad():
        prims = [_prepare_input(x, create_graph, False) for x in xs]
        _, tangents = _forward_pass(
            gradient, prims, [_detach(t, create_graph) for t in vs], batched=False
        )
    res = []
    for i, (x, t) in enumerate(zip(xs, tangents, strict=True)):
        if t is None:
            _check_independent(strict, "hvp", i, "gradient")
            t = _zeros(tuple(x.shape), x.dtype)
        res.append(_detach(t, create_graph))
    out = forward_ad.unpack_dual(value[0]).primal
    return _detach(out, create_graph), _tuple_postprocess(tuple(res), is_in_tuple)
