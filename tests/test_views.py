"""Views and in-place ops: shared memory and version counters, the base's rewritten history,
and the patterns that used to give wrong gradients without an error.

Expected values are PyTorch's (checked against torch 2.13 by hand and, where torch is
installed, by tests/test_torch_differential.py) or closed forms.
"""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import matgrad as mg

MODIFIED = "modified by an inplace operation"


def leaf(*values: float) -> mg.Tensor:
    return mg.tensor(list(values), requires_grad=True)


# -- storage and version counter ------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda b: b[1:],
        lambda b: b[0],
        lambda b: b.reshape(6),
        lambda b: b.view(3, 2),
        lambda b: b.transpose(0, 1),
        lambda b: b.T,
        lambda b: b.mT,
        lambda b: b.permute(1, 0),
        lambda b: b.unsqueeze(0),
        lambda b: b[None].squeeze(0),
        lambda b: b.diagonal(),
        lambda b: b.expand(4, 2, 3),
        lambda b: b.split(1)[1],
        lambda b: b.unbind(1)[2],
        lambda b: b.narrow(1, 1, 2),
        lambda b: b.select(1, -1),
    ],
    ids=[
        "slice", "select", "reshape", "view", "transpose", "T", "mT", "permute", "unsqueeze",
        "squeeze", "diagonal", "expand", "split", "unbind", "narrow", "select",
    ],
)  # fmt: skip
def test_view_ops_share_memory_and_version_counter(make):
    base = mg.arange(6.0).reshape(2, 3) * 1  # a non-leaf that owns its memory
    view = make(base)
    assert view._is_view() and view._base is base
    assert np.shares_memory(view.numpy(force=True), base.numpy(force=True))
    before = base._version
    with mg.no_grad():
        base.add_(1)  # a write through the base (under no_grad too) ...
    assert view._version == base._version == before + 1  # ... is seen by the view


def test_copies_are_not_views():
    base = mg.arange(6.0).reshape(2, 3) * 1
    for t in (base.T.reshape(6), base[[0, 1]], base + 0, base.clone()):
        assert not t._is_view()
        assert not np.shares_memory(t.numpy(force=True), base.numpy(force=True))


def test_a_view_of_a_view_has_the_root_as_base():
    base = mg.zeros(4, 4) * 1
    v = base[1:].T[0]
    assert v._base is base
    v.add_(5)
    np.testing.assert_array_equal(base.numpy(force=True)[1:, 0], [5, 5, 5])


def test_write_through_a_view_is_seen_by_a_saved_tensor():
    a = leaf(1.0, 2.0, 3.0)
    x = a * 1
    y = x * x  # saves x
    x[0:2].mul_(10)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.sum().backward()


def test_write_to_a_base_is_seen_by_a_saved_view():
    A = mg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x = A * 1
    r = x.reshape(4)
    y = (r * r).sum()  # saves r
    x.add_(1)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


def test_saved_output_is_checked_after_the_output_object_is_freed():
    x = leaf(1.0, 2.0)

    def f(x):
        s = mg.exp(x)
        s += 1.0  # ExpBackward saved s (its output), which this overwrites
        return s.sum()

    loss = f(x)
    gc.collect()
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_a_view_of_a_saved_output_written_in_place_raises():
    x = leaf(1.0, 2.0, 3.0)
    y = x.exp()
    y[0:1].mul_(0)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.sum().backward()


def test_write_to_a_constant_through_a_view_is_seen():
    W = mg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    X = mg.ones(2, 2)
    y = (W @ X).sum()  # saves X
    X[0:1].zero_()
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


# -- the base's history is rewritten ---------------------------------------------------------
def test_in_place_on_a_view_reaches_the_base_gradient():
    a = leaf(1.0, 2.0, 3.0)
    x = a * 1
    x[0:2].mul_(10)
    x.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [10, 10, 1])


