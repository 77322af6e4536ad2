"""``matgrad.func.vmap``: results against a Python loop over the batch (and closed forms),
``in_dims``/``out_dims``/nesting/``chunk_size``/``randomness``, per-sample gradients, autograd
through vmap, and the batching rules of each op kind."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matgrad as mg
from matgrad import func as mf
from matgrad.ops.batching import BatchedTensor, VmapFallbackWarning

rng = np.random.default_rng(7)


def t(a, **kw):
    return mg.tensor(np.asarray(a, dtype=float), **kw)


def loop(fn, *arrays, in_dims=None):
    """The reference: ``fn`` per batch element (axis 0 of the batched arrays), stacked."""
    in_dims = in_dims or (0,) * len(arrays)
    n = next(a.shape[d] for a, d in zip(arrays, in_dims, strict=True) if d is not None)
    outs = []
    for i in range(n):
        args = [
            a if d is None else t(np.take(a, i, axis=d))
            for a, d in zip(arrays, in_dims, strict=True)
        ]
        args = [a if isinstance(a, mg.Tensor) else t(a) for a in args]
        outs.append(fn(*args).numpy())
    return np.stack(outs)


def check(fn, *arrays, in_dims=None, rtol=1e-12, atol=1e-12):
    dims = in_dims or 0
    got = mf.vmap(fn, in_dims=dims)(*(t(a) for a in arrays))
    np.testing.assert_allclose(
        got.numpy(), loop(fn, *arrays, in_dims=in_dims), rtol=rtol, atol=atol
    )


# -- the batching rules, each against a loop -------------------------------------------------------
A = rng.standard_normal((3, 4, 5))
B = rng.standard_normal((3, 5))
M = rng.standard_normal((3, 5, 2))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: (x * 2.0 + 1.0).tanh(),
        lambda x: x.sum(),
        lambda x: x.sum(0),
        lambda x: x.mean(-1, keepdim=True),
        lambda x: mg.amax(x, dim=1),
        lambda x: mg.prod(x),
        lambda x: mg.prod(x, 1),
        lambda x: mg.cumsum(x, 0),
        lambda x: mg.softmax(x, -1),
        lambda x: mg.logsumexp(x, 0),
        lambda x: x.reshape(20),
        lambda x: x.reshape(2, -1),
        lambda x: x.permute(1, 0),
        lambda x: x.t(),
        lambda x: x.transpose(0, 1),
        lambda x: x.unsqueeze(0),
        lambda x: x.unsqueeze(-1).expand(4, 5, 3),
        lambda x: x.flatten(),
        lambda x: x[1],
        lambda x: x[:, 1:3],
        lambda x: x[..., 0],
        lambda x: x[[0, 2]],
        lambda x: x[[0, 2], [1, 3]],
        lambda x: mg.flip(x, (0,)),
        lambda x: mg.roll(x, 1, 1),
        lambda x: mg.tril(x),
        lambda x: mg.diagonal(x),
        lambda x: mg.cat([x, x * 2.0], 0),
        lambda x: mg.stack([x, x], 1),
        lambda x: x.var(0),
        lambda x: mg.linalg.vector_norm(x, dim=1),
        lambda x: mg.where(x > 0, x, x * 0.1),
        lambda x: x.max(1).values,
    ],
)
def test_single_input_ops_match_a_loop(fn):
    check(fn, A)


@pytest.mark.parametrize(
    "fn,arrays,in_dims",
    [
        (lambda x, v: x @ v, (A, B), None),
        (lambda x, v: mg.mv(x, v), (A, B), None),
        (lambda v, w: mg.dot(v, w), (B, B[::-1].copy()), None),
        (lambda v, w: mg.outer(v, w), (B, B), None),
        (lambda x, m: mg.mm(x, m), (A, M), None),
        (lambda x, m: x @ m, (A, M[0]), (0, None)),
        (lambda v, x: v @ x, (B[:, :4].copy(), A[0]), (0, None)),
        (lambda x, v: x @ v, (A[0], B), (None, 0)),
        (lambda x, y: x + y, (A, B), None),  # broadcasting logical (4, 5) + (5,)
        (lambda x, y: x * y, (A, A[0]), (0, None)),
        (lambda x, y: mg.maximum(x, y), (A, B), None),
        (lambda x, y: mg.cat([x, y.unsqueeze(0)], 0), (A, B), None),
    ],
)
def test_two_input_ops_match_a_loop(fn, arrays, in_dims):
    check(fn, *arrays, in_dims=in_dims)


def test_linalg_ops_match_a_loop():
    S = rng.standard_normal((3, 4, 4))
    S = S @ np.swapaxes(S, -1, -2) + 4 * np.eye(4)
    check(mg.linalg.inv, S, rtol=1e-10, atol=1e-10)
    check(mg.linalg.det, S, rtol=1e-10)
    check(mg.linalg.cholesky, S, rtol=1e-10, atol=1e-12)
    b = rng.standard_normal((3, 4))
    check(mg.linalg.solve, S, b, rtol=1e-10, atol=1e-12)
    check(mg.linalg.solve, S[0], b, in_dims=(None, 0), rtol=1e-10, atol=1e-12)


# -- in_dims, out_dims, pytrees, kwargs ------------------------------------------------------------
def test_in_dims_none_negative_and_pytree_prefixes():
    x, y = rng.standard_normal((2, 5)), rng.standard_normal(5)
    got = mf.vmap(mg.dot, in_dims=(0, None))(t(x), t(y))
    np.testing.assert_allclose(got.numpy(), x @ y)
    got = mf.vmap(mg.dot, in_dims=1)(t(x), t(x * 2))
    np.testing.assert_allclose(got.numpy(), (x * x * 2).sum(0))
    got = mf.vmap(mg.dot, in_dims=-1)(t(x), t(x))
    np.testing.assert_allclose(got.numpy(), (x * x).sum(0))
    f = lambda d: mg.dot(d["x"], d["y"])  # noqa: E731
    got = mf.vmap(f, in_dims=({"x": 0, "y": None},))({"x": t(x), "y": t(y)})
    np.testing.assert_allclose(got.numpy(), x @ y)


def test_out_dims_pytree_outputs_and_kwargs():
    x = rng.standard_normal((2, 5))
    assert tuple(mf.vmap(lambda a: a**2, out_dims=1)(t(x)).shape) == (5, 2)
    out = mf.vmap(lambda a: {"s": a.sum(), "p": (a * 2.0, a[0])}, out_dims={"s": 0, "p": (1, 0)})(
        t(x)
    )
    np.testing.assert_allclose(out["s"].numpy(), x.sum(1))
    np.testing.assert_allclose(out["p"][0].numpy(), (2 * x).T)
    np.testing.assert_allclose(out["p"][1].numpy(), x[:, 0])
    # keyword arguments are not batched: scale of shape (2, 5) broadcasts against each row
    got = mf.vmap(lambda a, scale=4.0: a * scale)(t(x), scale=t(x))
    assert tuple(got.shape) == (2, 2, 5)
    np.testing.assert_allclose(got.numpy(), x[:, None, :] * x[None])


def test_unbatched_output_is_expanded():
    w = t(rng.standard_normal(3))
    out = mf.vmap(lambda a: w * 2.0)(t(np.zeros((4, 2))))
    np.testing.assert_allclose(out.numpy(), np.broadcast_to(w.numpy() * 2, (4, 3)))


def test_nested_vmap_is_a_double_loop():
    x, y = rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5))
    got = mf.vmap(mf.vmap(mg.dot))(t(x), t(y))
    np.testing.assert_allclose(got.numpy(), (x * y).sum(-1))
    # the inner vmap over another axis and an outer-only batched argument
    w = rng.standard_normal((3, 5))
    got = mf.vmap(mf.vmap(lambda a, b: (a * b).sum(), in_dims=(0, None)), in_dims=(0, None))(
        t(x), t(w[0])
    )
    np.testing.assert_allclose(got.numpy(), np.einsum("ijk,k->ij", x, w[0]))
    got = mf.vmap(mf.vmap(lambda a: a.sum(), in_dims=1), in_dims=2)(t(x))  # over k, then j
    np.testing.assert_allclose(got.numpy(), x.sum(0).T)
    inner = mf.vmap(lambda a, b: a @ b, in_dims=(None, 0))
    got = mf.vmap(inner, in_dims=(0, None))(t(x), t(w))
    np.testing.assert_allclose(got.numpy(), np.einsum("ijk,lk->ilj", x, w))


def test_chunk_size_gives_the_same_result():
    x = rng.standard_normal((7, 3))
    f = lambda a: (a.sin() * a).sum()  # noqa: E731
    full = mf.vmap(f)(t(x))
    for c in (1, 3, 7, 10):
        np.testing.assert_allclose(mf.vmap(f, chunk_size=c)(t(x)).numpy(), full.numpy())
    with pytest.raises(ValueError, match="chunk_size"):
        mf.vmap(f, chunk_size=0)


def test_errors():
    x = t(rng.standard_normal((2, 3)))
    with pytest.raises(ValueError, match="same size in the mapped dimension"):
        mf.vmap(lambda a, b: a + b)(x, t(np.ones((3, 3))))
    with pytest.raises(ValueError, match="at least one input"):
        mf.vmap(lambda a: a, in_dims=None)(x)
    with pytest.raises(ValueError, match="in_dim"):
        mf.vmap(lambda a: a, in_dims=2)(x)
    with pytest.raises(ValueError, match="not a Tensor"):
        mf.vmap(lambda a, n: a * n, in_dims=(0, 0))(x, 3.0)
    with pytest.raises(ValueError, match="must only return Tensors"):
        mf.vmap(lambda a: 3.0)(x)
    with pytest.raises(RuntimeError, match="data-dependent"):
        mf.vmap(lambda a: a * float(a.sum()))(x)
    with pytest.raises(RuntimeError, match="randomness"):
        mf.vmap(lambda a: a, randomness="sometimes")


def test_randomness():
    x = t(np.ones((4, 3)))
    with pytest.raises(RuntimeError, match="randomness error mode"):
        mf.vmap(lambda a: a * mg.randn(3))(x)
    with pytest.raises(RuntimeError, match="randomness error mode"):
        mf.vmap(lambda a: mg.nn.functional.dropout(a, 0.5))(x)
    out = mf.vmap(lambda a: mg.nn.functional.dropout(a, 0.5), randomness="same")(x)
    rows = out.numpy()
    assert np.all(rows == rows[0])  # one mask for the whole batch
    # 'different': one draw per batch element (more in test_vmap_more.py)
    rows = mf.vmap(lambda a: a * mg.randn(3), randomness="different")(x).numpy()
    assert len({tuple(r) for r in rows}) == 4
    # dropout draws through rand_like: one mask per batch element
    wide = t(np.ones((4, 64)))
    masks = mf.vmap(lambda a: mg.nn.functional.dropout(a, 0.5), randomness="different")(wide)
    assert set(np.unique(masks.numpy())) <= {0.0, 2.0}
    assert len({tuple(r) for r in masks.numpy()}) == 4
    # code drawing from the generator directly cannot batch its draw: it refuses
    with pytest.raises(NotImplementedError, match="different"):
        mf.vmap(lambda a: a * mg.default_generator().random(3), randomness="different")(x)
    mg.randn(2)  # the global generator is back after vmap
    assert type(mg.default_generator()) is np.random.Generator


def test_batched_tensors_show_logical_shapes():
    seen = {}

    def f(a):
        seen["type"], seen["shape"], seen["ndim"] = type(a), tuple(a.shape), a.ndim
        seen["numel"], seen["len"] = a.numel(), len(a)
        return a

    mf.vmap(f)(t(np.zeros((6, 2, 3))))
    assert seen == {"type": BatchedTensor, "shape": (2, 3), "ndim": 2, "numel": 6, "len": 2}


def test_front_moving_index_put_has_a_rule():
    x = rng.standard_normal((3, 4))
    # advanced indices that NumPy moves in front (separated by a slice): batch aranges
    idx = (np.array([0, 1]), slice(None), np.array([1, 0]))

    def f(a):
        a3 = a.reshape(2, 1, 2)
        return mg.index_put(a3, idx, a3[idx] * 0.0 + 5.0)

    def g(a):
        a3 = a.reshape(2, 1, 2)
        return mg.index_put(a3, idx, a3[idx].exp(), accumulate=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error", VmapFallbackWarning)
        got, got_acc = mf.vmap(f)(t(x)), mf.vmap(g)(t(x))
    np.testing.assert_allclose(got.numpy(), loop(f, x))
    np.testing.assert_allclose(got_acc.numpy(), loop(g, x))


def test_fallback_loop_warns_and_is_correct(monkeypatch):
    # an op whose rule cannot express the call runs once per batch element, warned
    from matgrad.core.graph import BatchingUnsupported
    from matgrad.ops import batching

    def refuse(op, inputs, attrs, levels):
        raise BatchingUnsupported(op.name)

    monkeypatch.setitem(batching.RULES, "tanh", refuse)
    x = rng.standard_normal((3, 4))
    with pytest.warns(VmapFallbackWarning, match="tanh") as record:
        got = mf.vmap(lambda a: (a * 2.0).tanh())(t(x))
    assert record[0].message.op == "tanh"
    np.testing.assert_allclose(got.numpy(), np.tanh(2 * x))


# -- autograd through and inside vmap --------------------------------------------------------------
def test_per_sample_gradients_match_a_loop_and_closed_form():
    n, d = 6, 4
    w, X, Y = rng.standard_normal(d), rng.standard_normal((n, d)), rng.standard_normal(n)

    def loss(w, x, y):
        return ((x.dot(w) - y) ** 2).mean()

    g = mf.vmap(mf.grad(loss), in_dims=(None, 0, 0))(t(w), t(X), t(Y))
    closed = 2 * (X @ w - Y)[:, None] * X  # d/dw (x.w - y)^2
    np.testing.assert_allclose(g.numpy(), closed, rtol=1e-12)
    # gradients with respect to the batched argument, and a dict of parameters
    gx = mf.vmap(mf.grad(loss, argnums=1), in_dims=(None, 0, 0))(t(w), t(X), t(Y))
    np.testing.assert_allclose(gx.numpy(), 2 * (X @ w - Y)[:, None] * w[None])
    params = {"w": t(w), "b": t(0.5)}
    gd = mf.vmap(
        mf.grad(lambda p, x, y: ((x.dot(p["w"]) + p["b"] - y) ** 2).mean()), in_dims=(None, 0, 0)
    )(params, t(X), t(Y))
    r = X @ w + 0.5 - Y
    np.testing.assert_allclose(gd["w"].numpy(), 2 * r[:, None] * X, rtol=1e-12)
    np.testing.assert_allclose(gd["b"].numpy(), 2 * r, rtol=1e-12)


def test_grad_of_vmap_and_vjp_inside_vmap():
    x = rng.standard_normal((3, 4))
    # d/dx sum_i sum_j sin(x_ij)^2 through vmap
    g = mf.grad(lambda a: mf.vmap(lambda r: (r.sin() ** 2).sum())(a).sum())(t(x))
    np.testing.assert_allclose(g.numpy(), 2 * np.sin(x) * np.cos(x), rtol=1e-12)
    v = rng.standard_normal((3, 4))
    out = mf.vmap(lambda a, c: mf.vjp(lambda r: r * r, a)[1](c)[0])(t(x), t(v))
    np.testing.assert_allclose(out.numpy(), 2 * x * v)


def test_vmap_of_autograd_grad_gives_jacobian_rows():
    # torch.func.vmap's docstring example: vectorized rows e_r^T J
    x = t(rng.standard_normal(5), requires_grad=True)
    y = x**2
    rows = mf.vmap(lambda v: mg.autograd.grad(y, x, v, retain_graph=True))(mg.eye(5))
    np.testing.assert_allclose(rows[0].numpy(), np.diag(2 * x.detach().numpy()))


def test_vmap_of_jacobians_and_hessians():
    x = rng.standard_normal((4, 3))

    def f(r):
        return (r.sin() * r.sum()).sum()

    H = mf.vmap(mf.hessian(f))(t(x))
    Hl = np.stack([mf.hessian(f)(t(r)).numpy() for r in x])
    np.testing.assert_allclose(H.numpy(), Hl, rtol=1e-10, atol=1e-12)
    Jr = mf.vmap(mf.jacrev(lambda r: r.tanh() * r[0]))(t(x))
    Jf = mf.vmap(mf.jacfwd(lambda r: r.tanh() * r[0]))(t(x))
    Jl = np.stack([mf.jacrev(lambda r: r.tanh() * r[0])(t(r)).numpy() for r in x])
    np.testing.assert_allclose(Jr.numpy(), Jl, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Jf.numpy(), Jl, rtol=1e-12, atol=1e-14)
    J = mf.vmap(mf.jvp, in_dims=(None, 0, 0))(lambda r: r.exp(), (t(x),), (t(np.ones_like(x)),))
    np.testing.assert_allclose(J[1].numpy(), np.exp(x))


def test_gradcheck_through_vmap():
    x = t(rng.standard_normal((3, 4)), requires_grad=True)
    w = t(rng.standard_normal(4), requires_grad=True)
    fn = lambda a, b: mf.vmap(lambda r: (r * b).tanh().sum() * r[0], in_dims=(0,))(a)  # noqa: E731
    assert mg.autograd.gradcheck(fn, (x, w))


def test_no_batched_tensor_escapes_and_dispatch_is_off_after():
    from matgrad.core.grad_mode import state

    out = mf.vmap(lambda a: a * 2.0)(t(np.ones((2, 2))))
    assert type(out) is mg.Tensor and state.vmap == 0 and state.vmap_levels == []
    with pytest.raises(ValueError):
        mf.vmap(lambda a: a, in_dims=5)(t(np.ones(2)))
    assert state.vmap == 0


# -- the examples of torch.func's docstrings, run with both libraries ------------------------------
# (torch/_functorch/{vmap,eager_transforms,functional_call}.py; random inputs drawn once in NumPy)
def _examples():
    r = np.random.default_rng(0)
    a = {k: r.standard_normal(s) for k, s in {
        "x25": (2, 5), "y25": (2, 5), "y5": (5,), "w5": (5,), "ex35": (3, 5), "x5": (5,),
        "x235": (2, 3, 5), "y235": (2, 3, 5), "x645": (64, 5), "t3": (3,), "y4": (4,),
        "p4": (4,), "x54": (5, 4), "y45": (4, 5), "c55": (5, 5), "s": (),
    }.items()}  # fmt: skip

    def vmap_dot(lib, T):
        return lib.func.vmap(lib.dot)(T(a["x25"]), T(a["y25"]))

    def vmap_model(lib, T):
        w = T(a["w5"])
        return lib.vmap(lambda v: v.dot(w).relu())(T(a["ex35"]))

    def vmap_vjp_rows(lib, T):
        x = T(a["x5"]).requires_grad_()
        y = x**2
        return lib.vmap(lambda v: lib.autograd.grad(y, x, v, retain_graph=True))(lib.eye(5))[0]

    def vmap_nested(lib, T):
        return lib.vmap(lib.vmap(lib.dot))(T(a["x235"]), T(a["y235"]))

    def vmap_in_dims(lib, T):
        x, y = T(a["x25"]), T(a["y25"])
        return (
            lib.vmap(lib.dot, in_dims=1)(x, y),
            lib.vmap(lib.dot, in_dims=(0, None))(x, T(a["y5"])),
            lib.vmap(lambda d: lib.dot(d["x"], d["y"]), in_dims=({"x": 0, "y": None},))(
                {"x": x, "y": T(a["y5"])}
            ),
            lib.vmap(lambda v: v**2, out_dims=1)(x),
            lib.vmap(lambda v, scale=4.0: v * scale)(x, scale=x),
        )

    def grad_examples(lib, T):
        s = T(a["s"])
        cos_x = lib.func.grad(lambda v: lib.sin(v))(s)
        neg_sin = lib.func.grad(lib.func.grad(lambda v: lib.sin(v)))(s)

        def compute_loss(weights, example, target):
            return ((example.dot(weights).relu() - target) ** 2).mean()

        per_example = lib.func.vmap(lib.func.grad(compute_loss), in_dims=(None, 0, 0))(
            T(a["w5"]), T(a["ex35"]), T(a["t3"])
        )

        def my_loss(y, y_pred):
            per_sample = (0.5 * y_pred - y) ** 2
            return per_sample.mean(), (y_pred, per_sample)

        (g_true, g_pred), (yp, lps) = lib.func.grad(my_loss, argnums=(0, 1), has_aux=True)(
            T(a["y4"]), T(a["p4"])
        )
        return cos_x, neg_sin, per_example, g_true, g_pred, yp, lps

    def jac_examples(lib, T):
        F = lib.func
        x = T(a["x5"])
        y = T(a["y5"])
        f2 = lambda u, v: u + v**2  # noqa: E731
        jf, fx = F.jacrev(lambda v: (v.sin(), v.sin()), has_aux=True)(x)
        jf2, fx2 = F.jacfwd(lambda v: (v.sin(), v.sin()), has_aux=True)(x)
        return (
            F.jacrev(lib.sin)(x),
            F.jacfwd(lib.sin)(x),
            jf, fx, jf2, fx2,
            F.vmap(F.jacrev(lib.sin))(T(a["x645"])),
            F.vmap(F.jacfwd(lib.sin))(T(a["x645"])),
            F.jacrev(F.jacrev(lambda v: v.sin().sum()))(x),
            F.jacfwd(F.jacrev(lambda v: v.sin().sum()))(x),
            F.hessian(lambda v: v.sin().sum())(x),
            F.jacrev(f2, argnums=1)(x, y),
            *F.jacrev(f2, argnums=(0, 1))(x, y),
            F.jacfwd(f2, argnums=1)(x, y),
            *F.jacfwd(f2, argnums=(0, 1))(x, y),
        )  # fmt: skip

    def vjp_jvp_examples(lib, T):
        F = lib.func
        x = T(a["x5"])
        _, fn = F.vjp(lambda v: v.sin().sum(), x)
        g1 = fn(lib.tensor(1.0, dtype=x.dtype))[0]
        _, fn = F.vjp(lambda v: (v.sin(), v.cos()), x)
        g2 = fn((lib.ones(5, dtype=x.dtype), lib.ones(5, dtype=x.dtype)))[0]
        _, fn = F.vjp(lambda v: {"first": v.sin(), "second": v.cos()}, x)
        g3 = fn({"first": lib.ones(5, dtype=x.dtype), "second": lib.ones(5, dtype=x.dtype)})[0]
        _, fn = F.vjp(lib.matmul, T(a["x54"]), T(a["y45"]))
        g4 = fn(T(a["c55"]))
        _, fn = F.vjp(lambda v, scale=4.0: v * scale, x)
        g5 = fn(lib.ones_like(x))[0]
        s = T(a["s"])
        value, jv = F.jvp(lambda v: v * lib.tensor([1.0, 2.0, 3], dtype=s.dtype), (s,),
                          (lib.tensor(1.0, dtype=s.dtype),))  # fmt: skip
        _, jv2 = F.jvp(lambda u, v: u * v, (x, T(a["y5"])), (lib.ones(5, dtype=x.dtype),) * 2)
        out, jvp_fn = F.linearize(lambda v: v.sin(), lib.zeros(3, 3, dtype=x.dtype))
        return g1, g2, g3, *g4, g5, value, jv, jv2, out, jvp_fn(lib.ones(3, 3, dtype=x.dtype))

    def functional_call_example(lib, T):
        class Foo(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.foo = lib.nn.Parameter(T(np.array(1.0)))
                self.foo_tied = self.foo

            def forward(self, x):
                return x + self.foo + self.foo_tied

        mod = Foo()
        z = T(np.array(0.0))
        return (
            lib.func.functional_call(mod, {"foo": T(np.array(0.0))}, z).detach(),
            lib.func.functional_call(mod, {"foo": T(np.array(0.0))}, z, tie_weights=False).detach(),
            mod(z).detach(),
        )

    return {f.__name__: f for f in (
        vmap_dot, vmap_model, vmap_vjp_rows, vmap_nested, vmap_in_dims, grad_examples,
        jac_examples, vjp_jvp_examples, functional_call_example,
    )}  # fmt: skip


EXAMPLES = _examples()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_torch_func_docstring_examples(name):
    torch = pytest.importorskip("torch")
    example = EXAMPLES[name]
    got = example(mg, lambda arr: mg.tensor(np.asarray(arr, dtype=np.float64)))
    want = example(torch, lambda arr: torch.tensor(np.asarray(arr, dtype=np.float64)))
    got, want = (g if isinstance(g, tuple) else (g,) for g in (got, want))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert tuple(g.shape) == tuple(w.shape), (name, i)
        np.testing.assert_allclose(
            g.detach().numpy(), w.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{name}[{i}]"
        )


# -- autograd.Function under vmap ------------------------------------------------------------------
class _Cube(mg.autograd.Function):
    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x**2


class _CubeVmap(_Cube):
    calls = 0

    @staticmethod
    def vmap(info, in_dims, x):
        _CubeVmap.calls += 1
        assert info.batch_size == 4 and in_dims == (0,)
        return _Cube.apply(x), 0  # elementwise: the batched call is the same call


class _CubeGenerated(_Cube):
    generate_vmap_rule = True


def test_autograd_function_vmap_staticmethod_and_generated_rule():
    x = rng.standard_normal((4, 3))
    out = mf.vmap(_CubeVmap.apply)(t(x))
    np.testing.assert_allclose(out.numpy(), x**3)
    assert _CubeVmap.calls == 1
    g = mf.vmap(mf.grad(lambda v: _CubeVmap.apply(v).sum()))(t(x))
    np.testing.assert_allclose(g.numpy(), 3 * x**2)
    with warnings.catch_warnings():  # a generated rule: the forward runs once, batched
        warnings.simplefilter("error")
        out = mf.vmap(_CubeGenerated.apply)(t(x))
    np.testing.assert_allclose(out.numpy(), x**3)
    with pytest.raises(RuntimeError, match="does not have vmap support"):
        mf.vmap(_Cube.apply)(t(x))
