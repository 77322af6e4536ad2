"""matgrad.func: grad, grad_and_value, value_and_grad, vjp, jvp, jacrev, jacfwd, hessian;
argnums, has_aux, NumPy inputs, and nesting (grad(grad), jacrev(jacrev), jacfwd(jacrev),
jacrev(jacfwd)) checked against finite differences, and for every sample of the rule table
against the plain (unbatched) reverse-over-reverse Hessian."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from op_specs import SPECS

import matgrad as mg
from matgrad import func as mf
from matgrad.autograd import functional as F
from matgrad.autograd.functional import BatchingFallbackWarning
from matgrad.ops.registry import RULES

pytestmark = pytest.mark.filterwarnings("error")  # no fallback or other warning unless expected

rng = np.random.default_rng(11)


def fd_jacobian(fn, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a NumPy function: shape fn(x).shape + x.shape."""
    out = np.asarray(fn(x))
    J = np.zeros((out.size, x.size))
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = eps
        e = e.reshape(x.shape)
        J[:, k] = (np.asarray(fn(x + e)) - np.asarray(fn(x - e))).ravel() / (2 * eps)
    return J.reshape(out.shape + x.shape)


# a scalar function with ops whose rules save their result (tanh, exp) and their inputs (mul)
W = rng.standard_normal((3, 4))


def f(x):
    return mg.tanh(mg.tensor(W) @ x).sum() + mg.exp(x * 0.5).sum() + (x * x * x).sum() / 6


def grad_np(x):
    return W.T @ (1 - np.tanh(W @ x) ** 2) + 0.5 * np.exp(0.5 * x) + x**2 / 2


def poly(x):
    return (x * x * x).sum() + (x * x).sum() * 2.0


def poly_hessian(x):
    return np.diag(6 * x) + 4 * np.eye(x.size)


X = rng.standard_normal(4)


# -- first derivatives ---------------------------------------------------------------------------
def test_grad_of_numpy_input_returns_tensor_without_graph():
    g = mf.grad(f)(X)
    assert isinstance(g, mg.Tensor) and not g.requires_grad
    np.testing.assert_allclose(g.numpy(), grad_np(X), atol=1e-12)


def test_grad_argnums_and_has_aux():
    x, y = rng.standard_normal(3), rng.standard_normal(3)

    def h(a, b):
        return (a * b).sum() + (b**2).sum(), a * 2.0

    gy, aux = mf.grad(h, argnums=1, has_aux=True)(x, y)
    np.testing.assert_allclose(gy.numpy(), x + 2 * y)
    np.testing.assert_allclose(np.asarray(aux), 2 * x)  # not differentiated: passed through
    gx, gy = mf.grad(lambda a, b: h(a, b)[0], argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx.numpy(), y)
    np.testing.assert_allclose(gy.numpy(), x + 2 * y)
    (g,) = mf.grad(lambda a, b: h(a, b)[0], argnums=(-1,))(x, y)
    np.testing.assert_allclose(g.numpy(), x + 2 * y)
    with pytest.raises(ValueError, match="argnums"):
        mf.grad(lambda a: a.sum(), argnums=1)(x)
    with pytest.raises(RuntimeError, match="single element"):
        mf.grad(lambda a: a * 2.0)(x)


def test_grad_and_value_and_value_and_grad():
    g, v = mf.grad_and_value(f)(X)
    v2, g2 = mf.value_and_grad(f)(X)
    np.testing.assert_allclose(g.numpy(), grad_np(X), atol=1e-12)
    assert v.item() == pytest.approx(f(mg.tensor(X)).item())
    assert v2.item() == v.item() and np.array_equal(g2.numpy(), g.numpy())
    g3, (v3, aux) = mf.grad_and_value(lambda a: (a.sum() * 2.0, "aux"), has_aux=True)(X)
    assert aux == "aux" and v3.item() == pytest.approx(2 * X.sum())
    np.testing.assert_allclose(g3.numpy(), 2 * np.ones(4))