def test_in_place_on_a_view_of_a_constant_makes_the_base_require_grad():
    x = leaf(1.0, 2.0)
    y = mg.zeros(3)
    y[1:].add_(x * 2)
    assert y.requires_grad and y.grad_fn is not None
    np.testing.assert_allclose(y.detach().numpy(), [0, 2, 4])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2, 2])


def test_in_place_through_view_then_base_gradient():
    x = leaf(1.0, 2.0)
    b = x * 1
    b.view(2).mul_(3)
    b.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3])


def test_rewritten_base_gradient_matches_the_closed_form():
    # b = x * 1; b[0] *= w (w requires grad); L = sum(b * c): dL/dx = c with c[0] scaled by w,
    # dL/dw = x[0] . c[0]
    rng = np.random.default_rng(0)
    xv, wv, cv = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal((3, 4))
    x, w = mg.tensor(xv, requires_grad=True), mg.tensor(wv, requires_grad=True)
    b = x * 1
    b[0].mul_(w)
    (b * mg.tensor(cv)).sum().backward()
    expected_x = cv.copy()
    expected_x[0] *= wv
    np.testing.assert_allclose(x.grad.numpy(), expected_x)
    np.testing.assert_allclose(w.grad.numpy(), xv[0] * cv[0])


def test_sibling_views_get_the_new_history():
    x = mg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = x * 1
    row, col = b[0], b[:, 1]  # overlap at b[0, 1]
    row.mul_(2)
    np.testing.assert_allclose(col.detach().numpy(), [4, 4])  # the memory is shared
    (col * col).sum().backward()  # col = (2 b01, b11): d/dx = (0, 8 x01; 0, 2 x11)
    np.testing.assert_allclose(x.grad.numpy(), [[0, 16], [0, 8]])


def test_in_place_on_a_transposed_view_with_a_tensor_factor():
    x = mg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    m = mg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = x * 1
    b.t().mul_(m)  # b = x * m.T
    (b * b).sum().backward()
    xv, mv = x.detach().numpy(), m.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * xv * mv.T**2)
    np.testing.assert_allclose(m.grad.numpy(), (2 * xv**2 * mv.T**2 / mv.T).T)


def test_in_place_on_a_diagonal_view():
    x = mg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = x * 1
    b.diagonal().mul_(x.diagonal())  # b_ii = x_ii^2
    b.sum().backward()
    np.testing.assert_allclose(b.detach().numpy(), [[1, 2], [3, 16]])
    np.testing.assert_allclose(x.grad.numpy(), [[2, 1], [1, 8]])


def test_gradients_of_gradients_through_a_rewritten_base():
    x = leaf(1.0, 2.0, 3.0)
    b = x * 1
    b[1:].mul_(x[1:])  # b = (x0, x1^2, x2^2)
    (g,) = mg.autograd.grad(b.sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [1, 4, 6])
    (h,) = mg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), [0, 2, 2])


def test_gradcheck_through_in_place_on_views():
    def f(x):
        b = x * 1
        b[:, 0].mul_(x[:, 1])
        b[1:].tanh_()
        return b

    x = mg.tensor(np.random.default_rng(1).standard_normal((3, 2)), requires_grad=True)
    assert mg.autograd.gradcheck(f, (x,))


# -- what in-place on views refuses ----------------------------------------------------------
def test_in_place_on_a_view_of_a_leaf_raises():
    a = leaf(1.0, 2.0, 3.0)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        a[:].mul_(2)
    np.testing.assert_array_equal(a.detach().numpy(), [1, 2, 3])  # state unchanged
    with mg.no_grad():
        a[:].mul_(2)  # allowed, e.g. for a parameter update
    np.testing.assert_array_equal(a.detach().numpy(), [2, 4, 6])


def test_in_place_on_an_expanded_view_raises():
    x = mg.tensor([1.0, 2.0]) * 1
    e = x.expand(3, 2)
    with pytest.raises(RuntimeError, match="clone"):
        e.add_(1)
    np.testing.assert_array_equal(x.numpy(), [1, 2])


