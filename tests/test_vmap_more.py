"""``func.vmap``, the second round (issue #11): batched index tensors, ``randomness``,
``.backward()`` inside vmap, generated rules of ``autograd.Function``, ``chunk_size`` of the
Jacobians, custom ``jvp`` at nested dual levels, the former fallback loops, and ``nn`` modules
(per-sample gradients, ensembles by ``stack_module_state``). References: Python loops over the
batch, closed forms, finite differences (gradcheck) and torch.func."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import matgrad as mg
from matgrad import func as mf
from matgrad.autograd import forward_ad as fwad
from matgrad.autograd.functional import BatchingFallbackWarning
from matgrad.ops.batching import VmapFallbackWarning

rng = np.random.default_rng(11)


def t(a, **kw):
    a = np.asarray(a)
    return mg.tensor(a if a.dtype.kind in "iub" else a.astype(float), **kw)


def loop(fn, *arrays, in_dims=None):
    """``fn`` per batch element (axis 0 of the arrays whose in_dim is 0), stacked."""
    in_dims = in_dims or (0,) * len(arrays)
    n = next(a.shape[0] for a, d in zip(arrays, in_dims, strict=True) if d == 0)
    outs = [
        fn(*(t(a[i]) if d == 0 else t(a) for a, d in zip(arrays, in_dims, strict=True)))
        for i in range(n)
    ]
    return np.stack([o.detach().numpy() for o in outs])


@pytest.fixture
def no_fallback():
    """Fail on any per-sample loop: every call below must have a real batching rule."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", VmapFallbackWarning)
        warnings.simplefilter("error", BatchingFallbackWarning)
        yield


# -- 1. batched index tensors ----------------------------------------------------------------------
W = rng.standard_normal((7, 3))
X = rng.standard_normal((4, 7, 5))
IDX = rng.integers(-7, 7, (4, 2, 3))  # negative indices count from the end
COL = rng.integers(0, 5, (4, 2))
X3 = rng.standard_normal((4, 7, 5, 6))


@pytest.mark.parametrize(
    "fn,arrays,in_dims",
    [
        (lambda i: t(W)[i], (IDX,), None),  # an embedding lookup: weight unbatched
        (lambda x, i: x[i], (X, IDX), None),
        (lambda x, i: x[:, i], (X, COL), None),  # adjacent advanced block after a slice
        (lambda x, i: x[1:, i].sum(0), (X, COL), None),
        (lambda x, i, j: x[i, :, j], (X3, IDX[:, 0, :2], COL), None),  # separated: in front
        (lambda x, i, j: x[:, i, None, j], (X3, COL, COL), None),  # separated by a None
        (lambda x, i: x[0, i], (X[:, :1], COL), None),  # an integer among advanced indices
        (lambda x, i: x[i, None, ..., 0], (X, IDX[:, 0]), None),
        (lambda x, i: x[np.array([1, 2]), i], (X, COL), None),  # plain array and batched one
        (lambda x, i: x[i[0], i], (X, COL), None),  # a batched 0-d index (a select)
        (lambda x, i: x[i], (X[0], IDX), (None, 0)),  # unbatched x, batched index
        (lambda x, i: x[np.array([1, 0, 0, 1, 0, 0, 0], bool), i], (X, COL), None),  # a mask
    ],
)
def test_batched_index_tensors_match_a_loop(fn, arrays, in_dims, no_fallback):
    dims = in_dims or 0
    got = mf.vmap(fn, in_dims=dims)(*(t(a) for a in arrays))
    np.testing.assert_allclose(got.numpy(), loop(fn, *arrays, in_dims=in_dims), rtol=1e-14)


