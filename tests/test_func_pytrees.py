"""Pytrees (dicts, lists, tuples, namedtuples, nested) as arguments and outputs of the
``func`` transforms, ``func.linearize`` and ``func.functional_call``: closed forms, finite
differences and the pytree utility itself."""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import matgrad as mg
from matgrad import _pytree
from matgrad import func as mf

rng = np.random.default_rng(11)
Pair = namedtuple("Pair", ["a", "b"])


def t(a, **kw):
    return mg.tensor(np.asarray(a, dtype=float), **kw)


# -- the utility -----------------------------------------------------------------------------------
def test_flatten_unflatten_roundtrip():
    tree = {"x": (1, [2, None, Pair(3, {"y": 4})]), "z": OrderedDict(w=5)}
    leaves, spec = _pytree.tree_flatten(tree)
    assert leaves == [1, 2, 3, 4, 5]
    back = _pytree.tree_unflatten(leaves, spec)
    assert back == tree and type(back["x"][1][2]) is Pair and type(back["z"]) is OrderedDict
    assert _pytree.tree_map(lambda a, b: a + b, tree, tree)["x"][1][2].b["y"] == 8
    with pytest.raises(ValueError, match="leaves"):
        _pytree.tree_unflatten([1], spec)


def test_broadcast_prefix():
    args = ({"x": 1, "y": 2}, [3, 4])
    assert _pytree.broadcast_prefix(({"x": 0, "y": None}, 1), args) == [0, None, 1, 1]
    with pytest.raises(ValueError, match="keys"):
        _pytree.broadcast_prefix(({"x": 0},), args[:1])


# -- transforms ---------------------------------------------------------------------------------
W = rng.standard_normal((3, 2))
X = rng.standard_normal(3)


def loss(params, x):
    return ((x @ params["w"]).tanh() * params["s"][0]).sum() + params["s"][1] ** 2


def params():
    return {"w": t(W), "s": [t(1.5), t(-0.5)]}


def test_grad_of_a_dict_of_parameters():
    g = mf.grad(loss)(params(), t(X))
    h = np.tanh(X @ W)
    np.testing.assert_allclose(g["w"].numpy(), 1.5 * np.outer(X, 1 - h**2))
    np.testing.assert_allclose(g["s"][0].numpy(), h.sum())
    np.testing.assert_allclose(g["s"][1].numpy(), -1.0)
    assert isinstance(g, dict) and isinstance(g["s"], list)
    (gp, gx), value = mf.grad_and_value(loss, argnums=(0, 1))(params(), t(X))
    np.testing.assert_allclose(gx.numpy(), 1.5 * W @ (1 - h**2))
    np.testing.assert_allclose(value.numpy(), 1.5 * h.sum() + 0.25)


def test_vjp_with_dict_output_and_tuple_primal():
    x = rng.standard_normal(5)
    out, fn = mf.vjp(lambda v: {"first": v.sin(), "second": (v.cos(), v * 2.0)}, t(x))
    assert set(out) == {"first", "second"}
    (g,) = fn({"first": t(np.ones(5)), "second": (t(np.ones(5)), t(np.ones(5)))})
    np.testing.assert_allclose(g.numpy(), np.cos(x) - np.sin(x) + 2)
    with pytest.raises(RuntimeError, match="structure"):
        fn({"first": t(np.ones(5))})
    _, fn = mf.vjp(lambda p: p[0] * p[1], (t(x), t(x + 1)))
    ((ga, gb),) = fn(t(np.ones(5)))
    np.testing.assert_allclose(ga.numpy(), x + 1)
    np.testing.assert_allclose(gb.numpy(), x)


def test_jvp_with_pytrees():
    x, y = rng.standard_normal(4), rng.standard_normal(4)
    out, tan = mf.jvp(
        lambda d: {"p": d["x"] * d["y"], "q": [d["x"].exp()]},
        ({"x": t(x), "y": t(y)},),
        ({"x": t(np.ones(4)), "y": t(np.zeros(4))},),
    )
    np.testing.assert_allclose(tan["p"].numpy(), y)
    np.testing.assert_allclose(tan["q"][0].numpy(), np.exp(x))
    with pytest.raises(RuntimeError, match="structure"):
        mf.jvp(lambda d: d["x"], ({"x": t(x)},), (t(x),))


