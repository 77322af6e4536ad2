"""Named helpers for derivative formulas longer than one line.

Every helper takes ``F`` first: the namespace the formula runs with, either raw arrays
(:mod:`matgrad._array_fns`) or tensors (:mod:`matgrad._ops`), so a helper written once serves
the fast backward pass and the differentiable one (``create_graph=True``). Helpers use only
``F``'s functions and Python operators, never the array library directly.

``dim`` arguments are negative (counted from the last axis), so helpers keep working when a
cotangent carries extra leading batch axes.
"""

from __future__ import annotations

import math
from typing import Any

T = Any  # an array or a tensor, depending on F


def zeros_of(F: Any, x: T) -> T:
    return F.zeros_like(x)


def negated(F: Any, values: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(-v for v in values)


# -- elementwise -------------------------------------------------------------------------------
def pow_self_grad(F: Any, grad: T, self: T, exponent: Any) -> T:
    """d(x**p)/dx = p x**(p-1), taken as 0 where p == 0 (so 0**0 does not give 0 * inf)."""
    if isinstance(exponent, int | float):
        if exponent == 0:
            return grad * 0.0
        return grad * (exponent * self ** (exponent - 1))
    return F.where(exponent == 0, 0.0, grad * (exponent * self ** (exponent - 1)))


def pow_exponent_grad(F: Any, grad: T, self: T, exponent: T, result: T) -> T:
    """d(x**p)/dp = x**p log x, taken as 0 where x == 0 (the limit for p > 0)."""
    safe = F.where(self == 0, 1.0, self)
    return F.where(self == 0, 0.0, grad * result * F.log(safe))


def max_pick(F: Any, grad: T, a: T, b: T) -> T:
    """The share of ``grad`` that maximum(a, b) routes to ``a``: all where a > b, half on ties."""
    return F.where(a > b, grad, F.where(a == b, grad * 0.5, 0.0))


def clamp_mask(F: Any, self: T, min: Any, max: Any) -> T:  # noqa: A002
    """1 where clamp passes ``self`` through (min <= self <= max), else 0."""
    inside = F.ones_like(self)
    if min is not None:
        inside = F.where(self >= min, inside, 0.0)
    if max is not None:
        inside = F.where(self <= max, inside, 0.0)
    return inside


# -- reductions --------------------------------------------------------------------------------
def expand_reduced(F: Any, grad: T, shape: tuple[int, ...], dim: tuple[int, ...], keepdim: bool) -> T:
    """Broadcast a reduction's output gradient back over the reduced axes."""
    if not keepdim:
        for d in sorted(dim, reverse=True):  # negative axes: innermost first
            grad = F.unsqueeze(grad, d)
    return F.expand(grad, shape)


def reduced_count(F: Any, shape: tuple[int, ...], dim: tuple[int, ...]) -> int:
    return math.prod(shape[d] for d in dim)


def prod_backward(F: Any, grad: T, self: T, result: T, dim: int, keepdim: bool) -> T:
    """d prod(x)/dx_i = prod_{j != i} x_j, computed without dividing (exact with zeros):
    the product over the axis of x with its i-th entry replaced by 1."""
    n = self.shape[dim]
    moved = F.transpose(self, dim, -1)  # axis last: (..., n)
    one_hot = F.eye_like(moved, n) > 0  # (n, n) boolean identity
    others = F.prod(F.where(one_hot, 1.0, F.unsqueeze(moved, -2)), -1, False)  # (..., n)
    g = grad if keepdim else F.unsqueeze(grad, dim)
    return F.transpose(others, dim, -1) * g


def amax_backward(F: Any, grad: T, self: T, result: T, dim: tuple[int, ...], keepdim: bool) -> T:
    """The gradient of amax/amin goes to the extremal entries, split evenly among ties."""
    mask = F.to_dtype(self == expand_reduced(F, result, self.shape, dim, keepdim), self.dtype)
    count = expand_reduced(F, F.sum(mask, dim, keepdim), self.shape, dim, keepdim)
    return expand_reduced(F, grad, self.shape, dim, keepdim) * mask / count


def amax_jvp(F: Any, self_t: T, self: T, result: T, dim: tuple[int, ...], keepdim: bool) -> T:
    mask = F.to_dtype(self == expand_reduced(F, result, self.shape, dim, keepdim), self.dtype)
    return F.sum(self_t * mask, dim, keepdim) / F.sum(mask, dim, keepdim)


# -- shapes ------------------------------------------------------------------------------------
def reshape_tail(F: Any, x: T, n: int, shape: tuple[int, ...]) -> T:
    """Reshape the last ``n`` axes of ``x`` to ``shape``, keeping leading (batch) axes."""
    return F.reshape(x, tuple(x.shape[: x.ndim - n]) + tuple(shape))


def invert_permutation(F: Any, dims: tuple[int, ...]) -> tuple[int, ...]:
    n = len(dims)
    inverse = [0] * n
    for position, d in enumerate(dims):
        inverse[d + n] = position - n
    return tuple(inverse)


def split_along(F: Any, grad: T, shapes: list[tuple[int, ...]], dim: int) -> list[T]:
    """The pieces of ``grad`` that came from each input of ``cat`` along ``dim``."""
    pieces, start = [], 0
    for shape in shapes:
        size = shape[dim]
        index = (Ellipsis, slice(start, start + size)) + (slice(None),) * (-dim - 1)
        pieces.append(F.getitem(grad, index))
        start += size
    return pieces


def unstack(F: Any, grad: T, n: int, dim: int) -> list[T]:
    """The slices of ``grad`` along ``dim`` (the inverse of ``stack``)."""
    return [F.getitem(grad, (Ellipsis, i) + (slice(None),) * (-dim - 1)) for i in range(n)]


def diagonal_backward(
    F: Any, grad: T, shape: tuple[int, ...], offset: int, dim1: int, dim2: int
) -> T:
    """Adjoint of ``diagonal``: a zero tensor of ``shape`` with ``grad`` on that diagonal."""
    rows, cols = shape[dim1], shape[dim2]
    full = F.diag_embed(grad, offset, -2, -1)  # (..., k + |offset|, k + |offset|)
    size = full.shape[-1]
    full = F.pad(full, (0, cols - size, 0, rows - size), value=0.0)  # negative amounts crop
    nd = len(shape)
    # the diagonal's axis pair is last in `full`; move it back to (dim1, dim2)
    others = [d for d in range(-nd, 0) if d not in (dim1, dim2)]
    order = [0] * nd
    for src, dst in enumerate(others):
        order[dst] = src - nd
    order[dim1], order[dim2] = -2, -1
    return F.permute(full, tuple(order))
