"""matgrad.linalg's gap functions (issue #13): LU (the row linalg_lu and the composites over
it), the _ex variants, cond, matrix_rank, tensorinv/tensorsolve, Householder products, vander,
LDL, diagonal, matrix_norm of every ord, zero-size batches. Values and gradients are checked
against PyTorch (where it is installed), NumPy/SciPy and finite differences; the row itself
is also checked by the generic table test (samples in op_specs.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

import matgrad as mg
from matgrad import linalg as la
from matgrad.autograd import gradcheck, gradgradcheck
from matgrad.viz import graph_nodes

rng = np.random.default_rng(13)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def t(x, requires_grad=True):
    return mg.tensor(np.asarray(x), requires_grad=requires_grad)


def tt(torch, x, requires_grad=True):
    return torch.tensor(np.asarray(x), requires_grad=requires_grad)


def assert_close(got, expected, rtol=1e-9, atol=1e-10):
    got = got.detach().numpy() if hasattr(got, "detach") else np.asarray(got)
    expected = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def vjps(torch, fn_mg, fn_torch, arrays, seed=0):
    """Gradients of sum(cotangent * out) over every floating output, in matgrad and torch."""
    m_in = [t(a) for a in arrays]
    t_in = [tt(torch, a) for a in arrays]
    m_out, t_out = fn_mg(*m_in), fn_torch(*t_in)
    m_out = m_out if isinstance(m_out, tuple | list) else (m_out,)
    t_out = t_out if isinstance(t_out, tuple | list) else (t_out,)
    g = np.random.default_rng(seed)
    m_loss, t_loss = 0.0, 0.0
    for mo, to in zip(m_out, t_out, strict=True):
        if not to.dtype.is_floating_point:
            continue
        c = g.standard_normal(tuple(to.shape))
        m_loss = m_loss + (mo * mg.tensor(c)).sum()
        t_loss = t_loss + (to * torch.tensor(c)).sum()
    m_grads = mg.autograd.grad(m_loss, m_in, allow_unused=True)
    t_grads = torch.autograd.grad(t_loss, t_in, allow_unused=True)
    return m_grads, t_grads


def assert_same_vjp(torch, fn_mg, fn_torch, arrays, rtol=1e-8, atol=1e-10):
    for mg_g, t_g in zip(*vjps(torch, fn_mg, fn_torch, arrays), strict=True):
        if t_g is None:
            assert mg_g is None or not np.any(mg_g.numpy())
        else:
            assert_close(mg_g, t_g, rtol, atol)


def op_names(out):
    return [n.name() for n in graph_nodes([out.grad_fn])]


SHAPES = [(4, 4), (3, 5), (5, 3), (2, 4, 4), (2, 3, 5), (2, 5, 3)]


# -- LU -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_lu_factors_reconstruct_and_match_torch(torch, shape):
    A = rng.standard_normal(shape)
    P, L, U = la.lu(t(A, False))
    np.testing.assert_allclose(P.numpy() @ L.numpy() @ U.numpy(), A, atol=1e-13)
    tP, tL, tU = torch.linalg.lu(tt(torch, A, False))
    for m_x, t_x in [(P, tP), (L, tL), (U, tU)]:
        assert_close(m_x, t_x, 1e-12, 1e-13)
    LU, piv, info = la.lu_factor_ex(t(A, False))
    tLU, tpiv, tinfo = torch.linalg.lu_factor_ex(tt(torch, A, False))
    assert_close(LU, tLU, 1e-12, 1e-13)
    assert piv.dtype == np.int32 and info.dtype == np.int32
    np.testing.assert_array_equal(piv.numpy(), tpiv.numpy())
    np.testing.assert_array_equal(info.numpy(), tinfo.numpy())


@pytest.mark.parametrize("shape", SHAPES)
def test_lu_gradients_match_torch(torch, shape):
    A = rng.standard_normal(shape)
    assert_same_vjp(torch, lambda a: tuple(la.lu(a)), lambda a: tuple(torch.linalg.lu(a)), [A])
    assert_same_vjp(
        torch, lambda a: la.lu_factor(a).LU, lambda a: torch.linalg.lu_factor(a).LU, [A]
    )


def test_lu_forward_mode_matches_torch(torch):
    A, dA = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    from torch.func import jvp

    _, (_, tdL, tdU) = jvp(lambda a: tuple(torch.linalg.lu(a)), (tt(torch, A, False),),
                           (tt(torch, dA, False),))  # fmt: skip
    import matgrad.autograd.forward_ad as fwad

    with fwad.dual_level():
        x = fwad.make_dual(t(A, False), t(dA, False))
        _, L, U = la.lu(x)
        assert_close(fwad.unpack_dual(L).tangent, tdL)
        assert_close(fwad.unpack_dual(U).tangent, tdU)


def test_lu_of_singular_matrix_info_and_errors(torch):
    S = np.array([[1.0, 2.0], [2.0, 4.0]])
    _, piv, info = la.lu_factor_ex(t(S, False))
    _, tpiv, tinfo = torch.linalg.lu_factor_ex(tt(torch, S, False))
    assert info.item() == tinfo.item() == 2
    np.testing.assert_array_equal(piv.numpy(), tpiv.numpy())
    with pytest.raises(la.LinAlgError, match=r"lu_factor: U\[1,1\] is zero.*\(2, 2\)"):
        la.lu_factor(t(S))
    batch = np.stack([np.eye(2), S])
    with pytest.raises(la.LinAlgError, match=r"lu_factor_ex.*batch index \(1,\)"):
        la.lu_factor_ex(t(batch), check_errors=True)
    with pytest.raises(RuntimeError, match="without pivoting"):
        la.lu(t(S), pivot=False)


def test_lu_graph_is_one_row_and_the_packing():
    A = t(rng.standard_normal((3, 3)))
    names = op_names(la.lu_factor(A).LU)
    assert names.count("LinalgLuBackward0") == 1
    P, L, U = la.lu(A)
    assert not P.requires_grad and L.grad_fn is U.grad_fn


@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("adjoint", [False, True])
def test_lu_solve_matches_torch_values_and_gradients(torch, left, adjoint):
    A = rng.standard_normal((2, 4, 4))
    B = rng.standard_normal((2, 4, 3) if left else (2, 3, 4))
    LU, piv = torch.linalg.lu_factor(tt(torch, A, False))
    mLU, mpiv = la.lu_factor(t(A, False))
    X = la.lu_solve(mLU, mpiv, t(B, False), left=left, adjoint=adjoint)
    A_op = np.swapaxes(A, -1, -2) if adjoint else A
    expected = (
        np.linalg.solve(A_op, B)
        if left
        else np.swapaxes(np.linalg.solve(np.swapaxes(A_op, -1, -2), np.swapaxes(B, -1, -2)), -1, -2)
    )
    assert_close(X, expected, 1e-10, 1e-12)
    assert_same_vjp(
        torch,
        lambda lu, b: la.lu_solve(lu, mpiv, b, left=left, adjoint=adjoint),
        lambda lu, b: torch.linalg.lu_solve(lu, piv, b, left=left, adjoint=adjoint),
        [LU.numpy(), B],
    )


def test_lu_solve_is_two_triangular_solves_and_differentiates_through_lu():
    A = t(rng.standard_normal((3, 3)))
    B = t(rng.standard_normal((3, 2)))
    X = la.lu_solve(*la.lu_factor(A), B)
    assert op_names(X).count("LinalgSolveTriangularBackward0") == 2
    assert gradcheck(lambda a, b: la.lu_solve(*la.lu_factor(a), b), [A, B], check_forward_ad=True)
    np.testing.assert_allclose(X.detach().numpy(), np.linalg.solve(A.detach().numpy(),
                               B.detach().numpy()), rtol=1e-10)  # fmt: skip


def test_lu_unpack_and_the_top_level_names_match_torch(torch):
    A = rng.standard_normal((2, 5, 3))
    LU, piv = torch.linalg.lu_factor(tt(torch, A, False))
    P, L, U = mg.lu_unpack(t(LU.numpy()), t(piv.numpy(), False))
    for m_x, t_x in zip((P, L, U), torch.lu_unpack(LU, piv), strict=True):
        assert_close(m_x, t_x, 1e-13, 1e-14)
    P2, L2, U2 = mg.lu_unpack(t(LU.numpy()), t(piv.numpy(), False), False, False)
    assert P2.shape == L2.shape == U2.shape == (0,)
    out = mg.lu(t(A[0, :3], False), get_infos=True)
    assert out.info.item() == 0 and out.LU.shape == (3, 3)
    B = rng.standard_normal((3, 2))
    X = mg.lu_solve(t(B, False), *mg.lu(t(A[0, :3], False)))
    np.testing.assert_allclose(X.numpy(), np.linalg.solve(A[0, :3], B), rtol=1e-10)
    with pytest.raises(ValueError, match="pivots"):
        mg.lu_unpack(t(LU.numpy()), mg.tensor(np.array([[9, 1, 1], [1, 1, 1]], np.int32)))


# -- _ex variants ---------------------------------------------------------------------------------
def test_inv_ex_and_solve_ex_report_singular_matrices_as_torch(torch):
    S = np.array([[1.0, 2.0], [2.0, 4.0]])
    G = rng.standard_normal((2, 2)) + 3 * np.eye(2)
    A = np.stack([G, S])
    inv, info = la.inv_ex(t(A, False))
    tinv, tinfo = torch.linalg.inv_ex(tt(torch, A, False))
    assert info.dtype == np.int32
    np.testing.assert_array_equal(info.numpy(), tinfo.numpy())
    assert_close(inv, tinv)  # the singular one's infinities included
    B = rng.standard_normal((2, 2, 3))
    X, info = la.solve_ex(t(A, False), t(B, False))
    tX, tinfo = torch.linalg.solve_ex(tt(torch, A, False), tt(torch, B, False))
    np.testing.assert_array_equal(info.numpy(), tinfo.numpy())
    assert_close(X[0], tX[0])
    # gradients: those of the regular matrix; zero for the singular one (torch's are inf/NaN)
    x = t(A)
    inv, _ = la.inv_ex(x)
    inv.backward(mg.tensor(np.ones(A.shape)))  # a cotangent on the singular one's inf too
    expected = (
        -np.swapaxes(np.linalg.inv(G), -1, -2)
        @ np.ones((2, 2))
        @ np.swapaxes(np.linalg.inv(G), -1, -2)
    )
    np.testing.assert_allclose(x.grad.numpy()[0], expected, rtol=1e-10)
    assert not np.any(x.grad.numpy()[1])
    with pytest.raises(la.LinAlgError, match=r"inv_ex.*batch index \(1,\)"):
        la.inv_ex(t(A), check_errors=True)
    with pytest.raises(la.LinAlgError, match="solve_ex"):
        la.solve_ex(t(A), t(B), check_errors=True)


@pytest.mark.parametrize("left", [True, False])
def test_solve_ex_and_inv_ex_gradients_match_torch(torch, left):
    A = rng.standard_normal((2, 3, 3)) + 2 * np.eye(3)
    B = rng.standard_normal((2, 3, 2) if left else (2, 2, 3))
    assert_same_vjp(
        torch,
        lambda a, b: la.solve_ex(a, b, left=left).result,
        lambda a, b: torch.linalg.solve_ex(a, b, left=left).result,
        [A, B],
    )
    assert_same_vjp(torch, lambda a: la.inv_ex(a)[0], lambda a: torch.linalg.inv_ex(a)[0], [A])


def test_cholesky_ex_of_indefinite_matrix_matches_torch(torch):
    good = np.array([[4.0, 2.0], [2.0, 3.0]])
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])
    A = np.stack([good, bad])
    for upper in (False, True):
        L, info = la.cholesky_ex(t(A, False), upper=upper)
        tL, tinfo = torch.linalg.cholesky_ex(tt(torch, A, False), upper=upper)
        assert_close(L, tL)
        np.testing.assert_array_equal(info.numpy(), tinfo.numpy())
    with pytest.raises(la.LinAlgError, match="leading minor of order 2"):
        la.cholesky_ex(t(A), check_errors=True)
    x = t(A)
    L, _ = la.cholesky_ex(x)
    L.sum().backward()  # the positive definite matrix gets cholesky's gradient, the other none
    y = t(good)
    la.cholesky(y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy()[0], y.grad.numpy(), rtol=1e-12)
    assert not np.any(x.grad.numpy()[1])


# -- cond, matrix_rank ----------------------------------------------------------------------------
@pytest.mark.parametrize("p", [None, 2, -2, "fro", "nuc", 1, -1, math.inf, -math.inf])
def test_cond_matches_torch(torch, p):
    A = rng.standard_normal((2, 4, 4))
    assert_close(la.cond(t(A, False), p), torch.linalg.cond(tt(torch, A, False), p))
    if p in (None, 2, -2, "nuc"):
        torch_cond = torch.linalg.cond
    else:  # torch's own backward of cond fails here ("modified by an inplace operation")

        def torch_cond(a, p):
            return torch.linalg.matrix_norm(a, p) * torch.linalg.matrix_norm(torch.inverse(a), p)

    assert_same_vjp(torch, lambda a: la.cond(a, p), lambda a: torch_cond(a, p), [A], rtol=1e-7)
    assert gradcheck(lambda a: la.cond(a, p), [t(A[:1])], check_forward_ad=True)


def test_cond_of_singular_and_non_square_matrices():
    S = t(np.array([[1.0, 2.0], [2.0, 4.0]]))
    assert la.cond(S, "fro").item() == math.inf
    W = rng.standard_normal((3, 5))
    s = np.linalg.svd(W, compute_uv=False)
    np.testing.assert_allclose(la.cond(t(W, False)).item(), s[0] / s[-1], rtol=1e-12)
    with pytest.raises(RuntimeError, match="square"):
        la.cond(t(W), 1)


def test_matrix_rank_matches_numpy_and_torch(torch):
    A = np.stack([rng.standard_normal((5, 2)) @ rng.standard_normal((2, 4)),
                  rng.standard_normal((5, 4))])  # fmt: skip
    r = la.matrix_rank(t(A))
    assert r.dtype == np.int64 and not r.requires_grad
    np.testing.assert_array_equal(r.numpy(), np.linalg.matrix_rank(A))
    s = np.linalg.svd(A[1], compute_uv=False)
    atol = (s[1] + s[2]) / 2  # between the 2nd and 3rd singular values
    assert la.matrix_rank(t(A[1]), atol=atol).item() == 2
    assert la.matrix_rank(t(A[1]), atol).item() == 2  # PyTorch's older positional tol
    assert la.matrix_rank(t(A[1]), rtol=atol / s[0]).item() == 2
    cases = [
        {},
        {"atol": 1.0},
        {"rtol": 0.5},
        {"atol": 0.5, "rtol": 0.1},
        {"atol": np.array([0.5, 3.0])},
        {"hermitian": True},
    ]
    H = A[:, :4, :] @ np.swapaxes(A[:, :4, :], -1, -2)
    for kw in cases:
        M = H if kw.get("hermitian") else A
        tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        mkw = {k: mg.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        np.testing.assert_array_equal(
            la.matrix_rank(t(M), **mkw).numpy(),
            torch.linalg.matrix_rank(tt(torch, M), **tkw).numpy(),
        )


# -- tensorinv, tensorsolve -----------------------------------------------------------------------
def test_tensorinv_and_tensorsolve_match_numpy():
    A = rng.standard_normal((4, 6, 8, 3)) + 0.0
    Ainv = la.tensorinv(t(A, False), ind=2)
    np.testing.assert_allclose(Ainv.numpy(), np.linalg.tensorinv(A, ind=2), rtol=1e-9)
    M = rng.standard_normal((2, 3, 6))
    B = rng.standard_normal((2, 3))
    np.testing.assert_allclose(la.tensorsolve(t(M, False), t(B, False)).numpy(),
                               np.linalg.tensorsolve(M, B), rtol=1e-9)  # fmt: skip
    M2 = rng.standard_normal((2, 6, 3))
    np.testing.assert_allclose(
        la.tensorsolve(t(M2, False), t(B, False), dims=(1,)).numpy(),
        np.linalg.tensorsolve(M2, B, axes=(1,)),
        rtol=1e-9,
    )
    assert gradcheck(lambda a, b: la.tensorsolve(a, b), [t(M), t(B)], check_forward_ad=True)
    assert gradcheck(lambda a: la.tensorinv(a, 1), [t(rng.standard_normal((6, 2, 3)))])
    with pytest.raises(RuntimeError, match="prod"):
        la.tensorinv(t(rng.standard_normal((2, 3, 4))), ind=1)


# -- Householder products -------------------------------------------------------------------------
def _geqrf(A):
    a, tau = mg.geqrf(t(A, False))
    return a.numpy(), tau.numpy()


def test_householder_product_of_geqrf_is_the_q_of_qr():
    A = rng.standard_normal((2, 6, 4))
    a, tau = _geqrf(A)
    Q = la.householder_product(t(a, False), t(tau, False)).numpy()
    for i in range(2):
        q, r = scipy.linalg.qr(A[i], mode="economic")
        np.testing.assert_allclose(np.abs(Q[i]), np.abs(q), atol=1e-12)  # same up to signs
        np.testing.assert_allclose(Q[i] @ np.triu(a[i][:4]), A[i], atol=1e-12)
    assert mg.orgqr is la.householder_product


def test_householder_product_matches_lapack_orgqr_with_fewer_reflectors_and_zero_tau():
    A = rng.standard_normal((5, 4))
    tau = np.array([1.3, 0.0, 0.7])  # tau = 0: H_2 = I
    Q = la.householder_product(t(A, False), t(tau, False)).numpy()
    orgqr = scipy.linalg.lapack.dorgqr
    expected, _, info = orgqr(np.array(A), np.concatenate([tau, [0.0]]))
    assert info == 0
    np.testing.assert_allclose(Q, expected, atol=1e-12)


def test_householder_product_graph_does_not_grow_with_the_reflectors():
    counts = []
    for k in (2, 6):
        A = t(rng.standard_normal((7, 6)))
        tau = t(rng.uniform(0.5, 1.5, k))
        counts.append(len(op_names(la.householder_product(A, tau))))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("shape,k", [((5, 5), 5), ((6, 4), 3), ((2, 5, 3), 3)])
def test_householder_product_gradients_match_torch_and_finite_differences(torch, shape, k):
    A = rng.standard_normal(shape)
    tau = rng.uniform(0.5, 1.5, shape[:-2] + (k,))
    assert_same_vjp(torch, la.householder_product, torch.linalg.householder_product, [A, tau])
    assert gradgradcheck(la.householder_product, [t(A), t(tau)])


@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("transpose", [False, True])
def test_ormqr_matches_torch(torch, left, transpose):
    A = rng.standard_normal((2, 5, 3))
    tau = rng.uniform(0.5, 1.5, (2, 3))
    C = rng.standard_normal((2, 5, 2) if left else (2, 2, 5))
    out = mg.ormqr(t(A, False), t(tau, False), t(C, False), left, transpose)
    expected = torch.ormqr(tt(torch, A), tt(torch, tau), tt(torch, C), left, transpose)
    assert_close(out, expected)
    assert_same_vjp(
        torch,
        lambda a, b, c: mg.ormqr(a, b, c, left, transpose),
        lambda a, b, c: torch.ormqr(a, b, c, left, transpose),
        [A, tau, C],
    )


def test_householder_errors():
    with pytest.raises(RuntimeError, match="greater than or equal"):
        la.householder_product(t(rng.standard_normal((3, 4))), t(np.ones(2)))
    with pytest.raises(RuntimeError, match="tau"):
        la.householder_product(t(rng.standard_normal((4, 3))), t(np.ones(4)))


def test_geqrf_matches_torch_and_has_no_derivative(torch):
    A = rng.standard_normal((2, 4, 3))
    a, tau = mg.geqrf(t(A))
    ta, ttau = torch.geqrf(tt(torch, A, False))
    assert_close(a, ta, 1e-12, 1e-13)
    assert_close(tau, ttau, 1e-12, 1e-13)
    with pytest.raises(NotImplementedError, match="geqrf"):
        a.sum().backward()


# -- vander, diagonal -----------------------------------------------------------------------------
def test_vander_matches_numpy_and_differentiates_at_zero():
    x = np.array([[0.0, 1.5, -2.0], [0.3, 0.0, 1.0]])
    for N in (None, 2, 5):
        got = la.vander(t(x, False), N=N).numpy()
        expected = np.stack([np.vander(row, N or 3, increasing=True) for row in x])
        np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert gradcheck(lambda a: la.vander(a, N=4), [t(x)], check_forward_ad=True)
    assert gradgradcheck(lambda a: la.vander(a, N=4), [t(x)])
    with pytest.raises(RuntimeError, match="greater than 1"):
        la.vander(t(x), N=1)


def test_diagonal_has_linalgs_defaults(torch):
    A = rng.standard_normal((3, 4, 5))
    for kw in ({}, {"offset": 1}, {"offset": -2, "dim1": 0, "dim2": 2}):
        assert_close(la.diagonal(t(A, False), **kw), torch.linalg.diagonal(tt(torch, A), **kw))


# -- LDL ------------------------------------------------------------------------------------------
def test_ldl_solves_symmetric_indefinite_systems():
    A = rng.standard_normal((2, 5, 5))
    A = A + np.swapaxes(A, -1, -2)  # indefinite: 2 x 2 pivots
    B = rng.standard_normal((2, 5, 3))
    LD, piv = la.ldl_factor(t(A, False))
    assert piv.dtype == np.int32
    X = la.ldl_solve(LD, piv, t(B, False))
    np.testing.assert_allclose(X.numpy(), np.linalg.solve(A, B), rtol=1e-9, atol=1e-12)
    Z = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))
    H = Z + Z.conj().T
    b = rng.standard_normal((4, 1)) + 0j
    LD, piv = la.ldl_factor(t(H, False), hermitian=True)
    X = la.ldl_solve(LD, piv, t(b, False), hermitian=True)
    np.testing.assert_allclose(X.numpy(), np.linalg.solve(H, b), rtol=1e-9, atol=1e-12)


def test_ldl_matches_torch_and_has_no_derivative(torch):
    A = rng.standard_normal((5, 5))
    A = A + A.T
    LD, piv, info = la.ldl_factor_ex(t(A))
    tLD, tpiv, tinfo = torch.linalg.ldl_factor_ex(tt(torch, A, False))
    assert_close(LD, tLD, 1e-12, 1e-13)
    np.testing.assert_array_equal(piv.numpy(), tpiv.numpy())
    assert info.item() == tinfo.item() == 0
    with pytest.raises(NotImplementedError, match="ldl_factor"):
        LD.sum().backward()


# -- matrix_norm of every ord ---------------------------------------------------------------------
@pytest.mark.parametrize("ord", ["fro", "nuc", 2, -2, 1, -1, math.inf, -math.inf])
@pytest.mark.parametrize("dim,keepdim", [((-2, -1), False), ((0, 2), True)])
def test_matrix_norm_of_every_ord_matches_torch(torch, ord, dim, keepdim):
    A = rng.standard_normal((3, 4, 5))

    def m_fn(a):
        return la.matrix_norm(a, ord, dim, keepdim)

    def t_fn(a):
        return torch.linalg.matrix_norm(a, ord, dim, keepdim)

    assert_close(m_fn(t(A, False)), t_fn(tt(torch, A, False)))
    assert_same_vjp(torch, m_fn, t_fn, [A], rtol=1e-7)


# -- zero-size batches ----------------------------------------------------------------------------
def test_zero_size_batches_give_empty_results_and_gradients():
    A = t(np.zeros((0, 3, 3)))
    B = t(np.zeros((0, 3, 2)))
    X = la.solve_triangular(A, B, upper=True)
    assert X.shape == (0, 3, 2)
    X.sum().backward()
    assert A.grad.shape == (0, 3, 3) and B.grad.shape == (0, 3, 2)
    for fn, shape in [(la.cholesky, (0, 4, 4)), (lambda a: la.qr(a).Q, (0, 3, 2))]:
        x = t(np.zeros(shape))
        out = fn(x)
        out.sum().backward()
        assert x.grad.shape == shape


# -- dtypes ---------------------------------------------------------------------------------------
def test_float32_stays_float32():
    A = t(rng.standard_normal((4, 4)).astype(np.float32))
    LU, piv = la.lu_factor(A)
    X = la.lu_solve(LU, piv, t(np.ones((4, 1), np.float32)))
    Q = la.householder_product(A, t(np.ones(3, np.float32)))
    for out in (LU, X, Q):
        assert out.dtype == np.float32
    (X.sum() + Q.sum()).backward()
    assert A.grad.dtype == np.float32