def test_batched_index_in_nested_vmaps_and_gradients(no_fallback):
    # index batched over the outer level, x over the inner one
    xs, idx = rng.standard_normal((7, 2)), rng.integers(0, 7, (2, 4))
    inner = mf.vmap(lambda x, i: x[i], in_dims=(1, None))
    got = mf.vmap(inner, in_dims=(None, 0))(t(xs), t(idx))
    want = np.stack([np.stack([xs[:, b][i] for b in range(2)]) for i in idx])
    np.testing.assert_allclose(got.numpy(), want)
    # the gradient of an unbatched weight gathered by batched indices: rows add up
    w = t(W)
    g = mf.grad(lambda w: (mf.vmap(lambda i: w[i])(t(IDX)) ** 2).sum())(w)
    expected = np.zeros_like(W)
    np.add.at(expected, IDX.reshape(-1), 2 * W[IDX.reshape(-1)])
    np.testing.assert_allclose(g.numpy(), expected)
    # per-sample gradients with respect to x, and finite differences through vmap
    gx = mf.vmap(mf.grad(lambda x, i: x[:, i].sin().sum()))(t(X), t(COL))
    ref = np.zeros_like(X)
    for b in range(4):
        np.add.at(ref[b], (slice(None), COL[b]), np.cos(X[b][:, COL[b]]))
    np.testing.assert_allclose(gx.numpy(), ref)
    x = t(X[:, :3, :3], requires_grad=True)
    assert mg.autograd.gradcheck(lambda a: mf.vmap(lambda r, i: r[i, i])(a, t(COL % 3)), (x,))


def test_embedding_inside_vmap_matches_torch(no_fallback):
    torch = pytest.importorskip("torch")
    idx = rng.integers(0, 7, (4, 5))
    idx[0, 1] = 2
    for pad in (None, 2):
        got = mf.vmap(lambda i, pad=pad: mg.nn.functional.embedding(i, t(W), padding_idx=pad))(
            t(idx)
        )
        want = torch.func.vmap(
            lambda i, pad=pad: torch.nn.functional.embedding(i, torch.tensor(W), padding_idx=pad)
        )(torch.tensor(idx))
        np.testing.assert_allclose(got.numpy(), want.numpy())
    # the padding row gets no gradient
    w = t(W)
    g = mf.grad(lambda w: mf.vmap(lambda i: mg.nn.functional.embedding(i, w, 2))(t(idx)).sum())(w)
    counts = np.bincount(idx.reshape(-1), minlength=7).astype(float)
    counts[2] = 0
    np.testing.assert_allclose(g.numpy(), np.repeat(counts[:, None], 3, 1))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, i: mg.take_along_axis(x, i, 1),
        lambda x, i: mg.take_along_dim(x, i, 1),
        lambda x, i: mg.take_along_dim(x, i),
        lambda x, i: mg.gather(x, 1, i),
        lambda x, i: mg.gather(x[:3], 1, i[:2, :2]),  # index smaller than the input
        lambda x, i: mg.take(x, i),
    ],
)
def test_gathers_with_batched_indices_match_a_loop(fn, no_fallback):
    x, i = rng.standard_normal((4, 3, 7)), rng.integers(0, 7, (4, 3, 4))
    np.testing.assert_allclose(mf.vmap(fn)(t(x), t(i)).numpy(), loop(fn, x, i))
    g = mf.vmap(mf.grad(lambda a, j: fn(a, j).exp().sum()))(t(x), t(i))
    gl = np.stack([mf.grad(lambda a, j=j: fn(a, t(j)).exp().sum())(t(a)).numpy()
                   for a, j in zip(x, i, strict=True)])  # fmt: skip
    np.testing.assert_allclose(g.numpy(), gl)


def test_index_put_with_batched_indices_matches_a_loop(no_fallback):
    x, v = rng.standard_normal((4, 6)), rng.standard_normal((4, 3))
    i = rng.integers(0, 6, (4, 3))
    i[:, 1] = i[:, 0]  # repeated positions: accumulate adds them, put keeps one
    for acc in (False, True):

        def f(a, j, b, acc=acc):
            return mg.index_put(a, (j,), b, accumulate=acc)

        got = mf.vmap(f)(t(x), t(i), t(v))
        want = loop(f, x, i, v)
        if acc:
            np.testing.assert_allclose(got.numpy(), want)
        else:  # which of two writes to one position wins is unspecified (as in PyTorch)
            assert got.shape == want.shape
            for b in range(4):
                free = [c for c in range(6) if c != i[b, 0]]
                np.testing.assert_allclose(got.numpy()[b, free], want[b, free])
                assert got.numpy()[b, i[b, 0]] in (v[b, 0], v[b, 1])
    # unbatched x and values, batched index: x is written per batch element
    got = mf.vmap(lambda j: mg.index_put(t(x[0]), (j,), t(v[0]), accumulate=True))(t(i))
    want = np.stack([x[0] + np.bincount(j, v[0], 6) for j in i])
    np.testing.assert_allclose(got.numpy(), want)


