"""The nn primitive rows (issue #12's speed work) and the engine's gradient ownership:

* ``addmm`` (nn.functional.linear, matmul.addmm): values, gradients and graph shape against
  PyTorch; the weight's gradient made row-major without a copy;
* ``threshold_backward`` (ReLU's VJP): PyTorch's values (NaN passes), its double-backward node;
* ``im2col`` / ``col2im`` (unfold, fold, convolution, pooling) against PyTorch;
* the engine keeps a gradient array without copying it only when nothing else can see it:
  hooks, retain_grad, custom Functions, captured inputs and the caller's grad_output never
  end up sharing memory with a ``.grad``; sums of several gradients of one input are made in
  place only in arrays the engine allocated itself.
"""

from __future__ import annotations

import numpy as np
import pytest

import matgrad as mg
import matgrad.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
torch.set_num_threads(1)


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def both(*arrays: np.ndarray) -> tuple[list, list]:
    return (
        [mg.tensor(a, requires_grad=True) for a in arrays],
        [torch.tensor(a, requires_grad=True) for a in arrays],
    )


def names(fn) -> list:
    """The node names of a graph, depth first: [name, [children...]]."""
    if fn is None:
        return ["None"]
    return [type(fn).__name__, [names(nxt) for nxt, _ in fn.next_functions]]


def assert_same_step(m_fn, t_fn, arrays, cotangent_seed=5, rtol=1e-10, atol=1e-12):
    ms, ts = both(*arrays)
    mo, to = m_fn(*ms), t_fn(*ts)
    np.testing.assert_allclose(mo.detach().numpy(), to.detach().numpy(), rtol=rtol, atol=atol)
    g = rand(*to.shape, seed=cotangent_seed)
    mo.backward(mg.tensor(g))
    to.backward(torch.tensor(g))
    for m, t in zip(ms, ts, strict=True):
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
    return ms, mo


# -- addmm and linear ---------------------------------------------------------------------------
@pytest.mark.parametrize("lead", [(5,), (2, 5), ()])
def test_linear_matches_torch_and_keeps_its_graph_shape(lead):
    x, w, b = rand(*lead, 3), rand(4, 3, seed=1), rand(4, seed=2)
    (mx, mw, mb), out = assert_same_step(F.linear, TF.linear, [x, w, b])
    # PyTorch: AddmmBackward0(bias, input, TBackward0(weight)); matgrad has no `t` row, its
    # transpose is TransposeBackward0
    leaf = ["AccumulateGrad", []]
    addmm = ["AddmmBackward0", [leaf, leaf, ["TransposeBackward0", [leaf]]]]
    if len(lead) == 1:
        assert names(out.grad_fn) == addmm
    else:  # leading axes flattened around it (PyTorch: ViewBackward0, here reshape)
        addmm[1][1] = ["ReshapeBackward0", [leaf]]
        assert names(out.grad_fn) == ["ReshapeBackward0", [addmm]]
    # the weight's gradient: row-major as the weight, and its own memory (no copy was made:
    # the rule computed W.T's gradient column-major, the transpose's gradient is its view)
    assert mw.grad._data.flags.c_contiguous and mw.grad._data.base is None


def test_linear_without_bias_and_under_vmap():
    x, w = rand(5, 3), rand(4, 3, seed=1)
    _, out = assert_same_step(F.linear, TF.linear, [x, w])
    assert type(out.grad_fn).__name__ == "MmBackward0"  # as PyTorch's
    b = rand(4, seed=2)
    got = mg.func.vmap(lambda r: F.linear(r, mg.tensor(w), mg.tensor(b)))(mg.tensor(x))
    np.testing.assert_allclose(got.numpy(), x @ w.T + b, rtol=1e-12)


@pytest.mark.parametrize(
    "shapes,kw",
    [
        (((4,), (3, 2), (2, 4)), {}),
        (((3, 4), (3, 2), (2, 4)), {"beta": 0.5, "alpha": -2.0}),
        (((3, 1), (3, 2), (2, 4)), {"alpha": 3}),
        (((1, 4), (3, 2), (2, 4)), {"beta": 0}),
    ],
)
def test_addmm_matches_torch(shapes, kw):
    arrays = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    _, out = assert_same_step(
        lambda *a: mg.addmm(*a, **kw), lambda *a: torch.addmm(*a, **kw), arrays
    )
    assert type(out.grad_fn).__name__ == "AddmmBackward0"