# -- in-place ops that differentiate ---------------------------------------------------------
@pytest.mark.parametrize(
    "name, args",
    [
        ("mul_", (mg.tensor([0.5, 2.0, -1.0]),)),
        ("div_", (mg.tensor([0.5, 2.0, -1.0]),)),
        ("pow_", (2.0,)),
        ("abs_", ()),
        ("exp_", ()),
        ("sin_", ()),
        ("log1p_", ()),
        ("sqrt_", ()),
        ("clamp_", (-0.5, 1.5)),
    ],
)
def test_in_place_op_gradient_equals_out_of_place(name, args):
    values = [0.3, 1.7, 0.9]
    x1, x2 = leaf(*values), leaf(*values)
    b = x1 * 1
    getattr(b, name)(*args)
    (b * b).sum().backward()
    (getattr(x2 * 1, name[:-1])(*args) ** 2).sum().backward()
    np.testing.assert_allclose(x1.grad.numpy(), x2.grad.numpy())


def test_in_place_multiply_by_a_tensor_that_requires_grad():
    x = leaf(1.0, 2.0, 3.0)
    b = x * 1
    b.mul_(x)  # b = x^2: MulBackward needs b's old value, saved before the write
    b.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2, 4, 6])


# -- no silent graph drops -------------------------------------------------------------------
def test_numpy_conversion_of_a_tensor_that_requires_grad_raises():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match="detach"):
        np.asarray(x)
    scipy_special = pytest.importorskip("scipy.special")
    with pytest.raises(RuntimeError, match="detach"):
        scipy_special.erf(x)
    np.testing.assert_array_equal(np.asarray(x.detach()), [1, 2])
    np.testing.assert_array_equal(np.asarray(x * 1 if False else x.detach() + 1), [2, 3])


def test_complex_tensors_can_require_grad():
    # complex autograd (tests/test_complex.py): a real tensor converted to complex gets the
    # real part of the gradient, d/dx Re((x + 0i)(3 - 2i)) = 3
    assert mg.tensor([1 + 2j], requires_grad=True).requires_grad
    x = leaf(1.0, 2.0)
    mg.real(x.to(mg.complex128) * (3 - 2j)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


@pytest.mark.parametrize("trial", range(5))
def test_concurrent_backward_passes_accumulate_every_contribution(trial):
    # large enough that NumPy releases the GIL while adding (without the lock, 16 of 20 such
    # trials lost contributions)
    W = mg.tensor(np.ones((256, 256)), requires_grad=True)
    X = mg.tensor(np.ones((16, 256)))
    kept = mg.tensor(np.ones(3), requires_grad=True) * 1
    kept.retain_grad()
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()  # all threads start their first accumulation together
        for _ in range(10):
            (X @ W).sum().backward()
            (kept * 2).sum().backward(retain_graph=True)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # each pass adds 16 to every entry of W (16 rows of ones), 2 to the retained gradient
    np.testing.assert_array_equal(W.grad.numpy(), np.full((256, 256), 8 * 10 * 16.0))
    np.testing.assert_array_equal(kept.grad.numpy(), np.full(3, 8 * 10 * 2.0))


def test_an_element_is_a_zero_dimensional_view():
    x = leaf(1.0, 2.0)
    b = x * 1
    v = b[0]
    assert v.shape == () and v._is_view()
    b.mul_(3)
    assert v.item() == 3.0  # sees the write to the base
    b[1].mul_(10)  # and a write through it reaches the base
    np.testing.assert_array_equal(b.detach().numpy(), [3, 60])
    b.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 30])


def test_view_of_non_contiguous_memory_raises_and_reshape_copies():
    b = mg.ones(2, 3) * 1
    with pytest.raises(RuntimeError, match="reshape"):
        b.T.view(-1)
    r = b.T.reshape(-1)
    assert r.shape == (6,) and not r._is_view()
    assert b.view(3, 2)._is_view()
