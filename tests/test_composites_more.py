"""Properties of the functions composed for op coverage (issue #13) that the PyTorch
differential tier (op_db samples) does not reach: ties, repeated indices, zeros in products,
wide ranges, in-place variants, error messages, and finite-difference checks where PyTorch's
own gradient differs from the derivative (as_strided_scatter) or reads a different convention
(cholesky_solve's triangle).
"""

from __future__ import annotations

import numpy as np
import pytest

import matgrad as mg
from matgrad.autograd import gradcheck

torch = pytest.importorskip("torch")


def pair(a, requires_grad=True):
    """The same float64 values as a matgrad and a torch tensor."""
    a = np.asarray(a, dtype=np.float64)
    return (
        mg.tensor(a.copy(), requires_grad=requires_grad),
        torch.tensor(a.copy(), requires_grad=requires_grad),
    )


def grads(m_out, t_out, m_in, t_in, cot):
    """matgrad's and torch's vector-Jacobian products with the cotangent ``cot``."""
    (gm,) = mg.autograd.grad([m_out], [m_in], [mg.tensor(cot)])
    (gt,) = torch.autograd.grad([t_out], [t_in], [torch.tensor(cot)])
    return gm.detach().numpy(), gt.numpy()


def close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


# -- sorting: ties, nan, stability ------------------------------------------------------------
TIES = [[3.0, 1.0, 3.0, 2.0, 1.0, 3.0], [0.0, 0.0, 0.0, -1.0, 5.0, 5.0]]