def test_batched_masks_raise_and_unsupported_index_ops_refuse():
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4))
    with pytest.raises(RuntimeError) as theirs:
        torch.func.vmap(lambda a, m: a[m])(torch.tensor(x), torch.tensor(x > 0))
    with pytest.raises(RuntimeError) as ours:
        mf.vmap(lambda a, m: a[m])(t(x), t(x > 0))
    assert str(ours.value) == str(theirs.value)
    # an op that reads a batched index as an array refuses rather than misreading it
    i = t(rng.integers(0, 4, (3, 2)))
    with pytest.raises(NotImplementedError, match="batched index"):
        mf.vmap(lambda a, j: mg.index_select(a, 0, j))(t(x), i)


# -- 2. randomness ---------------------------------------------------------------------------------
DRAWS = {
    "randn": lambda a: a * 0 + mg.randn(a.shape[0]),
    "rand_like": lambda a: mg.rand_like(a),
    "randn_like": lambda a: mg.randn_like(a),
    "randint": lambda a: a * 0 + mg.randint(0, 10**9, (a.shape[0],)),
    "rand": lambda a: a * 0 + mg.rand(a.shape[0]),
}


@pytest.mark.parametrize("name", sorted(DRAWS))
def test_randomness_same_and_different(name):
    x = t(np.zeros((6, 5)))
    same = mf.vmap(DRAWS[name], randomness="same")(x).numpy()
    assert same.shape == (6, 5) and np.all(same == same[0])  # one draw shared by the batch
    diff = mf.vmap(DRAWS[name], randomness="different")(x).numpy()
    assert diff.shape == (6, 5) and len({r.tobytes() for r in diff}) == 6
    with pytest.raises(RuntimeError, match="randomness error mode"):
        mf.vmap(DRAWS[name])(x)


def test_randomness_different_statistics_and_nesting():
    mg.manual_seed(0)
    rows = mf.vmap(lambda a: mg.randn(400), randomness="different")(t(np.zeros(300))).numpy()
    assert rows.shape == (300, 400)
    assert abs(rows.mean()) < 0.01 and abs(rows.std() - 1) < 0.01  # 120k N(0, 1) draws
    corr = np.corrcoef(rows[:50])[np.triu_indices(50, 1)]
    assert np.abs(corr).max() < 0.25  # independent rows (|r| ~ 0.05 for 400 samples)
    u = mf.vmap(lambda a: mg.rand_like(a), randomness="different")(t(np.zeros((300, 400))))
    assert u.numpy().min() >= 0 and u.numpy().max() < 1 and abs(u.numpy().mean() - 0.5) < 0.01
    # nested: each level keeps its own option
    y = t(np.zeros((2, 5, 3)))
    o = mf.vmap(mf.vmap(lambda a: mg.randn(3), randomness="same"), randomness="different")(y)
    o = o.numpy()
    assert np.all(o == o[:, :1]) and not np.allclose(o[0], o[1])
    o = mf.vmap(mf.vmap(lambda a: mg.randn(3), randomness="different"), randomness="same")(y)
    o = o.numpy()
    assert np.all(o == o[:1]) and len({r.tobytes() for r in o[0]}) == 5
    with pytest.raises(RuntimeError, match="randomness error mode"):  # an 'error' level outside
        mf.vmap(mf.vmap(lambda a: mg.randn(3), randomness="same"))(y)


