"""The Tensor API: creation, attributes, conversions, operators, in-place ops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import matgrad as mg


def test_creation_functions_and_default_dtype():
    assert mg.tensor([1.0, 2.0]).dtype == np.float64
    assert mg.tensor([1, 2]).dtype == np.int64
    assert mg.tensor([True]).dtype == np.bool_
    assert mg.tensor([1.0], dtype=mg.float32).dtype == np.float32
    assert mg.zeros(2, 3).shape == (2, 3) and mg.zeros((2, 3)).dtype == np.float64
    assert mg.ones(2).tolist() == [1.0, 1.0]
    assert mg.full((2,), 7.0).tolist() == [7.0, 7.0]
    np.testing.assert_array_equal(mg.eye(3).numpy(), np.eye(3))
    assert mg.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert mg.arange(0.0, 1.0, 0.5).dtype == np.float64
    np.testing.assert_allclose(mg.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    assert mg.rand(3, 2).shape == (3, 2) and mg.randn(4).dtype == np.float64
    like = mg.zeros_like(mg.randn(2, 2, dtype=mg.float32))
    assert like.dtype == np.float32 and like.shape == (2, 2)
    assert mg.ones_like(mg.randn(3)).tolist() == [1.0, 1.0, 1.0]
    assert mg.full_like(mg.randn(2), 3.0).tolist() == [3.0, 3.0]
    assert mg.randn_like(mg.randn(2, 5)).shape == (2, 5)
    assert mg.rand_like(mg.randn(2)).shape == (2,)


def test_manual_seed_reproduces():
    mg.manual_seed(7)
    a = mg.randn(3)
    mg.manual_seed(7)
    np.testing.assert_array_equal(a.numpy(), mg.randn(3).numpy())


def test_from_numpy_shares_memory_and_tensor_copies():
    arr = np.zeros(3)
    shared, copied = mg.from_numpy(arr), mg.tensor(arr)
    arr[0] = 5.0
    assert shared[0].item() == 5.0 and copied[0].item() == 0.0
    assert mg.as_tensor(shared) is shared


def test_attributes():
    x = mg.randn(2, 3, 4, requires_grad=True)
    assert x.shape == (2, 3, 4) and x.size() == (2, 3, 4) and x.size(1) == 3
    assert x.ndim == 3 and x.dim() == 3 and x.numel() == 24
    assert x.T.shape == (4, 3, 2) and x.mT.shape == (2, 4, 3)
    assert x.is_leaf and x.grad is None and x.grad_fn is None and x._version == 0
    y = x * 2
    assert not y.is_leaf and y.requires_grad
    assert mg.tensor(3.5).item() == 3.5
    assert mg.tensor([[1.0, 2.0]]).tolist() == [[1.0, 2.0]]
    np.testing.assert_array_equal(np.asarray(mg.tensor([1.0, 2.0])), [1.0, 2.0])
    assert repr(mg.tensor([1.0, 2.0], requires_grad=True)) == (
        "tensor([1.0000, 2.0000], requires_grad=True)"
    )
    assert "dtype=matgrad.float32" in repr(mg.ones(2, dtype=mg.float32))


def test_conversions_are_differentiable():
    x = mg.randn(3, requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32 and y.grad_fn.name() == "ToDtypeBackward0"
    y.sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.numpy(), np.ones(3))


def test_comparisons_give_bool_tensors_without_grad():
    x = mg.tensor([1.0, -1.0], requires_grad=True)
    m = x > 0
    assert m.dtype == np.bool_ and not m.requires_grad
    assert (x == x).tolist() == [True, True]


def test_indexing_forms():
    x = mg.arange(12.0).reshape(3, 4)
    assert x[1, 2].item() == 6.0
    assert x[:, 1].tolist() == [1.0, 5.0, 9.0]
    assert x[mg.tensor([0, 2])].shape == (2, 4)
    assert x[x > 9].tolist() == [10.0, 11.0]
    with pytest.raises(IndexError, match="integer or boolean"):
        x[mg.tensor([0.5])]


def test_inplace_ops_bump_version():
    x = mg.zeros(3)
    for op in (
        lambda t: t.add_(1),
        lambda t: t.mul_(2),
        lambda t: t.sub_(1),
        lambda t: t.div_(2),
        lambda t: t.clamp_(0, 0.25),
        lambda t: t.fill_(3.0),
        lambda t: t.copy_(mg.ones(3)),
        lambda t: t.zero_(),
    ):
        before = x._version
        op(x)
        assert x._version == before + 1
    assert x.tolist() == [0.0, 0.0, 0.0]


def test_inplace_dtype_and_shape_checks():
    i = mg.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        i.add_(0.5)
    with pytest.raises(RuntimeError, match="cannot be written in place"):
        mg.zeros(2).add_(mg.ones(3, 2))


def test_split_chunk_stack_cat_round_trip_gradients():
    x = mg.randn(6, 2, requires_grad=True)
    parts = x.split(2)
    assert [p.shape for p in parts] == [(2, 2)] * 3
    y = mg.cat([parts[2], parts[0] * 2, parts[1] * 3])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.repeat([[2.0], [3.0], [1.0]], 2, 0).repeat(2, 1))
    assert len(x.chunk(4)) == 3


def test_max_min_forms():
    x = mg.tensor([[1.0, 5.0], [3.0, 2.0]], requires_grad=True)
    values, indices = mg.max(x, 1)
    assert values.tolist() == [5.0, 3.0] and indices.tolist() == [1, 0]
    assert mg.max(x).item() == 5.0
    assert mg.max(x, mg.ones(2, 2) * 4).tolist() == [[4.0, 5.0], [4.0, 4.0]]


@settings(max_examples=40, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    seed=st.integers(0, 2**16),
)
def test_broadcast_binary_gradients_match_closed_form(shapes, seed):
    rng = np.random.default_rng(seed)
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    a0, b0 = rng.standard_normal(sa), rng.standard_normal(sb)
    g0 = rng.standard_normal(out_shape)
    a, b = mg.tensor(a0, requires_grad=True), mg.tensor(b0, requires_grad=True)
    (a * b - a / (b * b + 1)).backward(mg.tensor(g0))

    def reduce_to(x, shape):
        x = x.sum(axis=tuple(range(x.ndim - len(shape)))) if x.ndim > len(shape) else x
        axes = tuple(i for i, s in enumerate(shape) if s == 1 and x.shape[i] != 1)
        return x.sum(axis=axes, keepdims=True).reshape(shape)

    ga = g0 * (b0 - 1 / (b0 * b0 + 1))
    gb = g0 * (a0 + a0 * 2 * b0 / (b0 * b0 + 1) ** 2)
    np.testing.assert_allclose(
        a.grad.numpy(), reduce_to(np.broadcast_to(ga, out_shape), sa), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        b.grad.numpy(), reduce_to(np.broadcast_to(gb, out_shape), sb), rtol=1e-10, atol=1e-12
    )
