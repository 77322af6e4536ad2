"""``matgrad.einsum``: Einstein summation written in core ops.

All of NumPy's notation is accepted: implicit output (the labels that appear once, in
alphabetical order, after the broadcast axes of ``...``) and explicit output (``->``), ``...``
for broadcast axes, repeated labels inside one operand (traces, diagonals), any number of
operands, and size-1 axes that broadcast. Nothing here has a derivative rule of its own: an
einsum records ``diagonal``, ``sum``, ``permute``, ``reshape``, ``expand`` and ``bmm``/``mm``
nodes, so ``grad_fn`` and ``next_functions`` show those ops and their rules differentiate it.

With three or more operands the pairs are contracted greedily: each step contracts the pair
whose result is smallest (ties: fewest multiply-adds), so no intermediate blows up when a
cheap order exists.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.tensor_base import Tensor, as_tensor
from . import composite as _ops

__all__ = ["einsum"]

Label = str | int  # a letter, or an int for an axis covered by "..." (right-aligned)


def _parse(equation: str, ndims: list[int]) -> tuple[list[list[Label]], list[Label]]:
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(
            f"einsum: the equation {equation!r} has {len(terms)} operand(s) but "
            f"{len(ndims)} were given"
        )
    n_ell = 0
    parsed_letters = []
    for k, (term, nd) in enumerate(zip(terms, ndims, strict=True)):
        if term.count("...") > 1 or term.replace("...", "").count(".") > 0:
            raise ValueError(f"einsum: operand {k} ({term!r}) has a malformed ellipsis")
        letters = term.replace("...", "")
        for c in letters:
            if not c.isalpha() or not c.isascii():
                raise ValueError(f"einsum: invalid subscript {c!r} in {equation!r}")
        if "..." in term:
            if len(letters) > nd:
                raise ValueError(
                    f"einsum: operand {k} has {nd} dimension(s) but subscripts {term!r}"
                )
            n_ell = max(n_ell, nd - len(letters))
        elif len(letters) != nd:
            raise ValueError(
                f"einsum: operand {k} has {nd} dimension(s) but {len(letters)} subscript(s) "
                f"({term!r})"
            )
        parsed_letters.append(term)
    inputs: list[list[Label]] = []
    for term, nd in zip(parsed_letters, ndims, strict=True):
        if "..." in term:
            before, after = term.split("...")
            e = nd - len(before) - len(after)
            inputs.append(list(before) + list(range(n_ell - e, n_ell)) + list(after))
        else:
            inputs.append(list(term))
    if arrow:
        if rhs.count("...") > 1 or rhs.replace("...", "").count(".") > 0:
            raise ValueError(f"einsum: malformed output {rhs!r}")
        before, _, after = rhs.partition("...")
        ell = list(range(n_ell)) if "..." in rhs else []
        output: list[Label] = list(before) + ell + list(after)
        letters_out = [c for c in output if isinstance(c, str)]
        if len(set(letters_out)) != len(letters_out):
            raise ValueError(f"einsum: output subscripts {rhs!r} repeat a label")
        seen = {c for term in inputs for c in term}
        for c in letters_out:
            if not c.isalpha() or not c.isascii():
                raise ValueError(f"einsum: invalid subscript {c!r} in the output")
            if c not in seen:
                raise ValueError(f"einsum: output label {c!r} does not appear in any input")
    else:
        counts: dict[str, int] = {}
        for term in inputs:
            for c in term:
                if isinstance(c, str):
                    counts[c] = counts.get(c, 0) + 1
        output = list(range(n_ell)) + sorted(c for c, n in counts.items() if n == 1)
    return inputs, output


def _take_diagonals(x: Tensor, labels: list[Label]) -> tuple[Tensor, list[Label]]:
    """Repeated labels inside one operand: keep their diagonal (``diagonal`` moves the merged
    axis last)."""
    labels = list(labels)
    while True:
        for i, c in enumerate(labels):
            j = labels.index(c, i + 1) if labels.count(c) > 1 else -1
            if j > 0:
                if x.shape[i] != x.shape[j]:
                    raise ValueError(
                        f"einsum: label {c!r} is repeated with sizes {x.shape[i]} and {x.shape[j]}"
                    )
                x = _ops.diagonal(x, 0, i, j)
                labels = [c2 for k, c2 in enumerate(labels) if k not in (i, j)] + [c]
                break
        else:
            return x, labels


def _sum_out(x: Tensor, labels: list[Label], keep: set[Label]) -> tuple[Tensor, list[Label]]:
    drop = [i for i, c in enumerate(labels) if c not in keep]
    if not drop:
        return x, labels
    return _ops.sum(x, drop), [c for c in labels if c in keep]


def _permute_to(x: Tensor, labels: list[Label], order: list[Label]) -> Tensor:
    perm = [labels.index(c) for c in order]
    if perm == list(range(len(perm))):
        return x
    return _ops.permute(x, tuple(perm))


def _reshape(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    return x if tuple(x.shape) == tuple(shape) else _ops.reshape(x, shape)


def _expand_to(x: Tensor, sizes: tuple[int, ...]) -> Tensor:
    return x if tuple(x.shape) == sizes else _ops.expand(x, sizes)


def _contract(
    a: Tensor,
    la: list[Label],
    b: Tensor,
    lb: list[Label],
    keep: set[Label],
    size: dict[Label, int],
) -> tuple[Tensor, list[Label]]:
    """a and b contracted over their shared labels not in ``keep``, as one batched matmul:
    (batch, left, inner) @ (batch, inner, right)."""
    batch = [c for c in la if c in lb and c in keep]
    inner = [c for c in la if c in lb and c not in keep]
    left = [c for c in la if c not in lb]
    right = [c for c in lb if c not in la]
    a = _expand_to(
        _permute_to(a, la, batch + left + inner),
        tuple(
            size[c] if c in batch or c in inner else a.shape[la.index(c)]
            for c in batch + left + inner
        ),
    )
    b = _expand_to(
        _permute_to(b, lb, batch + inner + right),
        tuple(
            size[c] if c in batch or c in inner else b.shape[lb.index(c)]
            for c in batch + inner + right
        ),
    )
    nb = math.prod(size[c] for c in batch)
    nl = math.prod(a.shape[len(batch) + i] for i in range(len(left)))
    nk = math.prod(size[c] for c in inner)
    nr = math.prod(b.shape[len(batch) + len(inner) + i] for i in range(len(right)))
    out_shape = tuple(a.shape[: len(batch) + len(left)]) + tuple(b.shape[len(batch) + len(inner) :])
    if batch:
        out = _ops.bmm(_reshape(a, (nb, nl, nk)), _reshape(b, (nb, nk, nr)))
    else:
        out = _ops.mm(_reshape(a, (nl, nk)), _reshape(b, (nk, nr)))
    return _reshape(out, out_shape), batch + left + right


def _result_labels(la: list[Label], lb: list[Label], keep: set[Label]) -> list[Label]:
    """The labels of _contract(a, b) in order: batch, left, right."""
    return (
        [c for c in la if c in lb and c in keep]
        + [c for c in la if c not in lb]
        + [c for c in lb if c not in la]
    )


def _inversions(labels: list[Label], output: list[Label]) -> int:
    pos = [output.index(c) for c in labels if c in output]
    return sum(1 for x in range(len(pos)) for y in range(x + 1, len(pos)) if pos[x] > pos[y])


def _result_size(la: list[Label], lb: list[Label], keep: set[Label], size: dict) -> int:
    return math.prod(size[c] for c in set(la) | set(lb) if c in keep)


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation over ``operands`` as NumPy's ``einsum`` (see the module docstring);
    ``einsum(eq, [a, b])`` is accepted too."""
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum: at least one operand is needed")
    xs = [as_tensor(x) for x in operands]
    inputs, output = _parse(equation, [x.ndim for x in xs])
    size: dict[Label, int] = {}
    for x, labels in zip(xs, inputs, strict=True):
        for c, n in zip(labels, x.shape, strict=True):
            seen = size.get(c, 1)
            if seen != 1 and n not in (1, seen):
                raise ValueError(
                    f"einsum: label {c if isinstance(c, str) else '...'!r} has sizes "
                    f"{seen} and {n}, which do not broadcast"
                )
            if c not in size or seen == 1:  # a size-1 axis broadcasts (to 0 too)
                size[c] = n
    out_set = set(output)
    ops: list[tuple[Tensor, list[Label]]] = []
    for k, (x, labels) in enumerate(zip(xs, inputs, strict=True)):
        x, labels = _take_diagonals(x, labels)
        others = {c for j, lb in enumerate(inputs) if j != k for c in lb}
        ops.append(_sum_out(x, labels, out_set | others))
    while len(ops) > 1:
        best = None
        for i in range(len(ops)):
            for j in range(i + 1, len(ops)):
                rest = {c for k, (_, lb) in enumerate(ops) if k not in (i, j) for c in lb}
                keep = out_set | rest
                la, lb = ops[i][1], ops[j][1]
                cost = (
                    _result_size(la, lb, keep, size),
                    math.prod(size[c] for c in set(la) | set(lb)),
                )
                if best is None or cost < best[0]:
                    best = (cost, i, j, keep)
        _, i, j, keep = best
        (a, la), (b, lb) = ops[i], ops[j]
        if _inversions(_result_labels(lb, la, keep), output) < _inversions(
            _result_labels(la, lb, keep), output
        ):  # the other side first leaves less to permute at the end
            (a, la), (b, lb) = (b, lb), (a, la)
        ops = [op for k, op in enumerate(ops) if k not in (i, j)]
        ops.append(_contract(a, la, b, lb, keep, size))
    x, labels = ops[0]
    x, labels = _sum_out(x, labels, out_set)
    x = _permute_to(x, labels, output)
    target = tuple(size[c] for c in output)
    return _expand_to(x, target) if tuple(x.shape) != target else x