def test_randomness_with_generators_and_direct_draws():
    x = t(np.ones((4, 3)))
    g = mg.Generator().manual_seed(3)
    with pytest.raises(RuntimeError, match="randomness error mode"):  # PyTorch: any generator
        mf.vmap(lambda a: a * mg.randn(3, generator=g))(x)
    rows = mf.vmap(lambda a: a * mg.randn(3, generator=g), randomness="different")(x).numpy()
    assert len({r.tobytes() for r in rows}) == 4
    # dropout draws through rand_like: 'same' shares its mask, 'different' draws one per row
    out = mf.vmap(lambda a: mg.nn.functional.dropout(a, 0.5), randomness="same")(x).numpy()
    assert np.all(out == out[0])
    wide = t(np.ones((4, 64)))
    out = mf.vmap(lambda a: mg.nn.functional.dropout(a, 0.5), randomness="different")(wide)
    assert len({r.tobytes() for r in out.numpy()}) == 4
    # gumbel_softmax draws from the generator directly: under 'different' it refuses
    with pytest.raises(NotImplementedError, match="different"):
        mf.vmap(lambda a: mg.nn.functional.gumbel_softmax(a), randomness="different")(x)
    assert type(mg.default_generator()) is np.random.Generator


def test_like_factories_have_the_logical_shape():
    x = t(np.ones((4, 2, 3)))
    shapes = []
    mf.vmap(lambda a: shapes.append(tuple(mg.empty_like(a).shape)) or a)(x)
    out = mf.vmap(lambda a: mg.empty_like(a) + a)(x)
    assert shapes == [(2, 3)] and tuple(out.shape) == (4, 2, 3)


# -- 3. backward() inside vmap ---------------------------------------------------------------------
def test_backward_inside_vmap_raises_pytorchs_error():
    torch = pytest.importorskip("torch")
    w = t(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError) as ours:
        mf.vmap(lambda a: (a * w).sum().backward() or a)(t(np.ones((2, 3))))
    with pytest.raises(RuntimeError) as unbatched:
        mf.vmap(lambda a: (w * w).sum().backward() or a)(t(np.ones((2, 3))))
    tw = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError) as theirs:
        torch.func.vmap(lambda a: (a * tw).sum().backward() or a)(torch.ones(2, 3))
    with pytest.raises(RuntimeError) as free_function:  # autograd.backward, the same check
        mf.vmap(lambda a: mg.autograd.backward([(a * w).sum()]) or a)(t(np.ones((2, 3))))
    assert str(ours.value) == str(unbatched.value) == str(theirs.value)
    assert str(free_function.value) == str(theirs.value)
    assert w.grad is None
    (w * w).sum().backward()  # outside vmap as before
    np.testing.assert_allclose(w.grad.numpy(), 2 * np.ones(3))


# -- 4. generate_vmap_rule = True --------------------------------------------------------------
class _MatVec(mg.autograd.Function):
    """y = A x, with its derivatives by hand (logical, per-sample shapes)."""

    generate_vmap_rule = True
    forwards = 0

    @staticmethod
    def forward(A, x):
        _MatVec.forwards += 1
        return A @ x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, g):
        A, x = ctx.saved_tensors
        return mg.outer(g, x), A.t() @ g

    @staticmethod
    def jvp(ctx, tA, tx):
        A, x = ctx.saved_tensors
        return tA @ x + A @ tx


A = rng.standard_normal((4, 3))
XS = rng.standard_normal((5, 3))


def test_generated_rule_runs_forward_once_and_batches(no_fallback):
    _MatVec.forwards = 0
    out = mf.vmap(_MatVec.apply, in_dims=(None, 0))(t(A), t(XS))
    assert _MatVec.forwards == 1
    np.testing.assert_allclose(out.numpy(), XS @ A.T)
    # nested levels: still one forward
    XX = rng.standard_normal((2, 5, 3))
    out = mf.vmap(mf.vmap(_MatVec.apply, in_dims=(None, 0)), in_dims=(None, 0))(t(A), t(XX))
    np.testing.assert_allclose(out.numpy(), XX @ A.T)
    assert _MatVec.forwards == 2


