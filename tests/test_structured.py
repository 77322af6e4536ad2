"""Structured seeds of vectorized Jacobians behave exactly as the dense arrays they stand for."""

from __future__ import annotations

import numpy as np
import pytest

import matgrad as mg
from matgrad.autograd.functional import jacobian
from matgrad.backend.structured import OneHotBatch, ScaledArray

rng = np.random.default_rng(7)


@pytest.mark.parametrize("core", [(4,), (3, 2), (2, 3)])
def test_operations_match_the_dense_array(core):
    d = rng.standard_normal(core)
    X = OneHotBatch(d)
    D = X.dense()
    assert D.shape == (d.size, *core) and X.shape == D.shape and X.dtype == D.dtype
    np.testing.assert_array_equal(D.reshape(d.size, d.size), np.diag(d.ravel()))
    Y = rng.standard_normal(core)
    M = rng.standard_normal((core[-1], 5))
    P = rng.standard_normal((5, core[0]))
    S, SD = X @ M, D @ M
    s = rng.standard_normal(5)
    pairs = {
        "scale": (X * Y, D * Y),
        "scale left": (Y * X, Y * D),
        "divide": (X / (Y + 3), D / (Y + 3)),
        "negate": (-X, -D),
        "add": (X + X, D + D),
        "scalar": (X * 2.5, D * 2.5),
        "reduce": (np.sum(X, axis=(-1,)), D.sum(-1)),
        "with dense": (X + D, 2 * D),
        "function": (np.tanh(X), np.tanh(D)),
        "matmul": (S, SD),
        "rmatmul": (P @ X, P @ D),
        "scaled columns": (S * s, SD * s),
        "scaled left": (s * S, s * SD),
        "scaled divide": (S / (s + 3), SD / (s + 3)),
        "scaled negate": (-S, -SD),
        "scaled dense": (S * SD, SD * SD),
        "index": (X[1], D[1]),
        "reshape": (X.reshape(-1), D.ravel()),
    }
    for name, (got, expected) in pairs.items():
        got = np.asarray(got)
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, err_msg=name)
    assert isinstance(X * Y, OneHotBatch)
    assert isinstance(S * s, ScaledArray) == (len(core) == 1)  # a vector batch's product


def test_dense_never_aliases_the_base():
    W = rng.standard_normal((3, 3))
    dense = ScaledArray(W, ()).dense()
    dense[0, 0] = 99.0
    assert W[0, 0] != 99.0


def test_identity_function_jacobian_is_dense_and_owned():
    x = mg.tensor(rng.standard_normal(4))
    for strategy in ("reverse-mode", "forward-mode"):
        J = jacobian(lambda v: v * 1.0, x, vectorize=True, strategy=strategy)
        assert type(J._data) is np.ndarray
        np.testing.assert_array_equal(J.numpy(), np.eye(4))
        J._data[0, 0] = 5.0  # the result owns its memory
        assert jacobian(lambda v: v * 1.0, x, vectorize=True)[0, 0].item() == 1.0


def test_structured_seed_gives_closed_form_jacobians():
    W = rng.standard_normal((5, 5))
    x = rng.standard_normal(5)
    closed = (1 - np.tanh(W @ x) ** 2)[:, None] * W
    f = lambda v: mg.tanh(mg.tensor(W) @ v)  # noqa: E731
    for strategy in ("reverse-mode", "forward-mode"):
        J = jacobian(f, mg.tensor(x), vectorize=True, strategy=strategy)
        np.testing.assert_allclose(J.numpy(), closed, rtol=1e-12)
