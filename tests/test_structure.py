"""Tests for matgrad.structure: Jacobian structure in the row-major vec convention.

Every Jacobian here is built independently with NumPy (np.kron, np.diag, index arithmetic),
never with matgrad's engine.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from matgrad.structure import commutation_matrix, describe_jacobian, vlp_rearrange

rng = np.random.default_rng(1234)


def _rand(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def test_hadamard_product_is_diag_vec_B():
    A, B = _rand(3, 3), _rand(3, 3)
    s = describe_jacobian(np.diag(B.ravel()), (3, 3), (3, 3), {"A": A, "B": B})
    assert s.kind == "diagonal"
    assert s.formula == "diag(vec(B))"
    assert s.is_diagonal and s.nnz == 9
    assert s.density == pytest.approx(9 / 81)


@pytest.mark.parametrize(("m", "k", "n"), [(3, 3, 3), (2, 3, 4), (4, 2, 3)])
def test_matmul_jacobians_are_kronecker_products(m, k, n):
    A, B = _rand(m, k), _rand(k, n)
    names = {"A": A, "B": B}
    # row-major vec: dvec(AB)/dvec(A) = kron(I_m, B^T), dvec(AB)/dvec(B) = kron(A, I_n)
    sa = describe_jacobian(np.kron(np.eye(m), B.T), (m, n), (m, k), names)
    assert sa.kind == "kronecker"
    assert sa.formula == f"kron(I_{m}, B^T)"
    assert sa.kron_factors == ((m, m), (n, k))
    assert sa.is_block_diagonal and sa.block_sizes == ((n, k),) * m
    sb = describe_jacobian(np.kron(A, np.eye(n)), (m, n), (k, n), names)
    assert sb.formula == f"kron(A, I_{n})"


def test_kronecker_of_two_named_factors_and_a_scale():
    A, B, X = _rand(3, 4), _rand(2, 5), _rand(4, 5)
    s = describe_jacobian(-2.0 * np.kron(A, B), (3, 2), (4, 5), {"X": X, "A": A, "B": B})
    assert s.kind == "kronecker"
    assert s.formula == "-2 * kron(A, B)"


def test_vlp_rearrangement_of_a_kronecker_product_has_rank_one():
    X, Y = _rand(2, 3), _rand(4, 5)
    R = vlp_rearrange(np.kron(X, Y), 2, 3)
    assert R.shape == (6, 20)
    np.testing.assert_allclose(R, np.outer(X.ravel(), Y.ravel()))
    assert np.linalg.matrix_rank(R) == 1


def test_identity_scaled_identity_and_zero():
    assert describe_jacobian(np.eye(6), (2, 3), (2, 3)).formula == "I_6"
    assert describe_jacobian(np.eye(6), (2, 3), (2, 3)).kind == "identity"
    s = describe_jacobian(2.5 * np.eye(4), (4,), (4,))
    assert (s.kind, s.formula) == ("scaled_identity", "2.5 * I_4")
    assert describe_jacobian(-np.eye(4), (4,), (4,)).formula == "-I_4"
    z = describe_jacobian(np.zeros((4, 6)), (4,), (2, 3))
    assert (z.kind, z.formula, z.nnz, z.density, z.is_zero) == ("zero", "0", 0, 0.0, True)


def test_transpose_is_the_commutation_matrix():
    m, n = 2, 3
    # vec(A.T) = K vec(A): output entry (j, i) reads input entry (i, j)
    K = np.eye(m * n)[np.arange(m * n).reshape(m, n).T.ravel()]
    np.testing.assert_array_equal(K, commutation_matrix(m, n))
    A = _rand(m, n)
    np.testing.assert_array_equal(K @ A.ravel(), A.T.ravel())
    s = describe_jacobian(K, (n, m), (m, n))
    assert (s.kind, s.formula) == ("permutation", "K_(2,3)")


def test_selection_matrix_for_indexing():
    J = np.eye(9)[[1, 2]]  # A[0, 1:] of a 3x3 A
    s = describe_jacobian(J, (2,), (3, 3))
    assert s.kind == "selection"
    assert s.nnz == 2


def test_row_sum_is_kron_identity_ones_and_a_gradient_row_is_named():
    s = describe_jacobian(np.kron(np.eye(3), np.ones((1, 4))), (3,), (3, 4))
    assert s.formula == "kron(I_3, ones(1,4))"
    B = _rand(3, 3)
    g = describe_jacobian(B.ravel()[None, :], (), (3, 3), {"B": B})
    assert g.formula == "vec(B)^T"


def test_det_gradient_named_with_scalar_and_inverse_transpose():
    A = _rand(3, 3)
    Ainv = np.linalg.inv(A)
    L = np.linalg.det(A)
    J = (L * Ainv.T).ravel()[None, :]  # d det(A)/dA = det(A) A^-T
    s = describe_jacobian(J, (), (3, 3), {"A": A, "L": np.array(L), "A^-1": Ainv})
    assert s.formula == "L * vec(A^-T)^T"


def test_block_diagonal_with_unequal_blocks_and_pattern():
    J = np.zeros((5, 6))
    J[:2, :2] = _rand(2, 2)
    J[2:, 2:] = _rand(3, 4)
    s = describe_jacobian(J, (5,), (6,))
    assert s.kind == "block_diagonal"
    assert s.block_sizes == ((2, 2), (3, 4))
    assert s.nnz == 16
    assert s.pattern is not None and s.pattern[0] == "##...." and s.pattern[4] == "..####"


def test_dense_matrix_and_named_matrix():
    A = _rand(3, 3)
    assert describe_jacobian(_rand(9, 9), (3, 3), (3, 3)).kind == "dense"
    s = describe_jacobian(A.copy(), (3,), (3,), {"A": A})  # d(A @ x)/dx = A
    assert s.formula == "A"


def test_accepts_tensor_layout_and_json():
    B = _rand(2, 2)
    J = np.diag(B.ravel()).reshape(2, 2, 2, 2)  # out_shape + in_shape
    s = describe_jacobian(J, (2, 2), (2, 2), {"B": B})
    assert s.formula == "diag(vec(B))"
    d = json.loads(json.dumps(s.to_dict()))
    assert d["kind"] == "diagonal" and d["shape"] == [4, 4]
    assert d["percent_nonzero"] == pytest.approx(25.0)


def test_wrong_size_is_a_clear_error():
    with pytest.raises(ValueError, match="3x3 output .* 2x2 input"):
        describe_jacobian(np.zeros((9, 5)), (3, 3), (2, 2))


def test_float32_tolerance():
    B = _rand(3, 3).astype(np.float32)
    J = np.diag(B.ravel()).astype(np.float32)
    J[0, 1] = 1e-9  # rounding noise far below float32 resolution of the entries
    s = describe_jacobian(J, (3, 3), (3, 3), {"B": B})
    assert s.formula == "diag(vec(B))"