def test_addmm_beta_zero_ignores_nan_and_column_major_mat2():
    c = np.full(4, np.nan)
    a, m = rand(3, 2), rand(4, 2, seed=1)
    ma, mm_ = mg.tensor(a, requires_grad=True), mg.tensor(m, requires_grad=True)
    out = mg.addmm(mg.tensor(c), ma, mm_.mT, beta=0)
    np.testing.assert_allclose(out.detach().numpy(), a @ m.T, rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(mm_.grad.numpy(), (a.T @ np.ones((3, 4))).T, rtol=1e-12)
    assert mm_.grad._data.flags.c_contiguous


def test_addmm_errors_name_the_op_and_shapes():
    with pytest.raises(RuntimeError, match=r"addmm: shapes \(3, 2\) and \(3, 4\)"):
        mg.addmm(mg.ones(4), mg.ones(3, 2), mg.ones(3, 4))
    with pytest.raises(RuntimeError, match="addmm: expected 2-D matrices, got 1-D and 2-D"):
        mg.addmm(mg.ones(4), mg.ones(2), mg.ones(2, 4))
    with pytest.raises(RuntimeError, match=r"input of shape \(2, 4\) does not broadcast"):
        mg.addmm(mg.ones(2, 4), mg.ones(3, 2), mg.ones(2, 4))
    with pytest.raises(RuntimeError, match=r"linear: mat1 and mat2 shapes cannot be multiplied"):
        F.linear(mg.ones(5, 2), mg.ones(4, 3), mg.ones(4))


# -- threshold_backward -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_is_torchs_threshold_backward(dtype):
    x = np.array([np.nan, -1.0, 0.0, -0.0, 2.0, 1e-30, -np.inf, np.inf], dtype=dtype)
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, np.nan], dtype=dtype)
    mx, tx = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (mgx,) = mg.autograd.grad(mg.relu(mx), mx, mg.tensor(g), create_graph=True)
    (tgx,) = torch.autograd.grad(torch.relu(tx), tx, torch.tensor(g), create_graph=True)
    np.testing.assert_array_equal(mgx.detach().numpy(), tgx.detach().numpy())  # NaN passes
    assert not np.signbit(mgx.detach().numpy()[1:4]).any()  # +0 where dropped, as where()
    assert mgx.dtype == dtype
    assert type(mgx.grad_fn).__name__ == type(tgx.grad_fn).__name__ == "ThresholdBackwardBackward0"


def test_threshold_backward_large_random_mask_equals_where():
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((64, 129)), rng.standard_normal((64, 129))
    for dt in (np.float16, np.float32, np.float64):
        got = mg.ops.registry.FORWARDS["threshold_backward"](g.astype(dt), x.astype(dt), 0.25)
        np.testing.assert_array_equal(got, np.where(x.astype(dt) <= 0.25, 0, g.astype(dt)))
        assert got.dtype == dt
    # 0-d (the comparison gives a NumPy scalar, not an array)
    for v in (-1.0, 2.0):
        mx = mg.tensor(v, requires_grad=True)
        mg.relu(mx).backward()
        assert mx.grad.item() == (v > 0) and mx.grad.shape == ()
    # a batch of cotangents against one input (vectorized Jacobians): broadcast
    got = mg.ops.registry.FORWARDS["threshold_backward"](np.ones((2, 3)), np.array([-1.0, 0, 1]), 0)
    np.testing.assert_array_equal(got, [[0, 0, 1], [0, 0, 1]])


# -- im2col / col2im ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {"kernel_size": 3, "padding": 1},
        {"kernel_size": (2, 3), "dilation": (2, 1), "padding": (1, 2), "stride": (2, 3)},
        {"kernel_size": 5, "padding": 2, "stride": 3},  # windows entirely in the padding
    ],
)
def test_unfold_and_fold_match_torch(kw):
    x = rand(2, 3, 7, 6)
    _, cols = assert_same_step(lambda a: F.unfold(a, **kw), lambda a: TF.unfold(a, **kw), [x])
    assert type(cols.grad_fn).__name__ == "Im2colBackward0"  # PyTorch: Im2ColBackward0
    c = rand(*cols.shape, seed=3)
    _, out = assert_same_step(
        lambda a: F.fold(a, (7, 6), **kw), lambda a: TF.fold(a, (7, 6), **kw), [c]
    )
    assert type(out.grad_fn).__name__ == "Col2imBackward0"


def test_convolutions_of_other_ranks_and_asymmetric_padding_match_torch():
    x, w = rand(2, 2, 9), rand(3, 2, 4, seed=1)  # 'same' with an even kernel: 3 before, 3 after
    assert_same_step(
        lambda a, b: F.conv1d(a, b, padding="same", dilation=2),
        lambda a, b: TF.conv1d(a, b, padding="same", dilation=2),
        [x, w],
    )
    x, w = rand(2, 2, 8), rand(3, 2, 2, seed=1)  # 'same', kernel 2: 0 before, 1 after
    assert_same_step(
        lambda a, b: F.conv1d(a, b, padding="same"),
        lambda a, b: TF.conv1d(a, b, padding="same"),
        [x, w],
    )
    x, w = rand(1, 2, 4, 5, 6), rand(3, 2, 2, 3, 2, seed=1)
    kw = {"stride": (1, 2, 1), "padding": (1, 0, 2)}
    assert_same_step(lambda a, b: F.conv3d(a, b, **kw), lambda a, b: TF.conv3d(a, b, **kw), [x, w])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_with_ceil_mode_padding_matches_torch_in_its_dtype(dtype):
    x = rand(2, 3, 5, 6).astype(dtype)
    kw = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    for count_include_pad in (True, False):
        m = F.avg_pool2d(mg.tensor(x), count_include_pad=count_include_pad, **kw)
        t = TF.avg_pool2d(torch.tensor(x), count_include_pad=count_include_pad, **kw)
        assert m.dtype == dtype  # (the divisor no longer promotes float32 to float64)
        np.testing.assert_allclose(m.numpy(), t.numpy(), rtol=1e-6)


