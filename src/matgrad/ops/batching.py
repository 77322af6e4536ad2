"""Batching rules: how a row of the table runs on tensors carrying hidden vmap batch axes.

Inside :func:`matgrad.func.vmap` an argument becomes a :class:`BatchedTensor`: its array (the
*physical* value) holds one leading axis per vmap level it is batched over (outermost level
first), followed by the axes the vmapped function sees (the *logical* value). While ops
dispatch (``grad_mode.state.vmap``), a batched tensor reports its logical ``shape``/``ndim``;
when a primitive gets one, the rule chosen here rewrites the call into ONE ordinary call of
primitives on the physical arrays (so autograd and forward mode run through it unchanged):

    elementwise  batched inputs get size-1 axes between their batch axes and their own, so
                 NumPy's right-aligned broadcasting lines up the logical axes
    reduction,   ``dim`` attributes become negative axes of the logical value (negative
    scan         axes name the same axes of the physical one); dim=None -> every logical axis
    shape        the batch sizes are prepended to shapes, dims shifted the same way
    index        getitem prepends a full slice per batch axis; with batched index tensors
                 (``composite.getitem``/``index_put``/``take_along_axis``/``gather`` send
                 them here, :func:`getitem`) or masks among separated advanced indices, an
                 arange per batch axis is the first advanced index
    product      mm/bmm/mv/dot/outer/matmul are rewritten as matmul (or mul + sum) forms
    linalg       the forwards batch over leading axes already: inputs are expanded to the
                 full batch shape and the logical batch ranks aligned

Per-op overrides are :data:`RULES`, keyed by op name (the one place besides the row's
``kind:``). A call no rule can express raises :class:`BatchingUnsupported`; vmap then runs that
op once per batch element and stacks the results, with a :class:`VmapFallbackWarning` naming
the op. The physical calls run with dispatch off (:func:`physical`), where a batched tensor
looks like the plain tensor of its physical array.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..core import apply as _apply
from ..core import engine as _engine
from ..core.engine import grad as _engine_grad
from ..core.grad_mode import state
from ..core.graph import BatchingUnsupported
from ..core.tensor_base import Size, Tensor
from .registry import OP_OBJECTS, OPS
from .registry import PRIMITIVES as P

__all__ = [
    "BatchedTensor",
    "VmapFallbackWarning",
    "autograd_grad",
    "enter_level",
    "exit_level",
    "is_batched",
    "levels_of",
    "physical",
]

_level_ids = itertools.count(1)


class VmapFallbackWarning(UserWarning):
    """An op met inside ``vmap`` had no batching rule for its arguments; it ran once per batch
    element (a Python loop). ``op`` is its name."""

    def __init__(self, message: str, op: str | None = None) -> None:
        super().__init__(message)
        self.op = op


class BatchedTensor(Tensor):
    """A tensor with hidden vmap batch axes in front (``_levels``: the vmap level of each,
    outermost first). While ops dispatch it shows its logical shape; with dispatch off it is
    the plain tensor of its physical array (rules, the engine and formulas see that)."""

    __slots__ = ()
    _levels: tuple[int, ...] = ()

    @property
    def shape(self) -> Any:  # type: ignore[override]
        shape = self._data.shape
        return Size(shape[len(self._levels) :] if state.vmap else shape)

    @property
    def ndim(self) -> int:  # type: ignore[override]
        return self._data.ndim - (len(self._levels) if state.vmap else 0)

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return math.prod(self.shape)

    nelement = numel

    def size(self, dim: int | None = None) -> Any:
        return Size(self.shape) if dim is None else self.shape[dim]

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def _data_dependent(self, what: str) -> None:
        if state.vmap:
            raise RuntimeError(
                f"vmap: {what} of a batched tensor is data-dependent control flow (each batch "
                "element has its own value); it is not supported inside vmap"
            )

    def item(self) -> Any:
        self._data_dependent("item()")
        return Tensor.item(self)

    def __bool__(self) -> bool:
        self._data_dependent("bool()")
        return Tensor.__bool__(self)

    def tolist(self) -> Any:
        self._data_dependent("tolist()")
        return Tensor.tolist(self)

    def numpy(self, force: bool = False) -> np.ndarray:
        self._data_dependent("numpy()")
        return Tensor.numpy(self, force)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        self._data_dependent("conversion to a NumPy array")
        return Tensor.__array__(self, dtype, copy)

    def detach(self) -> Tensor:
        return _as_batched(Tensor.detach(self), self._levels)

    def __repr__(self) -> str:
        sizes = tuple(self._data.shape[: len(self._levels)])
        plain = Tensor._wrap(self._data)
        return f"BatchedTensor(levels={self._levels}, batch sizes={sizes}, physical={plain!r})"


def _as_batched(t: Tensor, levels: tuple[int, ...]) -> Tensor:
    """``t`` (a tensor this module made) marked as batched over ``levels`` (plain if none)."""
    if levels:
        t.__class__ = BatchedTensor
        t._levels = levels
    elif type(t) is BatchedTensor:
        t.__class__ = Tensor
        t.__dict__.pop("_levels", None)
    return t


def is_batched(x: Any) -> bool:
    return type(x) is BatchedTensor


def levels_of(x: Any) -> tuple[int, ...]:
    return x._levels if type(x) is BatchedTensor else ()


@contextlib.contextmanager
def physical() -> Iterator[None]:
    """Dispatch off: ops run on physical arrays and batched tensors look plain."""
    prev, state.vmap = state.vmap, 0
    try:
        yield
    finally:
        state.vmap = prev


def _sizes() -> dict[int, int]:
    return dict(state.vmap_levels)


def active_levels() -> tuple[int, ...]:
    return tuple(level for level, _ in state.vmap_levels)


def _logical_ndim(x: Any) -> int:
    if isinstance(x, Tensor):
        return x._data.ndim - len(levels_of(x))
    return np.ndim(x)


# -- moving batch axes (all in physical mode, through recorded ops) ------------------------------
def align(x: Any, levels: Sequence[int], ndim: int | None = None, expand: bool = False) -> Any:
    """``x``'s physical value with one leading axis per level of ``levels`` (a size-1 axis
    where ``x`` is not batched over it, or the level's size with ``expand``), then its logical
    axes, padded with size-1 axes in front to ``ndim`` logical axes."""
    own = levels_of(x)
    if not isinstance(x, Tensor):
        if not expand and ndim is None:
            return x
        x = Tensor._wrap(np.asarray(x))
    sizes = _sizes()
    data_shape = x._data.shape
    k = len(own)
    logical = data_shape[k:]
    pad = 0 if ndim is None else ndim - len(logical)
    if tuple(own) == tuple(levels) and pad <= 0:
        return x
    pos = {lv: i for i, lv in enumerate(own)}
    # reorder the own batch axes into the order of `levels` (they are sorted in both)
    shape = [data_shape[pos[lv]] if lv in pos else 1 for lv in levels]
    shape += [1] * max(pad, 0) + list(logical)
    out = P.reshape(x, shape=tuple(shape)) if tuple(shape) != data_shape else x
    if expand:
        full = tuple(sizes[lv] for lv in levels) + tuple(shape[len(levels) :])
        if full != tuple(shape):
            out = P.expand(out, shape=full)
    return out


def move_level_in(x: Tensor, dim: int, level: int) -> Tensor:
    """``x`` batched over ``level`` along its logical axis ``dim`` (vmap's ``in_dims``)."""
    with physical():
        own = levels_of(x)
        k = len(own)
        nd = x._data.ndim - k
        d = _apply.normalize_dim("vmap", dim, nd) + nd + k  # the physical axis
        perm = list(range(x._data.ndim))
        perm.insert(k, perm.pop(d))
        out = P.permute(x, dims=tuple(p - x._data.ndim for p in perm))
    return _as_batched(out, (*own, level))


def move_level_out(x: Any, level: int, dim: int, size: int) -> Any:
    """The logical value of ``x`` with ``level``'s batch axis at logical axis ``dim`` (vmap's
    ``out_dims``); a tensor not batched over ``level`` is expanded along a new axis."""
    with physical():
        own = levels_of(x)
        rest = tuple(lv for lv in own if lv != level)
        k = len(own)
        if level in own:
            nd = x._data.ndim - k + 1
            d = _apply.normalize_dim("vmap", dim, nd) + nd  # logical position, >= 0
            src = own.index(level)
            perm = list(range(x._data.ndim))
            perm.insert(len(rest) + d, perm.pop(src))
            out = P.permute(x, dims=tuple(p - x._data.ndim for p in perm))
        else:
            nd = x._data.ndim - k + 1
            d = _apply.normalize_dim("vmap", dim, nd) + nd
            shape = list(x._data.shape)
            shape.insert(k + d, 1)
            out = P.reshape(x, shape=tuple(shape))
            full = list(shape)
            full[k + d] = size
            out = P.expand(out, shape=tuple(full))
    return _as_batched(out, rest)


def to_levels(x: Tensor, levels: Sequence[int]) -> Tensor:
    """``x`` batched (expanded where it is not) over every level of ``levels`` and its own."""
    want = tuple(sorted(set(levels) | set(levels_of(x))))
    if levels_of(x) == want:
        return x
    with physical():
        out = align(x, want, expand=True)
    return _as_batched(out, want)


# -- dispatch --------------------------------------------------------------------------------------
def dispatch(op: Any, inputs: tuple, attrs: dict) -> Any:
    """Run ``op`` (an :class:`~matgrad.core.apply.Op`) on ``inputs`` of which some may be
    batched: the op's rule, or, where it raises :class:`BatchingUnsupported`, a loop."""
    flat = [x for g in inputs for x in (g if isinstance(g, list | tuple) else (g,))]
    levels = tuple(sorted({lv for x in flat for lv in levels_of(x)}))
    with physical():
        if not levels:
            return OPS[op.name](*inputs, **attrs)
        rule = RULES.get(op.name) or KIND_RULES.get(op.rule.kind)
        try:
            if rule is None:
                raise BatchingUnsupported(op.name)
            out = rule(op, inputs, attrs, levels)
        except BatchingUnsupported as exc:
            _warn_fallback(exc.op or op.name)
            out = _loop(op, inputs, attrs, levels)
    outs = out if isinstance(out, tuple) else (out,)
    sizes = _sizes()
    batch = tuple(sizes[lv] for lv in levels)
    for o in outs:
        if tuple(o._data.shape[: len(levels)]) != batch:  # guards against a wrong rule
            raise RuntimeError(
                f"vmap: internal error: the batching rule of {op.name} returned physical shape "
                f"{tuple(o._data.shape)}, expected leading batch axes {batch}"
            )
        _as_batched(o, levels)
    return out


_PACKAGE_DIR = __file__.rsplit("/ops/", 1)[0]


def _warn_fallback(name: str) -> None:
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        VmapFallbackWarning(
            f"vmap: no batching rule for '{name}' with these arguments; running it once per "
            "batch element (a Python loop) and stacking the results",
            name,
        ),
        stacklevel=level,
    )