def test_generated_rule_derivatives_match_closed_forms(no_fallback):
    f = lambda a, x: _MatVec.apply(a, x).sin().sum()  # noqa: E731
    gA = mf.vmap(mf.grad(f), in_dims=(None, 0))(t(A), t(XS))
    closed = np.stack([np.outer(np.cos(A @ x), x) for x in XS])
    np.testing.assert_allclose(gA.numpy(), closed)
    gx = mf.vmap(mf.grad(f, argnums=1), in_dims=(None, 0))(t(A), t(XS))
    np.testing.assert_allclose(gx.numpy(), np.stack([A.T @ np.cos(A @ x) for x in XS]))
    # grad of vmap: the shared A's gradient sums over the batch (after the vmap ended)
    g = mf.grad(lambda a: mf.vmap(_MatVec.apply, in_dims=(None, 0))(a, t(XS)).sin().sum())(t(A))
    np.testing.assert_allclose(g.numpy(), closed.sum(0))
    # batches of cotangents and tangents (jacrev, jacfwd): one more level, no loop
    for jac in (mf.jacrev, mf.jacfwd):
        J = mf.vmap(jac(_MatVec.apply, argnums=1), in_dims=(None, 0))(t(A), t(XS))
        np.testing.assert_allclose(J.numpy(), np.broadcast_to(A, (5, 4, 3)))
        JA = mf.vmap(jac(_MatVec.apply), in_dims=(None, 0))(t(A), t(XS))
        np.testing.assert_allclose(JA.numpy(), np.einsum("ij,bk->bijk", np.eye(4), XS))
    _, jv = mf.vmap(
        lambda a, x: mf.jvp(_MatVec.apply, (a, x), (a, x)), in_dims=(None, 0)
    )(t(A), t(XS))  # fmt: skip
    np.testing.assert_allclose(jv.numpy(), 2 * XS @ A.T)
    a, x = t(A, requires_grad=True), t(XS, requires_grad=True)
    fn = lambda a, x: mf.vmap(_MatVec.apply, in_dims=(None, 0))(a, x).tanh()  # noqa: E731
    assert mg.autograd.gradcheck(fn, (a, x))
    assert mg.autograd.gradgradcheck(fn, (a, x))


def test_generated_rule_vectorizes_jacobians_outside_vmap(no_fallback):
    x = rng.standard_normal(3)
    for jac in (mf.jacrev, mf.jacfwd):
        J = jac(_MatVec.apply, argnums=(0, 1))(t(A), t(x))
        np.testing.assert_allclose(J[1].numpy(), A)
        np.testing.assert_allclose(J[0].numpy(), np.einsum("ij,k->ijk", np.eye(4), x))
    H = mf.hessian(lambda v: _MatVec.apply(t(A), v).sin().sum())(t(x))
    np.testing.assert_allclose(H.numpy(), -(A.T * np.sin(A @ x)) @ A, atol=1e-12)


def test_generated_rule_matches_torch_func():
    torch = pytest.importorskip("torch")

    class TMatVec(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(A, x):
            return A @ x

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):
            A, x = ctx.saved_tensors
            return torch.outer(g, x), A.t() @ g

    F = torch.func
    want = F.vmap(F.jacrev(lambda a, x: TMatVec.apply(a, x).sin()), in_dims=(None, 0))(
        torch.tensor(A), torch.tensor(XS)
    )
    got = mf.vmap(mf.jacrev(lambda a, x: _MatVec.apply(a, x).sin()), in_dims=(None, 0))(t(A), t(XS))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-14)


# -- 5. chunk_size of jacrev / jacfwd --------------------------------------------------------------
def _f2(x, y):
    return (x[:, None] * y).sin(), x.sum() * y


