"""Nested forward-mode levels: dual tensors at distinct levels, forward-over-forward
(``jacfwd(jacfwd(f))``) and forward-over-reverse Hessians against closed forms and finite
differences, and tangents of one level never leaking into another."""

from __future__ import annotations

import numpy as np
import pytest

import matgrad as mg
from matgrad import func as mf
from matgrad.autograd import forward_ad as fwad

rng = np.random.default_rng(3)


def t(a):
    return mg.tensor(np.asarray(a, dtype=float))


def fd_hessian(f, x, eps=1e-4):
    n = x.size
    H = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            e_i, e_j = np.eye(n)[i] * eps, np.eye(n)[j] * eps
            H[i, j] = (
                f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)
            ) / (4 * eps * eps)
    return H


def f_mg(v):
    return (v.tanh() * v.sum()).sum() + (v * v * v).sum()


def f_np(v):
    return (np.tanh(v) * v.sum()).sum() + (v**3).sum()


def test_two_levels_give_the_mixed_second_derivative():
    # f(x) = x^3 (elementwise): d/ds d/dr f(x + r u + s w) = 6 x u w
    x, u, w = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3)
    with fwad.dual_level() as outer:
        xo = fwad.make_dual(t(x), t(u))
        with fwad.dual_level() as inner:
            assert (outer, inner) == (1, 2)
            xi = fwad.make_dual(xo, t(w))
            y = xi * xi * xi
            p_in, t_in = fwad.unpack_dual(y, level=inner)
            np.testing.assert_allclose(t_in.numpy(), 3 * x**2 * w)
            # the outer tangents of the inner primal and of the inner tangent
            np.testing.assert_allclose(
                fwad.unpack_dual(p_in, level=outer).tangent.numpy(), 3 * x**2 * u
            )
            np.testing.assert_allclose(
                fwad.unpack_dual(t_in, level=outer).tangent.numpy(), 6 * x * u * w
            )
        # the inner level closed: only the outer tangent is left
        assert fwad.unpack_dual(y, level=outer).tangent is not None
        with pytest.raises(RuntimeError, match="not open"):
            fwad.unpack_dual(y, level=2)
    assert fwad.unpack_dual(y).tangent is None and y._fw_grad is None


def test_levels_do_not_mix():
    # the same tensor dual at two levels with different tangents: each level sees its own
    x = rng.standard_normal(2)
    with fwad.dual_level():
        a = fwad.make_dual(t(x), t(np.ones(2)))
        with fwad.dual_level():
            b = fwad.make_dual(t(x), t(np.full(2, 10.0)))
            y = a * b  # d/d(level 1) = b * 1 = x, d/d(level 2) = a * 10 = 10 x
            np.testing.assert_allclose(fwad.unpack_dual(y, level=2).tangent.numpy(), 10 * x)
            np.testing.assert_allclose(fwad.unpack_dual(y, level=1).tangent.numpy(), x)


@pytest.mark.parametrize(
    "nest",
    ["jacfwd(jacfwd)", "jacfwd(jacrev)", "jacrev(jacfwd)", "jacrev(jacrev)", "hessian"],
)
def test_hessians_by_every_nesting_match_finite_differences(nest):
    x = rng.standard_normal(4)
    fwd, rev = mf.jacfwd, mf.jacrev
    make = {
        "jacfwd(jacfwd)": lambda f: fwd(fwd(f)),
        "jacfwd(jacrev)": lambda f: fwd(rev(f)),
        "jacrev(jacfwd)": lambda f: rev(fwd(f)),
        "jacrev(jacrev)": lambda f: rev(rev(f)),
        "hessian": mf.hessian,
    }[nest]
    H = make(f_mg)(t(x)).numpy()
    np.testing.assert_allclose(H, fd_hessian(f_np, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(H, mf.jacfwd(mf.jacrev(f_mg))(t(x)).numpy(), rtol=1e-12, atol=1e-12)


def test_third_order_by_three_forward_levels():
    # d^3/dx^3 sin(x) = -cos(x), elementwise
    x = rng.standard_normal(3)
    D3 = mf.jacfwd(mf.jacfwd(mf.jacfwd(lambda v: v.sin())))(t(x)).numpy()
    expected = np.zeros((3, 3, 3, 3))
    for i in range(3):
        expected[i, i, i, i] = -np.cos(x[i])
    np.testing.assert_allclose(D3, expected, atol=1e-12)


def test_jvp_of_jvp_and_hvp_inside_a_level():
    x, u, w = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3)
    inner = lambda v: mf.jvp(lambda a: a.exp(), (v,), (t(w),))[1]  # noqa: E731 - exp(x) w
    _, outer_t = mf.jvp(inner, (t(x),), (t(u),))
    np.testing.assert_allclose(outer_t.numpy(), np.exp(x) * w * u)
    # autograd.functional.hvp (forward-over-reverse) inside an open dual level
    with fwad.dual_level():
        _ = fwad.make_dual(t(x), t(u))
        _, hv = mg.autograd.functional.hvp(lambda v: (v**3).sum(), t(x), t(w))
    np.testing.assert_allclose(hv.numpy(), 6 * x * w)