def test_grad_keeps_the_graph_of_inputs_that_require_grad():
    x = mg.tensor(X, requires_grad=True)
    g = mf.grad(poly)(x)  # 3 x^2 + 4 x, differentiable with respect to x
    assert g.requires_grad
    (h,) = mg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * X + 4)


def test_vjp_and_jvp():
    A = rng.standard_normal((2, 4))

    def g(x):
        return mg.sin(mg.tensor(A) @ x), x.sum()

    J = np.cos(A @ X)[:, None] * A
    out, vjp_fn = mf.vjp(g, X)
    u = rng.standard_normal(2)
    (gu,) = vjp_fn((mg.tensor(u), mg.tensor(1.0)))
    np.testing.assert_allclose(gu.numpy(), u @ J + 1.0, atol=1e-12)
    (gu2,) = vjp_fn((u, np.float64(0.0)))  # callable again, NumPy cotangents
    np.testing.assert_allclose(gu2.numpy(), u @ J, atol=1e-12)
    np.testing.assert_allclose(out[0].numpy(), np.sin(A @ X))
    w = rng.standard_normal(4)
    (o1, o2), (t1, t2) = mf.jvp(g, (X,), (w,))
    np.testing.assert_allclose(t1.numpy(), J @ w, atol=1e-12)
    assert t2.item() == pytest.approx(w.sum())
    assert not t1.requires_grad and not o1.requires_grad
    _, tangent, aux = mf.jvp(lambda x: (x * 3.0, x * 2.0), (X,), (w,), has_aux=True)
    np.testing.assert_allclose(tangent.numpy(), 3 * w)
    np.testing.assert_allclose(aux.numpy(), 2 * X)
    _, fn, aux = mf.vjp(lambda x: (x * 3.0, "a"), X, has_aux=True)
    assert aux == "a"
    np.testing.assert_allclose(fn(np.ones(4))[0].numpy(), 3 * np.ones(4))


# -- Jacobians -----------------------------------------------------------------------------------
@pytest.mark.parametrize("jac", [mf.jacrev, mf.jacfwd])
def test_jacobians_match_finite_differences(jac):
    def g(x):
        return mg.tanh(mg.tensor(W) @ x) * 2.0

    J = jac(g)(X)
    np.testing.assert_allclose(J.numpy(), fd_jacobian(lambda x: 2 * np.tanh(W @ x), X), atol=1e-8)
    assert tuple(J.shape) == (3, 4)


@pytest.mark.parametrize("jac", [mf.jacrev, mf.jacfwd])
def test_jacobian_argnums_tuple_outputs_and_aux(jac):
    A, B = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))

    def g(a, b):
        return (a @ b, (a * 2.0).sum()), "aux"

    (J, aux) = jac(g, argnums=(0, 1), has_aux=True)(A, B)
    assert aux == "aux"
    (JA, JB), (sA, sB) = J
    assert tuple(JA.shape) == (2, 2, 2, 3) and tuple(JB.shape) == (2, 2, 3, 2)
    np.testing.assert_allclose(JA.numpy().reshape(4, 6), np.kron(np.eye(2), B.T), atol=1e-14)
    np.testing.assert_allclose(JB.numpy().reshape(4, 6), np.kron(A, np.eye(2)), atol=1e-14)
    np.testing.assert_array_equal(sA.numpy(), 2 * np.ones((2, 3)))
    np.testing.assert_array_equal(sB.numpy(), np.zeros((3, 2)))
    JB1 = jac(lambda a, b: a @ b, argnums=1)(A, B)
    np.testing.assert_array_equal(JB1.numpy(), JB.numpy())
    J2, aux2 = jac(lambda a: (a * 2.0, a * 3.0), has_aux=True)(A)  # a tensor aux: plain values
    np.testing.assert_array_equal(J2.numpy().reshape(6, 6), 2 * np.eye(6))
    np.testing.assert_array_equal(aux2.numpy(), 3 * A)
    assert aux2._fw_grad is None and not aux2.requires_grad