def test_col2im_of_im2col_counts_the_windows_over_each_element():
    """fold(unfold(ones)) is the number of windows that cover each element: a closed form."""
    n, k, p, s = 7, 3, 1, 2
    got = F.fold(F.unfold(mg.ones(1, 1, n, n), k, padding=p, stride=s), n, k, padding=p, stride=s)
    starts = np.arange(0, n + 2 * p - k + 1, s) - p  # each window's first (padded) index
    cover = np.array([((starts <= i) & (i < starts + k)).sum() for i in range(n)])
    np.testing.assert_array_equal(got.numpy()[0, 0], np.outer(cover, cover))


# -- gradient ownership in the engine ------------------------------------------------------------
def test_weight_gradient_is_copied_when_a_hook_holds_it():
    x = mg.tensor(rand(5, 3))
    for on_leaf in (False, True):
        w = mg.tensor(rand(4, 3, seed=1), requires_grad=True)
        held = []
        wt = w.mT
        # a hook on W.T sees its (column-major) gradient, whose transpose reaches W; one on W
        # sees the very array W.grad would otherwise keep
        (w if on_leaf else wt).register_hook(held.append)
        mg.addmm(mg.zeros(4), x, wt).sum().backward()
        assert held and not np.shares_memory(held[0].numpy(), w.grad.numpy())
        np.testing.assert_allclose(w.grad.numpy(), np.ones((5, 4)).T @ x.numpy(), rtol=1e-12)


def test_weight_gradient_is_copied_when_retained_or_captured():
    x = mg.tensor(rand(5, 3))
    w = mg.tensor(rand(4, 3, seed=1), requires_grad=True)
    wt = w.mT
    wt.retain_grad()
    mg.addmm(mg.zeros(4), x, wt).sum().backward()  # W.T's gradient made column-major
    w2 = mg.tensor(rand(4, 3, seed=1), requires_grad=True)
    wt2 = w2.mT
    out = mg.addmm(mg.zeros(4), x, wt2)
    out.sum().backward(inputs=[wt2, w2])
    for a, b in ((wt, w), (wt2, w2)):
        assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
        np.testing.assert_allclose(a.grad.numpy().T, b.grad.numpy(), rtol=1e-12)


def test_gradient_is_copied_when_a_custom_function_keeps_it():
    kept = []

    class Keep(mg.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1.0

        @staticmethod
        def backward(ctx, g):
            # a view of a fresh array that nothing else refers to (made in NumPy: a matgrad
            # view would keep its base tensor, whose reference the engine would see)...
            out = mg.from_numpy((g.numpy() * 2.0).reshape(-1).reshape(g.shape))
            kept.append(out)  # ...which the function keeps
            return out

    w = mg.tensor(rand(3, 4), requires_grad=True)
    Keep.apply(w).sum().backward()
    assert not np.shares_memory(kept[0].numpy(), w.grad.numpy())
    np.testing.assert_array_equal(w.grad.numpy(), np.full((3, 4), 2.0))


def test_the_callers_grad_output_is_never_a_gradient_or_written():
    w = mg.tensor(rand(3, 4), requires_grad=True)
    g = rand(4, 3, seed=2)
    given = mg.tensor(g.copy())
    w.mT.backward(given)
    assert not np.shares_memory(given.numpy(), w.grad.numpy())
    x = mg.tensor(rand(3), requires_grad=True)
    seed = mg.tensor(np.ones(3))
    (x + x + x + x).backward(seed)  # four gradients of x: summed, in place only in a sum
    np.testing.assert_array_equal(seed.numpy(), np.ones(3))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 4.0))
    assert not np.shares_memory(seed.numpy(), x.grad.numpy())
    np.testing.assert_array_equal(given.numpy(), g)


def test_sums_of_many_gradients_of_one_input_match_the_closed_form():
    a = rand(4, 5)
    x = mg.tensor(a, requires_grad=True)
    parts = [x[:, i : i + 2] * (i + 1.0) for i in range(4)]  # overlapping slices: 4 gradients
    sum(p.sum() for p in parts).backward()
    want = np.zeros_like(a)
    for i in range(4):
        want[:, i : i + 2] += i + 1.0
    np.testing.assert_array_equal(x.grad.numpy(), want)
    # and through a graph that uses x's gradient sum again (the sum is handed to a node)
    y = mg.tensor(a, requires_grad=True)
    z = y * 2.0
    (z + z + z).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), np.full_like(a, 6.0))
