"""matgrad.autograd.functional: vjp, jvp, jacobian, hessian, hvp, vhp.

Structure (diag / Kronecker) of known Jacobians, Hessians (reverse-over-reverse and
forward-over-reverse) against central differences of a closed-form NumPy gradient,
Hessian-vector products without the Hessian, PyTorch's result shapes, and forward- vs
reverse-mode Jacobians (vectorized and looped) for every sample of every row of the rule table.

A vectorized pass falls back to a loop (with a BatchingFallbackWarning) only at rules marked
``batched: false``; anywhere else the warning is an error here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from op_specs import SPECS

import matgrad as mg
from matgrad.autograd import functional as F
from matgrad.autograd.functional import BatchingFallbackWarning
from matgrad.ops.registry import RULES

pytestmark = pytest.mark.filterwarnings(
    "error::matgrad.autograd.functional.BatchingFallbackWarning"
)

rng = np.random.default_rng(7)
MODES = [
    ("reverse-mode", True),
    ("reverse-mode", False),
    ("forward-mode", True),
    ("forward-mode", False),
]


def t(x: np.ndarray) -> mg.Tensor:
    return mg.tensor(x)


# -- the structure of known Jacobians ------------------------------------------------------------
@pytest.mark.parametrize("strategy,vectorize", MODES)
def test_jacobian_of_elementwise_product_is_diag_of_vec_b(strategy, vectorize):
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    J = F.jacobian(lambda a: a * t(B), t(A), vectorize=vectorize, strategy=strategy)
    assert tuple(J.shape) == (3, 4, 3, 4)  # C.shape + A.shape
    np.testing.assert_array_equal(J.numpy().reshape(12, 12), np.diag(B.ravel()))


@pytest.mark.parametrize("strategy,vectorize", MODES)
def test_jacobian_of_matrix_product_is_kron_identity_bt(strategy, vectorize):
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    J = F.jacobian(lambda a: a @ t(B), t(A), vectorize=vectorize, strategy=strategy)
    assert tuple(J.shape) == (3, 5, 3, 4)
    # row-major vec: vec(A B) = (I_m kron B^T) vec(A)
    np.testing.assert_allclose(
        J.numpy().reshape(15, 12), np.kron(np.eye(3), B.T), rtol=0, atol=1e-14
    )
    # and with respect to B: vec(A B) = (A kron I_n) vec(B)
    JB = F.jacobian(lambda b: t(A) @ b, t(B), vectorize=vectorize, strategy=strategy)
    np.testing.assert_allclose(JB.numpy().reshape(15, 20), np.kron(A, np.eye(5)), atol=1e-14)


@pytest.mark.parametrize("strategy,vectorize", MODES)
def test_jacobian_of_tanh_layer_matches_closed_form(strategy, vectorize):
    W, x = rng.standard_normal((6, 6)), rng.standard_normal(6)  # square: W vs W^T matters
    J = F.jacobian(lambda v: mg.tanh(t(W) @ v), t(x), vectorize=vectorize, strategy=strategy)
    np.testing.assert_allclose(J.numpy(), (1 - np.tanh(W @ x) ** 2)[:, None] * W, atol=1e-14)


# -- Hessians ------------------------------------------------------------------------------------
W0 = rng.standard_normal((4, 5))


def f_np(x: np.ndarray) -> float:
    return float(np.sum(np.tanh(W0 @ x)) + np.log(np.sum(np.exp(x))) + np.sum(x**3) / 6)


def grad_np(x: np.ndarray) -> np.ndarray:
    p = np.exp(x - x.max())
    return W0.T @ (1 - np.tanh(W0 @ x) ** 2) + p / p.sum() + x**2 / 2


def f_mg(x: mg.Tensor) -> mg.Tensor:
    return mg.tanh(t(W0) @ x).sum() + mg.logsumexp(x, 0) + (x**3).sum() / 6


def fd_hessian(grad_fn, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a gradient: column k is (g(x + eps e_k) - g(x - eps e_k)) / 2eps."""
    H = np.zeros((x.size, x.size))
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = eps
        H[:, k] = (grad_fn(x + e) - grad_fn(x - e)) / (2 * eps)
    return H