def test_jacrev_and_jacfwd_agree_with_functional_jacobian():
    x = mg.tensor(rng.standard_normal((2, 3)))

    def g(a):
        return mg.softmax(a, -1) * a.sum()

    expected = F.jacobian(g, x, vectorize=False).numpy()
    np.testing.assert_allclose(mf.jacrev(g)(x).numpy(), expected, atol=1e-13)
    np.testing.assert_allclose(mf.jacfwd(g)(x).numpy(), expected, atol=1e-13)


# -- nesting ------------------------------------------------------------------------------------
def test_grad_of_grad():
    d2 = mf.grad(mf.grad(lambda x: x * x * x))(np.array(1.5))
    assert d2.item() == pytest.approx(9.0)
    d3 = mf.grad(mf.grad(mf.grad(lambda x: mg.sin(x))))(np.array(0.3))
    assert d3.item() == pytest.approx(-np.cos(0.3))
    # a closure over the outer variable: the inner grad must keep the graph
    g = mf.grad(lambda x: mf.grad(lambda y: (x * y * y).sum())(np.ones(2)).sum())(np.array(2.0))
    assert g.item() == pytest.approx(4.0)


NESTINGS = {
    "jacrev(jacrev)": lambda f, *a: mf.jacrev(mf.jacrev(f, *a), *a),
    "jacfwd(jacrev)": lambda f, *a: mf.jacfwd(mf.jacrev(f, *a), *a),
    "jacrev(jacfwd)": lambda f, *a: mf.jacrev(mf.jacfwd(f, *a), *a),
}


