"""Tests for matgrad.explain.per_element, the per-element reference engine.

Gradients are checked against closed forms and central finite differences computed with plain
floats / NumPy, never against the engine itself.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import numpy as np
import pytest

from matgrad.explain import per_element as sc

Scalar = sc.Scalar

H = 1e-6


def central_diff(f: Callable[[float], float], x: float, h: float = H) -> float:
    return (f(x + h) - f(x - h)) / (2.0 * h)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ---------------------------------------------------------------------------------------------
# elementwise expressions


@pytest.mark.parametrize(("x0", "y0"), [(0.3, -1.2), (1.5, 0.4), (-0.7, 2.0)])
def test_tanh_plus_cube_closed_form(x0: float, y0: float) -> None:
    x, y = Scalar(x0), Scalar(y0)
    f = (x * y).tanh() + x**3
    sc.backward(f)
    t = math.tanh(x0 * y0)
    assert f.value == pytest.approx(t + x0**3, rel=1e-14)
    assert x.grad == pytest.approx(y0 * (1 - t * t) + 3 * x0**2, rel=1e-12)
    assert y.grad == pytest.approx(x0 * (1 - t * t), rel=1e-12)


UNARY_CASES: list[tuple[str, Callable[[float], float], float]] = [
    ("exp", math.exp, 0.7),
    ("log", math.log, 1.7),
    ("log1p", math.log1p, 0.4),
    ("expm1", math.expm1, -0.3),
    ("sqrt", math.sqrt, 2.3),
    ("abs", abs, -1.3),
    ("abs", abs, 0.8),
    ("sin", math.sin, 0.9),
    ("cos", math.cos, 0.9),
    ("tan", math.tan, 0.6),
    ("tanh", math.tanh, -0.5),
    ("sigmoid", _sigmoid, 0.3),
    ("sigmoid", _sigmoid, -2.5),
    ("relu", lambda v: max(v, 0.0), 1.1),
    ("relu", lambda v: max(v, 0.0), -1.1),
    ("sign", lambda v: math.copysign(1.0, v), 0.5),
]


@pytest.mark.parametrize(("name", "ref", "x0"), UNARY_CASES)
def test_unary_methods_match_finite_differences(
    name: str, ref: Callable[[float], float], x0: float
) -> None:
    x = Scalar(x0)
    y = getattr(x, name)()
    sc.backward(y)
    assert y.value == pytest.approx(ref(x0), rel=1e-14, abs=1e-15)
    assert x.grad == pytest.approx(central_diff(ref, x0), rel=1e-6, abs=1e-8)


BINARY_CASES: list[tuple[str, Callable, Callable[[float, float], float]]] = [
    ("add", lambda a, b: a + b, lambda a, b: a + b),
    ("sub", lambda a, b: a - b, lambda a, b: a - b),
    ("mul", lambda a, b: a * b, lambda a, b: a * b),
    ("div", lambda a, b: a / b, lambda a, b: a / b),
    ("pow", lambda a, b: a**b, lambda a, b: a**b),
    ("maximum", sc.maximum, max),
    ("minimum", sc.minimum, min),
]


@pytest.mark.parametrize(("name", "op", "ref"), BINARY_CASES)
@pytest.mark.parametrize(("a0", "b0"), [(1.3, 0.6), (0.8, 2.1)])
def test_binary_scalar_scalar(
    name: str, op: Callable, ref: Callable[[float, float], float], a0: float, b0: float
) -> None:
    a, b = Scalar(a0), Scalar(b0)
    out = op(a, b)
    sc.backward(out)
    assert out.value == pytest.approx(ref(a0, b0), rel=1e-14)
    assert a.grad == pytest.approx(central_diff(lambda v: ref(v, b0), a0), rel=1e-6, abs=1e-9)
    assert b.grad == pytest.approx(central_diff(lambda v: ref(a0, v), b0), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(("name", "op", "ref"), BINARY_CASES)
def test_binary_with_python_numbers_both_sides(
    name: str, op: Callable, ref: Callable[[float, float], float]
) -> None:
    a0, c = 1.7, 0.9
    left = Scalar(a0)  # Scalar (op) number
    out = op(left, c)
    sc.backward(out)
    assert out.value == pytest.approx(ref(a0, c), rel=1e-14)
    assert left.grad == pytest.approx(central_diff(lambda v: ref(v, c), a0), rel=1e-6)
    assert sc.count_nodes(out) == 2  # the constant is not a node

    right = Scalar(a0)  # number (op) Scalar: radd/rsub/rmul/rtruediv/rpow
    out = op(c, right)
    sc.backward(out)
    assert out.value == pytest.approx(ref(c, a0), rel=1e-14)
    assert right.grad == pytest.approx(central_diff(lambda v: ref(c, v), a0), rel=1e-6)


def test_unary_neg_and_integer_power() -> None:
    x = Scalar(1.5)
    y = -(x**2) + 3 * x
    sc.backward(y)
    assert y.value == pytest.approx(-(1.5**2) + 4.5)
    assert x.grad == pytest.approx(-2 * 1.5 + 3)


def test_numpy_scalar_operands() -> None:
    x = Scalar(2.0)
    y = np.float64(3.0) * x + x * np.int64(2) + x ** np.float64(2.0)
    assert isinstance(y, Scalar)
    sc.backward(y)
    assert y.value == pytest.approx(14.0)
    assert x.grad == pytest.approx(3.0 + 2.0 + 4.0)


def test_ieee_semantics_do_not_raise() -> None:
    assert Scalar(0.0).log().value == -math.inf
    assert math.isnan(Scalar(-1.0).sqrt().value)
    assert (1.0 / Scalar(0.0)).value == math.inf
    assert Scalar(1000.0).exp().value == math.inf
    assert math.isnan((Scalar(-8.0) ** (1 / 3)).value)
    assert Scalar(-1000.0).sigmoid().value == 0.0


def test_tie_conventions() -> None:
    a, b = Scalar(1.0), Scalar(1.0)
    sc.backward(sc.maximum(a, b))
    assert (a.grad, b.grad) == (0.5, 0.5)
    z = Scalar(0.0)
    sc.backward(z.abs() + z.relu() + z**0)
    assert z.grad == 0.0


def test_shared_subexpression_and_reuse() -> None:
    x0 = 0.8
    x = Scalar(x0)
    s = x.sin()
    f = s * s + s  # s used three times
    sc.backward(f)
    assert x.grad == pytest.approx((2 * math.sin(x0) + 1) * math.cos(x0), rel=1e-13)
    assert sc.count_nodes(f) == 4  # x, s, s*s, f


def test_backward_accumulates_exactly() -> None:
    x0, y0 = 0.4, -0.9
    x, y = Scalar(x0), Scalar(y0)
    h = x * y
    f = h.exp() + h * x
    sc.backward(f)
    sc.backward(f)
    dfx = y0 * math.exp(x0 * y0) + 2 * x0 * y0
    dfy = x0 * math.exp(x0 * y0) + x0 * x0
    dfh = math.exp(x0 * y0) + x0
    assert x.grad == pytest.approx(2 * dfx, rel=1e-13)
    assert y.grad == pytest.approx(2 * dfy, rel=1e-13)
    assert h.grad == pytest.approx(2 * dfh, rel=1e-13)
    assert f.grad == 2.0
    sc.zero_grad(f)
    assert (x.grad, y.grad, h.grad, f.grad) == (0.0, 0.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# array helpers


def test_lift_values_grads_roundtrip() -> None:
    data = np.arange(6.0).reshape(2, 3)
    objs = sc.lift(data)
    assert objs.dtype == object and objs.shape == (2, 3)
    assert all(isinstance(e, Scalar) and e.op == "leaf" for e in objs.flat)
    np.testing.assert_array_equal(sc.values(objs), data)
    assert sc.values(objs).dtype == np.float64
    np.testing.assert_array_equal(sc.grads(objs), np.zeros((2, 3)))


def test_matmul_gradients_match_numpy() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((4, 2))
    g = rng.standard_normal((3, 2))  # upstream gradient dL/dC
    A, B = sc.lift(a), sc.lift(b)
    C = sc.matmul(A, B)
    np.testing.assert_allclose(sc.values(C), a @ b, rtol=1e-13, atol=1e-14)
    loss = sc.sum(C * g)  # L = <C, G>  =>  dL/dC = G
    sc.backward(loss)
    np.testing.assert_allclose(sc.grads(A), g @ b.T, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(sc.grads(B), a.T @ g, rtol=1e-13, atol=1e-14)


def test_matmul_node_count_and_shape_errors() -> None:
    m, k, n = 2, 5, 3
    A, B = sc.lift(np.ones((m, k))), sc.lift(np.ones((k, n)))
    C = sc.matmul(A, B)
    assert sc.count_nodes(C) == m * k + k * n + m * n * (2 * k - 1)
    with pytest.raises(ValueError, match="mismatch"):
        sc.matmul(A, A)
    with pytest.raises(ValueError, match="2-D"):
        sc.matmul(A[0], B)


def test_sum_and_mean() -> None:
    data = np.array([[1.0, -2.0, 3.5], [0.25, 4.0, -1.0]])
    X = sc.lift(data)
    s = sc.sum(X)
    assert s.value == pytest.approx(data.sum())
    sc.backward(s)
    np.testing.assert_array_equal(sc.grads(X), np.ones_like(data))
    assert sc.count_nodes(s) == data.size + (data.size - 1)

    Y = sc.lift(data)
    m = sc.mean(Y)
    assert m.value == pytest.approx(data.mean())
    sc.backward(m)
    np.testing.assert_allclose(sc.grads(Y), np.full_like(data, 1.0 / data.size))


def test_elementwise_broadcasting_on_object_arrays() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 1))
    b = rng.standard_normal((1, 4))
    A, B = sc.lift(a), sc.lift(b)
    L = sc.sum(np.tanh(A * B) + A**2)
    sc.backward(L)
    t = np.tanh(a * b)
    np.testing.assert_allclose(L.value, np.sum(t + np.broadcast_to(a**2, (3, 4))))
    np.testing.assert_allclose(sc.grads(A), np.sum(b * (1 - t**2), axis=1, keepdims=True) + 8 * a)
    np.testing.assert_allclose(sc.grads(B), np.sum(a * (1 - t**2), axis=0, keepdims=True))


@pytest.mark.parametrize(
    ("name", "ref", "lo", "hi"),
    [
        ("exp", np.exp, -1.0, 1.0),
        ("log", np.log, 0.5, 2.0),
        ("sqrt", np.sqrt, 0.5, 2.0),
        ("sin", np.sin, -1.0, 1.0),
        ("sign", np.sign, 0.5, 2.0),
        ("sigmoid", lambda v: 1.0 / (1.0 + np.exp(-v)), -2.0, 2.0),
        ("relu", lambda v: np.maximum(v, 0.0), 0.1, 2.0),
    ],
)
def test_apply_elementwise_unary(name: str, ref: Callable, lo: float, hi: float) -> None:
    data = np.linspace(lo, hi, 6).reshape(2, 3)
    X = sc.lift(data)
    Y = sc.apply_elementwise(name, X)
    assert Y.shape == data.shape and Y.dtype == object
    np.testing.assert_allclose(sc.values(Y), ref(data), rtol=1e-14)
    sc.backward(sc.sum(Y))
    fd = (ref(data + H) - ref(data - H)) / (2 * H)
    np.testing.assert_allclose(sc.grads(X), fd, rtol=1e-6, atol=1e-8)


def test_apply_elementwise_accepts_ufuncs_and_binary_ops() -> None:
    data = np.array([0.2, -0.4, 1.1])
    X = sc.lift(data)
    np.testing.assert_allclose(sc.values(sc.apply_elementwise(np.exp, X)), np.exp(data))
    np.testing.assert_allclose(sc.values(np.exp(X)), np.exp(data))  # numpy dispatch itself
    M = sc.apply_elementwise("maximum", X, np.zeros((2, 1)))
    assert M.shape == (2, 3)
    sc.backward(sc.sum(M))
    np.testing.assert_array_equal(sc.grads(X), 2.0 * (data > 0))
    with pytest.raises(ValueError, match="unknown elementwise op"):
        sc.apply_elementwise("frobnicate", X)


# ---------------------------------------------------------------------------------------------
# deep graphs, node counting, unsupported ops


def test_deep_chain_has_no_recursion_limit() -> None:
    steps = 200_000
    x0 = Scalar(1.0)
    x = x0
    for _ in range(steps):
        x = x * 1.0000001 + 0.0
    assert sc.count_nodes(x) == 1 + 2 * steps
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # prove the sweep is iterative
    try:
        sc.backward(x)
    finally:
        sys.setrecursionlimit(limit)
    expected = 1.0000001**steps
    assert x.value == pytest.approx(expected, rel=1e-9)
    assert x0.grad == pytest.approx(expected, rel=1e-9)
    del x  # tearing down the 400k-node chain must not crash either


def test_node_count_elementwise_product() -> None:
    A, B = sc.lift(np.ones((3, 3))), sc.lift(np.ones((3, 3)))
    C = A * B
    assert sc.count_nodes(C) == 27
    assert sc.count_nodes([C[0, 0], C[0, 0]]) == 3
    assert sc.count_nodes(A) == 9


@pytest.mark.parametrize("op", ["inv", "det", "svd", "eigh", "solve"])
def test_unsupported_ops_raise(op: str) -> None:
    with pytest.raises(sc.UnsupportedScalarOp, match=op) as info:
        sc.unsupported(op)
    assert isinstance(info.value, NotImplementedError)
    assert "element-wise" in str(info.value)
    with pytest.raises(sc.UnsupportedScalarOp, match=op):
        sc.apply_elementwise(op, sc.lift(np.eye(2)))


# ---------------------------------------------------------------------------------------------
# the engine is the table's rows on scalars


def test_every_elementwise_row_is_a_scalar_method() -> None:
    for name, rule in sc.ELEMENTWISE.items():
        if rule.inputs[:1] == ("self",) and not any(rule.input_is_list):
            assert callable(getattr(Scalar, name, None)), name
    assert (Scalar(2.0) * Scalar(3.0)).op == "mul"  # operators are the rows NumPy's ufuncs are


@pytest.mark.parametrize(
    ("name", "ref", "args"),
    [
        ("asinh", np.arcsinh, (0.7,)),
        ("atanh", np.arctanh, (0.3,)),
        ("log2", np.log2, (1.9,)),
        ("cosh", np.cosh, (-0.4,)),
        ("atan2", np.arctan2, (0.5, -1.2)),
        ("hypot", np.hypot, (0.5, -1.2)),
        ("logaddexp", np.logaddexp, (0.5, -1.2)),
    ],
)
def test_rows_not_written_here_match_finite_differences(
    name: str, ref: Callable, args: tuple[float, ...]
) -> None:
    xs = [Scalar(a) for a in args]
    y = getattr(xs[0], name)(*xs[1:])
    sc.backward(y)
    assert y.value == pytest.approx(float(ref(*args)), rel=1e-14)
    for k, x in enumerate(xs):

        def f(v: float, k: int = k) -> float:
            return float(ref(*[v if i == k else a for i, a in enumerate(args)]))

        assert x.grad == pytest.approx(central_diff(f, args[k]), rel=1e-6, abs=1e-9)


def test_clamp_row_with_attributes() -> None:
    x, z = Scalar(0.4), Scalar(2.0)
    sc.backward(x.clamp(0.0, 1.0) + z.clamp(max=1.0))
    assert (x.grad, z.grad) == (1.0, 0.0)