@pytest.mark.parametrize("jac", [mf.jacrev, mf.jacfwd])
def test_jacobians_of_pytrees(jac):
    x = rng.standard_normal(3)
    J = jac(lambda d: {"s": d["a"].sin(), "t": (d["a"] * d["b"]).sum()})({"a": t(x), "b": t(x**2)})
    np.testing.assert_allclose(J["s"]["a"].numpy(), np.diag(np.cos(x)))
    np.testing.assert_allclose(J["s"]["b"].numpy(), np.zeros((3, 3)))
    np.testing.assert_allclose(J["t"]["a"].numpy(), x**2)
    np.testing.assert_allclose(J["t"]["b"].numpy(), x)


def test_hessian_of_a_dict():
    x = rng.standard_normal(3)
    H = mf.hessian(lambda d: (d["a"] ** 3).sum())({"a": t(x)})
    np.testing.assert_allclose(H["a"]["a"].numpy(), np.diag(6 * x))


def test_vmap_over_a_dict_and_grad_inside():
    xs = rng.standard_normal((4, 3))
    g = mf.vmap(mf.grad(loss), in_dims=(None, 0))(params(), t(xs))
    for i in range(4):
        gi = mf.grad(loss)(params(), t(xs[i]))
        np.testing.assert_allclose(g["w"][i].numpy(), gi["w"].numpy())
        np.testing.assert_allclose(g["s"][0][i].numpy(), gi["s"][0].numpy())


# -- linearize ------------------------------------------------------------------------------------
def test_linearize_matches_jvp_and_closed_form():
    x = rng.standard_normal((3, 3))
    out, jvp_fn = mf.linearize(lambda v: v.sin(), t(x))
    np.testing.assert_allclose(out.numpy(), np.sin(x))
    u = rng.standard_normal((3, 3))
    np.testing.assert_allclose(jvp_fn(t(u)).numpy(), np.cos(x) * u)
    np.testing.assert_allclose(jvp_fn(t(2 * u)).numpy(), 2 * np.cos(x) * u)
    with pytest.raises(RuntimeError, match="structure"):
        jvp_fn(t(u), t(u))


# -- functional_call ------------------------------------------------------------------------------
class Tied(mg.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.foo = mg.nn.Parameter(t(1.0))
        self.foo_tied = self.foo
        self.register_buffer("scale", t(2.0))

    def forward(self, x):
        return x + self.foo + self.foo_tied * self.scale


def test_functional_call_replaces_and_restores():
    mod = Tied()
    out = mf.functional_call(mod, {"foo": t(0.0)}, (t(0.0),))
    np.testing.assert_allclose(out.detach().numpy(), 0.0)  # foo_tied replaced too
    out = mf.functional_call(mod, {"foo": t(0.0)}, (t(0.0),), tie_weights=False)
    np.testing.assert_allclose(out.detach().numpy(), 2.0)
    out = mf.functional_call(mod, ({"foo": t(1.0)}, {"scale": t(10.0)}), t(0.0))
    np.testing.assert_allclose(out.detach().numpy(), 11.0)
    np.testing.assert_allclose(mod(t(0.0)).detach().numpy(), 3.0)  # restored
    assert mod.foo is mod.foo_tied
    with pytest.raises(RuntimeError, match="missing"):
        mf.functional_call(mod, {"foo": t(0.0)}, (t(0.0),), strict=True)
    with pytest.raises(ValueError, match="multiple dictionaries"):
        mf.functional_call(mod, ({"foo": t(0.0)}, {"foo": t(1.0)}), (t(0.0),))


def test_per_sample_gradients_of_a_module_by_functional_call():
    torch = pytest.importorskip("torch")
    mg.manual_seed(0)
    model = mg.nn.Sequential(mg.nn.Linear(3, 4), mg.nn.Tanh(), mg.nn.Linear(4, 1))
    xs, ys = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    p = {k: v.detach() for k, v in model.named_parameters()}

    def compute_loss(params, x, y):
        return ((mf.functional_call(model, params, (x,)) - y) ** 2).sum()

    g = mf.vmap(mf.grad(compute_loss), in_dims=(None, 0, 0))(p, t(xs), t(ys))
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    tmodel = tmodel.double()
    tp = {k: torch.tensor(v.numpy()) for k, v in p.items()}

    def tloss(params, x, y):
        return ((torch.func.functional_call(tmodel, params, (x,)) - y) ** 2).sum()

    tg = torch.func.vmap(torch.func.grad(tloss), in_dims=(None, 0, 0))(
        tp, torch.tensor(xs), torch.tensor(ys)
    )
    for k in p:
        np.testing.assert_allclose(g[k].numpy(), tg[k].numpy(), rtol=1e-10, atol=1e-12)
    assert g["0.weight"].grad_fn is None