@pytest.mark.parametrize("nest", NESTINGS)
@pytest.mark.parametrize("fn,hess", [(poly, poly_hessian), (f, lambda x: fd_jacobian(grad_np, x))])
def test_nested_jacobians_are_the_hessian(nest, fn, hess):
    # f: tanh and exp save their *result* (forward-over-reverse needs its tangent,
    # reverse-over-forward its graph)
    H = NESTINGS[nest](fn)(X)
    np.testing.assert_allclose(H.numpy(), hess(X), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("nest", NESTINGS)
def test_nested_jacobians_of_a_matrix_function(nest):
    A0, B = rng.standard_normal((2, 4)), rng.standard_normal((4, 3))

    def g(a):
        return mg.logsumexp(a @ mg.tensor(B), -1).sum() + (mg.sin(a) * a).sum()

    def grad_g(a):
        z = a @ B
        p = np.exp(z - z.max(-1, keepdims=True))
        return (p / p.sum(-1, keepdims=True)) @ B.T + np.cos(a) * a + np.sin(a)

    H = NESTINGS[nest](g)(A0)
    assert tuple(H.shape) == (2, 4, 2, 4)
    np.testing.assert_allclose(H.numpy(), fd_jacobian(grad_g, A0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("nest", NESTINGS)
def test_nested_jacobians_of_a_vector_function(nest):
    # the inner Jacobian has several rows: a batch of cotangents (or tangents) inside a batch
    U = rng.standard_normal((3, 4))

    def g(x):
        return mg.tanh(mg.tensor(W) @ x) * (mg.tensor(U) @ x) + mg.exp(mg.tensor(U) @ x)

    def jac_g(x):
        th, u = np.tanh(W @ x), U @ x
        return ((1 - th**2) * u)[:, None] * W + th[:, None] * U + np.exp(u)[:, None] * U

    np.testing.assert_allclose(mf.jacrev(g)(X).numpy(), jac_g(X), atol=1e-12)
    T = NESTINGS[nest](g)(X)  # d^2 g_i / dx_j dx_k
    np.testing.assert_allclose(T.numpy(), fd_jacobian(jac_g, X), rtol=1e-6, atol=1e-7)


def test_jacrev_of_jacrev_of_a_vector_function_with_a_reduction():
    def g(x):
        return mg.tanh(mg.tensor(W) @ x) * x.sum()

    def jac_g(x):
        th = np.tanh(W @ x)
        return (1 - th**2)[:, None] * W * x.sum() + th[:, None]

    T = mf.jacrev(mf.jacrev(g))(X)
    np.testing.assert_allclose(T.numpy(), fd_jacobian(jac_g, X), rtol=1e-6, atol=1e-7)


def test_grad_of_jvp_and_jvp_of_grad_are_hessian_vector_products():
    # reverse-over-forward and forward-over-reverse: both H v for a scalar f
    v = rng.standard_normal(4)
    Hv = fd_jacobian(grad_np, X) @ v
    rof = mf.grad(lambda x: mf.jvp(f, (x,), (mg.tensor(v),))[1])(X)
    _, for_ = mf.jvp(mf.grad(f), (X,), (v,))
    np.testing.assert_allclose(rof.numpy(), Hv, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(for_.numpy(), Hv, rtol=1e-6, atol=1e-7)


def test_hessian_transform_matches_finite_differences():
    H = mf.hessian(f)(X)
    np.testing.assert_allclose(H.numpy(), fd_jacobian(grad_np, X), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(H.numpy(), H.numpy().T, atol=1e-12)
    x, y = rng.standard_normal(2), rng.standard_normal(2)
    Hxy = mf.hessian(lambda a, b: (a * a * b).sum(), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(Hxy[0][0].numpy(), np.diag(2 * y))
    np.testing.assert_allclose(Hxy[0][1].numpy(), np.diag(2 * x))
    np.testing.assert_allclose(Hxy[1][1].numpy(), np.zeros((2, 2)))


def test_forward_over_forward_gives_the_hessian():
    # nested dual levels (tests/test_forward_levels.py has more)
    H = mf.jacfwd(mf.jacfwd(poly))(X)
    np.testing.assert_allclose(H.numpy(), poly_hessian(X), rtol=1e-10, atol=1e-12)


# -- every sample of the rule table: Hessians by every nesting -----------------------------------
def _nesting_cases():
    cases = []
    for op, samples in sorted(SPECS.items()):
        for i, sample in enumerate(samples):
            if not sample.gradgrad:
                continue
            for nest in NESTINGS:
                cases.append(pytest.param(op, i, sample, nest, id=f"{op}-{i}-{nest}"))
    return cases


@pytest.mark.parametrize("op,i,sample,nest", _nesting_cases())
def test_nested_hessians_agree_for_every_sample(op, i, sample, nest):
    """The Hessian of ``sum(R * op(...))`` by each nesting of batched transforms equals the
    plain reverse-over-reverse one (a loop of unbatched passes; gradgradcheck in test_rules
    checks those against finite differences). Batches fall back only at unbatched rules."""
    xs = [mg.tensor(x) for x in sample.inputs]

    def first(*args):
        out = sample.fn(*args, *sample.nondiff)
        return out[0] if isinstance(out, tuple) else out

    R = mg.tensor(np.random.default_rng(i).standard_normal(tuple(first(*xs).shape)))

    def scalar(*args):
        return (first(*args) * R).sum()

    nums = tuple(range(len(xs)))
    expected = F.hessian(scalar, tuple(xs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BatchingFallbackWarning)
        H = NESTINGS[nest](scalar, nums)(*xs)
    fell_back = {w.message.op for w in caught if issubclass(w.category, BatchingFallbackWarning)}
    assert all(not RULES[name].batched for name in fell_back), fell_back
    for a in nums:
        for b in nums:
            np.testing.assert_allclose(
                H[a][b].numpy(),
                expected[a][b].numpy(),
                rtol=1e-9,
                atol=1e-10,
                err_msg=f"{op}-{i} {nest}: block ({a}, {b})",
            )