@pytest.mark.parametrize("jac", [mf.jacrev, mf.jacfwd])
def test_chunked_jacobians_equal_the_full_ones(jac, no_fallback):
    x, y = t(rng.standard_normal(5)), t(rng.standard_normal((5, 3)))
    full = jac(_f2, argnums=(0, 1))(x, y)
    for c in (1, 2, 4, 15, 100):
        got = jac(_f2, argnums=(0, 1), chunk_size=c)(x, y)
        for gg, ww in zip(got, full, strict=True):
            for g, w in zip(gg, ww, strict=True):
                np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-14, atol=1e-15)
    # with has_aux, inside vmap, and nested (a Hessian)
    xs = t(rng.standard_normal((4, 5)))
    g = lambda v: (v.tanh() * v.sum(), v.sum())  # noqa: E731
    J, aux = mf.vmap(jac(g, has_aux=True, chunk_size=2))(xs)
    np.testing.assert_allclose(J.numpy(), mf.vmap(jac(g, has_aux=True))(xs)[0].numpy())
    np.testing.assert_allclose(aux.numpy(), xs.numpy().sum(1))
    h = lambda v: (v.sin() * v.sum()).sum()  # noqa: E731
    H = jac(jac(h, chunk_size=3), chunk_size=2)(xs[0])
    np.testing.assert_allclose(H.numpy(), mf.hessian(h)(xs[0]).numpy(), rtol=1e-12, atol=1e-14)


def test_chunk_size_bounds_the_batch_of_each_pass(monkeypatch):
    from matgrad.autograd import functional as F

    seen = {"grad": [], "forward": []}
    autograd_grad, forward_pass = F._autograd_grad, F._forward_pass

    def counted_grad(outputs, inputs, grad_outputs, **kw):
        seen["grad"].append(grad_outputs.shape[0] if kw.get("is_grads_batched") else 1)
        return autograd_grad(outputs, inputs, grad_outputs, **kw)

    def counted_forward(call, primals, tangents, batched):
        ts = [tg for tg in tangents if tg is not None]
        seen["forward"].append(ts[0].shape[0] if batched else 1)
        return forward_pass(call, primals, tangents, batched)

    monkeypatch.setattr(F, "_autograd_grad", counted_grad)
    monkeypatch.setattr(F, "_forward_pass", counted_forward)
    x = t(rng.standard_normal(10))
    mf.jacrev(lambda v: v.exp() * v[0], chunk_size=3)(x)  # 10 rows: 3 + 3 + 3 + 1
    mf.jacfwd(lambda v: v.exp() * v[0], chunk_size=4)(x)  # 10 columns: 4 + 4 + 2
    assert seen == {"grad": [3, 3, 3, 1], "forward": [4, 4, 2]}
    with pytest.raises(ValueError, match="chunk_size"):
        mf.jacfwd(lambda v: v, chunk_size=0)


# -- 6. custom jvp at two open dual levels -------------------------------------------------------
def _cube_function(lib):
    class Cube(lib.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x, s):
            return x**3 * s, x.sin()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_forward(inputs[0])
            ctx.save_for_backward(inputs[0])
            ctx.s = inputs[1]

        @staticmethod
        def jvp(ctx, tx, ts):
            (x,) = ctx.saved_tensors
            return 3 * x**2 * tx * ctx.s, x.cos() * tx

        @staticmethod
        def backward(ctx, g1, g2):
            (x,) = ctx.saved_tensors
            return g1 * 3 * x**2 * ctx.s + g2 * x.cos(), None

    return Cube


def test_custom_jvp_at_two_dual_levels_closed_forms():
    Cube = _cube_function(mg)
    x, u, w = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3)
    with fwad.dual_level() as outer:
        xo = fwad.make_dual(t(x), t(u))
        with fwad.dual_level() as inner:
            y, z = Cube.apply(fwad.make_dual(xo, t(w)), 2.0)
            for o, d1, d2 in ((y, 6 * x**2, 12 * x), (z, np.cos(x), -np.sin(x))):
                p_in, t_in = fwad.unpack_dual(o, level=inner)
                np.testing.assert_allclose(t_in.numpy(), d1 * w / (1 if o is z else 1))
                np.testing.assert_allclose(
                    fwad.unpack_dual(p_in, level=outer).tangent.numpy(), d1 * u
                )
                # the mixed second derivative: the jvp's own ops carry the outer tangent
                np.testing.assert_allclose(
                    fwad.unpack_dual(t_in, level=outer).tangent.numpy(), d2 * u * w
                )
    # the same by func.jvp of func.jvp, and third order by jacfwd^3 (no loop fallback)
    inner_fn = lambda v: mf.jvp(lambda a: Cube.apply(a, 2.0), (v,), (t(w),))[1]  # noqa: E731
    _, tt = mf.jvp(inner_fn, (t(x),), (t(u),))
    np.testing.assert_allclose(tt[0].numpy(), 12 * x * u * w)
    np.testing.assert_allclose(tt[1].numpy(), -np.sin(x) * u * w)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BatchingFallbackWarning)
        D3 = mf.jacfwd(mf.jacfwd(mf.jacfwd(lambda a: Cube.apply(a, 2.0)[0])))(t(x)).numpy()
    np.testing.assert_allclose(np.einsum("iiii->i", D3), 12 * np.ones(3), rtol=1e-12)
    assert np.abs(D3).sum() == pytest.approx(36.0)


