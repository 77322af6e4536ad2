"""Composable function transforms (``matgrad.func``, after ``torch.func``).

Each transform takes a function and returns a function::

    grad(f)(x)            = d f / d x                      (f scalar)
    grad_and_value(f)(x)  = (d f / d x, f(x))
    value_and_grad(f)(x)  = (f(x), d f / d x)              (JAX's order)
    vjp(f, x)             = (f(x), v -> v^T J)
    jvp(f, (x,), (v,))    = (f(x), J v)
    linearize(f, x)       = (f(x), v -> J v)
    jacrev(f)(x)          = J, by reverse mode: one batched backward pass per output, rows e_r^T J
    jacfwd(f)(x)          = J, by forward mode: one batched forward pass per input, columns J e_k
    hessian(f)(x)         = jacrev(jacrev(f))(x), d^2 f / dx dx
    vmap(f)(xs)           = f mapped over a batch axis (one call on the whole batch)
    functional_call(m, params, args) = m(*args) with m's parameters and buffers replaced

with ``J[i, ...] = d y / d x`` of shape ``y.shape + x.shape``. ``argnums`` (an int or a tuple)
picks the arguments to differentiate; ``has_aux=True`` means ``f`` returns ``(output, aux)`` and
``aux`` is passed through. Arguments and outputs may be pytrees (tuples, lists, dicts,
namedtuples of tensors; :mod:`matgrad._pytree`): ``grad`` of a dict of parameters is a dict of
gradients, the Jacobian of a dict output is a dict of Jacobians. Arguments may be tensors or
NumPy arrays; results are tensors.

Transforms nest: ``jacfwd(jacrev(f))``, ``jacrev(jacfwd(f))``, ``jacrev(jacrev(f))``,
``jacfwd(jacfwd(f))`` (nested dual levels), ``grad(grad(f))``, ``vmap(grad(f))`` (per-sample
gradients), ``vmap(jacrev(f))``, ``vmap(vmap(f))``, ``grad(vmap(f))``. A transform records the
graph of its derivative (``create_graph=True``) only when that derivative may itself be
differentiated: inside another transform, when an argument requires grad, or inside a
forward-mode level. Otherwise it runs the fast path and returns plain tensors.

``vmap`` runs ``f`` once on tensors carrying a hidden batch axis
(:class:`matgrad.ops.batching.BatchedTensor`); each primitive's batching rule rewrites it into
one call on the whole batch (see :mod:`matgrad.ops.batching`). Inside ``vmap`` use these
transforms (or ``autograd.grad`` with batched cotangents) for derivatives; ``.backward()``
raises there, as in PyTorch. ``stack_module_state(models)`` stacks the parameters and buffers
of several modules for ``vmap`` over ``functional_call`` (model ensembles).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import _pytree
from . import creation as _creation
from .autograd import forward_ad
from .autograd import functional as _F
from .core import grad_mode as _grad_mode
from .core.graph import BatchingUnsupported
from .ops import batching as _batching
from .ops import composite as _ops
from .tensor import Tensor

__all__ = [
    "functional_call",
    "grad",
    "grad_and_value",
    "hessian",
    "jacfwd",
    "jacrev",
    "jvp",
    "linearize",
    "stack_module_state",
    "value_and_grad",
    "vjp",
    "vmap",
]


class _Depth(threading.local):
    """How many transforms are running in this thread (a nested one must record its graph)."""

    value = 0


_depth = _Depth()


@contextlib.contextmanager
def _nested() -> Iterator[None]:
    _depth.value += 1
    try:
        with _grad_mode.enable_grad():
            yield
    finally:
        _depth.value -= 1


def _needs_graph(args: Any) -> bool:
    """Whether a transform's result may be differentiated again (see the module doc)."""
    return (
        _depth.value > 0
        or _grad_mode.state.forward_level > 0
        or any(isinstance(a, Tensor) and a.requires_grad for a in _pytree.tree_leaves(args))
    )


def _to_tensor(x: Any, where: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray | np.generic | float | int):
        arr = np.asarray(x)
        return Tensor(arr if arr.dtype.kind in "fc" else arr.astype(np.float64))
    raise TypeError(f"{where}: expected a Tensor or a NumPy array, got {type(x).__name__}")