@pytest.mark.parametrize("descending", [False, True])
def test_sort_is_stable_on_ties_like_torch(descending):
    m, t = pair(TIES)
    mv, mi = mg.sort(m, dim=1, descending=descending, stable=True)
    tv, ti = torch.sort(t, dim=1, descending=descending, stable=True)
    close(mv.detach().numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(mi.numpy(), ti.numpy())
    cot = np.arange(12.0).reshape(2, 6)
    close(*grads(mv, tv, m, t, cot))  # the gradient follows the (stable) permutation


def test_sort_puts_nan_last_ascending_first_descending():
    x = [1.0, float("nan"), -2.0, float("nan"), 0.5]
    for descending in (False, True):
        m, t = pair(x, requires_grad=False)
        mi = mg.argsort(m, descending=descending, stable=True).numpy()
        ti = torch.argsort(t, descending=descending, stable=True).numpy()
        np.testing.assert_array_equal(mi, ti)


def test_topk_and_kthvalue_gradients_through_ties():
    m, t = pair(TIES)
    mv, mi = mg.topk(m, 3, dim=1)
    tv, ti = torch.topk(t, 3, dim=1)
    close(mv.detach().numpy(), tv.detach().numpy())
    cot = np.array([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    gm, gt = grads(mv, tv, m, t, cot)
    # ties: which of the equal entries gets the gradient is the index each returns; the
    # gradient sums per row agree with torch's whatever the choice
    close(gm.sum(1), gt.sum(1))
    close(gm[np.arange(2)[:, None], mi.numpy()], cot)
    kv, ki = mg.kthvalue(m, 2, dim=1)
    close(kv.detach().numpy(), torch.kthvalue(t, 2, dim=1).values.detach().numpy())


def test_median_without_dim_shares_the_gradient_among_ties():
    m, t = pair([2.0, 1.0, 2.0, 3.0, 2.0, 0.0])
    close(*grads(mg.median(m), torch.median(t), m, t, np.array(1.0)))
    m, t = pair([[1.0, 2.0, 2.0], [4.0, 4.0, 5.0]])
    close(*grads(mg.nanmedian(m), torch.nanmedian(t), m, t, np.array(3.0)))


def test_median_along_dim_with_nan_like_torch():
    x = [[1.0, float("nan"), 3.0, 2.0], [4.0, 1.0, 2.0, 3.0]]
    for fn in ("median", "nanmedian"):
        m, t = pair(x)
        mv, mi = getattr(mg, fn)(m, 1)
        tv, ti = getattr(torch, fn)(t, 1)
        np.testing.assert_array_equal(mv.detach().numpy(), tv.detach().numpy())
        np.testing.assert_array_equal(mi.numpy(), ti.numpy())


def test_cummax_keeps_the_last_index_of_ties_and_nan():
    x = [1.0, 3.0, 3.0, 2.0, float("nan"), 5.0, float("nan"), 0.0]
    m, t = pair(x)
    mv, mi = mg.cummax(m, 0)
    tv, ti = torch.cummax(t, 0)
    np.testing.assert_array_equal(mi.numpy(), ti.numpy())
    np.testing.assert_array_equal(mv.detach().numpy(), tv.detach().numpy())


def test_quantile_gradients_in_input_and_q_by_finite_differences():
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    q = mg.tensor([0.1, 0.55, 0.9], requires_grad=True)
    assert gradcheck(lambda a, b: mg.quantile(a, b, dim=1, keepdim=True), (x, q))
    assert gradcheck(lambda a: mg.nanquantile(a, 0.3, interpolation="midpoint"), (x,))


# -- scatters: repeated indices, ties, zeros ----------------------------------------------------
def test_scatter_reduce_amax_amin_split_the_gradient_among_ties_like_torch():
    src = [[2.0, 5.0, 5.0, 1.0], [3.0, 3.0, 0.0, 3.0]]
    base = [[5.0, 0.0, 1.0], [3.0, -1.0, 7.0]]
    index = np.array([[0, 0, 0, 2], [1, 1, 2, 1]])
    for reduce in ("amax", "amin", "mean", "sum"):
        for include_self in (True, False):
            if not include_self and reduce in ("amax", "amin"):
                continue  # below: torch's gradient is not the derivative there
            ms, ts = pair(src)
            mb, tb = pair(base)
            mo = mg.scatter_reduce(mb, 1, mg.tensor(index), ms, reduce, include_self=include_self)
            to = torch.scatter_reduce(
                tb, 1, torch.tensor(index), ts, reduce, include_self=include_self
            )
            close(mo.detach().numpy(), to.detach().numpy())
            cot = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
            (gm_b, gm_s) = mg.autograd.grad([mo], [mb, ms], [mg.tensor(cot)])
            (gt_b, gt_s) = torch.autograd.grad([to], [tb, ts], [torch.tensor(cot)])
            close(gm_b.numpy(), gt_b.numpy())
            close(gm_s.numpy(), gt_s.numpy())


def test_scatter_reduce_amax_without_self_splits_among_the_scattered_entries():
    # include_self=False: the result at a written position is the extreme of the scattered
    # entries alone, so they share the whole gradient (torch counts a tying self value in
    # the split too, and then drops its share: its src gradients sum to 2/3 here)
    src = mg.tensor([[2.0, 5.0, 5.0, 1.0], [3.0, 3.0, 0.0, 3.0]], requires_grad=True)
    base = mg.tensor([[5.0, 0.0, 1.0], [3.0, -1.0, 7.0]], requires_grad=True)
    index = mg.tensor([[0, 0, 0, 2], [1, 1, 2, 1]])
    cot = mg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    expected_src = {
        "amax": [[0.0, 0.5, 0.5, 3.0], [5 / 3, 5 / 3, 6.0, 5 / 3]],
        "amin": [[1.0, 0.0, 0.0, 3.0], [5 / 3, 5 / 3, 6.0, 5 / 3]],
    }
    for reduce, want in expected_src.items():
        out = mg.scatter_reduce(base, 1, index, src, reduce, include_self=False)
        g_base, g_src = mg.autograd.grad([out], [base, src], [cot])
        close(g_src.numpy(), want)
        close(g_base.numpy(), [[0.0, 2.0, 0.0], [4.0, 0.0, 0.0]])  # the unwritten positions
        distinct = mg.tensor([[2.0, 5.5, 4.0, 1.0], [3.0, 2.5, 0.5, 1.0]], requires_grad=True)
        assert gradcheck(
            lambda s_, b_, r=reduce: mg.scatter_reduce(b_, 1, index, s_, r, include_self=False),
            (distinct, base),
        )


def test_scatter_reduce_prod_is_exact_at_zeros():
    # one zero among a position's factors gets the product of the others; two zeros: 0
    src = [[0.0, 2.0, 3.0, 0.0, 0.0, -1.5]]
    index = np.array([[0, 0, 0, 1, 1, 2]])
    for include_self in (True, False):
        ms, ts = pair(src)
        mb, tb = pair([[1.5, -2.0, 0.0]])
        mo = mg.scatter_reduce(mb, 1, mg.tensor(index), ms, "prod", include_self=include_self)
        to = torch.scatter_reduce(tb, 1, torch.tensor(index), ts, "prod", include_self=include_self)
        close(mo.detach().numpy(), to.detach().numpy())
        cot = np.array([[1.0, 2.0, 3.0]])
        gm = mg.autograd.grad([mo], [mb, ms], [mg.tensor(cot)])
        gt = torch.autograd.grad([to], [tb, ts], [torch.tensor(cot)])
        for a, b in zip(gm, gt, strict=True):
            close(a.numpy(), b.numpy())


def test_scatter_with_repeated_indices_keeps_the_last_write():
    base = mg.zeros(2, 3)
    src = mg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = mg.scatter(base, 1, mg.tensor([[0, 0, 2], [1, 1, 1]]), src)
    np.testing.assert_array_equal(out.numpy(), [[2.0, 0.0, 3.0], [0.0, 6.0, 0.0]])


def test_index_put_accumulates_repeated_indices_and_takes_the_former_order():
    m, t = pair(np.zeros((3, 2)))
    v_m, v_t = pair([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    idx = np.array([0, 2, 0])
    mo = mg.index_put(m, (mg.tensor(idx),), v_m, accumulate=True)
    to = torch.index_put(t, (torch.tensor(idx),), v_t, accumulate=True)
    close(mo.detach().numpy(), to.detach().numpy())
    cot = np.arange(6.0).reshape(3, 2)
    close(*grads(mo, to, v_m, v_t, cot))
    # matgrad's former order index_put(input, values, index) is still taken
    old = mg.index_put(mg.zeros(3), mg.tensor([7.0]), (slice(1, 2),))
    np.testing.assert_array_equal(old.numpy(), [0.0, 7.0, 0.0])


def test_as_strided_scatter_gradient_is_the_derivative():
    # torch's gradient to x is 1 at the overwritten entries (see the tier's KNOWN_DIFFERENCES);
    # the derivative is 0 there and 1 elsewhere: finite differences agree with matgrad
    rng = np.random.default_rng(1)
    x = mg.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    src = mg.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    assert gradcheck(lambda a, b: mg.as_strided_scatter(a, b, (2, 2), (1, 2), 1), (x, src))
    (g,) = mg.autograd.grad([mg.as_strided_scatter(x, src, (2, 2), (1, 2), 0)], [x],
                            [mg.ones(3, 3)])  # fmt: skip
    np.testing.assert_array_equal(g.numpy().reshape(-1), [0, 0, 0, 0, 1, 1, 1, 1, 1])


def test_cholesky_solve_reads_and_differentiates_the_triangle():
    rng = np.random.default_rng(2)
    L = np.tril(rng.standard_normal((4, 4))) + 4 * np.eye(4)
    B = rng.standard_normal((4, 2))
    Lm, Bm = mg.tensor(L, requires_grad=True), mg.tensor(B, requires_grad=True)
    X = mg.cholesky_solve(Bm, Lm)
    close(X.detach().numpy(), np.linalg.solve(L @ L.T, B))
    assert gradcheck(lambda b, lo: mg.cholesky_solve(b, mg.tril(lo)), (Bm, Lm))
    (g,) = mg.autograd.grad([X], [Lm], [mg.ones(4, 2)])
    assert np.all(np.triu(g.numpy(), 1) == 0)  # entries above the diagonal are never read


# -- scans and reductions ------------------------------------------------------------------------
def test_logcumsumexp_is_exact_over_a_wide_range():
    x = [-1000.0, 0.0, 1000.0, -2000.0, 999.0]
    m, t = pair(x)
    mo, to = mg.logcumsumexp(m, 0), torch.logcumsumexp(t, 0)
    close(mo.detach().numpy(), to.detach().numpy())
    close(*grads(mo, to, m, t, np.array([1.0, -2.0, 0.5, 3.0, 1.0])))


def test_nansum_nanmean_skip_nan_in_value_and_gradient():
    x = [[1.0, float("nan"), 2.0], [float("nan"), float("nan"), 4.0]]
    for fn in ("nansum", "nanmean"):
        m, t = pair(x)
        mo, to = getattr(mg, fn)(m, 1), getattr(torch, fn)(t, 1)
        close(mo.detach().numpy(), to.detach().numpy())
        close(*grads(mo, to, m, t, np.array([1.0, 2.0])))


def test_composites_against_finite_differences():
    rng = np.random.default_rng(3)

    def t(*shape, lo=None):
        a = rng.standard_normal(shape) if lo is None else rng.uniform(lo, lo + 1.0, shape)
        return mg.tensor(a, requires_grad=True)

    checks = [
        (lambda a, w: mg.cov(a, aweights=w), (t(3, 5), t(5, lo=0.5))),
        (mg.corrcoef, (t(3, 6),)),
        (lambda a: mg.renorm(a, 2, 0, 1.0), (t(3, 4),)),
        (lambda a, b: mg.cdist(a, b, p=1.5), (t(2, 3, 4), t(2, 5, 4))),
        (lambda y, x: mg.trapezoid(y, x, dim=1), (t(3, 5), t(5))),
        (lambda y: mg.cumulative_trapezoid(y, dx=0.3), (t(2, 5),)),
        (lambda y: mg.gradient(y, spacing=[0.5, 2.0], edge_order=2), (t(4, 5),)),
        (lambda a, b, w: mg.lerp(a, b, w), (t(3), t(3), t(3))),
        (lambda a, b, c: mg.addcdiv(a, b, c, value=0.5), (t(3), t(3), t(3, lo=1.0))),
        (lambda a: mg.logcumsumexp(a, 1), (t(3, 6),)),
        (lambda a, s: mg.index_reduce(a, 0, mg.tensor([0, 2, 0]), s, "prod"), (t(3, 2), t(3, 2))),
        (lambda a, b: mg.tensordot(a, b, ([0, 1], [2, 0])), (t(1, 1, 2), t(2, 3, 2))),
    ]
    for fn, inputs in checks:
        assert gradcheck(fn, inputs), fn


# -- in-place variants, errors, graphs -----------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("index_add_", (0, mg.tensor([0, 2]), mg.ones(2, 3))),
        ("index_fill_", (1, mg.tensor([1]), 5.0)),
        ("masked_fill_", (mg.tensor([[True, False, True]]), -1.0)),
        ("scatter_", (0, mg.tensor([[1, 0, 2]]), mg.ones(1, 3))),
        ("scatter_add_", (0, mg.tensor([[1, 0, 2]]), mg.ones(1, 3))),
        ("index_put_", ((mg.tensor([0, 1]),), mg.tensor(9.0))),
        ("lerp_", (mg.zeros(3, 3), 0.5)),
        ("addcmul_", (mg.ones(3, 3), mg.ones(3, 3))),
        ("clamp_min_", (0.0,)),
        ("put_", (mg.tensor([0, 8]), mg.tensor([1.0, 2.0]))),
    ],
)
def test_inplace_variants_write_bump_the_version_and_keep_the_gradient(method, args):
    leaf = mg.tensor(np.arange(9.0).reshape(3, 3) - 4, requires_grad=True)
    x = leaf * 1.0
    expected = getattr(mg, method[:-1])(x, *args).detach().numpy()
    before = x._version
    out = getattr(x, method)(*args)
    assert out is x and x._version == before + 1
    np.testing.assert_array_equal(x.detach().numpy(), expected)
    (g,) = mg.autograd.grad([x.sum()], [leaf])
    assert g.shape == (3, 3)


def test_bad_arguments_raise_errors_naming_the_op():
    x = mg.zeros(3, 4)
    with pytest.raises(RuntimeError, match="gather"):
        mg.gather(x, 1, mg.tensor([0, 1]))  # index of another ndim
    with pytest.raises(RuntimeError, match="gather.*out of bounds"):
        mg.gather(x, 1, mg.tensor([[4]]))
    with pytest.raises(RuntimeError, match="scatter_reduce.*reduce"):
        mg.scatter_reduce(x, 0, mg.tensor([[0]]), x, "max")
    with pytest.raises(RuntimeError, match="masked_fill.*boolean"):
        mg.masked_fill(x, mg.tensor([1, 0, 1, 0]), 0.0)
    with pytest.raises(RuntimeError, match="quantile.*range"):
        mg.quantile(x, 1.5)
    with pytest.raises(IndexError, match="index_select"):
        mg.index_select(x, 0, mg.tensor([3]))
    with pytest.raises(RuntimeError, match="hsplit"):
        mg.hsplit(x, 3)
    with pytest.raises(ValueError, match="rounding_mode"):
        mg.div(x, 2.0, rounding_mode="round")


def test_div_rounding_modes_on_negative_integers_like_torch():
    a, b = np.array([-7, 7, -6, 5]), np.array([2, -2, 4, 5])
    for mode in ("trunc", "floor"):
        got = mg.div(mg.tensor(a), mg.tensor(b), rounding_mode=mode)
        want = torch.div(torch.tensor(a), torch.tensor(b), rounding_mode=mode)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        assert got.dtype == np.int64


def test_graphs_show_the_primitives():
    x = mg.randn(3, 4, requires_grad=True)
    assert mg.sort(x, 1).values.grad_fn.name() == "TakeAlongAxisBackward0"
    assert mg.gather(x, 1, mg.tensor([[0], [1], [2]])).grad_fn.name() == "TakeAlongAxisBackward0"
    assert mg.index_add(x, 0, mg.tensor([0]), x[:1]).grad_fn.name() == "AddBackward0"
    assert mg.repeat_interleave(x, 2, 0).grad_fn.name() == "GetitemBackward0"