def _loop(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    """The fallback: ``op`` once per element of the (flattened) batch, results stacked."""
    sizes = _sizes()
    batch = tuple(sizes[lv] for lv in levels)
    n = math.prod(batch)

    def flat(x: Any) -> Any:
        if not levels_of(x):
            return None
        full = align(x, levels, expand=True)
        return P.reshape(full, shape=(n, *full._data.shape[len(levels) :]))

    flats = [[flat(t) for t in g] if isinstance(g, list | tuple) else flat(g) for g in inputs]
    results = []
    for i in range(n):
        args = [
            [t if f is None else P.getitem(f, index=i) for t, f in zip(g, fg, strict=True)]
            if isinstance(g, list | tuple)
            else (g if fg is None else P.getitem(fg, index=i))
            for g, fg in zip(inputs, flats, strict=True)
        ]
        results.append(OPS[op.name](*args, **attrs))
    if op.multi:
        cols = zip(*results, strict=True)
        return tuple(_restack(list(c), batch) for c in cols)
    return _restack(results, batch)


def _restack(parts: list[Tensor], batch: tuple[int, ...]) -> Tensor:
    stacked = OPS["stack"](parts, dim=-(parts[0]._data.ndim + 1))
    return P.reshape(stacked, shape=(*batch, *stacked._data.shape[1:]))


# -- rules ----------------------------------------------------------------------------------------
_DIM_ATTRS = ("dim", "dims", "dim0", "dim1", "dim2")


def _norm(op: str, value: Any, ndim: int) -> Any:
    """A dim attribute as negative axes of a logical value of ``ndim`` axes."""
    if value is None:
        return None
    if isinstance(value, int | np.integer):
        return _apply.normalize_dim(op, value, ndim)
    return tuple(_apply.normalize_dim(op, d, ndim) for d in value)


def _dims(op: Any, attrs: dict, ndim: int, extra: int = 0) -> dict:
    """``attrs`` with every dim attribute made negative against ``ndim + extra`` logical axes
    (typed ``Dims`` attributes: None -> every logical axis)."""
    out = dict(attrs)
    rule = op.rule
    for name in rule.attrs:
        if name not in _DIM_ATTRS or name not in out:
            continue
        kind = rule.attr_types.get(name)
        if kind == "Dims":
            out[name] = _apply.normalize_dims(op.name, out[name], ndim)
        elif kind == "Dim":
            out[name] = _apply.normalize_dim(op.name, out[name], ndim)
        else:
            out[name] = _norm(op.name, out[name], ndim + extra)
    return out


def _call(op: Any, inputs: Sequence[Any], attrs: dict) -> Any:
    return OPS[op.name](*inputs, **attrs)


def elementwise(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    nd = max(_logical_ndim(x) for x in inputs if isinstance(x, Tensor))
    args = [align(x, levels, nd) if levels_of(x) else x for x in inputs]
    return _call(op, args, attrs)


def single(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    """A one-input op whose forward keeps leading axes (dims made negative)."""
    x = inputs[0]
    if len(inputs) != 1:
        return linalg(op, inputs, attrs, levels)
    return _call(op, [x], _dims(op, attrs, _logical_ndim(x)))


def linalg(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    """The linalg forwards batch over (and broadcast) leading axes: every tensor gets the full
    batch axes, then size-1 axes up to the largest logical rank, so that the logical leading
    axes line up as they would unbatched. A vector right-hand side of ``solve`` (PyTorch's
    rule: 1-d, or ``A.shape[:-1]``) is expanded to ``A``'s leading axes instead, which keeps
    it a batch of vectors."""
    tensors = [x for x in inputs if isinstance(x, Tensor)]
    if len(tensors) == 1:
        args = [align(x, levels, expand=True) if isinstance(x, Tensor) else x for x in inputs]
        return _call(op, args, _dims(op, attrs, _logical_ndim(inputs[0])))
    if op.name == "linalg_solve" and isinstance(inputs[0], Tensor):
        a, b = inputs
        na, nb = _logical_ndim(a), _logical_ndim(b)
        a_shape = a._data.shape[len(levels_of(a)) :]
        b_shape = b._data.shape[len(levels_of(b)) :]
        if nb == 1 or (nb == na - 1 and b_shape == a_shape[:-1]):
            a = align(a, levels, expand=True)
            b = align(b, levels, na - 1, expand=True)
            if b._data.shape != a._data.shape[:-1]:
                b = P.expand(b, shape=a._data.shape[:-1])
            return _call(op, [a, b], dict(attrs))
    nd = max(_logical_ndim(x) for x in tensors)
    args = [align(x, levels, nd, expand=True) if isinstance(x, Tensor) else x for x in inputs]
    return _call(op, args, _dims(op, attrs, nd))


def _prod(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    x = inputs[0]
    if attrs.get("dim") is None:  # every logical axis: flatten them
        k = len(levels)
        x = P.reshape(x, shape=(*x._data.shape[:k], -1))
        attrs = {**attrs, "dim": -1}
        out = _call(op, [x], attrs)
        if attrs.get("keepdim"):
            out = P.reshape(out, shape=(*out._data.shape[:k],) + (1,) * _logical_ndim(inputs[0]))
        return out
    return single(op, inputs, attrs, levels)


def _reshape(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    (x,) = inputs
    k = len(levels)
    return _call(op, [x], {**attrs, "shape": (*x._data.shape[:k], *attrs["shape"])})


def _expand(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    shape = tuple(attrs["shape"])
    x = align(inputs[0], levels, len(shape))
    k = len(levels)
    target = tuple(x._data.shape[:k]) + tuple(
        s if s != -1 else x._data.shape[k + i] for i, s in enumerate(shape)
    )
    return _call(op, [x], {**attrs, "shape": target})


def _permute(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    (x,) = inputs
    nd = _logical_ndim(x)
    return _call(op, [x], {**attrs, "dims": _norm(op.name, attrs["dims"], nd)})


def _unsqueeze(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    (x,) = inputs
    return _call(op, [x], {**attrs, "dim": _norm(op.name, attrs["dim"], _logical_ndim(x) + 1)})


def _diag_embed(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    (x,) = inputs
    nd = _logical_ndim(x) + 1
    return _call(
        op,
        [x],
        {
            **attrs,
            "dim1": _norm(op.name, attrs["dim1"], nd),
            "dim2": _norm(op.name, attrs["dim2"], nd),
        },
    )


def _joined(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...], extra: int) -> Any:
    (tensors,) = inputs
    nd = max(_logical_ndim(t) for t in tensors)
    parts = [align(t, levels, expand=True) for t in tensors]
    return _call(op, [parts], {**attrs, "dim": _norm(op.name, attrs["dim"], nd + extra)})


def _roll(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    if attrs.get("dims") is None:  # roll of the flattened logical value: flatten per sample
        (x,) = inputs
        k = len(levels)
        flat = P.reshape(x, shape=(*x._data.shape[:k], -1))
        out = _call(op, [flat], {**attrs, "dims": -1})
        return P.reshape(out, shape=x._data.shape)
    return single(op, inputs, attrs, levels)


def _advanced_first(index: tuple) -> int:
    """How many leading axes NumPy gives the result of ``x[index]`` for advanced indices that
    are separated (they go first); 0 when they stay in place."""
    arrays = [i for i in index if isinstance(i, np.ndarray | list) and np.ndim(i) > 0]
    if not arrays:
        return 0
    positions = [
        p
        for p, i in enumerate(index)
        if (isinstance(i, np.ndarray | list) and np.ndim(i) > 0)
        or isinstance(i, int | np.integer)
        or (isinstance(i, np.ndarray) and i.ndim == 0)
    ]
    if positions == list(range(positions[0], positions[-1] + 1)):
        return 0
    if any(np.asarray(a).dtype == bool for a in arrays):
        raise BatchingUnsupported("getitem")
    return np.broadcast(*[np.asarray(a) for a in arrays]).nd


def _batched_index(index: Any, k: int) -> tuple[tuple, int]:
    idx = index if isinstance(index, tuple) else (index,)
    return (slice(None),) * k + idx, _advanced_first(idx)


# -- advanced indices with batch axes: x[ar_0, ..., ar_k-1, *index] --------------------------------
# NumPy (and so matgrad) puts the broadcast block of advanced indices (integer arrays, and the
# integers among them) where the first one stands if they are adjacent, in front otherwise. With
# an arange per batch axis as the first advanced indices the block always lands in front of the
# physical result, (*batch, *block, *basic axes); the logical result wants the block at
# position p (the axes of the slices and Nones before the first advanced index) when adjacent.
_MASK_ERROR = (
    "vmap: We do not support batching operators that can support dynamic shape. Attempting to "
    "batch over indexing with a boolean mask."
)


def has_batched_index(index: Any) -> bool:
    """Whether an index (a tuple, or one element) holds a batched tensor."""
    if type(index) is BatchedTensor:
        return True
    return isinstance(index, tuple | list) and any(type(i) is BatchedTensor for i in index)


def _index_items(index: Any, ndim: int) -> list[Any]:
    """The elements of a logical index: Ellipsis expanded into slices, boolean arrays into
    their ``nonzero()`` arrays, lists and plain tensors into arrays; batched index tensors are
    kept (a batched boolean mask raises: its result's shape differs per batch element)."""
    items = list(index) if isinstance(index, tuple) else [index]
    out: list[Any] = []
    for i in items:
        if type(i) is BatchedTensor:
            kind = i._data.dtype.kind
            if kind == "b":
                raise RuntimeError(_MASK_ERROR)
            if kind not in "iu":
                raise IndexError(
                    f"tensors used as indices must be integer or boolean, got {i._data.dtype}"
                )
            out.append(i)
        elif isinstance(i, Tensor | list | np.ndarray):
            arr = i._data if isinstance(i, Tensor) else np.asarray(i)
            if arr.dtype.kind == "b" and arr.ndim > 0:
                out.extend(np.nonzero(arr))  # the same selection, one array per masked axis
            elif arr.dtype.kind in "iu" and not (arr.ndim == 0 and isinstance(i, list)):
                out.append(arr)
            else:
                raise IndexError(
                    f"vmap: unsupported index element of dtype {arr.dtype} and shape "
                    f"{arr.shape} together with a batched index"
                )
        elif isinstance(i, bool | np.bool_):
            raise NotImplementedError(
                "vmap: indexing with a Python bool together with a batched index tensor is not "
                "supported"
            )
        elif i is None or i is Ellipsis or isinstance(i, slice | int | np.integer):
            out.append(i)
        else:
            raise IndexError(f"vmap: unsupported index element {i!r} ({type(i).__name__})")
    ellipses = [n for n, i in enumerate(out) if i is Ellipsis]  # (by identity: arrays too)
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(1 for i in out if i is not None and i is not Ellipsis)
    if consumed > ndim:
        raise IndexError(
            f"too many indices for tensor of dimension {ndim} (got {consumed} index elements)"
        )
    if ellipses:
        e = ellipses[0]
        out[e : e + 1] = [slice(None)] * (ndim - consumed)
    return out


def _is_advanced(i: Any) -> bool:
    return isinstance(i, Tensor | np.ndarray | int | np.integer) and not isinstance(i, bool)


def _advanced_index(
    x: Tensor, items: list[Any], levels: tuple[int, ...]
) -> tuple[Tensor, tuple, int, int]:
    """(``x`` aligned to ``levels``, the physical index, the position p of the advanced
    block in the logical result, the block's rank) for index items with advanced entries."""
    sizes = _sizes()
    k = len(levels)
    adv = [n for n, i in enumerate(items) if _is_advanced(i)]
    rank = max(_logical_ndim(items[n]) if isinstance(items[n], Tensor) else np.ndim(items[n])
               for n in adv)  # fmt: skip
    adjacent = adv == list(range(adv[0], adv[-1] + 1))
    p = sum(1 for i in items[: adv[0]] if i is None or isinstance(i, slice)) if adjacent else 0
    own = levels_of(x)
    prefix = []
    for j, lv in enumerate(levels):
        n = sizes[lv]
        # an axis x is not batched over has size 1: index 0 of it for every batch element
        ar = np.arange(n) if lv in own else np.zeros(n, dtype=np.intp)
        prefix.append(ar.reshape((1,) * j + (n,) + (1,) * (k - 1 - j + rank)))
    body = []
    for i in items:
        if type(i) is BatchedTensor:
            a = align(i, levels)._data
            body.append(a.reshape(a.shape[:k] + (1,) * (rank + k - a.ndim) + a.shape[k:]))
        elif isinstance(i, np.ndarray):
            body.append(i.reshape((1,) * (k + rank - i.ndim) + i.shape))
        else:
            body.append(i)
    return align(x, levels), (*prefix, *body), p, rank


def _block_to(out: Tensor, k: int, p: int, rank: int) -> Tensor:
    """Physical ``(*batch, *block, *basic)`` -> ``(*batch, *basic[:p], *block, *basic[p:])``."""
    if not p or not rank:
        return out
    nd = out._data.ndim
    perm = [*range(k), *range(k + rank, k + rank + p), *range(k, k + rank)]
    perm += range(k + rank + p, nd)
    return P.permute(out, dims=tuple(q - nd for q in perm))


def _block_from(values: Tensor, k: int, p: int, rank: int) -> Tensor:
    """The inverse of :func:`_block_to` (values for a logical target, to the physical one)."""
    if not p or not rank:
        return values
    nd = values._data.ndim
    perm = [*range(k), *range(k + p, k + p + rank), *range(k, k + p)]
    perm += range(k + p + rank, nd)
    return P.permute(values, dims=tuple(q - nd for q in perm))


def _index_levels(x: Any, index: Any, *more: Any) -> tuple[int, ...]:
    items = index if isinstance(index, tuple | list) else (index,)
    found = {lv for i in items for lv in levels_of(i)} | set(levels_of(x))
    found |= {lv for m in more for lv in levels_of(m)}
    return tuple(sorted(found))


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` inside vmap where the index holds batched tensors (an embedding lookup
    ``weight[idx]`` with ``idx`` batched, ...): one gather over the whole batch."""
    levels = _index_levels(x, index)
    with physical():
        items = _index_items(index, _logical_ndim(x))
        xa, phys, p, rank = _advanced_index(x, items, levels)
        out = _block_to(P.getitem(xa, index=phys), len(levels), p, rank)
    return _as_batched(out, levels)


def index_put(x: Tensor, index: Any, values: Any, accumulate: bool) -> Tensor:
    """Out-of-place ``x[index] = values`` (``accumulate``: ``+=``, repeated positions adding
    up) inside vmap, the index holding batched tensors."""
    values = values if isinstance(values, Tensor) else Tensor._wrap(np.asarray(values))
    levels = _index_levels(x, index, values)
    k = len(levels)
    with physical():
        items = _index_items(index, _logical_ndim(x))
        x = _as_batched(align(x, levels, expand=True), levels)  # written per batch element
        xa, phys, p, rank = _advanced_index(x, items, levels)
        target = np.broadcast_to(np.empty((), dtype=np.bool_), xa._data.shape)[phys].shape
        if values.dtype != xa.dtype:
            values = OPS["to_dtype"](values, dtype=xa.dtype)
        v = _block_from(align(values, levels, len(target) - k), k, p, rank)
        if accumulate:
            v = P.expand(v, shape=target) if tuple(v._data.shape) != target else v
            out = OPS["add"](xa, OPS["zeros_scatter"](v, shape=xa._data.shape, index=phys))
        else:
            out = OPS["index_put"](xa, v, index=phys)
    return _as_batched(out, levels)


def take_along_axis(x: Tensor, indices: Tensor, dim: int) -> Tensor:
    """``take_along_axis(x, indices, dim)`` (``dim`` checked against the logical value) inside
    vmap with batched ``indices``: the batch axes line up, the others broadcast as NumPy's."""
    if indices._data.dtype.kind not in "iu":
        raise IndexError(f"take_along_axis: indices must be integers, got dtype {indices.dtype}")
    nd = _logical_ndim(x)
    if _logical_ndim(indices) > nd:
        raise ValueError(
            f"take_along_axis: indices must have as many dimensions as the input ({nd}), got "
            f"shape {tuple(indices.shape)}"
        )
    dim = _apply.normalize_dim("take_along_axis", dim, nd)
    levels = _index_levels(x, (indices,))
    with physical():
        xa = align(x, levels, expand=True)
        ia = align(indices, levels, nd)._data
        return _as_batched(
            OPS["take_along_axis"](xa, indices=ia, dim=_norm("take_along_axis", dim, nd)), levels
        )


def _reshape_op(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    return OPS["reshape"](x, shape=shape)  # (dispatches: x may be batched)


def _int_index(op: str, index: Tensor) -> None:
    if index._data.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): Expected dtype int64 for index, got {index._data.dtype}")


def gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """PyTorch's ``gather(x, dim, index)`` inside vmap with a batched ``index`` (the checks on
    logical shapes, then a batched :func:`take_along_axis`)."""
    _int_index("gather", index)
    x1 = _reshape_op(x, (1,)) if x.ndim == 0 else x
    i1 = _reshape_op(index, (1,)) if index.ndim == 0 else index
    if i1.ndim != x1.ndim:
        raise RuntimeError(
            f"gather(): Index tensor must have the same number of dimensions as the input "
            f"tensor ({x.ndim}), got index of shape {tuple(index.shape)}"
        )
    d = _apply.normalize_dim("gather", dim, x1.ndim)
    axis = x1.ndim + d
    for a in range(x1.ndim):
        if a != axis and i1.shape[a] > x1.shape[a]:
            raise RuntimeError(
                f"gather(): Size does not match at dimension {a}: index {tuple(index.shape)} "
                f"is larger than the input {tuple(x.shape)} outside dimension {dim}"
            )
    data, n = index._data, x1.shape[axis]
    if data.size and (data.min() < 0 or data.max() >= n):
        bad = data.min() if data.min() < 0 else data.max()
        raise RuntimeError(
            f"gather(): index {bad} is out of bounds for dimension {dim} with size {n}"
        )
    cut = tuple(slice(None) if a == axis else slice(0, m) for a, m in enumerate(i1.shape))
    if any(i1.shape[a] != x1.shape[a] for a in range(x1.ndim) if a != axis):
        x1 = OPS["getitem"](x1, index=cut)
    out = take_along_axis(x1, i1, d)
    return _reshape_op(out, tuple(index.shape)) if tuple(out.shape) != tuple(index.shape) else out


def take_along_dim(x: Tensor, indices: Tensor, dim: int | None) -> Tensor:
    """PyTorch's ``take_along_dim`` inside vmap with batched ``indices`` (the other axes
    broadcast; ``dim=None``: both read as 1-d)."""
    _int_index("take_along_dim", indices)
    if dim is None:
        return take_along_axis(_reshape_op(x, (-1,)), _reshape_op(indices, (-1,)), 0)
    if indices.ndim != x.ndim:
        raise RuntimeError(
            f"take_along_dim(): input and indices should have the same number of dimensions, "
            f"got {x.ndim} and {indices.ndim}"
        )
    if x.ndim == 0:
        return _reshape_op(take_along_axis(_reshape_op(x, (1,)), _reshape_op(indices, (1,)), 0), ())
    return take_along_axis(x, indices, dim)


def take(x: Tensor, index: Tensor) -> Tensor:
    """PyTorch's ``take`` (``x`` read as 1-d) inside vmap with a batched ``index``."""
    _int_index("take", index)
    n = x.numel()
    data = index._data
    if data.size and (data.min() < -n or data.max() >= n):
        raise IndexError(f"take(): index out of range for a tensor of {n} elements")
    return getitem(_reshape_op(x, (-1,)), index)


def _getitem(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    (x,) = inputs
    k = len(levels)
    try:
        index, first = _batched_index(attrs["index"], k)
    except BatchingUnsupported:  # a mask among separated advanced indices: batch aranges
        items = _index_items(attrs["index"], _logical_ndim(x))
        xa, phys, p, rank = _advanced_index(x, items, levels)
        return _block_to(_call(op, [xa], {**attrs, "index": phys}), k, p, rank)
    out = _call(op, [x], {**attrs, "index": index})
    if first:  # NumPy put the advanced axes before the batch axes: move those back in front
        nd = out._data.ndim
        perm = list(range(first, first + k)) + list(range(first)) + list(range(first + k, nd))
        out = P.permute(out, dims=tuple(p - nd for p in perm))
    return out


def _index_put(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    x, values = inputs
    k = len(levels)
    try:
        index, first = _batched_index(attrs["index"], k)
    except BatchingUnsupported:
        first = -1
    if first:  # advanced indices NumPy moves in front (of the batch axes too): batch aranges
        return index_put(x, attrs["index"], values, False)
    x = align(x, levels, expand=True)
    if levels_of(values):
        target = np.empty(x._data.shape, dtype=np.bool_)[index].ndim - k
        values = align(values, levels, target)
    return _call(op, [x, values], {**attrs, "index": index})


def _zeros_scatter(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    (x,) = inputs
    k = len(levels)
    try:
        index, first = _batched_index(attrs["index"], k)
    except BatchingUnsupported:
        first = -1
    shape = (*x._data.shape[:k], *attrs["shape"])
    if first:  # advanced indices NumPy moves in front: batch aranges (see _advanced_index)
        items = _index_items(attrs["index"], len(attrs["shape"]))
        # a stand-in for the (batched) target: _advanced_index reads its levels and rank only
        full = _as_batched(Tensor._wrap(np.broadcast_to(np.empty((), bool), shape)), levels)
        _, phys, p, rank = _advanced_index(full, items, levels)
        v = _block_from(x, k, p, rank)
        return _call(op, [v], {**attrs, "shape": shape, "index": phys})
    return _call(op, [x], {**attrs, "shape": shape, "index": index})


def _batched_indices(x: Tensor, indices: Any, levels: tuple[int, ...]) -> Any:
    """Plain gather indices (at most the logical rank: checked by the caller) for a physical
    ``x``: the forward pads them with leading size-1 axes, which broadcast over the batch axes
    as over any leading axis. (A batched index tensor never arrives here as an array:
    ``composite.take_along_axis`` sends it to :func:`take_along_axis`.)"""
    return np.asarray(indices)


def _take_along_axis(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    (x,) = inputs
    nd = _logical_ndim(x)
    new = {**attrs, "dim": _norm(op.name, attrs["dim"], nd)}
    new["indices"] = _batched_indices(x, attrs["indices"], levels)
    if "shape" in attrs:  # zeros_scatter_along
        new["shape"] = (*x._data.shape[: len(levels)], *attrs["shape"])
    return _call(op, [x], new)


def _zeros_scatter_along(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    (x,) = inputs
    k = len(levels)
    nd = len(attrs["shape"])
    new = {**attrs, "dim": _norm(op.name, attrs["dim"], nd)}
    arr = np.asarray(attrs["indices"])
    new["indices"] = (
        arr if arr.ndim == x._data.ndim else np.broadcast_to(arr, x._data.shape[:k] + arr.shape)
    )
    new["shape"] = (*x._data.shape[:k], *attrs["shape"])
    return _call(op, [x], new)


def _matmul_parts(a: Any, b: Any, levels: tuple[int, ...]) -> Tensor:
    """The logical ``a @ b`` (NumPy's matmul rules) on physical values."""
    k = len(levels)
    na = _logical_ndim(a)  # unbatched operands: their own ndim
    nb = _logical_ndim(b)
    ba, bb = bool(levels_of(a)), bool(levels_of(b))
    a = align(a, levels) if ba else a
    b = align(b, levels) if bb else b
    squeeze = []
    if ba and na == 1:
        a, na = P.unsqueeze(a, dim=-2), 2
        squeeze.append(-2)
    if bb and nb == 1:
        b, nb = P.unsqueeze(b, dim=-1), 2
        squeeze.append(-1)
    nd = max(na, nb)
    # batched operands: logical ranks padded (size-1 axes after the batch axes) to line up
    if ba and na < nd:
        a = P.reshape(a, shape=(*a._data.shape[:k], *(1,) * (nd - na), *a._data.shape[k:]))
    if bb and nb < nd:
        b = P.reshape(b, shape=(*b._data.shape[:k], *(1,) * (nd - nb), *b._data.shape[k:]))
    out = OPS["matmul"](a, b)
    if squeeze:
        out = P.squeeze(out, dim=tuple(sorted(squeeze)) if len(squeeze) > 1 else squeeze[0])
    return out


def _operands(inputs: tuple) -> tuple[Tensor, Tensor]:
    a, b = (x if isinstance(x, Tensor) else Tensor._wrap(np.asarray(x)) for x in inputs)
    return a, b


def _product(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    """The matrix products (mm, bmm, mv, matmul): one batched matmul."""
    return _matmul_parts(*_operands(inputs), levels)


def _dot(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    a, b = _operands(inputs)
    prod = OPS["mul"](
        align(a, levels, 1) if levels_of(a) else a, align(b, levels, 1) if levels_of(b) else b
    )
    return OPS["sum"](prod, dim=(-1,), keepdim=False)


def _outer(op: Any, inputs: tuple, attrs: dict, levels: tuple[int, ...]) -> Any:
    a, b = _operands(inputs)  # (both aligned to every level first: they may have different ones)
    a1 = align(a, levels, 1) if levels_of(a) else a
    b1 = align(b, levels, 1) if levels_of(b) else b
    return OPS["mul"](P.unsqueeze(a1, dim=-1), P.unsqueeze(b1, dim=-2))


KIND_RULES: dict[str, Callable[..., Any]] = {
    "elementwise": elementwise,
    "reduction": single,
    "scan": single,
    "shape": single,
    "index": single,
    "product": _product,
    "linalg": linalg,
}

#: per-op batching rules (over the row's ``kind:``), keyed by op name
RULES: dict[str, Callable[..., Any]] = {
    "prod": _prod,
    "reshape": _reshape,
    "expand": _expand,
    "permute": _permute,
    "unsqueeze": _unsqueeze,
    "diag_embed": _diag_embed,
    "cat": lambda op, i, a, lv: _joined(op, i, a, lv, 0),
    "stack": lambda op, i, a, lv: _joined(op, i, a, lv, 1),
    "roll": _roll,
    "getitem": _getitem,
    "index_put": _index_put,
    "zeros_scatter": _zeros_scatter,
    "take_along_axis": _take_along_axis,
    "zeros_scatter_along": _zeros_scatter_along,
    "dot": _dot,
    "outer": _outer,
}

unknown = set(RULES) - set(OP_OBJECTS)
if unknown:  # a renamed row must not leave its rule behind silently
    raise RuntimeError(f"ops.batching: rules for ops that are not rows: {sorted(unknown)}")


# -- levels (vmap's bookkeeping) ---------------------------------------------------------------
#: the ``randomness`` of each open level (vmap's option; 'error' for matgrad's own levels)
_LEVEL_RANDOMNESS: dict[int, str] = {}

_RANDOM_ERROR = (
    "vmap: called random operation while in randomness error mode. Please either use the "
    "'same' or 'different' randomness flags on vmap or perform the randomness operation out "
    "of vmap"
)


def enter_level(size: int, randomness: str = "error") -> int:
    level = next(_level_ids)
    state.vmap_levels.append((level, size))
    state.vmap += 1
    _apply.VMAP_ACTIVE[0] += 1
    _LEVEL_RANDOMNESS[level] = randomness
    return level


def exit_level(level: int) -> None:
    popped, _ = state.vmap_levels.pop()
    assert popped == level, "vmap levels must close innermost first"
    state.vmap -= 1
    _apply.VMAP_ACTIVE[0] -= 1
    _LEVEL_RANDOMNESS.pop(level, None)


def new_level_id() -> int:
    """A fresh level id (larger than every level open now: it sorts innermost)."""
    return next(_level_ids)


@contextlib.contextmanager
def dispatching(sizes: dict[int, int]) -> Iterator[None]:
    """Dispatch on, with the vmap levels of ``sizes`` (``{level: size}``) open: those that
    closed already are opened again for the duration (the backward of a custom Function's
    generated rule runs when the engine reaches it, maybe after its vmap ended)."""
    open_now = {lv for lv, _ in state.vmap_levels}
    added = [(lv, n) for lv, n in sorted(sizes.items()) if lv not in open_now]
    state.vmap_levels.extend(added)
    prev = state.vmap
    state.vmap = prev + 1
    _apply.VMAP_ACTIVE[0] += 1
    try:
        yield
    finally:
        for item in added:
            state.vmap_levels.remove(item)
        state.vmap = prev
        _apply.VMAP_ACTIVE[0] -= 1


def plain(t: Tensor) -> Tensor:
    """``t``'s physical value as a plain tensor (a new object if ``t`` is batched)."""
    return _as_batched(_fresh(t), ()) if type(t) is BatchedTensor else t


def reduce_to_levels(t: Tensor, levels: Sequence[int]) -> Tensor:
    """The physical value of ``t`` with exactly the batch axes of ``levels`` in front (plain):
    expanded over those ``t`` lacks, summed over ``t``'s others (the gradient of an input that
    the whole batch shares)."""
    levels = tuple(sorted(levels))
    with physical():
        own = levels_of(t)
        union = tuple(sorted(set(own) | set(levels)))
        full = align(t, union, expand=True)
        drop = tuple(i for i, lv in enumerate(union) if lv not in levels)
        if drop:
            full = OPS["sum"](full, dim=drop, keepdim=False)
        return plain(full)


def randomness_of(level: int) -> str:
    return _LEVEL_RANDOMNESS.get(level, "error")


def random_levels() -> tuple[int, ...]:
    """The open vmap levels a random draw is batched over: those with ``randomness=
    'different'`` (one draw per batch element); 'same' levels share one draw; any 'error'
    level raises PyTorch's error."""
    levels = []
    for level, _ in state.vmap_levels:
        mode = randomness_of(level)
        if mode == "error":
            raise RuntimeError(_RANDOM_ERROR)
        if mode == "different":
            levels.append(level)
    return tuple(sorted(levels))


def mark(t: Tensor, levels: tuple[int, ...]) -> Tensor:
    """``t``, just made with one leading axis per level of ``levels``, marked batched over
    them (a random draw of :func:`random_levels`); ``t`` itself if none."""
    return _as_batched(t, tuple(levels)) if levels else t


# -- autograd inside vmap ----------------------------------------------------------------------
def _to_front(t: Tensor, first: tuple[int, ...], levels: tuple[int, ...]) -> Tensor:
    """Physical ``t`` (batched over ``levels``) with the axes of levels ``first`` moved in
    front and flattened into one."""
    nd = t._data.ndim
    pos = [levels.index(lv) for lv in first]
    rest = [i for i in range(nd) if i not in pos]
    t = P.permute(t, dims=tuple(p - nd for p in pos + rest))
    shape = t._data.shape
    return P.reshape(t, shape=(math.prod(shape[: len(first)]), *shape[len(first) :]))


def autograd_grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """``autograd.grad`` that understands batched tensors: a cotangent batched over vmap
    levels its output is not (``vmap(vjp_fn)(basis)``) becomes one batch of cotangents
    (``is_grads_batched``); gradients come back batched over the inputs' levels and those."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    xs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        gouts: list[Any] = [None] * len(outs)
    else:
        gouts = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
    everything = [*outs, *xs, *(g for g in gouts if isinstance(g, Tensor))]
    if not any(levels_of(t) for t in everything):
        with physical():
            return _engine_grad(
                outs, xs, gouts, retain_graph, create_graph, allow_unused=allow_unused
            )
    extra = tuple(
        sorted(
            {
                lv
                for o, g in zip(outs, gouts, strict=True)
                for lv in levels_of(g)
                if lv not in levels_of(o)
            }
        )
    )
    out_levels = {lv for o in outs for lv in levels_of(o)}
    for i, x in enumerate(xs):
        missing = out_levels - set(levels_of(x))
        if missing:
            raise RuntimeError(
                f"autograd.grad inside vmap: an output is batched over a vmap level that input "
                f"{i} (logical shape {tuple(x.shape)}) is not, so its gradient would be summed "
                "over "
                "the batch; differentiate with matgrad.func.grad/vjp/jacrev, which give per-sample "
                "gradients"
            )
    with physical():
        phys = []
        for o, g in zip(outs, gouts, strict=True):
            want = tuple(sorted(set(levels_of(o)) | set(extra)))
            if g is None:
                if o._data.size != math.prod(o._data.shape[: len(levels_of(o))]):
                    raise RuntimeError(
                        "grad can be implicitly created only for scalar outputs (inside vmap: "
                        "per batch element)"
                    )
                g = _as_batched(Tensor._wrap(np.ones_like(o._data)), levels_of(o))
            elif not isinstance(g, Tensor):
                g = Tensor._wrap(np.asarray(g, dtype=o._data.dtype))
            if _logical_ndim(g) != _logical_ndim(o):
                raise RuntimeError(
                    f"Mismatch in shape: grad_output has logical shape "
                    f"{tuple(g._data.shape[len(levels_of(g)) :])} and output has logical shape "
                    f"{tuple(o._data.shape[len(levels_of(o)) :])}"
                )
            g = align(g, want, expand=True)
            if extra:
                g = _to_front(g, extra, want)
            phys.append(g)
        grads = _engine_grad(
            outs,
            xs,
            phys,
            retain_graph,
            create_graph,
            allow_unused=allow_unused,
            is_grads_batched=bool(extra),
        )
        sizes = _sizes()
        results: list[Tensor | None] = []
        for x, g in zip(xs, grads, strict=True):
            if g is None:
                results.append(None)
                continue
            own = levels_of(x)
            g = _fresh(g)
            if extra:
                g = P.reshape(g, shape=(*(sizes[lv] for lv in extra), *g._data.shape[1:]))
                order = tuple(extra) + tuple(own)
                final = tuple(sorted(set(order)))
                nd = g._data.ndim
                perm = [order.index(lv) for lv in final] + list(range(len(order), nd))
                g = P.permute(g, dims=tuple(p - nd for p in perm))
                results.append(_as_batched(g, final))
            else:
                results.append(_as_batched(g, own))
    return tuple(results)


def _fresh(t: Tensor) -> Tensor:
    """A new tensor object for ``t``'s value (so marking it batched changes no one else's)."""
    if t.grad_fn is None and t._requires_grad:
        return P.reshape(t, shape=t._data.shape)
    alias = Tensor._wrap(t._data)
    alias.grad_fn, alias._output_nr = t.grad_fn, t._output_nr
    alias._requires_grad, alias._fw_grad = t._requires_grad, t._fw_grad
    alias._version_counter = t._shared_counter()
    return alias


# -- forward mode inside vmap ------------------------------------------------------------------
def physical_tangent(primal: Tensor, tangent: Tensor, batched: bool) -> Tensor:
    """The tangent as the core stores it for a (maybe batched) ``primal``: a plain physical
    tensor of shape ``[directions] + primal's physical shape``. ``tangent`` is logical (its
    own batch levels, if any, must be the primal's)."""
    own = levels_of(primal)
    if not own and not levels_of(tangent):
        return tangent
    with physical():
        if set(levels_of(tangent)) - set(own):
            raise RuntimeError(
                "make_dual inside vmap: the tangent is batched over a level the primal is not"
            )
        t = align(tangent, own, expand=True)
        if batched and own:  # directions axis: after the batch axes -> in front
            nd = t._data.ndim
            k = len(own)
            perm = [k, *range(k), *range(k + 1, nd)]
            t = P.permute(t, dims=tuple(p - nd for p in perm))
        return _fresh(t) if t is tangent else t


def logical_tangent(primal: Tensor, tangent: Tensor | None) -> Tensor | None:
    """The stored (physical) tangent of ``primal`` as the vmapped code sees it: batched over
    ``primal``'s levels, a directions axis (vectorized forward mode) first in its logical
    value."""
    own = levels_of(primal)
    if tangent is None or not own:
        return tangent
    with physical():
        extra = tangent._data.ndim - primal._data.ndim
        t = tangent
        if extra:
            nd = t._data.ndim
            k = len(own)
            perm = [*range(extra, extra + k), *range(extra), *range(extra + k, nd)]
            t = P.permute(t, dims=tuple(p - nd for p in perm))
        else:
            t = _fresh(t)
    return _as_batched(t, own)


def nograd(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Tensor:
    """A function without gradient on raw arrays (comparisons, ``argmax``, ...; see
    ``composite._nograd``) with batched arguments: elementwise alignment, or an ``axis``
    keyword made negative against the logical value (``axis=None``: its axes flattened)."""
    levels = tuple(sorted({lv for a in args for lv in levels_of(a)}))
    with physical():
        if not levels:
            raw = [a._data if isinstance(a, Tensor) else a for a in args]
            return Tensor._wrap(fn(*raw, **kwargs))
        if "axis" in kwargs:
            (x,) = args
            x = align(x, levels, expand=True)
            k = len(levels)
            kwargs = dict(kwargs)
            if kwargs["axis"] is None:
                nd = x._data.ndim - k
                data = x._data.reshape(*x._data.shape[:k], -1)
                kwargs["axis"] = -1
                if kwargs.get("keepdims"):
                    out = fn(data, **kwargs).reshape(*x._data.shape[:k], *(1,) * nd)
                    return _as_batched(Tensor._wrap(np.asarray(out)), levels)
            else:
                data = x._data
                kwargs["axis"] = _norm("vmap", kwargs["axis"], x._data.ndim - k)
            return _as_batched(Tensor._wrap(np.asarray(fn(data, **kwargs))), levels)
        nd = max(_logical_ndim(a) for a in args if isinstance(a, Tensor | np.ndarray))
        raw = [align(a, levels, nd)._data if levels_of(a) else getattr(a, "_data", a) for a in args]
        return _as_batched(Tensor._wrap(np.asarray(fn(*raw, **kwargs))), levels)


def new_like(t: Tensor, ref: Any) -> Tensor:
    """``t``, just made from ``ref``'s physical array (``zeros_like``), marked batched as
    ``ref`` is."""
    return _as_batched(t, levels_of(ref)) if state.vmap and levels_of(ref) else t


def like(t: Tensor, ref: Any) -> Tensor:
    """``t`` (computed from ``ref``'s physical value, e.g. ``zeros_like``) batched as ``ref``."""
    return _as_batched(_fresh(t), levels_of(ref)) if levels_of(ref) else t


# autograd.Function.apply with batched arguments: set by matgrad.func (which knows VmapInfo and
# the vmap's randomness); FUNCTION_VMAP[0](cls, args) -> outputs
FUNCTION_VMAP: list[Any] = [None]

# the core's dispatch hook: ops reaching their entry points while state.vmap is set come here
_apply.BATCHING[0] = dispatch
_engine.VMAP_GRAD[0] = autograd_grad