def test_custom_jvp_first_order_matches_torch():
    torch = pytest.importorskip("torch")
    x, u = rng.standard_normal(3), rng.standard_normal(3)
    ours = mf.jvp(lambda a: _cube_function(mg).apply(a, 2.0), (t(x),), (t(u),))
    theirs = torch.func.jvp(
        lambda a: _cube_function(torch).apply(a, 2.0), (torch.tensor(x),), (torch.tensor(u),)
    )
    for a, b in zip([*ours[0], *ours[1]], [*theirs[0], *theirs[1]], strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-14)


# -- 7. former fallback loops --------------------------------------------------------------------
@pytest.mark.parametrize(
    "fn,shapes,in_dims",
    [
        (lambda x: mg.roll(x, 3), [(3, 4, 5)], None),  # dims=None: the flattened value
        (lambda x: mg.roll(x, -1), [(3, 4)], None),
        (mg.linalg.solve, [(3, 4, 4), (3, 2, 4, 5)], None),  # B with more batch axes
        (mg.linalg.solve, [(3, 2, 4, 4), (3, 4)], None),  # a vector broadcast over A's batch
        (mg.linalg.solve, [(3, 2, 4, 4), (3, 4, 1)], None),
        (mg.linalg.solve, [(4, 4), (3, 2, 4, 5)], (None, 0)),
        (
            lambda a, b: mg.linalg.solve_triangular(a, b, upper=True),
            [(3, 4, 4), (3, 2, 4, 2)],
            None,
        ),
    ],
)
def test_former_fallbacks_have_rules(fn, shapes, in_dims, no_fallback):
    arrays = [rng.standard_normal(s) + (4 * np.eye(s[-1]) if len(s) > 1 and s[-1] == s[-2] else 0)
              for s in shapes]  # fmt: skip
    got = mf.vmap(fn, in_dims=in_dims or 0)(*(t(a) for a in arrays))
    np.testing.assert_allclose(got.numpy(), loop(fn, *arrays, in_dims=in_dims), rtol=1e-12)


# -- 8. nn modules: per-sample gradients and ensembles -------------------------------------------
def _models(lib):
    nn = lib.nn
    lib.manual_seed(0)
    return {
        "mlp": nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)),
        "embedding": nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 3)),
        "conv2d": nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(75, 3)
        ),
    }


INPUTS = {
    "mlp": rng.standard_normal((6, 5)),
    "embedding": rng.integers(0, 10, (6, 3)),
    "conv2d": rng.standard_normal((6, 2, 5, 5)),
}
TARGETS = rng.integers(0, 3, 6)


