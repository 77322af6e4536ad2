"""Pytrees: nested containers of leaves, flattened to a list and rebuilt (after
``torch.utils._pytree`` and JAX's ``tree_util``).

Containers are tuples, lists, dicts (in insertion order, as PyTorch's), namedtuples and
``None`` (a container with no leaves); everything else is a leaf. The ``func`` transforms and
``autograd.functional`` take and return pytrees of tensors through these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TreeSpec",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_unflatten",
    "broadcast_prefix",
]


@dataclass(frozen=True)
class TreeSpec:
    """The shape of a pytree: the container ``kind`` (None for a leaf), what rebuilding it
    needs (``context``: dict keys, the namedtuple class) and its children's specs."""

    kind: Any = None
    context: Any = None
    children: tuple[TreeSpec, ...] = field(default=())

    @property
    def is_leaf(self) -> bool:
        return self.kind is None

    @property
    def num_leaves(self) -> int:
        return 1 if self.is_leaf else sum(c.num_leaves for c in self.children)

    def __repr__(self) -> str:
        if self.is_leaf:
            return "*"
        if self.kind is type(None):
            return "None"
        if self.kind is dict:
            pairs = zip(self.context[1], self.children, strict=True)
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in pairs)
            return "{" + inner + "}"
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind == "namedtuple":
            name = self.context.__name__
        else:
            name = self.kind.__name__ if self.kind not in (tuple, list) else ""
        return f"{name}({inner})" if self.kind is not list else f"[{inner}]"


LEAF = TreeSpec()


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _children(tree: Any) -> tuple[Any, Any, list[Any]] | None:
    """(kind, context, children) of a container, None for a leaf."""
    if tree is None:
        return type(None), None, []
    if _is_namedtuple(tree):
        return "namedtuple", type(tree), list(tree)
    if type(tree) in (tuple, list):
        return type(tree), None, list(tree)
    if isinstance(tree, dict):
        return dict, (type(tree), tuple(tree.keys())), list(tree.values())
    return None


def tree_flatten(tree: Any) -> tuple[list[Any], TreeSpec]:
    """``(leaves, spec)``: the leaves in order (depth first) and the structure."""
    leaves: list[Any] = []

    def walk(t: Any) -> TreeSpec:
        node = _children(t)
        if node is None:
            leaves.append(t)
            return LEAF
        kind, ctx, kids = node
        return TreeSpec(kind, ctx, tuple(walk(k) for k in kids))

    spec = walk(tree)
    return leaves, spec


def tree_leaves(tree: Any) -> list[Any]:
    return tree_flatten(tree)[0]


def tree_unflatten(leaves: Any, spec: TreeSpec) -> Any:
    """The pytree of structure ``spec`` with ``leaves`` in order."""
    leaves = list(leaves)
    if len(leaves) != spec.num_leaves:
        raise ValueError(
            f"tree_unflatten: {len(leaves)} leaves for a structure of {spec.num_leaves}: {spec!r}"
        )
    it = iter(leaves)

    def build(s: TreeSpec) -> Any:
        if s.is_leaf:
            return next(it)
        kids = [build(c) for c in s.children]
        if s.kind is type(None):
            return None
        if s.kind == "namedtuple":
            return s.context(*kids)
        if s.kind is dict:
            cls, keys = s.context
            out = dict(zip(keys, kids, strict=True))
            return out if cls is dict else cls(out)
        return s.kind(kids)

    return build(spec)


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``fn`` applied to each leaf (and the matching leaves of ``rest``, same structure)."""
    leaves, spec = tree_flatten(tree)
    others = []
    for r in rest:
        r_leaves, r_spec = tree_flatten(r)
        if r_spec != spec:
            raise ValueError(f"tree_map: structures differ: {spec!r} and {r_spec!r}")
        others.append(r_leaves)
    return tree_unflatten([fn(*xs) for xs in zip(leaves, *others, strict=True)], spec)


def broadcast_prefix(prefix: Any, tree: Any, what: str = "in_dims") -> list[Any]:
    """The value of ``prefix`` for each leaf of ``tree``: ``prefix`` is ``tree`` with some
    subtrees replaced by one value (vmap's ``in_dims=(0, None)`` or ``{"x": 0, "y": None}``
    for a dict argument). Raises ValueError naming the mismatch."""
    out: list[Any] = []

    def walk(p: Any, t: Any, where: str) -> None:
        pnode = _children(p) if p is not None else None
        if pnode is None:  # a leaf of the prefix (None included) covers the whole subtree
            out.extend([p] * tree_flatten(t)[1].num_leaves)
            return
        tnode = _children(t)
        pkind, pctx, pkids = pnode
        if tnode is None:
            raise ValueError(f"{what}: the structure {p!r} does not match the argument {t!r}")
        tkind, tctx, tkids = tnode
        if pkind is dict and tkind is dict:
            if set(pctx[1]) != set(tctx[1]):
                raise ValueError(
                    f"{what}: keys {sorted(map(str, pctx[1]))} do not match the argument's keys "
                    f"{sorted(map(str, tctx[1]))}{where}"
                )
            for k in tctx[1]:
                walk(p[k], t[k], f"{where}[{k!r}]")
            return
        if (pkind in (tuple, list, "namedtuple")) != (tkind in (tuple, list, "namedtuple")) or (
            len(pkids) != len(tkids)
        ):
            raise ValueError(
                f"{what}: {type(p).__name__} of length {len(pkids)} does not match the "
                f"argument {type(t).__name__} of length {len(tkids)}{where}"
            )
        for i, (pk, tk) in enumerate(zip(pkids, tkids, strict=True)):
            walk(pk, tk, f"{where}[{i}]")

    walk(prefix, tree, "")
    return out
