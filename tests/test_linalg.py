"""matgrad.linalg: the hard cases (singular and degenerate matrices, norms at zero, errors)
and the composites (checked against NumPy and finite differences). The primitives' rows are
checked by the generic table test (test_rules.py) with the samples in op_specs.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matgrad as mg
from matgrad import linalg as la
from matgrad.autograd import gradcheck, gradgradcheck

rng = np.random.default_rng(7)


def t(x, requires_grad=True):
    return mg.tensor(np.asarray(x, dtype=np.float64), requires_grad=requires_grad)


def grad_of(fn, x):
    x = t(x)
    fn(x).backward()
    return x.grad.numpy()


def rank_r(n, r, m=None):
    return rng.standard_normal((n, r)) @ rng.standard_normal((r, m or n))


def orthogonal(n):
    return np.linalg.qr(rng.standard_normal((n, n)))[0]


def cofactor_adjugate_t(A):
    """adj(A)^T entry by entry: the cofactor matrix (determinants of minors)."""
    n = A.shape[0]
    C = np.empty_like(A)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(A, i, 0), j, 1)
            C[i, j] = (-1) ** (i + j) * np.linalg.det(minor)
    return C


def sym(a):
    return (a + a.mT) * 0.5


# -- determinants -----------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [4, 3, 2, 1, 0])
def test_det_gradient_is_the_adjugate_at_any_rank(rank):
    A = rank_r(5, rank) if rank else np.zeros((5, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NaN/inf warnings, no fallback warnings
        g = grad_of(la.det, A)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, cofactor_adjugate_t(A), atol=1e-12)


def test_det_gradient_batched_mix_of_singular_and_regular():
    A = np.stack([rank_r(4, 3), rng.standard_normal((4, 4)), rank_r(4, 2)])
    g = grad_of(lambda a: la.det(a).sum(), A)
    for k in range(3):
        np.testing.assert_allclose(g[k], cofactor_adjugate_t(A[k]), atol=1e-12)


def test_det_gradient_ill_conditioned_is_accurate():
    U, V = orthogonal(4), orthogonal(4)
    A = (U * np.array([3.0, 1.0, 1e-3, 1e-13])) @ V.T
    g = grad_of(la.det, A)
    p = np.array([1e-16, 3e-16, 3e-13, 3e-3])  # prod_{j != i} s_j
    expected = np.linalg.det(U) * np.linalg.det(V) * (U * p) @ V.T
    np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-15)


def test_det_and_slogdet_reuse_the_forward_lu():
    A = t(rng.standard_normal((4, 4)))
    d = la.det(A)
    assert d.grad_fn.name() == "LinalgDetBackward0"
    assert d.grad_fn._saved_LU.shape == (4, 4)  # the factorization the backward pass reads
    s, logabs = la.slogdet(A)
    np.testing.assert_allclose([s.item(), logabs.item()], np.linalg.slogdet(A.detach().numpy()))


def test_slogdet_of_singular_matrix_is_minus_inf_with_pinv_gradient():
    A = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])  # exactly rank 2
    x = t(A)
    sign, logabs = la.slogdet(x)
    assert sign.item() == 0.0 and logabs.item() == -np.inf
    with pytest.warns(la.SingularMatrixGradientWarning, match="pinv"):
        logabs.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.linalg.pinv(A).T, atol=1e-12)
    y = t(A)
    assert la.logdet(y).item() == -np.inf
    with pytest.warns(la.SingularMatrixGradientWarning):
        la.logdet(y).backward()
    assert np.isfinite(y.grad.numpy()).all()


def test_logdet_of_negative_determinant_is_nan():
    A = t(np.diag([-1.0, 2.0, 3.0]))
    out = la.logdet(A)
    assert np.isnan(out.item())
    np.testing.assert_allclose(la.logdet(t(np.diag([1.0, 2.0]))).item(), np.log(2.0))


def test_slogdet_gradient_matches_inverse_transpose():
    A = rng.standard_normal((2, 4, 4)) + 4 * np.eye(4)
    g = grad_of(lambda a: la.slogdet(a).logabsdet.sum(), A)
    np.testing.assert_allclose(g, np.swapaxes(np.linalg.inv(A), -1, -2), rtol=1e-12)


# -- errors -----------------------------------------------------------------------------------
def test_inv_and_solve_of_singular_matrix_name_the_op_and_shape():
    S = t([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(la.LinAlgError, match=r"linalg\.inv.*singular.*\(2, 2\)"):
        la.inv(S)
    batch = t(np.stack([np.eye(2), [[1.0, 2.0], [2.0, 4.0]]]))
    with pytest.raises(la.LinAlgError, match=r"linalg\.inv.*batch index \(1,\)"):
        la.inv(batch)
    with pytest.raises(la.LinAlgError, match=r"linalg\.solve.*singular.*\(2, 2\)"):
        la.solve(S, t([1.0, 2.0]))
    with pytest.raises(la.LinAlgError, match=r"linalg\.cholesky.*positive definite"):
        la.cholesky(t([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(la.LinAlgError, match=r"linalg\.solve_triangular.*singular"):
        la.solve_triangular(t(np.triu(np.ones((3, 3))) - np.eye(3)), t(np.ones((3, 1))), upper=True)
    with pytest.raises(RuntimeError, match="square"):
        la.inv(t(np.ones((2, 3))))


# -- eigh with repeated eigenvalues -----------------------------------------------------------
def _repeated_spd():
    Q = orthogonal(5)
    return (Q * np.array([1.0, 1.0, 1.0, 5.0, 5.0])) @ Q.T


def test_eigh_eigenvalue_losses_at_repeated_eigenvalues():
    A = _repeated_spd()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = grad_of(lambda a: (la.eigvalsh(a) ** 2).sum(), A)  # = ||A||_F^2
        np.testing.assert_allclose(g, 2 * A, atol=1e-12)
        g = grad_of(lambda a: la.eigh(a).eigenvalues.sum(), np.eye(4))  # trace at A = I
        np.testing.assert_allclose(g, np.eye(4), atol=1e-14)


def test_eigh_projector_onto_repeated_eigenspace_has_exact_gradient():
    A, D = _repeated_spd(), rng.standard_normal((5, 5))

    def loss(a):
        Q = la.eigh(sym(a)).eigenvectors[:, 3:]  # the eigenspace of the double eigenvalue 5
        return ((Q @ Q.mT) * mg.tensor(D)).sum()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradcheck(loss, [t(A)], atol=1e-6, rtol=1e-4)


def test_eigh_basis_dependent_loss_warns_and_stays_finite():
    x = t(_repeated_spd())
    with pytest.warns(la.BasisDependentGradientWarning, match="repeated eigenvalue"):
        la.eigh(x).eigenvectors.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_eigh_weights_on_tied_eigenvalues_warn():
    x = t(_repeated_spd())
    with pytest.warns(la.DegenerateGradientWarning, match="not differentiable"):
        (la.eigvalsh(x) * mg.arange(5.0)).sum().backward()  # a kink at the tie
    assert np.isfinite(x.grad.numpy()).all()


# -- svd with repeated singular values --------------------------------------------------------
def _repeated_sv(m=5, n=5, s=(3.0, 3.0, 2.0, 2.0, 2.0)):
    U = np.linalg.qr(rng.standard_normal((m, m)))[0][:, : len(s)]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0][:, : len(s)]
    return (U * np.array(s)) @ V.T, U, V


def test_nuclear_norm_and_singular_value_sum_at_repeated_values():
    A, U, V = _repeated_sv()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(grad_of(lambda a: la.svdvals(a).sum(), A), U @ V.T, atol=1e-12)
        np.testing.assert_allclose(
            grad_of(lambda a: la.matrix_norm(a, "nuc"), A), U @ V.T, atol=1e-12
        )
        assert gradcheck(lambda a: la.matrix_norm(a, "nuc"), [t(A)])


def test_svd_polar_factor_at_repeated_values_is_exact():
    """U V^T does not depend on the basis inside a repeated singular space."""
    A, _, _ = _repeated_sv(4, 4, (2.0, 2.0, 1.0, 0.5))
    D = rng.standard_normal((4, 4))

    def loss(a):
        U, _, Vh = la.svd(a)
        return ((U @ Vh) * mg.tensor(D)).sum()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradcheck(loss, [t(A)], atol=1e-6, rtol=1e-4)


def test_svd_reconstruction_at_repeated_values_warns():
    """sum|U S V^T| = sum|A| is basis independent, but at an exactly repeated singular value
    its gradient needs second derivatives of the loss in (U, S, V), which a reverse pass does
    not see: a first-order rule cannot be exact for both this loss and a projector (see
    docs/linalg.md). matgrad says so instead of returning a silently wrong gradient."""
    A, _, _ = _repeated_sv()
    x = t(A)
    with pytest.warns(la.DegenerateGradientWarning, match="second-order"):
        U, S, Vh = la.svd(x)
        ((U * S.unsqueeze(-2)) @ Vh).abs().sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    # at distinct singular values the same loss is exact
    B = rng.standard_normal((5, 4))
    np.testing.assert_allclose(
        grad_of(
            lambda a: (
                ((lambda u, s, v: (u * s.unsqueeze(-2)) @ v)(*la.svd(a, full_matrices=False)))
                .abs()
                .sum()
            ),
            B,
        ),
        np.sign(B),
        atol=1e-12,
    )


def test_svd_basis_dependent_loss_warns_and_stays_finite():
    x = t(_repeated_sv()[0])
    with pytest.warns(la.BasisDependentGradientWarning, match="repeated singular value"):
        la.svd(x).U.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_pinv_of_orthogonal_matrix_matches_inverse_gradient():
    Q, D = orthogonal(4), rng.standard_normal((4, 4))  # all singular values equal
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = grad_of(lambda a: (la.pinv(a) * mg.tensor(D)).sum(), Q)
    np.testing.assert_allclose(
        g, grad_of(lambda a: (la.inv(a) * mg.tensor(D)).sum(), Q), atol=1e-12
    )


# -- norms at zero ----------------------------------------------------------------------------
NORMS = [
    lambda x: la.vector_norm(x),
    lambda x: la.vector_norm(x, 1),
    lambda x: la.vector_norm(x, float("inf")),
    lambda x: la.vector_norm(x, -float("inf")),
    lambda x: la.vector_norm(x, 3),
    lambda x: la.vector_norm(x, 0.5),
    lambda x: la.vector_norm(x, -1),
    lambda x: la.vector_norm(x, 0),
    lambda x: la.vector_norm(x, dim=-1).sum(),
    lambda x: la.matrix_norm(x),
    lambda x: la.matrix_norm(x, "nuc"),
    lambda x: la.matrix_norm(x, 2),
    lambda x: la.matrix_norm(x, -2),
    lambda x: la.matrix_norm(x, 1),
    lambda x: la.matrix_norm(x, -float("inf")),
    lambda x: la.norm(x),
    lambda x: x.norm(),
]


@pytest.mark.parametrize("k", range(len(NORMS)))
def test_norms_at_zero_have_subgradient_zero(k):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = t(np.zeros((3, 3)))
        out = NORMS[k](x)
        assert out.item() == 0.0
        out.backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 3)))


def test_vector_norm_forward_mode_at_zero():
    from matgrad.autograd import forward_ad

    with forward_ad.dual_level():
        x = forward_ad.make_dual(mg.zeros(4), mg.ones(4))
        tangent = forward_ad.unpack_dual(la.vector_norm(x)).tangent
    assert tangent.item() == 0.0


# -- composites: values against NumPy, derivatives against finite differences ---------------
def _wc(*shape):
    q1 = np.linalg.qr(rng.standard_normal(shape))[0]
    q2 = np.linalg.qr(rng.standard_normal(shape))[0]
    return q1 @ (rng.uniform(1.0, 3.0, shape[:-1])[..., :, None] * q2)


COMPOSITES = {
    "logdet": (
        la.logdet,
        [np.eye(3) * 2 + 0.3 * rng.standard_normal((3, 3))],
        lambda a: np.log(np.linalg.det(a)),
    ),
    "eigvalsh": (
        lambda a: la.eigvalsh(sym(a)),
        [rng.standard_normal((2, 3, 3))],
        lambda a: np.linalg.eigvalsh((a + np.swapaxes(a, -1, -2)) / 2),
    ),
    "svdvals": (
        la.svdvals,
        [rng.standard_normal((4, 3))],
        lambda a: np.linalg.svd(a, compute_uv=False),
    ),
    "pinv-tall": (la.pinv, [rng.standard_normal((4, 3))], np.linalg.pinv),
    "pinv-wide-batched": (la.pinv, [rng.standard_normal((2, 2, 3))], np.linalg.pinv),
    "pinv-hermitian": (
        lambda a: la.pinv(sym(a), hermitian=True),
        [_wc(3, 3)],
        lambda a: np.linalg.pinv((a + a.T) / 2),
    ),
    "lstsq": (
        lambda a, b: la.lstsq(a, b).solution,
        [rng.standard_normal((4, 2)), rng.standard_normal((4, 3))],
        lambda a, b: np.linalg.lstsq(a, b, rcond=None)[0],
    ),
    "lstsq-residuals": (
        lambda a, b: la.lstsq(a, b).residuals,
        [rng.standard_normal((4, 2)), rng.standard_normal(4)],
        lambda a, b: np.linalg.lstsq(a, b, rcond=None)[1],
    ),
    "matrix_norm-fro": (
        la.matrix_norm,
        [rng.standard_normal((2, 3, 2))],
        lambda a: np.linalg.norm(a, "fro", axis=(-2, -1)),
    ),
    "matrix_norm-nuc": (
        lambda a: la.matrix_norm(a, "nuc"),
        [rng.standard_normal((3, 2))],
        lambda a: np.linalg.norm(a, "nuc"),
    ),
    "matrix_norm-2": (
        lambda a: la.matrix_norm(a, 2),
        [rng.standard_normal((3, 3))],
        lambda a: np.linalg.norm(a, 2),
    ),
    "matrix_norm--2": (
        lambda a: la.matrix_norm(a, -2),
        [rng.standard_normal((3, 3))],
        lambda a: np.linalg.norm(a, -2),
    ),
    "matrix_norm-1": (
        lambda a: la.matrix_norm(a, 1, dim=(0, 1), keepdim=True),
        [rng.standard_normal((3, 4))],
        lambda a: np.linalg.norm(a, 1, keepdims=True),
    ),
    "matrix_norm-inf": (
        lambda a: la.matrix_norm(a, float("inf"), dim=(1, 0)),
        [rng.standard_normal((3, 4))],
        lambda a: np.linalg.norm(a.T, np.inf),
    ),
    "norm-vector": (
        lambda a: la.norm(a, 3, dim=1),
        [rng.standard_normal((2, 3))],
        lambda a: np.linalg.norm(a, 3, axis=1),
    ),
    "norm-matrix": (
        lambda a: la.norm(a, "nuc"),
        [rng.standard_normal((3, 3))],
        lambda a: np.linalg.norm(a, "nuc"),
    ),
    "matrix_power-5": (
        lambda a: la.matrix_power(a, 5),
        [0.5 * rng.standard_normal((2, 3, 3))],
        lambda a: np.linalg.matrix_power(a, 5),
    ),
    "matrix_power--2": (
        lambda a: la.matrix_power(a, -2),
        [_wc(3, 3)],
        lambda a: np.linalg.matrix_power(a, -2),
    ),
    "multi_dot": (
        lambda a, b, c, d: la.multi_dot([a, b, c, d]),
        [
            rng.standard_normal(3),
            rng.standard_normal((3, 4)),
            rng.standard_normal((4, 2)),
            rng.standard_normal((2, 3)),
        ],
        lambda *xs: np.linalg.multi_dot(xs),
    ),
    "cross": (la.cross, [rng.standard_normal((2, 3)), rng.standard_normal(3)], np.cross),
    "cross-dim0": (
        lambda a, b: la.cross(a, b, dim=0),
        [rng.standard_normal((3, 2)), rng.standard_normal((3, 2))],
        lambda a, b: np.cross(a, b, axis=0),
    ),
    "vecdot": (
        la.vecdot,
        [rng.standard_normal((2, 3)), rng.standard_normal(3)],
        lambda a, b: np.sum(a * b, -1),
    ),
    "tensordot": (
        lambda a, b: la.tensordot(a, b, ([0, 2], [1, 0])),
        [rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2, 2))],
        lambda a, b: np.tensordot(a, b, ([0, 2], [1, 0])),
    ),
    "tensordot-int": (
        lambda a, b: la.tensordot(a, b, 1),
        [rng.standard_normal((2, 3)), rng.standard_normal((3, 2))],
        lambda a, b: np.tensordot(a, b, 1),
    ),
    "trace": (la.trace, [rng.standard_normal((2, 3, 3))], lambda a: np.trace(a, 0, -2, -1)),
    "kron": (la.kron, [rng.standard_normal((2, 3)), rng.standard_normal((2, 2))], np.kron),
    "kron-3d": (la.kron, [rng.standard_normal((2, 1, 2)), rng.standard_normal((2, 3))], np.kron),
    "solve-left-false": (
        lambda a, b: la.solve(a, b, left=False),
        [_wc(3, 3), rng.standard_normal((2, 3))],
        lambda a, b: np.linalg.solve(a.T, b.T).T,
    ),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_matches_numpy_and_finite_differences(name):
    fn, arrays, reference = COMPOSITES[name]
    xs = [t(a) for a in arrays]
    out = fn(*xs)
    np.testing.assert_allclose(out.detach().numpy(), reference(*arrays), rtol=1e-10, atol=1e-12)
    assert gradcheck(fn, xs, check_forward_ad=True)


@pytest.mark.parametrize(
    "name", ["pinv-tall", "lstsq", "matrix_norm-nuc", "kron", "matrix_power--2", "logdet"]
)
def test_composite_second_derivatives(name):
    fn, arrays, _ = COMPOSITES[name]
    assert gradgradcheck(fn, [t(a) for a in arrays])


def test_lstsq_rank_and_singular_values():
    A = rank_r(5, 2, 3)
    res = la.lstsq(t(A), t(rng.standard_normal((5, 2))))
    assert res.rank.item() == 2 and res.residuals.numel() == 0
    np.testing.assert_allclose(
        res.singular_values.detach().numpy(), np.linalg.svd(A, compute_uv=False), atol=1e-12
    )


def test_matrix_power_zero_and_qr_modes():
    A = t(rng.standard_normal((2, 3, 3)))
    np.testing.assert_array_equal(
        la.matrix_power(A, 0).numpy(), np.broadcast_to(np.eye(3), (2, 3, 3))
    )
    Q, R = la.qr(t(rng.standard_normal((4, 2))), mode="r")
    assert Q.numel() == 0 and R.shape == (2, 2)
    x = t(rng.standard_normal((4, 2)))
    with pytest.warns(la.BasisDependentGradientWarning, match="trailing columns"):
        la.qr(x, mode="complete").Q.sum().backward()  # the trailing columns: any basis


def test_no_grad_paths_give_the_same_values():
    A = rng.standard_normal((3, 3))
    S = A + A.T
    np.testing.assert_allclose(
        la.eigvalsh(t(S, False)).numpy(), la.eigvalsh(t(S)).detach().numpy(), rtol=1e-12
    )
    np.testing.assert_allclose(
        la.svdvals(t(A, False)).numpy(), la.svdvals(t(A)).detach().numpy(), rtol=1e-12
    )


def test_graphs_show_the_primitives():
    A = t(rng.standard_normal((3, 3)) + 3 * np.eye(3))
    assert la.inv(A).grad_fn.name() == "LinalgInvBackward0"
    assert la.logdet(A).grad_fn.name() == "LinalgSlogdetBackward0"
    assert la.pinv(A).grad_fn.name() == "LinalgPinvBackward0"
    assert la.matrix_norm(A).grad_fn.name() == "LinalgVectorNormBackward0"
    assert la.svd(A).S.grad_fn.name() == "LinalgSvdBackward0"
    assert la.matrix_exp(A).grad_fn.name() == "LinalgMatrixExpBackward0"
    # composites record their pieces
    assert la.trace(A).grad_fn.name() == "SumBackward0"
    assert la.kron(A, A).grad_fn.name() == "ReshapeBackward0"


def test_float32_gradients_stay_float32():
    A = mg.tensor(_wc(3, 3).astype(np.float32), requires_grad=True)
    for fn in (
        la.det,
        la.logdet,
        lambda a: la.inv(a).sum(),
        lambda a: la.svdvals(a).sum(),
        lambda a: la.eigvalsh(sym(a)).sum(),
        lambda a: la.pinv(a).sum(),
    ):
        A.grad = None
        fn(A).backward()
        assert A.grad.dtype == np.float32
