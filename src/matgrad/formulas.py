"""Named helpers for derivative formulas longer than one line.

Every helper takes ``F`` first: the namespace the formula runs with, either raw arrays
(the rows' forwards and :mod:`matgrad.backend`) or tensors (the rows' entry points and
:mod:`matgrad.ops`), so a helper written once serves
the fast backward pass and the differentiable one (``create_graph=True``). Helpers use only
``F``'s functions and Python operators, never the array library directly.

``dim`` arguments are negative (counted from the last axis), so helpers keep working when a
cotangent carries extra leading batch axes.

Complex values follow PyTorch's convention (torch docs, notes/autograd.rst, "Autograd for
Complex Numbers"): the gradient of a real loss L at z = x + iy is dL/dx + i dL/dy, and a VJP
takes an output gradient g to g conj(dw/dz) + conj(g) dw/dz-bar (``grad * conj(f'(z))`` for a
holomorphic f); JVPs are holomorphic (no conj). ``conj`` and ``mH`` are the identity and the
transpose on real values, so the formulas of real ops pay nothing for it.
"""

from __future__ import annotations

import math
from typing import Any

T = Any  # an array or a tensor, depending on F


def _is_complex(x: Any) -> bool:
    return isinstance(x, complex) or getattr(getattr(x, "dtype", None), "kind", None) == "c"


def conj(F: Any, x: T) -> T:
    """The complex conjugate; ``x`` itself when it is real (no copy)."""
    if isinstance(x, complex):
        return x.conjugate()
    return F.conj(x) if _is_complex(x) else x


def mH(F: Any, x: T) -> T:  # noqa: N802 - PyTorch's name
    """The conjugate transpose of the last two axes (the transpose for real values)."""
    return conj(F, F.mT(x))


def real_part(F: Any, x: T) -> T:
    """Re x; ``x`` itself when it is real (a real output's tangent or gradient)."""
    return F.real(x) if _is_complex(x) else x


def sgn(F: Any, x: T) -> T:
    """sign(x) for real x, z/|z| (0 at 0) for complex z: the gradient direction of |z|."""
    if not _is_complex(x):
        return F.sign(x)
    a = F.abs(x)
    zero = a == 0
    return F.where(zero, 0.0, x / F.where(zero, 1.0, a))


def angle_backward(F: Any, grad: T, x: T) -> T:
    """d angle(z) = Im(conj(z) dz) / |z|^2: the gradient g i z / |z|^2 (0 at 0, PyTorch's
    angle_backward); 0 for real x (angle is piecewise constant there)."""
    if not _is_complex(x):
        return grad * 0.0
    a = F.abs(x)
    zero = a == 0
    safe = F.where(zero, 1.0, a)
    return F.where(zero, 0.0, grad * (x * 1j) / (safe * safe))


def pairs_to_complex(F: Any, x: T) -> T:
    """x[..., 0] + i x[..., 1] (the adjoint of view_as_real, for any strides)."""
    return F.complex(F.getitem(x, (Ellipsis, 0)), F.getitem(x, (Ellipsis, 1)))


def cast_gradient(F: Any, grad: T, dtype: Any) -> T:
    """The gradient of a dtype conversion, in the input's dtype: the real part for a real
    input converted to complex (PyTorch's handle_r_to_c)."""
    if dtype is not None and getattr(dtype, "kind", None) != "c" and _is_complex(grad):
        grad = F.real(grad)
    return F.to_dtype(grad, dtype)


def zeros_of(F: Any, x: T) -> T:
    return F.zeros_like(x)