def _argnums(argnums: int | tuple[int, ...], nargs: int, fn_name: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise ValueError(f"{fn_name}: argnums must be non-empty")
    out = []
    for a in nums:
        if not isinstance(a, int):
            raise TypeError(f"{fn_name}: argnums must be int or tuple of ints, got {a!r}")
        if not -nargs <= a < nargs:
            raise ValueError(f"{fn_name}: got argnums={argnums} but only {nargs} positional inputs")
        out.append(a % nargs)
    if len(set(out)) != len(out):
        raise ValueError(f"{fn_name}: argnums has duplicates: {argnums}")
    return tuple(out)


def _split_aux(out: Any, has_aux: bool, fn_name: str) -> tuple[Any, Any]:
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(f"{fn_name}(f, has_aux=True): f must return a (output, aux) tuple")
    return out


def _map_tensors(fn: Callable[[Tensor], Any], tree: Any) -> Any:
    return _pytree.tree_map(lambda t: fn(t) if isinstance(t, Tensor) else t, tree)


def _finish(tree: Any, create_graph: bool) -> Any:
    """Results of a transform: detached (and without tangents) on the fast path."""
    if create_graph:
        return tree
    return _map_tensors(lambda t: t.detach(), tree)


def _outputs(out: Any, fn_name: str) -> tuple[list[Tensor], _pytree.TreeSpec]:
    """The tensor leaves of a function's output pytree and its structure."""
    leaves, spec = _pytree.tree_flatten(out)
    for leaf in leaves:
        if not isinstance(leaf, Tensor):
            raise TypeError(
                f"{fn_name}: the function must return a Tensor or a pytree (tuple, list, dict) "
                f"of Tensors, got a {type(leaf).__name__} in {type(out).__name__}"
            )
    return leaves, spec


def _zeros_like(x: Tensor) -> Tensor:
    """Zeros of ``x``'s (logical) shape, batched as ``x`` is inside vmap."""
    with _batching.physical():
        z = _ops.zeros_like(x.detach())
    return _batching.like(z, x)


class _Args:
    """The differentiated arguments of a call: per argnum its pytree's tensor leaves (fresh
    inputs from ``_F._prepare_input``) and structure."""

    def __init__(
        self,
        args: tuple[Any, ...],
        nums: tuple[int, ...],
        create_graph: bool,
        need_graph: bool,
        fn_name: str,
    ) -> None:
        self.args, self.nums = list(args), nums
        self.specs: list[_pytree.TreeSpec] = []
        self.counts: list[int] = []
        self.originals: list[Tensor] = []
        xs: list[Tensor] = []
        for a in nums:
            leaves, spec = _pytree.tree_flatten(args[a])
            leaves = [_to_tensor(x, fn_name) for x in leaves]
            self.originals += leaves
            xs += [_F._prepare_input(x, create_graph, need_graph) for x in leaves]
            self.specs.append(spec)
            self.counts.append(len(leaves))
        self.xs = xs

    def call_args(self, xs: Any = None) -> list[Any]:
        """The arguments with the differentiated ones' leaves replaced by ``xs``."""
        full = list(self.args)
        for a, part in zip(
            self.nums, self._split(self.xs if xs is None else list(xs)), strict=True
        ):
            full[a] = part
        return full

    def _split(self, flat: list[Any]) -> list[Any]:
        out, k = [], 0
        for spec, n in zip(self.specs, self.counts, strict=True):
            out.append(_pytree.tree_unflatten(flat[k : k + n], spec))
            k += n
        return out

    def rebuild(self, flat: list[Any], argnums: int | tuple[int, ...]) -> Any:
        """Per-leaf results (one per differentiated leaf) in the arguments' structure."""
        parts = self._split(flat)
        return parts[0] if isinstance(argnums, int) else tuple(parts)


# -- grad ------------------------------------------------------------------------------------------
def grad_and_value(
    func: Callable[..., Any], argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """``(grad, value)`` of a scalar function, ``grad = d f / d args[argnums]`` (a tuple when
    ``argnums`` is; a pytree argument gets a gradient of the same structure); with
    ``has_aux``: ``(grad, (value, aux))``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args), "grad")
        create_graph = _needs_graph(args)
        with _nested():
            prepared = _Args(args, nums, create_graph, True, "grad")
            xs = prepared.xs
            out, aux = _split_aux(func(*prepared.call_args(), **kwargs), has_aux, "grad")
            if not isinstance(out, Tensor) or out.numel() != 1:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise RuntimeError(
                    f"grad: the function must return a Tensor with a single "
                    f"element (use jacrev for others), got {shape}"
                )
            if out.requires_grad:
                grads = _F._autograd_grad(out, xs, create_graph=create_graph, allow_unused=True)
            else:
                grads = (None,) * len(xs)
            grads = [g if g is not None else _zeros_like(x) for g, x in zip(grads, xs, strict=True)]
        g = prepared.rebuild(grads, argnums)
        g, value, aux = _finish((g, out, aux), create_graph)
        return (g, (value, aux)) if has_aux else (g, value)

    return wrapper


def grad(
    func: Callable[..., Any], argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """The gradient ``d f / d args[argnums]`` of a scalar function (``(grad, aux)`` with
    ``has_aux``)."""
    inner = grad_and_value(func, argnums, has_aux)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g, value = inner(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


def value_and_grad(
    func: Callable[..., Any], argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """``(value, grad)``, in the order of the name (JAX's); with ``has_aux``:
    ``((value, aux), grad)``. Same computation as :func:`grad_and_value`."""
    inner = grad_and_value(func, argnums, has_aux)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g, value = inner(*args, **kwargs)
        return value, g

    return wrapper


# -- vjp / jvp / linearize -------------------------------------------------------------------------
def vjp(func: Callable[..., Any], *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """``(func(*primals), vjp_fn)`` (and ``aux``), where ``vjp_fn(v)`` returns
    ``v^T d func / d primals``, a tuple with one entry per primal (each of its primal's
    structure). ``v`` has the structure of the output (a dict of cotangents for a dict
    output); ``vjp_fn`` may be called many times."""
    create_graph = _needs_graph(primals)
    nums = tuple(range(len(primals)))
    with _nested():
        prepared = _Args(primals, nums, create_graph, True, "vjp")
        xs = prepared.xs
        out, aux = _split_aux(func(*prepared.call_args()), has_aux, "vjp")
        outs, out_spec = _outputs(out, "vjp")

    def vjp_fn(*cotangents: Any) -> tuple[Any, ...]:
        tree = cotangents[0] if len(cotangents) == 1 else cotangents
        cts, ct_spec = _pytree.tree_flatten(tree)
        if ct_spec != out_spec and len(cts) == len(outs) == 1:
            pass  # a single cotangent for a single output, however wrapped
        elif ct_spec != out_spec:
            raise RuntimeError(
                f"vjp_fn: expected cotangents of the output's structure {out_spec!r}, got "
                f"{ct_spec!r}"
            )
        cts = [_to_tensor(c, "vjp_fn") for c in cts]
        for c, o in zip(cts, outs, strict=True):
            if tuple(c.shape) != tuple(o.shape):
                raise RuntimeError(
                    f"vjp_fn: cotangent of shape {tuple(c.shape)} for an output "
                    f"of shape {tuple(o.shape)}"
                )
        nested = create_graph or _needs_graph(cts)
        with _nested():
            live = [(o, c) for o, c in zip(outs, cts, strict=True) if o.requires_grad]
            if live:
                grads = _F._autograd_grad(
                    [o for o, _ in live],
                    xs,
                    [c for _, c in live],
                    retain_graph=True,
                    create_graph=nested,
                    allow_unused=True,
                )
            else:
                grads = (None,) * len(xs)
            res = [g if g is not None else _zeros_like(x) for g, x in zip(grads, xs, strict=True)]
        return _finish(tuple(prepared.rebuild(res, nums)), nested)

    result = _finish(out, create_graph)
    if has_aux:
        return result, vjp_fn, _finish(aux, create_graph)
    return result, vjp_fn


def jvp(
    func: Callable[..., Any],
    primals: tuple[Any, ...],
    tangents: tuple[Any, ...],
    has_aux: bool = False,
) -> tuple[Any, ...]:
    """``(func(*primals), J v)`` (and ``aux``): the Jacobian-vector product with
    ``v = tangents`` by forward mode, one pass with dual tensors (at a new dual level, so
    ``jvp`` nests in forward mode). ``primals`` and ``tangents`` are tuples of pytrees of the
    same structure; the tangent output has the output's structure."""
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError("jvp: primals and tangents must be tuples")
    if len(primals) != len(tangents):
        raise RuntimeError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    primals = tuple(primals)
    p_leaves, p_spec = _pytree.tree_flatten(primals)
    t_leaves, t_spec = _pytree.tree_flatten(tuple(tangents))
    if p_spec != t_spec:
        raise RuntimeError(
            f"jvp: tangents of structure {t_spec!r} for primals of structure {p_spec!r}"
        )
    create_graph = _needs_graph(primals)
    holder: dict[str, Any] = {}

    def call(*leaves: Tensor) -> tuple[Tensor, ...]:
        args = _pytree.tree_unflatten(list(leaves), p_spec)
        out, holder["aux"] = _split_aux(func(*args), has_aux, "jvp")
        outs, holder["spec"] = _outputs(out, "jvp")
        return tuple(outs)

    with _nested():
        xs = [_F._prepare_input(_to_tensor(p, "jvp"), create_graph, False) for p in p_leaves]
        ts = []
        for t, x in zip(t_leaves, xs, strict=True):
            t = _to_tensor(t, "jvp")
            if tuple(t.shape) != tuple(x.shape):
                raise RuntimeError(
                    f"jvp: tangent of shape {tuple(t.shape)} for a primal of shape {tuple(x.shape)}"
                )
            ts.append(t)
        outs, out_ts = _F._forward_pass(call, xs, ts, batched=False)
        out_ts = [t if t is not None else _zeros_like(o) for t, o in zip(out_ts, outs, strict=True)]
    primal_out = _pytree.tree_unflatten(list(outs), holder["spec"])
    tangent_out = _pytree.tree_unflatten(out_ts, holder["spec"])
    primal_out, tangent_out = _finish((primal_out, tangent_out), create_graph)
    if has_aux:
        return primal_out, tangent_out, _finish(_strip_tangents(holder["aux"]), create_graph)
    return primal_out, tangent_out


def linearize(func: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[..., Any]]:
    """``(func(*primals), jvp_fn)`` with ``jvp_fn(*tangents) = J tangents`` at ``primals``
    (``torch.func.linearize``). Here ``jvp_fn`` runs one forward-mode pass per call (PyTorch
    traces the linear map once; the values are the same)."""
    out = func(*primals)
    _outputs(out, "linearize")
    p_spec = _pytree.tree_flatten(primals)[1]
    out = _finish(out, _needs_graph(primals))

    def jvp_fn(*tangents: Any) -> Any:
        t_spec = _pytree.tree_flatten(tangents)[1]
        if t_spec != p_spec:
            raise RuntimeError(
                f"linearize: jvp_fn expected tangents of the primals' structure {p_spec!r}, "
                f"got {t_spec!r}"
            )
        return jvp(func, primals, tangents)[1]

    return out, jvp_fn


def _strip_tangents(tree: Any) -> Any:
    level = _grad_mode.state.forward_level + 1  # the level the transform's duals had
    return _map_tensors(lambda t: forward_ad._alias(t, level), tree)


# -- Jacobians -------------------------------------------------------------------------------------
def jacrev(
    func: Callable[..., Any],
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    *,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """The Jacobian by reverse mode: for each output ``y`` one backward pass with the batch of
    cotangents ``I`` (all rows ``e_r^T J`` at once). Blocks have shape ``y.shape + x.shape``;
    the output's structure outside, the arguments' inside (a tuple per output for a tuple
    ``argnums``). With ``has_aux``: ``(jacobian, aux)``. ``chunk_size``: at most that many
    cotangents per backward pass (``ceil(m / chunk_size)`` passes for an output of ``m``
    elements, rows concatenated: less memory, same values; 1 is a loop over rows)."""
    _check_chunk(chunk_size, "jacrev")
    return _jacobian(func, argnums, has_aux, "reverse-mode", "jacrev", chunk_size)


def jacfwd(
    func: Callable[..., Any],
    argnums: int | tuple[int, ...] = 0,
    has_aux: bool = False,
    *,
    randomness: str = "error",
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """The Jacobian by forward mode: for each argument ``x`` one forward pass with the batch of
    tangents ``I`` (all columns ``J e_k`` at once), at a new dual level (so it nests:
    ``jacfwd(jacfwd(f))``). Same layout as :func:`jacrev`. ``chunk_size`` (matgrad's, as
    jacrev's; PyTorch's jacfwd has none): at most that many tangents per forward pass, each
    pass running ``func`` again. ``randomness`` is accepted for PyTorch's signature; the
    tangents share the forward pass, hence its draws ('same')."""
    _check_randomness(randomness, "jacfwd")
    _check_chunk(chunk_size, "jacfwd")
    return _jacobian(func, argnums, has_aux, "forward-mode", "jacfwd", chunk_size)


def _check_chunk(chunk_size: int | None, fn_name: str) -> None:
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
        raise ValueError(
            f"{fn_name}: chunk_size should be a positive int or None, got {chunk_size!r}"
        )


def _jacobian(
    func: Callable[..., Any],
    argnums: int | tuple[int, ...],
    has_aux: bool,
    strategy: str,
    fn_name: str,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args), fn_name)
        create_graph = _needs_graph(args)
        holder: dict[str, Any] = {}
        with _nested():
            prepared = _Args(args, nums, create_graph, strategy == "reverse-mode", fn_name)
            xs = prepared.xs

            def call(*diff_leaves: Tensor) -> tuple[Tensor, ...]:
                full = prepared.call_args(diff_leaves)
                out, holder["aux"] = _split_aux(func(*full, **kwargs), has_aux, fn_name)
                outs, holder["spec"] = _outputs(out, fn_name)
                return tuple(outs)

            if chunk_size is None:
                outs, blocks = _F._jacobian_blocks(call, xs, strategy, create_graph, True, fn_name)
            else:
                outs, blocks = _chunked_blocks(
                    call, xs, strategy, create_graph, chunk_size, fn_name
                )
            jac = []
            for o, row in zip(outs, blocks, strict=True):
                row = [
                    b if b is not None else _zeros_block(o, x) for x, b in zip(xs, row, strict=True)
                ]
                jac.append(prepared.rebuild(row, argnums))
        jac = _finish(_pytree.tree_unflatten(jac, holder["spec"]), create_graph)
        if not has_aux:
            return jac
        aux = holder["aux"]
        if strategy == "forward-mode":  # aux was computed from this transform's dual tensors
            aux = _strip_tangents(aux)
        return jac, _finish(aux, create_graph)

    return wrapper


def _unit_rows(start: int, c: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Rows ``start .. start + c - 1`` of the identity of ``prod(shape)``, each of ``shape``."""
    n = int(np.prod(shape, dtype=np.int64))
    rows = np.zeros((c, n), dtype=dtype)
    rows[np.arange(c), start + np.arange(c)] = 1
    return rows.reshape((c, *shape))


def _joined(
    parts: list[Tensor | None],
    sizes: list[int],
    shape: tuple[int, ...],
    dtype: Any,
    create_graph: bool,
) -> Any:
    """Chunks of rows (or columns; chunk ``i`` has ``sizes[i]``, each of ``shape``) joined
    along axis 0; None if all are None (independent)."""
    if all(p is None for p in parts):
        return None
    if len(parts) == 1:
        return parts[0]
    parts = [
        p if p is not None else _F._zeros((n, *shape), dtype)
        for p, n in zip(parts, sizes, strict=True)
    ]
    if create_graph or any(_batching.is_batched(p) for p in parts):
        return _ops.cat(parts, 0)
    return Tensor._wrap(np.concatenate([p._data for p in parts]))


def _chunked_rows(
    o: Tensor, xs: list[Tensor], create_graph: bool, chunk: int, fn_name: str
) -> list[Tensor | None]:
    """``_F._reverse_rows`` with at most ``chunk`` cotangents per backward pass."""
    m = o.numel()
    if not o.requires_grad or m == 0:
        return [None] * len(xs)
    chunks: list[list[Tensor | None]] = []
    sizes = []
    for start in range(0, m, chunk):
        c = min(chunk, m - start)
        seed = _unit_rows(start, c, tuple(o.shape), o.dtype)
        sizes.append(c)
        if c == 1:
            rows = _F._autograd_grad(
                o, xs, Tensor._wrap(seed[0]), retain_graph=True, create_graph=create_graph,
                allow_unused=True,
            )  # fmt: skip
            chunks.append([None if r is None else _ops.unsqueeze(r, 0) for r in rows])
        elif _grad_mode.state.vmap:  # inside vmap: the chunk's rows are one more vmap level
            level = _batching.enter_level(c)
            try:
                rows = _F._autograd_grad(
                    o, xs, _batching.move_level_in(Tensor._wrap(seed), 0, level),
                    retain_graph=True, create_graph=create_graph, allow_unused=True,
                )  # fmt: skip
                chunks.append(
                    [None if r is None else _batching.move_level_out(r, level, 0, c) for r in rows]
                )
            finally:
                _batching.exit_level(level)
        else:
            try:
                rows = _F._autograd_grad(
                    o, xs, Tensor._wrap(seed), retain_graph=True, create_graph=create_graph,
                    allow_unused=True, is_grads_batched=True,
                )  # fmt: skip
            except BatchingUnsupported as exc:  # one pass per row of this chunk
                _F._warn_fallback(fn_name, exc.op, "cotangents", c)
                each = [
                    _F._autograd_grad(
                        o,
                        xs,
                        Tensor._wrap(seed[r]),
                        retain_graph=True,
                        create_graph=create_graph,
                        allow_unused=True,
                    )  # fmt: skip
                    for r in range(c)
                ]
                rows = [
                    _F._stack([e[k] for e in each], tuple(x.shape), x.dtype, create_graph)
                    for k, x in enumerate(xs)
                ]
            chunks.append(list(rows))
    return [
        _joined([ch[k] for ch in chunks], sizes, tuple(x.shape), x.dtype, create_graph)
        for k, x in enumerate(xs)
    ]


def _chunked_columns(
    call: Callable[..., tuple[Tensor, ...]],
    xs: list[Tensor],
    j: int,
    create_graph: bool,
    chunk: int,
    fn_name: str,
) -> tuple[tuple[Tensor, ...], list[Tensor | None]]:
    """``_F._forward_columns`` with at most ``chunk`` tangents per forward pass."""
    x = xs[j]
    n = x.numel()
    only_j: list[Tensor | None] = [None] * len(xs)
    if n == 0:
        outs, _ = _F._forward_pass(call, xs, only_j, batched=False)
        return outs, [None] * len(outs)
    outs: tuple[Tensor, ...] = ()
    chunks: list[list[Tensor | None]] = []
    sizes = []
    for start in range(0, n, chunk):
        c = min(chunk, n - start)
        seed = _unit_rows(start, c, tuple(x.shape), x.dtype)
        sizes.append(c)
        if c > 1:
            only_j[j] = Tensor._wrap(seed)
            try:
                outs, cols = _F._forward_pass(call, xs, only_j, batched=True)
                chunks.append(list(cols))
                continue
            except BatchingUnsupported as exc:
                _F._warn_fallback(fn_name, exc.op, "tangents", c)
        each = []
        for r in range(c):
            only_j[j] = Tensor._wrap(seed[r])
            outs, cols = _F._forward_pass(call, xs, only_j, batched=False)
            each.append(cols)
        chunks.append(
            [
                _F._stack([e[i] for e in each], tuple(o.shape), o.dtype, create_graph)
                for i, o in enumerate(outs)
            ]
        )
    return outs, [
        _joined([ch[i] for ch in chunks], sizes, tuple(o.shape), o.dtype, create_graph)
        for i, o in enumerate(outs)
    ]


def _chunked_blocks(
    call: Callable[..., tuple[Tensor, ...]],
    xs: list[Tensor],
    strategy: str,
    create_graph: bool,
    chunk: int,
    fn_name: str,
) -> tuple[tuple[Tensor, ...], list[list[Tensor | None]]]:
    """``_F._jacobian_blocks`` with the passes split into chunks (``jacrev``/``jacfwd``'s
    ``chunk_size``): the same blocks, at most ``chunk`` cotangents (tangents) at once."""
    if strategy == "reverse-mode":
        outs = call(*xs)
        blocks = []
        for o in outs:
            rows = _chunked_rows(o, xs, create_graph, chunk, fn_name)
            blocks.append(
                [
                    None if r is None else _F._reshape(
                        _F._owned(r, create_graph), (*o.shape, *x.shape), create_graph
                    )
                    for r, x in zip(rows, xs, strict=True)
                ]
            )  # fmt: skip
        return outs, blocks
    outs = None
    per_input = []
    for j in range(len(xs)):
        outs, cols = _chunked_columns(call, xs, j, create_graph, chunk, fn_name)
        per_input.append(cols)
    if outs is None:
        outs, _ = _F._forward_pass(call, xs, [], batched=False)
    blocks = []
    for i, o in enumerate(outs):
        row = []
        for x, cols in zip(xs, per_input, strict=True):
            c = cols[i]
            if c is None:
                row.append(None)
                continue
            c = _F._reshape(_F._owned(c, create_graph), (*x.shape, *o.shape), create_graph)
            perm = tuple(range(x.ndim, x.ndim + o.ndim)) + tuple(range(x.ndim))
            row.append(_ops.permute(c, perm))
        blocks.append(row)
    return outs, blocks


def _zeros_block(o: Tensor, x: Tensor) -> Tensor:
    block = _F._zeros((*o.shape, *x.shape), o.dtype)
    if _grad_mode.state.vmap:  # batched like the output and the input
        with _batching.physical():
            levels = tuple(sorted(set(_batching.levels_of(o)) | set(_batching.levels_of(x))))
            sizes = dict(_grad_mode.state.vmap_levels)
            full = Tensor._wrap(
                np.zeros((*(sizes[lv] for lv in levels), *block.shape), dtype=o.dtype)
            )
        return _batching.like(full, _batching.to_levels(x, levels)) if levels else block
    return block


def hessian(func: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """The Hessian ``H[i][j] = d^2 f / d x_i d x_j`` of a scalar function, shape ``x_i.shape +
    x_j.shape``: ``jacrev(jacrev(f))``, the Jacobian of the gradient by one batched backward
    pass through the graph of the gradient (``jacfwd(jacrev(f))``, PyTorch's choice, gives the
    same and measured slower here, see benchmarks/bench_jacobian.py)."""
    return jacrev(jacrev(func, argnums), argnums)


# -- vmap ------------------------------------------------------------------------------------------
_RANDOMNESS = ("error", "different", "same")


def _check_randomness(randomness: str, fn_name: str) -> None:
    if randomness not in _RANDOMNESS:
        raise RuntimeError(
            f"{fn_name}: only allowed values for randomness are 'error', 'different', or "
            f"'same'. Got {randomness!r}"
        )


class _RandomGuard:
    """Stands for matgrad's global generator while a vmap runs. ``rand``/``randn``/
    ``randint`` (and their ``_like`` forms) batch their draws themselves
    (``creation._draw``: one draw per batch element over 'different' levels); code that draws
    from the generator directly with a shape of its own (dropout, ...) reaches this object:
    under an 'error' level it raises PyTorch's error, under a 'different' one it raises too
    (its draw would be shared by the batch: silently 'same'), under 'same' levels it draws."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if _batching.random_levels():  # (raises for an 'error' level)
            caller = sys._getframe(1).f_code.co_name
            raise NotImplementedError(
                f"vmap(randomness='different'): {caller}() draws from matgrad's generator "
                "directly, which gives one draw for the whole batch, not one per element; use "
                "randomness='same', draw with matgrad.rand/randn/rand_like inside vmap, or "
                "draw outside vmap and pass the values in batched"
            )
        return getattr(self._inner, name)


@contextlib.contextmanager
def _randomness(randomness: str) -> Iterator[None]:
    """The guard of matgrad's global generator while (the outermost) vmap runs."""
    saved = _creation._rng[0]
    if isinstance(saved, _RandomGuard):
        yield
        return
    _creation._rng[0] = _RandomGuard(saved)  # type: ignore[assignment]
    try:
        yield
    finally:
        if isinstance(_creation._rng[0], _RandomGuard):
            _creation._rng[0] = _creation._rng[0]._inner
        # (a manual_seed inside vmap replaced the guard: keep the new generator)


def _function_vmap(cls: Any, args: tuple[Any, ...]) -> Any:
    """``cls.apply(*args)`` (an ``autograd.Function``) with batched arguments: with
    ``generate_vmap_rule = True`` its forward/setup_context/backward/jvp run on the batched
    tensors, the ops in them batching by their rules (``Function._apply_generated``);
    otherwise over the innermost vmap level they are batched at, through ``cls.vmap(info,
    in_dims, *args)`` (PyTorch's protocol: the level's axis at ``in_dims``, outputs batched
    along ``out_dims``)."""
    from .autograd.function import VmapInfo

    if cls._vmap_rule() == "generate":
        return cls._apply_generated(args)
    level = max(lv for a in args for lv in _batching.levels_of(a))
    size = dict(_grad_mode.state.vmap_levels)[level]
    batched = [level in _batching.levels_of(a) for a in args]
    unwrapped = [
        _batching.move_level_out(a, level, 0, size) if b else a
        for a, b in zip(args, batched, strict=True)
    ]
    info = VmapInfo(size, _batching.randomness_of(level))
    out, out_dims = cls._call_vmap(info, tuple(0 if b else None for b in batched), *unwrapped)
    leaves, spec = _pytree.tree_flatten(out)
    dims = (
        [out_dims] * len(leaves)
        if isinstance(out_dims, int | type(None))
        else _pytree.broadcast_prefix(out_dims, out, "autograd.Function.vmap: out_dims")
    )
    wrapped = [
        o if d is None or not isinstance(o, Tensor) else _batching.move_level_in(o, d, level)
        for o, d in zip(leaves, dims, strict=True)
    ]
    return _pytree.tree_unflatten(wrapped, spec)


_batching.FUNCTION_VMAP[0] = _function_vmap


def vmap(
    func: Callable[..., Any],
    in_dims: Any = 0,
    out_dims: Any = 0,
    randomness: str = "error",
    *,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """``func`` mapped over an axis of its inputs: ``vmap(f)(xs)[i] == f(xs[i])``, computed by
    one call of ``f`` on the whole batch (each op's batching rule, :mod:`matgrad.ops.batching`).

    ``in_dims``: per positional argument the axis to map over (an int, negative allowed, or
    None for an unbatched argument), a pytree prefix of the arguments (``({"x": 0, "y":
    None},)``); keyword arguments are not batched. ``out_dims``: where the batch axis goes in
    each output (an int or a prefix of the output pytree). ``randomness``: ``'error'`` (a random
    op inside raises), ``'same'`` (one draw for the whole batch), ``'different'`` (one draw per
    batch element: ``rand``/``randn``/``randint`` and their ``_like`` forms draw the batch
    at once; code drawing from the generator directly, as dropout does, refuses 'different').
    ``chunk_size``: map at most that many elements per call (memory), concatenating the
    results. Nests: ``vmap(vmap(f))``; composes with every transform of this module."""
    _check_randomness(randomness, "vmap")
    _check_chunk(chunk_size, "vmap")
    if not callable(func):
        raise TypeError(f"vmap: func must be callable, got {type(func).__name__}")

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        leaves, spec = _pytree.tree_flatten(args)
        if isinstance(in_dims, int | type(None)):
            dims = [in_dims] * len(leaves)
        elif isinstance(in_dims, tuple):
            if len(in_dims) != len(args):
                raise ValueError(
                    f"vmap(f, in_dims={in_dims!r}, ...)(<inputs>): in_dims is not compatible "
                    f"with the structure of `inputs`: {len(in_dims)} in_dims for {len(args)} "
                    "positional arguments"
                )
            dims = _pytree.broadcast_prefix(in_dims, args, "vmap: in_dims")
        else:
            raise ValueError(
                f"vmap(f, in_dims={in_dims!r}, ...): expected `in_dims` to be int or a "
                "(potentially "
                f"nested) tuple matching the structure of inputs, got: {type(in_dims).__name__}."
            )
        size = None
        for x, d in zip(leaves, dims, strict=True):
            if d is None:
                continue
            if not isinstance(d, int):
                raise ValueError(
                    f"vmap: in_dim must be an int or None, got {d!r} ({type(d).__name__})"
                )
            if not isinstance(x, Tensor):
                raise ValueError(
                    f"vmap: got in_dim={d} for an input that is not a Tensor but a "
                    f"{type(x).__name__}; use in_dim=None for non-Tensor inputs"
                )
            nd = x.ndim
            if not -nd <= d < nd:
                raise ValueError(
                    f"vmap: got in_dim={d} for an input but the input is of shape "
                    f"{tuple(x.shape)}: in_dim must be in [{-nd}, {nd - 1}]"
                )
            n = x.shape[d]
            if size is not None and n != size:
                sizes = [x.shape[d] for x, d in zip(leaves, dims, strict=True) if d is not None]
                raise ValueError(
                    "vmap: Expected all tensors to have the same size in the mapped dimension, "
                    f"got sizes {sizes} for the mapped dimension"
                )
            size = n
        if size is None:
            raise ValueError(
                "vmap(f, in_dims=..., ...)(<inputs>): at least one input must be a Tensor "
                "batched along in_dims (all in_dims are None, or no input is a Tensor)"
            )
        if chunk_size is not None and size > chunk_size:
            return _chunked(leaves, dims, spec, size, kwargs)
        return _vmap_once(leaves, dims, spec, size, kwargs)

    def _vmap_once(leaves: list, dims: list, spec: Any, size: int, kwargs: dict) -> Any:
        level = _batching.enter_level(size, randomness)
        try:
            with _randomness(randomness):
                batched = [
                    x if d is None else _batching.move_level_in(x, d, level)
                    for x, d in zip(leaves, dims, strict=True)
                ]
                out = func(*_pytree.tree_unflatten(batched, spec), **kwargs)
            outs, out_spec = _pytree.tree_flatten(out)
            for o in outs:
                if not isinstance(o, Tensor):
                    raise ValueError(
                        f"vmap: `func` must only return Tensors, got a {type(o).__name__} "
                        f"in its output"
                    )
            if isinstance(out_dims, int | type(None)):
                odims = [out_dims] * len(outs)
            else:
                odims = _pytree.broadcast_prefix(out_dims, out, "vmap: out_dims")
            results = []
            for o, d in zip(outs, odims, strict=True):
                if d is None:
                    if level in _batching.levels_of(o):
                        raise ValueError(
                            "vmap: out_dims=None for an output that is batched (it depends on "
                            "a batched input); give it an int out_dim"
                        )
                    results.append(o)
                    continue
                results.append(_batching.move_level_out(o, level, d, size))
        finally:
            _batching.exit_level(level)
        return _pytree.tree_unflatten(results, out_spec)

    def _chunked(leaves: list, dims: list, spec: Any, size: int, kwargs: dict) -> Any:
        pieces = []
        for start in range(0, size, chunk_size):
            n = min(chunk_size, size - start)
            part = [
                x if d is None else _ops.narrow(x, d, start, n)
                for x, d in zip(leaves, dims, strict=True)
            ]
            pieces.append(_vmap_once(part, dims, spec, n, kwargs))
        first, out_spec = _pytree.tree_flatten(pieces[0])
        if isinstance(out_dims, int | type(None)):
            odims = [out_dims] * len(first)
        else:
            odims = _pytree.broadcast_prefix(out_dims, pieces[0], "vmap: out_dims")
        columns = zip(*(_pytree.tree_leaves(p) for p in pieces), strict=True)
        joined = [
            col[0] if d is None else _ops.cat(list(col), d)
            for col, d in zip(columns, odims, strict=True)
        ]
        return _pytree.tree_unflatten(joined, out_spec)

    wrapped.__wrapped__ = func  # type: ignore[attr-defined]
    return wrapped


# -- functional_call -------------------------------------------------------------------------------
def functional_call(
    module: Any,
    parameter_and_buffer_dicts: Any,
    args: Any = None,
    kwargs: dict[str, Any] | None = None,
    *,
    tie_weights: bool = True,
    strict: bool = False,
) -> Any:
    """``module(*args, **kwargs)`` with its parameters and buffers replaced by the tensors of
    ``parameter_and_buffer_dicts`` (a dict from dotted names, ``"0.weight"``, or a tuple of such
    dicts), restored afterwards. ``tie_weights``: a replaced parameter also replaces the names
    tied to it (the same Parameter object under two names). ``strict``: every parameter and
    buffer must be given, and no other name. Gradients flow to the given tensors, so
    ``grad(lambda p: loss(functional_call(model, p, x)))(params)`` differentiates by them."""
    from .nn.module import Module

    if not isinstance(module, Module):
        raise TypeError(f"functional_call: expected an nn.Module, got {type(module).__name__}")
    if isinstance(parameter_and_buffer_dicts, dict):
        given = dict(parameter_and_buffer_dicts)
    elif isinstance(parameter_and_buffer_dicts, tuple | list):
        given = {}
        for d in parameter_and_buffer_dicts:
            if not isinstance(d, dict):
                raise ValueError(
                    "functional_call: expected a dict or a tuple of dicts, got a "
                    f"{type(d).__name__} in the tuple"
                )
            dup = set(given) & set(d)
            if dup:
                raise ValueError(
                    f"functional_call: {sorted(dup)} appeared in multiple dictionaries; behavior "
                    "of functional call is ambiguous"
                )
            given.update(d)
    else:
        raise ValueError(
            "functional_call: expected parameter_and_buffer_dicts to be a dict, or a list/tuple "
            f"of dicts, but got {type(parameter_and_buffer_dicts).__name__}"
        )
    # every name of every parameter and buffer, tied names included
    slots: dict[str, tuple[Any, str, str]] = {}  # name -> (submodule, store, attribute)
    for prefix, mod in module.named_modules(remove_duplicate=False):
        for store in ("_parameters", "_buffers"):
            for attr, value in mod.__dict__[store].items():
                if value is not None:
                    slots[f"{prefix}.{attr}" if prefix else attr] = (mod, store, attr)
    if strict:
        missing = sorted(set(slots) - set(given))
        unexpected = sorted(set(given) - set(slots))
        if missing or unexpected:
            raise RuntimeError(
                "Error(s) in reparametrizing for "
                f"{type(module).__name__}: missing key(s): {missing}; unexpected key(s): "
                f"{unexpected}"
            )
    replace: dict[str, Any] = dict(given)
    if tie_weights:
        by_object: dict[int, list[str]] = {}
        for name, (mod, store, attr) in slots.items():
            by_object.setdefault(id(mod.__dict__[store][attr]), []).append(name)
        for names in by_object.values():
            chosen = [n for n in names if n in given]
            if len(chosen) > 1 and len({id(given[n]) for n in chosen}) > 1:
                raise ValueError(
                    f"functional_call got multiple values for keys {chosen}, which are tied. "
                    "Consider using tie_weights=False"
                )
            if chosen:
                for n in names:
                    replace.setdefault(n, given[chosen[0]])
    saved = []
    try:
        for name, value in replace.items():
            if name in slots:
                mod, store, attr = slots[name]
                saved.append((mod, store, attr, mod.__dict__[store][attr]))
                mod.__dict__[store][attr] = value
            else:
                _set_plain_attribute(module, name, value, saved)
        if args is None:
            args = ()
        elif not isinstance(args, tuple):
            args = (args,)
        return module(*args, **(kwargs or {}))
    finally:
        for mod, store, attr, old in reversed(saved):
            if store is None:
                if old is _MISSING:
                    delattr(mod, attr)
                else:
                    object.__setattr__(mod, attr, old)
            else:
                mod.__dict__[store][attr] = old


_MISSING = object()


def stack_module_state(models: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(params, buffers)``: each parameter (buffer) of ``models`` (modules of one class, in
    one training mode) stacked along a new leading axis, by name (``torch.func.
    stack_module_state``). Stacked parameters are new leaves that require grad if the
    originals do. For model ensembling: ``vmap(lambda p, b, x: functional_call(base, (p, b),
    (x,)), in_dims=(0, 0, None))(params, buffers, x)`` runs every model on ``x`` at once."""
    from .nn.module import Module

    models = list(models)
    if not models:
        raise RuntimeError("stack_module_state: Expected at least one model, got 0.")
    for m in models:
        if not isinstance(m, Module):
            raise TypeError(f"stack_module_state: expected nn.Modules, got {type(m).__name__}")
    if len({bool(m.training) for m in models}) != 1:
        raise RuntimeError(
            "stack_module_state: Expected all models to have the same training/eval mode."
        )
    if len({type(m) for m in models}) != 1:
        raise RuntimeError("stack_module_state: Expected all models to be of the same class.")

    def stacked(per_model: list[dict[str, Tensor]], what: str) -> dict[str, Tensor]:
        names = list(per_model[0])
        for i, d in enumerate(per_model[1:], 1):
            if list(d) != names:
                raise RuntimeError(
                    f"stack_module_state: model {i} has {what} {sorted(d)}, model 0 has "
                    f"{sorted(names)}"
                )
        out = {}
        for name in names:
            ts = [d[name] for d in per_model]
            grads = {bool(t.requires_grad) for t in ts}
            if len(grads) != 1:
                raise RuntimeError(
                    f"Expected {name} from each model to have the same .requires_grad"
                )
            with _grad_mode.no_grad():
                s = _ops.stack([t.detach() for t in ts], 0)
            out[name] = s.requires_grad_() if grads == {True} else s
        return out

    params = stacked([dict(m.named_parameters()) for m in models], "parameters")
    buffers = stacked([dict(m.named_buffers()) for m in models], "buffers")
    return params, buffers


def _set_plain_attribute(module: Any, name: str, value: Any, saved: list) -> None:
    """A name that is no parameter or buffer: set as an attribute of its submodule (PyTorch
    does the same), remembered to be restored."""
    *path, attr = name.split(".")
    mod = module
    for part in path:
        mod = getattr(mod, part)
    old = mod.__dict__.get(attr, _MISSING)
    saved.append((mod, None, attr, old))
    object.__setattr__(mod, attr, value)