@pytest.mark.parametrize("strategy,vectorize", MODES)
def test_hessian_matches_finite_differences_and_is_symmetric(strategy, vectorize):
    x = rng.standard_normal(5)
    H = F.hessian(f_mg, t(x), vectorize=vectorize, outer_jacobian_strategy=strategy)
    assert tuple(H.shape) == (5, 5)
    np.testing.assert_allclose(H.numpy(), fd_hessian(grad_np, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(H.numpy(), H.numpy().T, rtol=0, atol=1e-12)


def test_gradient_used_for_finite_differences_is_right():
    x = rng.standard_normal(5)
    (g,) = mg.autograd.grad(f_mg(xt := mg.tensor(x, requires_grad=True)), xt)
    np.testing.assert_allclose(g.numpy(), grad_np(x), atol=1e-12)
    assert abs(f_mg(t(x)).item() - f_np(x)) < 1e-12


def test_hessian_of_log_sum_exp_is_diag_p_minus_ppt():
    x = rng.standard_normal(8)
    p = np.exp(x) / np.exp(x).sum()
    H = F.hessian(lambda v: mg.logsumexp(v, 0), t(x), vectorize=True)
    np.testing.assert_allclose(H.numpy(), np.diag(p) - np.outer(p, p), atol=1e-14)


def test_hessian_with_several_inputs_has_block_structure():
    x, y = rng.standard_normal(3), rng.standard_normal((2, 2))

    def f(a, b):
        return (a.sum() * (b**2).sum()) + (a**3).sum()

    H = F.hessian(f, (t(x), t(y)), vectorize=True)
    assert isinstance(H, tuple) and isinstance(H[0], tuple)
    assert [tuple(h.shape) for row in H for h in row] == [
        (3, 3),
        (3, 2, 2),
        (2, 2, 3),
        (2, 2, 2, 2),
    ]
    np.testing.assert_allclose(H[0][0].numpy(), np.diag(6 * x))
    np.testing.assert_allclose(H[0][1].numpy(), np.broadcast_to(2 * y, (3, 2, 2)))
    np.testing.assert_allclose(H[1][0].numpy(), np.moveaxis(H[0][1].numpy(), 0, -1))
    np.testing.assert_allclose(H[1][1].numpy().reshape(4, 4), 2 * x.sum() * np.eye(4))


def test_hvp_and_vhp_equal_hessian_times_v_without_forming_it(monkeypatch):
    # hvp: forward-over-reverse; vhp: reverse-over-reverse (double backward)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    H_fd = fd_hessian(grad_np, x)
    H = F.hessian(f_mg, t(x), vectorize=True).numpy()

    def forbidden(*args, **kwargs):
        raise AssertionError("hvp/vhp must not form the Hessian")

    monkeypatch.setattr(F, "hessian", forbidden)
    monkeypatch.setattr(F, "jacobian", forbidden)
    value, hv = F.hvp(f_mg, t(x), t(v))
    value2, vh = F.vhp(f_mg, t(x), t(v))
    np.testing.assert_allclose(hv.numpy(), H_fd @ v, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(vh.numpy(), v @ H_fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hv.numpy(), H @ v, atol=1e-12)
    np.testing.assert_allclose(vh.numpy(), v @ H, atol=1e-12)
    assert abs(value.item() - f_np(x)) < 1e-12 and value2.item() == value.item()
    assert not hv.requires_grad and not value.requires_grad and hv._fw_grad is None


def test_hvp_of_a_matrix_input_matches_finite_differences():
    A, V = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    B = rng.standard_normal((4, 2))

    def f(a):  # log-sum-exp of a product, plus a smooth elementwise term
        return mg.logsumexp(a @ t(B), -1).sum() + (mg.sin(a) * a).sum()

    def grad_np_a(a):
        z = a @ B
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        return p @ B.T + np.cos(a) * a + np.sin(a)

    eps = 1e-6
    expected = (grad_np_a(A + eps * V) - grad_np_a(A - eps * V)) / (2 * eps)
    _, hv = F.hvp(f, t(A), t(V))
    _, vh = F.vhp(f, t(A), t(V))
    np.testing.assert_allclose(hv.numpy(), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(vh.numpy(), hv.numpy(), atol=1e-12)  # H is symmetric


def test_hvp_with_tuple_inputs_and_create_graph():
    x = mg.tensor(rng.standard_normal(3), requires_grad=True)
    y = mg.tensor(rng.standard_normal(3), requires_grad=True)
    v = (t(np.ones(3)), t(np.zeros(3)))

    def f(a, b):
        return (a * a * b).sum()

    _, (ha, hb) = F.hvp(f, (x, y), v, create_graph=True)
    # H = [[2 diag(b), 2 diag(a)], [2 diag(a), 0]] -> H v = (2 b, 2 a)
    np.testing.assert_allclose(ha.detach().numpy(), 2 * y.detach().numpy())
    np.testing.assert_allclose(hb.detach().numpy(), 2 * x.detach().numpy())
    (g,) = mg.autograd.grad(hb.sum(), x)  # differentiable: d/dx sum(2 x) = 2
    np.testing.assert_allclose(g.numpy(), 2 * np.ones(3))


# -- vjp and jvp ---------------------------------------------------------------------------------
def test_vjp_and_jvp_match_the_jacobian():
    A, x = rng.standard_normal((4, 3)), rng.standard_normal(3)

    def f(v):
        return mg.sin(t(A) @ v) * 2.0

    J = F.jacobian(f, t(x), vectorize=True).numpy()
    u, w = rng.standard_normal(4), rng.standard_normal(3)
    out, uJ = F.vjp(f, t(x), t(u))
    out2, Jw = F.jvp(f, t(x), t(w))
    np.testing.assert_allclose(uJ.numpy(), u @ J, atol=1e-14)
    np.testing.assert_allclose(Jw.numpy(), J @ w, atol=1e-14)
    np.testing.assert_allclose(out.numpy(), 2 * np.sin(A @ x))
    np.testing.assert_allclose(out2.numpy(), out.numpy())


def test_vjp_jvp_tuples_defaults_and_unused_inputs():
    x, y = t(rng.standard_normal(3)), t(rng.standard_normal(3))

    def f(a, b):
        return (a * 2.0).sum()  # independent of b

    out, (gx, gy) = F.vjp(f, (x, y))  # v may be left out: one-element output
    np.testing.assert_allclose(gx.numpy(), 2 * np.ones(3))
    np.testing.assert_array_equal(gy.numpy(), np.zeros(3))
    with pytest.raises(RuntimeError, match="independent of input 1"):
        F.vjp(f, (x, y), strict=True)
    _, jv = F.jvp(lambda s: (s * 3.0, s * s), t(np.array([2.0])))
    assert isinstance(jv, tuple)
    np.testing.assert_allclose([jv[0].item(), jv[1].item()], [3.0, 4.0])
    with pytest.raises(RuntimeError, match="v can only be None"):
        F.jvp(lambda s: s, x)


# -- result shapes and options -------------------------------------------------------------------
def test_jacobian_shapes_follow_pytorch():
    x, y = t(rng.standard_normal((2, 3))), t(rng.standard_normal(4))

    def two_out(a, b):
        return a.sum(1), b * 2.0

    J = F.jacobian(two_out, (x, y), vectorize=True)
    assert [[tuple(b.shape) for b in row] for row in J] == [
        [(2, 2, 3), (2, 4)],
        [(4, 2, 3), (4, 4)],
    ]
    np.testing.assert_array_equal(J[0][1].numpy(), np.zeros((2, 4)))
    Jf = F.jacobian(two_out, (x, y), vectorize=True, strategy="forward-mode")
    for row, row_f in zip(J, Jf, strict=True):
        for b, bf in zip(row, row_f, strict=True):
            np.testing.assert_array_equal(b.numpy(), bf.numpy())
    assert tuple(F.jacobian(lambda a: a.sum(), x).shape) == (2, 3)  # scalar output
    assert tuple(F.jacobian(lambda a: (a.sum(),), x)[0].shape) == (2, 3)
    with pytest.raises(RuntimeError, match="independent of input 1"):
        F.jacobian(two_out, (x, y), strict=True)
    with pytest.raises(ValueError, match="strategy"):
        F.jacobian(two_out, (x, y), strategy="sideways")


@pytest.mark.parametrize("vectorize", [True, False])
@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_jacobian_create_graph_is_differentiable(strategy, vectorize):
    x = mg.tensor(rng.standard_normal(3), requires_grad=True)
    J = F.jacobian(
        lambda v: v**3, x, create_graph=True, vectorize=vectorize, strategy=strategy
    )  # diag(3 x^2)
    assert J.requires_grad
    (g,) = mg.autograd.grad(J.sum(), x)
    np.testing.assert_allclose(g.numpy(), 6 * x.detach().numpy())
    J0 = F.jacobian(lambda v: v**3, x, vectorize=vectorize, strategy=strategy)
    assert not J0.requires_grad
    # a one-element output through a reduction (one plain backward pass)
    G = F.jacobian(lambda v: (v**3).sum(), x, create_graph=True, vectorize=vectorize)
    (h,) = mg.autograd.grad(G.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.detach().numpy())


def test_vectorized_reverse_jacobian_with_create_graph_through_a_reduction():
    x = mg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    J = F.jacobian(lambda v: (v * v).sum(0), x, create_graph=True, vectorize=True)
    (g,) = mg.autograd.grad(J.sum(), x)
    np.testing.assert_allclose(g.numpy(), 2 * np.ones((2, 3)))


@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_results_own_their_memory(strategy):
    # the identity batch is cached read-only and a rule may pass it through unchanged
    for _ in range(2):
        J = F.jacobian(lambda v: v.clone(), t(np.ones(3)), vectorize=True, strategy=strategy)
        assert J.numpy().flags.writeable
        np.testing.assert_array_equal(J.numpy(), np.eye(3))
        J.numpy()[0, 0] = 7.0  # must not change the next call's result


def test_jvp_inside_a_dual_level_is_forward_over_forward():
    # d/ds [J(x + s u) v] for f = v**3: the inner jvp is 3 x^2 v, its outer tangent 6 x u v
    x, u, v = np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([2.0, 3.0])
    fwad = mg.autograd.forward_ad
    with fwad.dual_level():
        dual = fwad.make_dual(t(x), t(u))
        _, jv = F.jvp(lambda a: a**3, dual, t(v), create_graph=True)
        np.testing.assert_allclose(fwad.unpack_dual(jv).primal.numpy(), 3 * x**2 * v)
        np.testing.assert_allclose(fwad.unpack_dual(jv).tangent.numpy(), 6 * x * u * v)


def test_numpy_inputs_are_accepted():
    J = F.jacobian(lambda v: v * 2.0, np.ones(3), vectorize=True)
    np.testing.assert_array_equal(J.numpy(), 2 * np.eye(3))


# -- the visible fallback for rules that cannot take a batch -------------------------------------
@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_fallback_for_unbatched_rule_warns_and_is_correct(strategy):
    assert not RULES["zeros_scatter"].batched and not RULES["index_put"].batched
    a = rng.standard_normal((3, 3))
    index = np.array([0, 2, 0])

    def f(x):
        return mg.ops.composite.zeros_scatter(x, (4, 3), index) * 2.0

    with pytest.warns(BatchingFallbackWarning, match="'zeros_scatter'") as caught:
        J = F.jacobian(f, t(a), vectorize=True, strategy=strategy)
    assert [w.message.op for w in caught] == ["zeros_scatter"]
    assert caught[0].filename == __file__  # attributed to the caller, not to matgrad
    expected = F.jacobian(f, t(a), vectorize=False, strategy="reverse-mode").numpy()
    np.testing.assert_array_equal(J.numpy(), expected)
    # row r of out <- rows of x with index == r (repeated indices accumulate)
    assert expected.reshape(12, 9)[0, 0] == 2.0 and expected.reshape(12, 9)[0, 6] == 2.0

    def g(x, v):
        return mg.index_put(x, v, (slice(None), 1))

    with pytest.warns(BatchingFallbackWarning, match="'index_put'"):
        F.jacobian(g, (t(a), t(np.ones(3))), vectorize=True, strategy=strategy)


def test_looped_jacobian_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.jacobian(
            lambda x: mg.ops.composite.zeros_scatter(x, (4,), np.array([1, 2])), t(np.ones(2))
        )


# -- forward and reverse Jacobians agree for every row of the table ------------------------------
CASES = [
    pytest.param(op, i, sample, id=f"{op}-{i}")
    for op, samples in sorted(SPECS.items())
    for i, sample in enumerate(samples)
]


def _first_output(sample):
    def f(*xs):
        out = sample.fn(*xs, *sample.nondiff)
        return out[0] if isinstance(out, tuple) else out

    return f


@pytest.mark.parametrize("op,i,sample", CASES)
def test_forward_and_reverse_jacobians_agree(op, i, sample):
    """Vectorized forward and reverse Jacobians equal the looped ones; the batch falls back to a
    loop only at rules marked ``batched: false`` (and does so visibly)."""
    f = _first_output(sample)
    inputs = tuple(t(x) for x in sample.inputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BatchingFallbackWarning)
        fwd = F.jacobian(f, inputs, vectorize=True, strategy="forward-mode")
        rev = F.jacobian(f, inputs, vectorize=True, strategy="reverse-mode")
    loop = F.jacobian(f, inputs, vectorize=False, strategy="reverse-mode")
    loop_fwd = F.jacobian(f, inputs, vectorize=False, strategy="forward-mode")
    for k in range(len(inputs)):
        expected = loop[k].numpy()
        for name, got in (
            ("forward vectorized", fwd),
            ("reverse vectorized", rev),
            ("forward looped", loop_fwd),
        ):
            np.testing.assert_allclose(
                got[k].numpy(),
                expected,
                rtol=1e-10,
                atol=1e-12,
                err_msg=f"{op}-{i}: {name}, input {k}",
            )
    fell_back = {w.message.op for w in caught if issubclass(w.category, BatchingFallbackWarning)}
    assert all(not RULES[name].batched for name in fell_back), fell_back
    if not RULES[op].batched:
        assert op in fell_back