def negated(F: Any, values: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(-v for v in values)


# -- elementwise -------------------------------------------------------------------------------
def pow_self_grad(F: Any, grad: T, self: T, exponent: Any, conjugate: bool = True) -> T:
    """grad * conj(d(x**p)/dx), d(x**p)/dx = p x**(p-1), taken as 0 where p == 0 (so 0**0
    does not give 0 * inf); without ``conjugate`` (the JVP) the derivative itself."""
    c = (lambda v: conj(F, v)) if conjugate else (lambda v: v)
    if isinstance(exponent, int | float | complex):
        if exponent == 0:
            return grad * 0.0
        if exponent == 2:  # the common square: skip the power
            return grad * c(2.0 * self)
        return grad * c(exponent * self ** (exponent - 1))
    return F.where(exponent == 0, 0.0, grad * c(exponent * self ** (exponent - 1)))


def pow_exponent_grad(
    F: Any, grad: T, self: T, exponent: T, result: T, conjugate: bool = True
) -> T:
    """grad * conj(d(x**p)/dp), d(x**p)/dp = x**p log x, taken as 0 where x == 0 (the limit
    for p > 0); without ``conjugate`` (the JVP) the derivative itself."""
    safe = F.where(self == 0, 1.0, self)
    d = result * F.log(safe)
    return F.where(self == 0, 0.0, grad * (conj(F, d) if conjugate else d))


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


def safe_quotient(F: Any, a: T, b: T) -> T:
    """a / b, taken as 0 where b == 0 (hypot's gradient x / hypot(x, y) at the origin: the
    subgradient 0)."""
    zero = b == 0
    return F.where(zero, 0.0, a / F.where(zero, 1.0, b))


# -- special functions -------------------------------------------------------------------------
# Sources: A&S = M. Abramowitz and I. A. Stegun, "Handbook of Mathematical Functions" (1964);
# DLMF = NIST Digital Library of Mathematical Functions, https://dlmf.nist.gov.
def no_derivative(F: Any, op: str, arg: str, tangent: Any = None) -> Any:
    """Raise for an input whose derivative PyTorch does not implement (zeta in its first
    argument, igamma in a, heaviside in x), instead of a silent zero. In a JVP the tangent is
    passed (the term is evaluated only when that tangent is present)."""
    raise NotImplementedError(
        f"the derivative for '{op}' with respect to '{arg}' is not implemented (nor is it in "
        "PyTorch); detach that input, or pass it as a number"
    )


def _safe_divisor(F: Any, x: T) -> tuple[T, T]:
    zero = x == 0
    return zero, F.where(zero, 1.0, x)


def sinc_grad(F: Any, x: T, result: T) -> T:
    """d sinc(x) = (cos(pi x) - sinc(x)) / x, sinc(x) = sin(pi x) / (pi x); at 0 the limit 0,
    written as -(pi^2 / 3) x so that the second derivative there is right too (sinc'' (0) =
    -pi^2 / 3, from sinc(x) = 1 - (pi x)^2 / 6 + ...)."""
    zero, safe = _safe_divisor(F, x)
    return F.where(zero, x * (-(math.pi**2) / 3), (F.cos(safe * math.pi) - result) / safe)


def bessel_i1_grad(F: Any, x: T, result: T) -> T:
    """d I1(x) = I0(x) - I1(x) / x (A&S 9.6.26), 1/2 at 0."""
    zero, safe = _safe_divisor(F, x)
    return F.where(zero, 0.5, F.i0(x) - result / safe)


def bessel_i1e_grad(F: Any, x: T, result: T) -> T:
    """i1e(x) = exp(-|x|) I1(x): d = i0e(x) - i1e(x) (sign(x) + 1/x) (A&S 9.6.26 and the
    product rule), 1/2 at 0."""
    zero, safe = _safe_divisor(F, x)
    return F.where(zero, 0.5, F.special_i0e(x) - result * (F.sign(x) + 1.0 / safe))


def bessel_j1_grad(F: Any, x: T, result: T) -> T:
    """d J1(x) = J0(x) - J1(x) / x (A&S 9.1.27), 1/2 at 0."""
    zero, safe = _safe_divisor(F, x)
    return F.where(zero, 0.5, F.special_bessel_j0(x) - result / safe)


def mvlgamma_grad(F: Any, x: T, p: int) -> T:
    """d log Gamma_p(x) = sum_{j<p} psi(x - j/2) (DLMF 35.3.4 and 5.2.2)."""
    total = F.digamma(x)
    for j in range(1, p):
        total = total + F.digamma(x - 0.5 * j)
    return total


def xlogy_grad(F: Any, grad: T, x: T, y: T, log1p: bool) -> T:
    """d/dx of x log(y) (x log1p(y) with ``log1p``) times ``grad``: xlogy(grad, y) (0 where
    grad is 0), and 0 where x == 0 and y <= 0 (y <= -1), where log y is no number but the
    function is 0 (PyTorch's xlogy/xlog1py backward)."""
    g = F.special_xlog1py(grad, y) if log1p else F.xlogy(grad, y)
    return F.where(x == 0, F.where(y <= (-1.0 if log1p else 0.0), 0.0, g), g)


def logit_grad(F: Any, grad: T, x: T, eps: float | None) -> T:
    """d logit(x) = dx / (x (1 - x)); with eps >= 0 (x clamped to [eps, 1 - eps] first) 0
    outside the interval, as PyTorch's logit_backward."""
    if eps is None or eps < 0:
        return grad / (x * (1 - x))
    inside = clamp_mask(F, x, eps, 1.0 - eps) > 0
    safe = F.where(inside, x, 0.5)
    return F.where(inside, grad / (safe * (1 - safe)), 0.0)


def igamma_x_grad(F: Any, a: T, x: T) -> T:
    """d P(a, x) / dx = x^(a-1) e^(-x) / Gamma(a) (DLMF 8.8.13 with 8.2.4), written as
    exp((a - 1) log x - x - lgamma(a))."""
    return F.exp((a - 1) * F.log(x) - x - F.lgamma(a))


# -- reductions --------------------------------------------------------------------------------
def expand_reduced(
    F: Any, grad: T, shape: tuple[int, ...], dim: tuple[int, ...], keepdim: bool
) -> T:
    """Broadcast a reduction's output gradient back over the reduced axes."""
    if not keepdim:
        for d in sorted(dim, reverse=True):  # negative axes: innermost first
            grad = F.unsqueeze(grad, d)
    lead = grad.ndim - len(shape)  # leading batch axes of a vectorized cotangent
    return F.expand(grad, tuple(grad.shape[:lead]) + tuple(shape) if lead else shape)


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
    return conj(F, F.transpose(others, dim, -1)) * g


def amax_backward(F: Any, grad: T, self: T, result: T, dim: tuple[int, ...], keepdim: bool) -> T:
    """The gradient of amax/amin goes to the extremal entries, split evenly among ties."""
    mask = F.to_dtype(self == expand_reduced(F, result, self.shape, dim, keepdim), self.dtype)
    count = expand_reduced(F, F.sum(mask, dim, keepdim), self.shape, dim, keepdim)
    return expand_reduced(F, grad, self.shape, dim, keepdim) * mask / count


def amax_jvp(F: Any, self_t: T, self: T, result: T, dim: tuple[int, ...], keepdim: bool) -> T:
    mask = F.to_dtype(self == expand_reduced(F, result, self.shape, dim, keepdim), self.dtype)
    return F.sum(self_t * mask, dim, keepdim) / F.sum(mask, dim, keepdim)


def reverse_cumsum(F: Any, x: T, dim: int) -> T:
    """sum_{k >= i} x_k along ``dim``: the adjoint of the cumulative sum."""
    return F.flip(F.cumsum(F.flip(x, (dim,)), dim), (dim,))


def _cumprod_others(F: Any, self: T, dim: int) -> tuple[T, T]:
    """For x = self moved so that ``dim`` is last: C[..., i, k] = prod_{j <= k, j != i} x_j
    (the k-th partial product without the i-th factor, no division) and the mask k >= i.
    O(n^2) per slice; exact with zeros, and to every order (it is a polynomial)."""
    x = F.transpose(self, dim, -1)
    eye = F.eye_like(x, x.shape[-1])
    others = F.cumprod(F.where(eye > 0, 1.0, F.unsqueeze(x, -2)), -1)
    return others, F.cumsum(eye, -1) > 0


def cumprod_backward(F: Any, grad: T, self: T, result: T, dim: int) -> T:
    """d result_k / d x_i = prod_{j <= k, j != i} x_j for i <= k, so
    xbar_i = sum_{k >= i} grad_k prod_{j <= k, j != i} x_j. Without zeros this is
    reverse_cumsum(grad * result)_i / x_i, O(n) (PyTorch's fast path); with a zero the
    quotient is undefined and the O(n^2) product table of ``_cumprod_others`` is used."""
    if not F.has_zero(self):
        return reverse_cumsum(F, grad * conj(F, result), dim) / conj(F, self)
    others, upper = _cumprod_others(F, self, dim)
    g = F.unsqueeze(F.transpose(grad, dim, -1), -2)  # (..., 1, n): grad_k
    return F.transpose(F.sum(F.where(upper, conj(F, others) * g, 0.0), -1, False), dim, -1)


def cumprod_jvp(F: Any, self_t: T, self: T, result: T, dim: int) -> T:
    """d result_k = sum_{i <= k} prod_{j <= k, j != i} x_j dx_i: result * cumsum(dx / x)
    without zeros, else the product table."""
    if not F.has_zero(self):
        return result * F.cumsum(self_t / self, dim)
    others, upper = _cumprod_others(F, self, dim)
    t = F.unsqueeze(F.transpose(self_t, dim, -1), -1)  # (..., n, 1): dx_i
    return F.transpose(F.sum(F.where(upper, others * t, 0.0), -2, False), dim, -1)


# -- shapes ------------------------------------------------------------------------------------
def reshape_tail(F: Any, x: T, n: int, shape: tuple[int, ...]) -> T:
    """Reshape the last ``n`` axes of ``x`` to ``shape``, keeping leading (batch) axes."""
    return F.reshape(x, tuple(x.shape[: x.ndim - n]) + tuple(shape))


def expand_tail(F: Any, x: T, n: int, shape: tuple[int, ...]) -> T:
    """``expand`` of the last ``n`` axes of ``x`` to ``shape``, keeping leading (batch) axes."""
    lead = tuple(x.shape[: x.ndim - n])
    if lead:
        x = F.reshape(x, lead + (1,) * (len(shape) - n) + tuple(x.shape[x.ndim - n :]))
    return F.expand(x, lead + tuple(shape))


def getitem_tail(F: Any, x: T, n: int, index: Any) -> T:
    """``index`` applied to the last ``n`` axes of ``x``, keeping leading (batch) axes in front
    (except, as in NumPy, when non-adjacent advanced indices move their axes first)."""
    lead = x.ndim - n
    if lead == 0:
        return F.getitem(x, index)
    return F.getitem(x, (slice(None),) * lead + (index if isinstance(index, tuple) else (index,)))


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


# -- linear algebra ----------------------------------------------------------------------------
# Matrix-form rules. References: M. B. Giles, "An extended collection of matrix derivative
# results for forward and reverse mode algorithmic differentiation" (2008); M. Seeger et al.,
# "Auto-differentiating linear algebra" (2017); J. Townsend, "Differentiating the singular value
# decomposition" (2016); I. Murray, "Differentiation of the Cholesky decomposition" (2016);
# H.-J. Liao et al., "Differentiable programming tensor networks" (2019) and M. Walter and
# A. Lehmann, "Algorithmic differentiation of linear algebra functions with application in
# optimum experimental design" (2018) for QR; N. J. Higham, "Functions of Matrices" (2008),
# Thm. 3.6, for the Frechet derivative of expm. Matrices are the last two axes; every helper
# takes cotangents/tangents with extra leading batch axes.


def _cols(F: Any, x: T, start: int, stop: int | None) -> T:
    return F.getitem(x, (Ellipsis, slice(None), slice(start, stop)))


def _rows(F: Any, x: T, start: int, stop: int | None) -> T:
    return F.getitem(x, (Ellipsis, slice(start, stop), slice(None)))


def _inverse_gaps(F: Any, gaps: T, tol: float) -> T:
    """1/gaps where |gaps| > tol, 0 elsewhere (a repeated value contributes no 1/0)."""
    ok = F.abs(gaps) > tol
    return F.where(ok, 1.0 / F.where(ok, gaps, 1.0), 0.0)


def _sym(F: Any, x: T) -> T:
    """The symmetric (Hermitian, for complex x) part."""
    return (x + mH(F, x)) * 0.5


def det_backward(F: Any, grad: T, A: T, det: T, LU: T, pivots: T) -> T:
    """VJP of det: grad * adj(A)^T, = grad det(A) A^-T for invertible A (Giles 2008, 2.2.4:
    d det A = det A tr(A^-1 dA)). A^-T comes from the forward's LU; at a singular A the
    adjugate comes from the SVD (finite: rank one at rank n-1, zero below)."""
    if grad is None:
        return None
    return F.linalg_det_vjp(grad, A, det, LU, pivots)


def slogdet_backward(F: Any, grad_sign: T, grad_logabsdet: T, A: T, sign: T, LU: T, pivots: T) -> T:
    """VJP of (sign, log|det A|): with d = tr(A^-1 dA), d log|det A| = Re d and, for complex A,
    d sign = i sign Im d, so Abar = c A^-H with c = grad_logabsdet + i Im(grad_sign conj(sign))
    (a real sign is locally constant: c = grad_logabsdet). At a singular A (value -inf)
    pinv(A)^H replaces the infinite A^-H, with a warning."""
    if _is_complex(A) and grad_sign is not None:
        phase = F.imag(grad_sign * conj(F, sign)) * 1j
        grad_logabsdet = phase if grad_logabsdet is None else grad_logabsdet + phase
    if grad_logabsdet is None:
        return None
    return F.linalg_slogdet_vjp(grad_logabsdet, A, sign, LU, pivots)


def slogdet_jvp(F: Any, A_t: T, A: T, sign: T, LU: T, pivots: T) -> tuple:
    """d = tr(A^-1 dA) = sum(A^-T * dA): d log|det A| = Re d, d sign = i sign Im d (complex)."""
    d = F.sum(conj(F, F.linalg_slogdet_vjp(F.ones_like(sign), A, sign, LU, pivots)) * A_t, (-2, -1))
    if not _is_complex(A):
        return None, d, None, None
    return sign * (F.imag(d) * 1j), F.real(d), None, None


def lift(F: Any, t: T, ndim: int, target_ndim: int) -> T:
    """A tangent of an ``ndim``-d input (with any extra leading tangent-batch axes) with size-1
    axes inserted after those, so that it broadcasts like its input against a
    ``target_ndim``-d result (inputs whose batch axes broadcast)."""
    k = target_ndim - ndim
    if k <= 0:
        return t
    lead = t.ndim - ndim
    return F.reshape(t, tuple(t.shape[:lead]) + (1,) * k + tuple(t.shape[lead:]))


def solve_jvp(
    F: Any, A_t: T, B_t: T, A: T, X: T, LU: T, pivots: T, A_ndim: int, B_ndim: int
) -> tuple[T, None, None]:
    """dX = A^-1 (dB - dA X), the solve reusing the forward's LU."""
    rhs = lift(F, B_t, B_ndim, X.ndim) - lift(F, A_t, A_ndim, X.ndim) @ X
    return F.linalg_lu_solve(LU, pivots, A, rhs, False), None, None


def triangle(F: Any, x: T, upper: bool, unitriangular: bool) -> T:
    """The part of ``x`` a triangular solve reads: upper or lower, without the diagonal for a
    unit triangular matrix."""
    if upper:
        return F.triu(x, 1 if unitriangular else 0)
    return F.tril(x, -1 if unitriangular else 0)


# -- Cholesky ------------------------------------------------------------------------------
def _phi(F: Any, x: T) -> T:
    """Phi(X): the lower triangle of X with its diagonal halved."""
    return F.tril(x, 0) - F.diag_embed(F.diagonal(x, 0, -2, -1), 0, -2, -1) * 0.5


def cholesky_backward(F: Any, grad: T, L: T) -> T:
    """A = L L^T. VJP (Murray 2016, eq. 10, symmetrised): Abar = sym(L^-T Phi(L^T Lbar) L^-1),
    two triangular solves; the gradient is symmetric (A is taken to be symmetric)."""
    P = _phi(F, mH(F, L) @ grad)
    S = F.linalg_solve_triangular(mH(F, L), P, True, False)  # L^-H P
    S = mH(F, F.linalg_solve_triangular(mH(F, L), mH(F, S), True, False))  # (L^-H P) L^-1
    return _sym(F, S)


def cholesky_jvp(F: Any, A_t: T, L: T) -> T:
    """dL = L Phi(L^-1 dA L^-T) with dA symmetrised (Murray 2016, eq. 7)."""
    X = F.linalg_solve_triangular(L, _sym(F, A_t), False, False)  # L^-1 dA
    X = mH(F, F.linalg_solve_triangular(L, mH(F, X), False, False))  # L^-1 dA L^-H
    return L @ _phi(F, X)


# -- LU ------------------------------------------------------------------------------------
# A = P L U, k = min(m, n). The square rule (de Hoog, Anderssen & Lukas 2011; PyTorch's
# linalg_lu_backward): C = L^-1 P^T dA U^-1 = L^-1 dL + dU U^-1, strictly lower plus upper, so
# dL = L tril(C, -1), dU = triu(C) U, and <Lbar, dL> + <Ubar, dU> = <M, C> with
# M = tril(L^H Lbar, -1) + triu(Ubar U^H): Abar = P L^-H M U^-H. Wide (m < n): U = [U1 U2] and
# U2 = L^-1 (P^T A)_2, whose cotangent adds -Ubar2 U2^H to L^H Lbar and P L^-H Ubar2 to Abar2.
# Tall (m > n): L = [L1; L2] and L2 = (P^T A)_2 U^-1, which adds -L2^H Lbar2 to Ubar U^H and
# P Lbar2 U^-H to Abar2.
def _plus(a: Any, b: Any) -> Any:
    """a + b where either may be absent (None)."""
    if a is None:
        return b
    return a if b is None else a + b


def _solve_left_unit_lower_h(F: Any, L: T, B: T) -> T:
    """L^-H B for unit lower triangular L (an upper triangular solve)."""
    return F.linalg_solve_triangular(mH(F, L), B, True, True)


def _solve_right_upper_h(F: Any, B: T, U: T) -> T:
    """B U^-H for upper triangular U: U X^H = B^H."""
    return mH(F, F.linalg_solve_triangular(U, mH(F, B), True, False))


def _solve_right_upper(F: Any, B: T, U: T) -> T:
    """B U^-1 for upper triangular U: U^T X^T = B^T."""
    return F.mT(F.linalg_solve_triangular(F.mT(U), F.mT(B), False, False))


def lu_backward(F: Any, grad_L: T, grad_U: T, P: T, L: T, U: T) -> T:
    """VJP of A = P L U (see the section comment); P's cotangent is ignored (P is piecewise
    constant)."""
    if grad_L is None and grad_U is None:
        return None
    m, n = L.shape[-2], U.shape[-1]
    if m == n:
        M = _plus(
            None if grad_L is None else F.tril(mH(F, L) @ grad_L, -1),
            None if grad_U is None else F.triu(grad_U @ mH(F, U), 0),
        )
        return P @ _solve_right_upper_h(F, _solve_left_unit_lower_h(F, L, M), U)
    if m < n:
        U1, U2 = _cols(F, U, 0, m), _cols(F, U, m, None)
        gU1 = None if grad_U is None else _cols(F, grad_U, 0, m)
        gU2 = None if grad_U is None else _cols(F, grad_U, m, None)
        lower = _plus(
            None if grad_L is None else mH(F, L) @ grad_L,
            None if gU2 is None else -(gU2 @ mH(F, U2)),
        )
        M = _plus(F.tril(lower, -1), None if gU1 is None else F.triu(gU1 @ mH(F, U1), 0))
        left = _solve_right_upper_h(F, M, U1)
        if gU2 is None:
            gU2 = F.expand(F.zeros_like(U2), tuple(left.shape[:-1]) + (n - m,))
        return P @ _solve_left_unit_lower_h(F, L, F.cat([left, gU2], -1))
    L1, L2 = _rows(F, L, 0, n), _rows(F, L, n, None)
    gL1 = None if grad_L is None else _rows(F, grad_L, 0, n)
    gL2 = None if grad_L is None else _rows(F, grad_L, n, None)
    upper = _plus(
        None if grad_U is None else grad_U @ mH(F, U),
        None if gL2 is None else -(mH(F, L2) @ gL2),
    )
    M = _plus(None if gL1 is None else F.tril(mH(F, L1) @ gL1, -1), F.triu(upper, 0))
    top = _solve_left_unit_lower_h(F, L1, M)
    if gL2 is None:
        gL2 = F.expand(F.zeros_like(L2), tuple(top.shape[:-2]) + (m - n, n))
    return P @ _solve_right_upper_h(F, F.cat([top, gL2], -2), U)


def lu_jvp(F: Any, A_t: T, P: T, L: T, U: T) -> tuple[None, T, T, None, None]:
    """dL and dU of A = P L U along dA (see the section comment)."""
    m, n = L.shape[-2], U.shape[-1]
    dA = F.mT(P) @ A_t  # P^T dA (P is real)
    if m == n:
        C = _solve_right_upper(F, F.linalg_solve_triangular(L, dA, False, True), U)
        return None, L @ F.tril(C, -1), F.triu(C, 0) @ U, None, None
    if m < n:
        W = F.linalg_solve_triangular(L, dA, False, True)  # L^-1 P^T dA
        U1, U2 = _cols(F, U, 0, m), _cols(F, U, m, None)
        C = _solve_right_upper(F, _cols(F, W, 0, m), U1)
        lower = F.tril(C, -1)
        dU = F.cat([F.triu(C, 0) @ U1, _cols(F, W, m, None) - lower @ U2], -1)
        return None, L @ lower, dU, None, None
    Y = _solve_right_upper(F, dA, U)  # P^T dA U^-1
    L1, L2 = _rows(F, L, 0, n), _rows(F, L, n, None)
    C = F.linalg_solve_triangular(L1, _rows(F, Y, 0, n), False, True)
    upper = F.triu(C, 0)
    dL = F.cat([L1 @ F.tril(C, -1), _rows(F, Y, n, None) - L2 @ upper], -2)
    return None, dL, upper @ U, None, None


# -- QR ------------------------------------------------------------------------------------
def _right_solve_r(F: Any, B: T, R: T, transposed: bool) -> T:
    """B R^-1, or B R^-T with ``transposed`` (R upper triangular)."""
    if transposed:
        return F.mT(F.linalg_solve_triangular(R, F.mT(B), True, False))
    return F.mT(F.linalg_solve_triangular(F.mT(R), F.mT(B), False, False))


def _qr_backward_tall(F: Any, gQ: T, gR: T, Q: T, R: T) -> T:
    """A = QR with m >= n, Q^T Q = I. With M = Rbar R^T - Q^T Qbar and copyltu(M) =
    triu(M) + triu(M, 1)^T: Abar = (Qbar + Q copyltu(M)) R^-T (Walter & Lehmann 2018; Liao et
    al. 2019, eq. 11). Derivation: C = Q^T dA R^-1 = Q^T dQ + dR R^-1 splits into a skew and an
    upper triangular part."""
    M = None
    if gR is not None:
        M = gR @ F.mT(R)
    if gQ is not None:
        QtgQ = F.mT(Q) @ gQ
        M = -QtgQ if M is None else M - QtgQ
    N = F.triu(M, 0) + F.mT(F.triu(M, 1))
    B = Q @ N if gQ is None else gQ + Q @ N
    return _right_solve_r(F, B, R, True)


def _fold_complement(F: Any, g: T, U: T, k: int, op: str) -> T:
    """The gradient of the first k columns U1 of a square orthogonal U = [U1 U2] when the loss
    also reads U2, an arbitrary orthonormal basis of span(U1)'s complement. From Q^T Q = I:
    dU2 = -U1 dU1^T U2 + U2 W with W skew (the arbitrary part), so gU1 += -U2 gU2^T U1; the
    loss must not depend on W (skew(U2^T gU2) = 0), else a warning."""
    U1, U2 = _cols(F, U, 0, k), _cols(F, U, k, None)
    g1, g2 = _cols(F, g, 0, k), _cols(F, g, k, None)
    X = mH(F, U2) @ g2
    F.warn_if_basis_dependent(
        X - mH(F, X),
        None,
        0.0,
        [g2],
        op,
        "the trailing columns of a square orthogonal factor (a basis of the orthogonal complement)",
        "all",
    )
    return g1 - U2 @ (mH(F, g2) @ U1)


def qr_backward(F: Any, grad_Q: T, grad_R: T, Q: T, R: T, mode: str) -> T:
    """VJP of the QR decomposition: tall/square case above; wide (m < n): A = [X Y] with
    X = Q R1, R2 = Q^T Y, so Ybar = Q R2bar and X gets (Qbar + Y R2bar^T, R1bar); complete mode
    with m > n: the trailing columns of Q are folded into the leading ones."""
    if grad_Q is None and grad_R is None:
        return None
    m, n = Q.shape[-2], R.shape[-1]
    if m > n and mode == "complete":
        if grad_Q is not None:
            grad_Q = _fold_complement(F, grad_Q, Q, n, "linalg.qr")
        if grad_R is not None:
            grad_R = _rows(F, grad_R, 0, n)
        return _qr_backward_tall(F, grad_Q, grad_R, _cols(F, Q, 0, n), _rows(F, R, 0, n))
    if m >= n:
        return _qr_backward_tall(F, grad_Q, grad_R, Q, R)
    R1, R2 = _cols(F, R, 0, m), _cols(F, R, m, None)
    gR1 = None if grad_R is None else _cols(F, grad_R, 0, m)
    gQ = grad_Q
    if grad_R is not None:
        gR2 = _cols(F, grad_R, m, None)
        gY = Q @ gR2
        extra = (Q @ R2) @ F.mT(gR2)  # Y R2bar^T with Y = Q R2
        gQ = extra if gQ is None else gQ + extra
    gX = _qr_backward_tall(F, gQ, gR1, Q, R1)
    if grad_R is None:
        gY = F.expand(F.zeros_like(R2), tuple(gX.shape[:-1]) + tuple(R2.shape[-1:]))
    return F.cat([gX, gY], -1)


def _qr_jvp_tall(F: Any, dA: T, Q: T, R: T) -> tuple[T, T]:
    """C = Q^T dA R^-1; dR = (triu(C) + tril(C, -1)^T) R; dQ = dA R^-1 - Q (triu(C) +
    tril(C, -1)^T)."""
    C = _right_solve_r(F, F.mT(Q) @ dA, R, False)
    T_ = F.triu(C, 0) + F.mT(F.tril(C, -1))
    return _right_solve_r(F, dA, R, False) - Q @ T_, T_ @ R


def qr_jvp(F: Any, A_t: T, Q: T, R: T, mode: str) -> tuple[T, T]:
    m, n = Q.shape[-2], R.shape[-1]
    if m > n and mode == "complete":
        Q1, Q2 = _cols(F, Q, 0, n), _cols(F, Q, n, None)
        dQ1, dR1 = _qr_jvp_tall(F, A_t, Q1, _rows(F, R, 0, n))
        dQ = F.cat([dQ1, -(Q1 @ (F.mT(dQ1) @ Q2))], -1)
        return dQ, F.cat([dR1, F.zeros_like(_rows(F, A_t, n, None))], -2)
    if m >= n:
        return _qr_jvp_tall(F, A_t, Q, R)
    R2 = _cols(F, R, m, None)
    dQ, dR1 = _qr_jvp_tall(F, _cols(F, A_t, 0, m), Q, _cols(F, R, 0, m))
    dR2 = F.mT(dQ) @ (Q @ R2) + F.mT(Q) @ _cols(F, A_t, m, None)
    return dQ, F.cat([dR1, dR2], -1)


# -- symmetric eigendecomposition ----------------------------------------------------------
def eigh_backward(F: Any, grad_L: T, grad_Q: T, L: T, Q: T) -> T:
    """A = Q diag(L) Q^T. VJP (Giles 2008, 3.1; Seeger et al. 2017):
    Abar = Q (diag(Lbar) + F o skew(Q^T Qbar)) Q^T, F_ij = 1/(l_j - l_i) for i != j. F is 0
    for equal eigenvalues; if the loss gives such a pair a nonzero skew(Q^T Qbar) it depends on
    the arbitrary basis of that eigenspace: warned. Symmetric (A is taken to be symmetric)."""
    if grad_Q is None and grad_L is None:
        return None
    tol = F.spectral_tolerance(L, L.shape[-1])
    if grad_L is not None:
        F.warn_if_split_dependent(grad_L, L, tol, "linalg.eigh", "eigenvalue")
    if grad_Q is None:
        return (Q * F.unsqueeze(grad_L, -2)) @ mH(F, Q)
    X = mH(F, Q) @ grad_Q
    if _is_complex(X):  # eigenvectors are defined up to a phase each
        F.raise_if_phase_dependent(F.imag(F.diagonal(X, 0, -2, -1)), [grad_Q], "linalg_eigh")
    K = X - mH(F, X)  # 2 skew(Q^H Qbar); the 1/2 goes into the gaps
    F.warn_if_basis_dependent(
        K, L, tol, [grad_Q], "linalg.eigh", "the eigenvectors of a repeated eigenvalue", "diff"
    )
    inner = F.gap_quotient(K, L, tol, False, 0.5)  # K_ij / (2 (l_j - l_i))
    if grad_L is not None:
        inner = F.with_diagonal(inner, grad_L)
    return Q @ inner @ mH(F, Q)


def eigh_jvp(F: Any, A_t: T, L: T, Q: T) -> tuple[T, T]:
    """dL = diag(Q^H dA Q), dQ = Q (F o (Q^H dA Q)) (Giles 2008, 3.1), dA symmetrised
    (Hermitian part); within a repeated eigenvalue the (arbitrary) rotation is taken as zero,
    and so is the phase of each (complex) eigenvector."""
    P = mH(F, Q) @ _sym(F, A_t) @ Q
    tol = F.spectral_tolerance(L, L.shape[-1])
    return real_part(F, F.diagonal(P, 0, -2, -1)), Q @ (P * F.inverse_gaps(L, tol, False, 1.0))


# -- general eigendecomposition ------------------------------------------------------------
def _eig_gaps(F: Any, L: T) -> T:
    """l_j - l_i with 1 on the diagonal (where the quotients it divides are replaced)."""
    n = L.shape[-1]
    return (F.unsqueeze(L, -2) - F.unsqueeze(L, -1)) + F.eye_like(L, n)


def eig_backward(F: Any, grad_L: T, grad_V: T, L: T, V: T) -> T:
    """A V = V diag(L), unit-norm columns. VJP (PyTorch's linalg_eig_backward): with
    X = V^H Vbar projected onto the unit-norm tangent space, X - V^H V diag(Re diag X),
    Abar = V^-H (diag(Lbar) + X / conj(l_j - l_i)) V^H (off the diagonal), a solve with V^H.
    Each eigenvector's phase is arbitrary: a loss with Im diag(V^H Vbar) != 0 depends on it
    and raises. A real A takes the real part (the engine's fit_gradient)."""
    if grad_L is None and grad_V is None:
        return None
    Vh = mH(F, V)
    if grad_V is None:
        inner = F.diag_embed(grad_L, 0, -2, -1)
    else:
        X = Vh @ grad_V
        diag = F.diagonal(X, 0, -2, -1)
        F.raise_if_phase_dependent(F.imag(diag), [grad_V], "linalg_eig")
        X = X - Vh @ (V * F.unsqueeze(F.real(diag), -2))
        inner = X / conj(F, _eig_gaps(F, L))
        if grad_L is not None:
            inner = F.with_diagonal(inner, grad_L)
    return F.linalg_solve(Vh, inner @ Vh)[0]


def eig_jvp(F: Any, A_t: T, L: T, V: T) -> tuple[T, T]:
    """P = V^-1 dA V: dL = diag(P), dV = V (C - diag(Re diag(V^H V C))) with C = P / (l_j -
    l_i) off the diagonal and 0 on it (the norms stay 1; the phases do not change)."""
    P = F.linalg_solve(V, A_t @ V)[0]
    C = F.with_diagonal(P / _eig_gaps(F, L), F.zeros_like(L))
    VC = V @ C
    keep_norms = F.real(F.diagonal(mH(F, V) @ VC, 0, -2, -1))
    return F.diagonal(P, 0, -2, -1), VC - V * F.unsqueeze(keep_norms, -2)


# -- singular value decomposition ----------------------------------------------------------
def svd_backward(
    F: Any, grad_U: T, grad_S: T, grad_Vh: T, U: T, S: T, Vh: T, full_matrices: bool
) -> T:
    """A = U diag(S) V^T (reduced: k = min(m, n) columns). VJP (Townsend 2016, eq. 36):
    Abar = U [(F o (J_U - J_U^T)) S + diag(Sbar) + S (F o (J_V - J_V^T))] V^T
           + (I - U U^T) Ubar S^-1 V^T + U S^-1 Vbar^T (I - V V^T),
    J_U = U^T Ubar, J_V = V^T Vbar, F_ij = 1/(s_j^2 - s_i^2). Written as
    (K_U + K_V)_ij / (2 (s_j - s_i)) + (K_U - K_V)_ij / (2 (s_j + s_i)) so each 1/gap meets
    the only coefficient that must vanish when that gap does: repeated singular values (and
    pairs of zero ones) get no 1/0, and a loss that gives them a nonzero coefficient depends on
    the arbitrary basis: warned. Full matrices: trailing columns folded in (_fold_complement)."""
    k = S.shape[-1]
    m, n = U.shape[-2], Vh.shape[-1]
    gU, gVh = grad_U, grad_Vh
    if full_matrices and m > k:
        if gU is not None:
            gU = _fold_complement(F, gU, U, k, "linalg.svd")
        U = _cols(F, U, 0, k)
    if full_matrices and n > k:
        if gVh is not None:
            gVh = mH(F, _fold_complement(F, mH(F, gVh), mH(F, Vh), k, "linalg.svd"))
        Vh = _rows(F, Vh, 0, k)
    if gU is None and gVh is None and grad_S is None:
        return None
    tol = F.spectral_tolerance(S, max(m, n))
    if grad_S is not None:
        F.warn_if_split_dependent(grad_S, S, tol, "linalg.svd", "singular value")
    if gU is None and gVh is None:
        return (U * F.unsqueeze(grad_S, -2)) @ Vh  # U diag(Sbar) V^T
    JU = None if gU is None else mH(F, U) @ gU
    JV = None if gVh is None else Vh @ mH(F, gVh)
    KU = None if JU is None else JU - mH(F, JU)
    KV = None if JV is None else JV - mH(F, JV)
    if KU is None:
        k_plus, k_minus = KV, -KV
    elif KV is None:
        k_plus, k_minus = KU, KU
    else:
        k_plus, k_minus = KU + KV, KU - KV
    cot = [gU, gVh]
    if _is_complex(k_plus):  # U -> U D, V -> V D (D diagonal, unimodular) leaves A unchanged
        F.raise_if_phase_dependent(F.imag(F.diagonal(k_plus, 0, -2, -1)), cot, "linalg_svd")
    F.warn_if_basis_dependent(
        k_plus,
        S,
        tol,
        cot,
        "linalg.svd",
        "the singular vectors of a repeated singular value",
        "diff",
    )
    F.warn_if_basis_dependent(
        k_minus,
        S,
        tol,
        cot,
        "linalg.svd",
        "the singular vectors of a repeated zero singular value",
        "sum",
    )
    inner = F.gap_quotient(k_plus, S, tol, False, 0.5) + F.gap_quotient(k_minus, S, tol, True, 0.5)
    if grad_S is not None:
        # complex: the diagonal holds the phase term (K_U - K_V)_ii / (4 s_i) already; real: 0
        d = grad_S
        if _is_complex(inner):
            d = F.diagonal(inner, 0, -2, -1) + grad_S
        inner = F.with_diagonal(inner, d)
    gA = U @ inner @ Vh
    s_inv = _inverse_gaps(F, S, tol)
    if m > k and gU is not None:
        rest = gU - U @ JU  # (I - U U^T) Ubar
        F.warn_if_basis_dependent(
            rest,
            S,
            tol,
            [gU],
            "linalg.svd",
            "the left singular vectors of a zero singular value",
            "zero columns",
        )
        gA = gA + (rest * F.unsqueeze(s_inv, -2)) @ Vh
    if n > k and gVh is not None:
        rest = gVh - mH(F, JV) @ Vh  # Vbar^H (I - V V^H)
        F.warn_if_basis_dependent(
            rest,
            S,
            tol,
            [gVh],
            "linalg.svd",
            "the right singular vectors of a zero singular value",
            "zero rows",
        )
        gA = gA + (U * F.unsqueeze(s_inv, -2)) @ rest
    return gA


def svd_jvp(F: Any, A_t: T, U: T, S: T, Vh: T, full_matrices: bool) -> tuple[T, T, T]:
    """dP = U^T dA V, dS = diag(dP),
    dU = U (F o (dP S + S dP^T)) + (I - U U^T) dA V S^-1,
    dV = V (F o (S dP + dP^T S)) + (I - V V^T) dA^T U S^-1   (Townsend 2016),
    with F o (.) split into sym(dP)/(s_j - s_i) and skew(dP)/(s_j + s_i) terms (see
    svd_backward); full matrices: dU2 = -U1 dU1^T U2 (the arbitrary rotation taken as 0)."""
    k = S.shape[-1]
    m, n = U.shape[-2], Vh.shape[-1]
    U1 = _cols(F, U, 0, k) if full_matrices and m > k else U
    Vh1 = _rows(F, Vh, 0, k) if full_matrices and n > k else Vh
    tol = F.spectral_tolerance(S, max(m, n))
    dP = mH(F, U1) @ A_t @ mH(F, Vh1)
    a = (dP + mH(F, dP)) * F.inverse_gaps(S, tol, False, 0.5)  # sym(dP) / (s_j - s_i)
    # skew(dP) / (s_j + s_i); complex: its diagonal i Im(dP_ii) / (2 s_i) is the phase change
    # split evenly between U and V (the phase itself is arbitrary)
    b = (dP - mH(F, dP)) * F.inverse_gaps(S, tol, True, 0.5)
    dU = U1 @ (a + b)
    dVh = mH(F, a - b) @ Vh1
    s_inv = _inverse_gaps(F, S, tol)
    if m > k:
        dU = dU + (A_t @ mH(F, Vh1) - U1 @ dP) * F.unsqueeze(s_inv, -2)
    if n > k:
        dVh = dVh + F.unsqueeze(s_inv, -1) * (mH(F, U1) @ A_t - dP @ Vh1)
    if full_matrices and m > k:
        dU = F.cat([dU, -(U1 @ (mH(F, dU) @ _cols(F, U, k, None)))], -1)
    if full_matrices and n > k:
        dVh = F.cat([dVh, -((_rows(F, Vh, k, None) @ mH(F, dVh)) @ Vh1)], -2)
    return dU, real_part(F, F.diagonal(dP, 0, -2, -1)), dVh


# -- pseudo-inverse -------------------------------------------------------------------------
def pinv_jvp(F: Any, A_t: T, A: T, X: T) -> T:
    """X = A^+: dX = -X dA X + X X^T dA^T (I - A X) + (I - X A) dA^T X^T X (Golub & Pereyra
    1973, Thm. 4.3), valid where the rank is locally constant."""
    dAt = mH(F, A_t)
    XXt_dAt = (X @ mH(F, X)) @ dAt
    dAt_XtX = dAt @ (mH(F, X) @ X)
    return -(X @ A_t @ X) + XXt_dAt - (XXt_dAt @ A) @ X + dAt_XtX - X @ (A @ dAt_XtX)


def pinv_backward(F: Any, grad: T, A: T, X: T) -> T:
    """The adjoint of pinv_jvp: Abar = -X^T G X^T + (I - A X) G^T X X^T + X^T X G^T (I - X A),
    with the projectors applied as products (no m x m or n x n identity is formed)."""
    Gt = mH(F, grad)
    term2 = Gt @ (X @ mH(F, X))
    term3 = (mH(F, X) @ X) @ Gt
    return -(mH(F, X) @ grad @ mH(F, X)) + term2 - A @ (X @ term2) + term3 - (term3 @ X) @ A


# -- matrix exponential --------------------------------------------------------------------
def matrix_exp_frechet(F: Any, A: T, E: T) -> T:
    """The Frechet derivative L(A, E) of expm at A in direction E: the upper right block of
    expm([[A, E], [0, A]]) (Higham 2008, Thm. 3.6). The JVP is L(A, dA); the VJP is
    L(A^T, grad) (expm commutes with transposition). A is broadcast to E's batch axes."""
    n = A.shape[-1]
    A = F.expand(A, tuple(E.shape))
    top = F.cat([A, E], -1)
    bottom = F.cat([F.zeros_like(E), A], -1)
    return _cols(F, _rows(F, F.linalg_matrix_exp(F.cat([top, bottom], -2)), 0, n), n, None)


# -- norms ---------------------------------------------------------------------------------
def _norm_direction(F: Any, x: T, r: T, ord: float, dim: tuple[int, ...]) -> T:  # noqa: A002
    """d ||x||_p / dx with the norm ``r`` broadcast to x's shape: sign(x) |x|^(p-1) /
    r^(p-1) (x / r for p = 2; sign(x) for p = 1; the extremal entries, ties split, for +-inf;
    0 for p = 0). Where that is undefined (r = 0, or x_i = 0 with p < 1) it is 0: a
    subgradient at 0, never NaN."""
    zero = r == 0
    if ord == 2:
        return F.where(zero, 0.0, x / F.where(zero, 1.0, r))
    if ord == 1:
        return sgn(F, x)
    if ord == 0:
        return x * 0.0
    if ord in (math.inf, -math.inf):
        mask = F.to_dtype(F.abs(x) == r, x.dtype)
        count = expand_reduced(F, F.sum(mask, dim, True), x.shape, dim, True)
        return sgn(F, x) * mask / count
    ax = F.abs(x)
    ratio = F.where(ax == 0, 1.0, ax) / F.where(zero, 1.0, r)
    return F.where(zero, 0.0, sgn(F, x) * ratio ** (ord - 1))


def vector_norm_backward(
    F: Any,
    grad: T,
    x: T,
    result: T,
    ord: float,
    dim: tuple[int, ...],
    keepdim: bool,  # noqa: A002
) -> T:
    """VJP of ||x||_p over ``dim``: grad * d||x||_p/dx (see _norm_direction)."""
    g = expand_reduced(F, grad, x.shape, dim, keepdim)
    r = expand_reduced(F, result, x.shape, dim, keepdim)
    return g * _norm_direction(F, x, r, ord, dim)


def vector_norm_jvp(
    F: Any,
    x_t: T,
    x: T,
    result: T,
    ord: float,
    dim: tuple[int, ...],
    keepdim: bool,  # noqa: A002
) -> T:
    r = expand_reduced(F, result, x.shape, dim, keepdim)
    # Re sum(conj(d) dx): the real derivative of the norm of complex x (d: the direction)
    return real_part(F, F.sum(conj(F, _norm_direction(F, x, r, ord, dim)) * x_t, dim, keepdim))


# -- fft ---------------------------------------------------------------------------------------
# The DFT F_n (exp(-2 pi i jk/n)) is C-linear with adjoint F_n^H = conj(F_n) (exp(+...)); the
# rows' scale factors are real, so each VJP is a transform in the opposite direction with the
# same normalization. A one-sided spectrum keeps bins 0 .. n//2 of n; the bins k = 1 ..
# (n-1)//2 stand for themselves and their mirror images n - k, the others (0, and n/2 for even
# n) for themselves only: that is where the adjoints of r2c and c2r weigh the bins.
def fft_mirrored_bins(F: Any, x: T, n: int, dim: int, factor: float) -> T:
    """``x`` with the bins 1 .. (n-1)//2 along axis ``dim`` (one-sided bins of a real signal of
    n points that have a mirror image) multiplied by ``factor``."""
    hi = (n + 1) // 2
    if hi <= 1:
        return x

    def bins(start: int, stop: int) -> T:
        return F.getitem(x, (Ellipsis, slice(start, stop)) + (slice(None),) * (-dim - 1))

    m = x.shape[dim]
    parts = [bins(0, 1), bins(1, hi) * factor]
    if hi < m:
        parts.append(bins(hi, m))
    return F.cat(parts, dim)


def fft_r2c_backward(
    F: Any, grad: T, dim: tuple[int, ...], normalization: str, onesided: bool, shape: Any
) -> T:
    """VJP of the real-to-complex DFT y = c P F x (P: the one-sided bins): the real part of
    x's adjoint, Re(c F^H P^T g). Two-sided: Re of the inverse-direction c2c. One-sided:
    Re(F^H pad(g)) = c2r(w g) with w = 1/2 on the mirrored bins (a real inverse FFT counts
    each of those twice and drops the imaginary parts of the others), so no full-length
    complex transform is made."""
    if not onesided:
        return real_part(F, F.fft_c2c(grad, dim, normalization, True))
    n = shape[dim[-1]]
    return F.fft_c2r(fft_mirrored_bins(F, grad, n, dim[-1], 0.5), dim, normalization, n)


def fft_c2r_backward(
    F: Any, grad: T, dim: tuple[int, ...], normalization: str, last_dim_size: int
) -> T:
    """VJP of the complex-to-real inverse DFT y = c Re(F^H E h) (E: the Hermitian extension
    of the one-sided bins h): with a real output gradient g, dL/dRe h + i dL/dIm h =
    c w F g over the one-sided bins, w = 2 on the mirrored bins (each also stands for its
    mirror image) and 1 elsewhere (whose imaginary parts the forward ignores); PyTorch's
    fft_c2r_backward."""
    spectrum = F.fft_r2c(grad, dim, normalization, True)
    return fft_mirrored_bins(F, spectrum, last_dim_size, dim[-1], 2.0)


# -- nn primitives (the rows of the `nn primitives` section) -------------------------------
def scaled(F: Any, x: T, factor: Any) -> T:
    """``x * factor``, or ``x`` itself when the factor is 1 (PyTorch's maybe_multiply)."""
    return x if isinstance(factor, int | float) and factor == 1 else x * factor


def addmm_mat2_grad(F: Any, grad: T, mat1: T, mat2_colmajor: bool) -> T:
    """``mH(mat1) @ grad`` (the VJP of ``mat1 @ mat2`` to ``mat2``) in ``mat2``'s layout: for
    a column-major ``mat2`` (a linear layer's ``W.T``) computed as ``(grad^T conj(mat1))^T``,
    so that its transpose, the gradient of ``W``, is row-major as ``W`` is and reaches
    ``W.grad`` without a transposing copy (PyTorch's mm_mat2_backward does the same)."""
    if mat2_colmajor:
        return F.mT(F.mT(grad) @ conj(F, mat1))
    return mH(F, mat1) @ grad
