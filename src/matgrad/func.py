"""Composable function transforms (``matgrad.func``, after ``torch.func``).

Each transform takes a function and returns a function::

    grad(f)(x)            = d f / d x                      (f scalar)
    grad_and_value(f)(x)  = (d f / d x, f(x))
    value_and_grad(f)(x)  = (f(x), d f / d x)              (JAX's order)
    vjp(f, x)             = (f(x), v -> v^T J)
    jvp(f, (x,), (v,))    = (f(x), J v)
    jacrev(f)(x)          = J, by reverse mode: one batched backward pass per output, rows e_r^T J
    jacfwd(f)(x)          = J, by forward mode: one batched forward pass per input, columns J e_k
    hessian(f)(x)         = jacrev(jacrev(f))(x), d^2 f / dx dx

with ``J[i, ...] = d y / d x`` of shape ``y.shape + x.shape``. ``argnums`` (an int or a tuple)
picks the arguments to differentiate; ``has_aux=True`` means ``f`` returns ``(output, aux)`` and
``aux`` is passed through. Arguments may be tensors or NumPy arrays; results are tensors.

Transforms nest: ``jacfwd(jacrev(f))``, ``jacrev(jacfwd(f))``, ``jacrev(jacrev(f))``,
``grad(grad(f))``. A transform
records the graph of its derivative (``create_graph=True``) only when that derivative may itself
be differentiated: inside another transform, when an argument requires grad, or inside a
forward-mode level. Otherwise it runs the fast path and returns plain tensors.
Forward-over-forward (``jacfwd`` inside ``jacfwd``/``jvp``) is not supported: a tensor holds one
tangent.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .autograd import forward_ad
from .autograd import functional as _F
from .core import grad_mode as _grad_mode
from .core.engine import grad as _autograd_grad
from .ops import composite as _ops
from .tensor import Tensor

__all__ = [
    "grad",
    "grad_and_value",
    "hessian",
    "jacfwd",
    "jacrev",
    "jvp",
    "value_and_grad",
    "vjp",
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


def _needs_graph(args: tuple[Any, ...]) -> bool:
    """Whether a transform's result may be differentiated again (see the module doc)."""
    return (
        _depth.value > 0
        or _grad_mode.state.forward_level > 0
        or any(isinstance(a, Tensor) and a.requires_grad for a in args)
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
    if isinstance(tree, Tensor):
        return fn(tree)
    if isinstance(tree, tuple | list):
        return type(tree)(_map_tensors(fn, t) for t in tree)
    if isinstance(tree, dict):
        return {k: _map_tensors(fn, v) for k, v in tree.items()}
    return tree


def _finish(tree: Any, create_graph: bool) -> Any:
    """Results of a transform: detached (and without tangents) on the fast path."""
    if create_graph:
        return tree
    return _map_tensors(lambda t: t.detach(), tree)


def _outputs(out: Any, fn_name: str) -> tuple[bool, tuple[Tensor, ...]]:
    if isinstance(out, Tensor):
        return False, (out,)
    if isinstance(out, tuple | list) and all(isinstance(o, Tensor) for o in out):
        return True, tuple(out)
    raise TypeError(
        f"{fn_name}: the function must return a Tensor or a tuple of Tensors, got "
        f"{type(out).__name__}"
    )


def _prepare(
    args: tuple[Any, ...], nums: tuple[int, ...], create_graph: bool, need_graph: bool, fn_name: str
) -> tuple[list[Any], list[Tensor]]:
    """Copy of ``args`` with the differentiated ones replaced by fresh inputs."""
    new_args = list(args)
    xs = []
    for a in nums:
        x = _F._prepare_input(_to_tensor(args[a], fn_name), create_graph, need_graph)
        new_args[a] = x
        xs.append(x)
    return new_args, xs


# -- grad ------------------------------------------------------------------------------------------
def grad_and_value(
    func: Callable[..., Any], argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """``(grad, value)`` of a scalar function, ``grad = d f / d args[argnums]`` (a tuple when
    ``argnums`` is); with ``has_aux``: ``(grad, (value, aux))``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args), "grad")
        create_graph = _needs_graph(args)
        with _nested():
            new_args, xs = _prepare(args, nums, create_graph, True, "grad")
            out, aux = _split_aux(func(*new_args, **kwargs), has_aux, "grad")
            if not isinstance(out, Tensor) or out.numel() != 1:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise RuntimeError(
                    f"grad: the function must return a Tensor with a single "
                    f"element (use jacrev for others), got {shape}"
                )
            if out.requires_grad:
                grads = _autograd_grad(out, xs, create_graph=create_graph, allow_unused=True)
            else:
                grads = (None,) * len(xs)
            grads = tuple(
                g if g is not None else _ops.zeros_like(x.detach())
                for g, x in zip(grads, xs, strict=True)
            )
        g = grads[0] if isinstance(argnums, int) else grads
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


# -- vjp / jvp -------------------------------------------------------------------------------------
def vjp(func: Callable[..., Any], *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """``(func(*primals), vjp_fn)`` (and ``aux``), where ``vjp_fn(v)`` returns
    ``v^T d func / d primals``, a tuple with one entry per primal. ``v`` has the structure of
    the output (a tuple of cotangents for a tuple output); ``vjp_fn`` may be called many
    times."""
    create_graph = _needs_graph(primals)
    nums = tuple(range(len(primals)))
    with _nested():
        new_args, xs = _prepare(primals, nums, create_graph, True, "vjp")
        out, aux = _split_aux(func(*new_args), has_aux, "vjp")
        is_tuple, outs = _outputs(out, "vjp")

    def vjp_fn(*cotangents: Any) -> tuple[Tensor, ...]:
        cts = cotangents[0] if len(cotangents) == 1 and is_tuple else cotangents
        cts = tuple(_to_tensor(c, "vjp_fn") for c in cts)
        if len(cts) != len(outs):
            raise RuntimeError(f"vjp_fn: expected {len(outs)} cotangents, got {len(cts)}")
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
                grads = _autograd_grad(
                    [o for o, _ in live],
                    xs,
                    [c for _, c in live],
                    retain_graph=True,
                    create_graph=nested,
                    allow_unused=True,
                )
            else:
                grads = (None,) * len(xs)
            res = tuple(
                g if g is not None else _ops.zeros_like(x.detach())
                for g, x in zip(grads, xs, strict=True)
            )
        return _finish(res, nested)

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
    ``v = tangents`` by forward mode, one pass with dual tensors."""
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError("jvp: primals and tangents must be tuples")
    if len(primals) != len(tangents):
        raise RuntimeError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    primals = tuple(primals)
    create_graph = _needs_graph(primals)
    holder: dict[str, Any] = {}

    def call(*args: Tensor) -> tuple[Tensor, ...]:
        out, holder["aux"] = _split_aux(func(*args), has_aux, "jvp")
        holder["is_tuple"], outs = _outputs(out, "jvp")
        return outs

    with _nested():
        _, xs = _prepare(primals, tuple(range(len(primals))), create_graph, False, "jvp")
        ts = []
        for t, x in zip(tangents, xs, strict=True):
            t = _to_tensor(t, "jvp")
            if tuple(t.shape) != tuple(x.shape):
                raise RuntimeError(
                    f"jvp: tangent of shape {tuple(t.shape)} for a primal of shape {tuple(x.shape)}"
                )
            ts.append(t)
        outs, out_ts = _F._forward_pass(call, xs, ts, batched=False)
    out_ts = [t if t is not None else _ops.zeros_like(o) for t, o in zip(out_ts, outs, strict=True)]
    primal_out = outs if holder["is_tuple"] else outs[0]
    tangent_out = tuple(out_ts) if holder["is_tuple"] else out_ts[0]
    primal_out, tangent_out = _finish((primal_out, tangent_out), create_graph)
    if has_aux:
        return primal_out, tangent_out, _finish(_strip_tangents(holder["aux"]), create_graph)
    return primal_out, tangent_out


def _strip_tangents(tree: Any) -> Any:
    return _map_tensors(lambda t: forward_ad.unpack_dual(t).primal, tree)


# -- Jacobians -------------------------------------------------------------------------------------
def jacrev(
    func: Callable[..., Any], argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """The Jacobian by reverse mode: for each output ``y`` one backward pass with the batch of
    cotangents ``I`` (all rows ``e_r^T J`` at once). Blocks have shape ``y.shape + x.shape``;
    a tuple per output for a tuple ``argnums``, a tuple over outputs for a tuple output. With
    ``has_aux``: ``(jacobian, aux)``."""
    return _jacobian(func, argnums, has_aux, "reverse-mode", "jacrev")


def jacfwd(
    func: Callable[..., Any], argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """The Jacobian by forward mode: for each argument ``x`` one forward pass with the batch of
    tangents ``I`` (all columns ``J e_k`` at once). Same layout as :func:`jacrev`."""
    return _jacobian(func, argnums, has_aux, "forward-mode", "jacfwd")


def _jacobian(
    func: Callable[..., Any],
    argnums: int | tuple[int, ...],
    has_aux: bool,
    strategy: str,
    fn_name: str,
) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args), fn_name)
        create_graph = _needs_graph(args)
        holder: dict[str, Any] = {}
        with _nested():
            new_args, xs = _prepare(args, nums, create_graph, strategy == "reverse-mode", fn_name)

            def call(*diff_args: Tensor) -> tuple[Tensor, ...]:
                full = list(new_args)
                for a, x in zip(nums, diff_args, strict=True):
                    full[a] = x
                out, holder["aux"] = _split_aux(func(*full, **kwargs), has_aux, fn_name)
                holder["is_tuple"], outs = _outputs(out, fn_name)
                return outs

            outs, blocks = _F._jacobian_blocks(call, xs, strategy, create_graph, True, fn_name)
        jac = []
        for o, row in zip(outs, blocks, strict=True):
            row = [
                b if b is not None else _F._zeros((*o.shape, *x.shape), o.dtype)
                for x, b in zip(xs, row, strict=True)
            ]
            jac.append(row[0] if isinstance(argnums, int) else tuple(row))
        jac = _finish(tuple(jac) if holder["is_tuple"] else jac[0], create_graph)
        if not has_aux:
            return jac
        aux = holder["aux"]
        if strategy == "forward-mode":  # aux was computed from this transform's dual tensors
            aux = _strip_tangents(aux)
        return jac, _finish(aux, create_graph)

    return wrapper


def hessian(func: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """The Hessian ``H[i][j] = d^2 f / d x_i d x_j`` of a scalar function, shape ``x_i.shape +
    x_j.shape``: ``jacrev(jacrev(f))``, the Jacobian of the gradient by one batched backward
    pass through the graph of the gradient (``jacfwd(jacrev(f))``, PyTorch's choice, gives the
    same and measured slower here, see benchmarks/bench_jacobian.py)."""
    return jacrev(jacrev(func, argnums), argnums)