def _per_sample_grads(lib, model, x, y):
    params = {k: v.detach() for k, v in model.named_parameters()}
    loss_fn = lib.nn.CrossEntropyLoss()

    def loss(p, xi, yi):
        return loss_fn(lib.func.functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    return lib.func.vmap(lib.func.grad(loss), in_dims=(None, 0, 0))(params, x, y)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_per_sample_gradients_of_nn_models(name, no_fallback):
    model = _models(mg)[name]
    x, y = INPUTS[name], TARGETS
    got = _per_sample_grads(mg, model, t(x), t(y))
    params = {k: v.detach() for k, v in model.named_parameters()}
    for i in range(len(y)):  # the loop: one sample at a time
        gi = mf.grad(
            lambda p, i=i: mg.nn.functional.cross_entropy(
                mf.functional_call(model, p, (t(x[i : i + 1]),)), t(y[i : i + 1])
            )
        )(params)
        for k in params:
            np.testing.assert_allclose(got[k].numpy()[i], gi[k].numpy(), rtol=1e-12, atol=1e-15)
    torch = pytest.importorskip("torch")
    tmodel = _models(torch)[name].double()
    with torch.no_grad():
        for (k, v), (k2, tv) in zip(
            model.named_parameters(), tmodel.named_parameters(), strict=True
        ):
            assert k == k2
            tv.copy_(torch.tensor(v.detach().numpy()))
    tx = torch.tensor(x) if x.dtype.kind == "i" else torch.tensor(x, dtype=torch.float64)
    want = _per_sample_grads(torch, tmodel, tx, torch.tensor(y))
    for k in params:
        np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), rtol=1e-10, atol=1e-13)


def test_stack_module_state_ensembles(no_fallback):
    def make(lib, seed):
        lib.manual_seed(seed)
        nn = lib.nn
        return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.BatchNorm1d(6), nn.Linear(6, 2)).eval()

    models = [make(mg, s) for s in range(3)]
    params, buffers = mf.stack_module_state(models)
    assert tuple(params["0.weight"].shape) == (3, 6, 4)
    assert params["0.weight"].requires_grad and params["0.weight"].grad_fn is None
    assert tuple(buffers["2.running_var"].shape) == (3, 6)
    base = copy.deepcopy(models[0])
    x = t(rng.standard_normal((5, 4)))

    def ensemble(p, b):
        return mf.vmap(lambda pi, bi, xi: mf.functional_call(base, (pi, bi), (xi,)),
                       in_dims=(0, 0, None))(p, b, x)  # fmt: skip

    out = ensemble(params, buffers)
    np.testing.assert_allclose(
        out.detach().numpy(), np.stack([m(x).detach().numpy() for m in models])
    )
    # gradients reach the stacked leaves, model by model
    ensemble(params, buffers).sum().backward()
    g0 = mf.grad(lambda p: mf.functional_call(models[1], p, (x,)).sum())(
        {k: v.detach() for k, v in models[1].named_parameters()}
    )
    np.testing.assert_allclose(params["3.weight"].grad.numpy()[1], g0["3.weight"].numpy())
    torch = pytest.importorskip("torch")
    tmodels = [make(torch, s).double() for s in range(3)]
    for m, tm in zip(models, tmodels, strict=True):
        with torch.no_grad():
            for (_, v), (_, tv) in zip(m.named_parameters(), tm.named_parameters(), strict=True):
                tv.copy_(torch.tensor(v.detach().numpy()))
    tp, tb = torch.func.stack_module_state(tmodels)
    assert sorted(tp) == sorted(params) and sorted(tb) == sorted(buffers)
    tbase = copy.deepcopy(tmodels[0]).to("meta")
    want = torch.func.vmap(
        lambda pi, bi, xi: torch.func.functional_call(tbase, (pi, bi), (xi,)), in_dims=(0, 0, None)
    )(tp, tb, torch.tensor(x.numpy()))
    np.testing.assert_allclose(out.detach().numpy(), want.detach().numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="same class"):
        mf.stack_module_state([models[0], mg.nn.Linear(4, 6).eval()])
    with pytest.raises(RuntimeError, match="at least one model"):
        mf.stack_module_state([])
    models[0].train()
    with pytest.raises(RuntimeError, match="training/eval mode"):
        mf.stack_module_state(models)


def test_one_hot_batches_under_vmap():
    """one_hot is composed of ops, so vmap sees its batch axis (it was built from the raw
    array, which gave a 4-d result for a batch of 2-d indices)."""
    idx = mg.tensor([[0, 1], [2, 0], [1, 1]])
    out = mf.vmap(lambda t: mg.nn.functional.one_hot(t, 3))(idx)
    loop = np.stack([np.eye(3, dtype=np.int64)[row] for row in idx.numpy()])
    assert out.shape == (3, 2, 3) and out.dtype == np.int64
    np.testing.assert_array_equal(out.numpy(), loop)
