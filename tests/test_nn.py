"""matgrad.nn: modules, containers, layers, losses, init and utils; closed forms, gradcheck
in float64, PyTorch's default init statistics, state_dict round trips, reprs, and (where
torch is installed) the same modules and losses in both libraries from the same weights."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

import matgrad
import matgrad.nn as nn
import matgrad.nn.functional as F
from matgrad.autograd import gradcheck

RNG = np.random.default_rng(0)


def T(a, requires_grad=False):  # noqa: N802
    return matgrad.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def arr(t):
    return np.asarray(t._data)


def _torch():
    return pytest.importorskip("torch")


def tt(torch, a, requires_grad=False):
    out = torch.tensor(np.array(a._data if isinstance(a, matgrad.Tensor) else a))
    return out.requires_grad_(requires_grad) if requires_grad else out


def copy_weights(torch, ours, theirs):
    """Put our module's parameters and buffers into the torch module (same names)."""
    sd = {k: torch.tensor(np.array(v._data)) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(sd)


# -- Parameter ---------------------------------------------------------------------------------
def test_parameter_is_a_tensor_and_ops_return_plain_tensors():
    p = nn.Parameter(matgrad.randn(3, 2))
    assert isinstance(p, nn.Parameter) and isinstance(p, matgrad.Tensor)
    assert p.requires_grad and p.is_leaf
    for out in (p * 2, p @ p.mT, p[0], p.reshape(6), matgrad.relu(p), p.T, p.detach()):
        assert type(out) is matgrad.Tensor
    (p * p).sum().backward()
    np.testing.assert_allclose(arr(p.grad), 2 * arr(p))
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert repr(p).endswith("requires_grad=True)")
    frozen = nn.Parameter(matgrad.ones(2), requires_grad=False)
    assert not frozen.requires_grad


def test_parameter_shares_the_data_of_its_tensor():
    t = matgrad.zeros(3)
    p = nn.Parameter(t)
    with matgrad.no_grad():
        p.add_(1.0)
    np.testing.assert_array_equal(arr(t), np.ones(3))


# -- Module ------------------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(4, 2)
        self.scale = nn.Parameter(matgrad.ones(2))
        self.register_buffer("count", matgrad.zeros(1))
        self.register_buffer("scratch", matgrad.zeros(1), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_module_registration_and_iteration():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert len(list(net.parameters())) == 5
    assert [n for n, _ in net.named_buffers()] == ["count", "scratch"]
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "act", "fc2"]
    assert list(net.modules())[0] is net
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert list(net.state_dict()) == [
        "scale",
        "count",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]
    # a plain attribute, reassignment and deletion
    net.note = 3
    assert net.note == 3 and "note" not in dict(net.named_parameters())
    net.fc2 = nn.Identity()
    assert [n for n, _ in net.named_parameters()] == ["scale", "fc1.weight", "fc1.bias"]
    del net.scale
    assert "scale" not in dict(net.named_parameters())
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'missing'"):
        net.missing  # noqa: B018
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'fc1'"):
        net.fc1 = 3
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter"):
        net.register_parameter("p", None)
        net.p = matgrad.ones(2)


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_forward_and_backward_through_a_module():
    net = Net()
    x = matgrad.randn(5, 3)
    y = net(x)
    assert y.shape == (5, 2)
    W1, b1, W2, b2 = (arr(p) for p in (net.fc1.weight, net.fc1.bias, net.fc2.weight, net.fc2.bias))
    expected = np.tanh(arr(x) @ W1.T + b1) @ W2.T + b2
    np.testing.assert_allclose(arr(y), expected, rtol=1e-12)
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net(x).sum().backward()
    net.zero_grad(set_to_none=False)
    assert all(np.all(arr(p.grad) == 0) for p in net.parameters())


def test_train_eval_requires_grad_apply_and_to():
    net = Net()
    assert net.training and net.fc1.training
    assert net.eval() is net and not net.training and not net.fc1.training
    net.train()
    assert net.fc2.training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Tanh", "Linear", "Net"]
    w = net.fc1.weight
    net.to(matgrad.float32)
    assert net.fc1.weight is w and w.dtype == np.float32 and net.count.dtype == np.float32
    assert net(matgrad.randn(2, 3, dtype=matgrad.float32)).dtype == np.float32
    net.double()
    assert w.dtype == np.float64


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0.0,))
    h2 = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1.0)
    y = lin(matgrad.randn(3, 2))
    np.testing.assert_allclose(arr(y), np.broadcast_to(arr(lin.bias) + 1.0, (3, 2)))
    assert calls == [(3, 2)]
    h1.remove()
    h2.remove()
    x = matgrad.randn(3, 2)
    np.testing.assert_allclose(arr(lin(x)), arr(x) @ arr(lin.weight).T + arr(lin.bias))


def test_state_dict_round_trip_and_strict_loading():
    a, b = Net(), Net()
    sd = a.state_dict()
    assert all(not v.requires_grad for v in sd.values())
    assert np.shares_memory(arr(sd["fc1.weight"]), arr(a.fc1.weight))  # detached, not copied
    assert "scratch" not in sd
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for k in sd:
        np.testing.assert_array_equal(arr(b.state_dict()[k]), arr(sd[k]))
    x = matgrad.randn(4, 3)
    np.testing.assert_array_equal(arr(a(x)), arr(b(x)))

    partial = OrderedDict((k, v) for k, v in sd.items() if k != "fc2.bias")
    partial["extra.weight"] = matgrad.zeros(1)
    with pytest.raises(RuntimeError) as err:
        b.load_state_dict(partial)
    assert str(err.value) == (
        "Error(s) in loading state_dict for Net:\n"
        '\tMissing key(s) in state_dict: "fc2.bias". \n'
        '\tUnexpected key(s) in state_dict: "extra.weight". '
    )
    result = b.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["fc2.bias"] and result.unexpected_keys == ["extra.weight"]

    bad = OrderedDict(sd)
    bad["fc1.weight"] = matgrad.zeros(3, 3)
    with pytest.raises(
        RuntimeError, match="size mismatch for fc1.weight: copying a param with shape"
    ):
        b.load_state_dict(bad, strict=False)


def test_reprs():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert repr(seq) == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)"
    )
    assert repr(nn.Linear(2, 3, bias=False)) == "Linear(in_features=2, out_features=3, bias=False)"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Dropout()) == "Dropout(p=0.5, inplace=False)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.LayerNorm(4)) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"
    assert repr(nn.Embedding(10, 3, padding_idx=0)) == "Embedding(10, 3, padding_idx=0)"
    assert repr(nn.MSELoss()) == "MSELoss()"
    assert repr(nn.ModuleList([nn.Tanh(), nn.Tanh(), nn.ReLU()])) == (
        "ModuleList(\n  (0-1): 2 x Tanh()\n  (2): ReLU()\n)"
    )
    nested = nn.Sequential(nn.Sequential(nn.Tanh()), nn.Identity())
    assert repr(nested) == (
        "Sequential(\n  (0): Sequential(\n    (0): Tanh()\n  )\n  (1): Identity()\n)"
    )


def test_reprs_match_torch():
    torch = _torch()
    pairs = [
        (
            nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.1), nn.Linear(3, 1)),
            torch.nn.Sequential(
                torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(3, 1)
            ),
        ),
        (nn.ModuleList([nn.Linear(2, 2)] * 3), torch.nn.ModuleList([torch.nn.Linear(2, 2)] * 3)),
        (
            nn.ModuleDict({"a": nn.Tanh(), "b": nn.Softplus(2.0, 10.0)}),
            torch.nn.ModuleDict({"a": torch.nn.Tanh(), "b": torch.nn.Softplus(2.0, 10.0)}),
        ),
        (nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)),
        (nn.Hardtanh(-2.0, 2.0), torch.nn.Hardtanh(-2.0, 2.0)),
        (nn.ELU(0.5), torch.nn.ELU(0.5)),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.Unflatten(1, (2, 3)), torch.nn.Unflatten(1, (2, 3))),
        (nn.Bilinear(2, 3, 4), torch.nn.Bilinear(2, 3, 4)),
        (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()),
        (nn.GELU(), torch.nn.GELU()),
        (nn.SiLU(), torch.nn.SiLU()),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


# -- containers --------------------------------------------------------------------------------
def test_sequential():
    seq = nn.Sequential(OrderedDict([("lin", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    assert isinstance(seq.lin, nn.Linear) and seq[0] is seq.lin and seq[-1] is seq.act
    assert len(seq) == 2 and [type(m).__name__ for m in seq] == ["Linear", "ReLU"]
    assert isinstance(seq[:1], nn.Sequential) and len(seq[:1]) == 1
    with pytest.raises(IndexError, match="index 2 is out of range"):
        seq[2]
    x = matgrad.randn(4, 2)
    np.testing.assert_allclose(arr(seq(x)), np.maximum(arr(seq.lin(x)), 0))
    seq.append(nn.Tanh())
    assert list(seq._modules) == ["lin", "act", "2"]
    plain = nn.Sequential(nn.Tanh(), nn.ReLU(), nn.Sigmoid())
    del plain[0]
    assert list(plain._modules) == ["0", "1"] and isinstance(plain[0], nn.ReLU)


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(list(ml.parameters())) == 6
    ml.append(nn.Tanh())
    ml += [nn.ReLU()]
    assert len(ml) == 5 and isinstance(ml[-1], nn.ReLU)
    assert isinstance(ml[1:3], nn.ModuleList)
    assert [n for n, _ in ml.named_parameters()][:2] == ["0.weight", "0.bias"]
    md = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    assert list(md.keys()) == ["a", "b"] and "a" in md and len(md) == 2
    md["c"] = nn.Tanh()
    assert [k for k, _ in md.items()] == ["a", "b", "c"]
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias"]
    assert isinstance(md.pop("c"), nn.Tanh) and len(md) == 2


def test_parameter_list_and_dict():
    pl = nn.ParameterList([matgrad.randn(2), nn.Parameter(matgrad.randn(3))])
    assert all(isinstance(p, nn.Parameter) for p in pl) and len(pl) == 2
    pl.append(matgrad.randn(4))
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert pl[-1].shape == (4,)
    pd = nn.ParameterDict({"w": matgrad.randn(2, 2)})
    pd["b"] = matgrad.zeros(2)
    assert list(pd.keys()) == ["w", "b"] and isinstance(pd["b"], nn.Parameter)
    assert [n for n, _ in pd.named_parameters()] == ["w", "b"]

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.ps = nn.ParameterList([matgrad.ones(2)])

    assert list(Holder().state_dict()) == ["ps.0"]


# -- layers ------------------------------------------------------------------------------------
def test_linear_default_init_statistics():
    matgrad.manual_seed(0)
    lin = nn.Linear(400, 300)
    w, b = arr(lin.weight), arr(lin.bias)
    bound = 1 / math.sqrt(400)
    assert w.shape == (300, 400) and b.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.var() / (bound**2 / 3) - 1) < 0.02
    assert abs(w.mean()) < 0.01 * bound
    assert np.abs(w).max() > 0.99 * bound


def test_linear_forward_batched_and_unbatched():
    lin = nn.Linear(3, 2)
    x = matgrad.randn(5, 4, 3)
    np.testing.assert_allclose(arr(lin(x)), arr(x) @ arr(lin.weight).T + arr(lin.bias))
    v = matgrad.randn(3)
    np.testing.assert_allclose(arr(lin(v)), arr(lin.weight) @ arr(v) + arr(lin.bias))


def test_embedding_init_and_padding_gradient():
    matgrad.manual_seed(1)
    emb = nn.Embedding(2000, 20, padding_idx=3)
    w = arr(emb.weight)
    assert np.all(w[3] == 0)
    assert abs(w.std() - 1) < 0.02 and abs(w.mean()) < 0.02
    idx = matgrad.tensor(np.array([[3, 1], [1, 0]]))
    out = emb(idx)
    np.testing.assert_array_equal(arr(out), w[np.array([[3, 1], [1, 0]])])
    out.sum().backward()
    g = arr(emb.weight.grad)
    assert g[1].tolist() == [2.0] * 20 and g[0].tolist() == [1.0] * 20
    assert np.all(g[3] == 0)


def test_dropout_train_and_eval():
    matgrad.manual_seed(2)
    drop = nn.Dropout(0.25)
    x = matgrad.ones(200, 200, requires_grad=True)
    y = drop(x)
    vals = np.unique(arr(y))
    np.testing.assert_allclose(vals, [0.0, 1 / 0.75])
    assert abs((arr(y) == 0).mean() - 0.25) < 0.01
    y.sum().backward()
    np.testing.assert_array_equal(arr(x.grad), arr(y))
    drop.eval()
    assert drop(x) is x
    assert np.all(arr(F.dropout(x, 1.0)) == 0)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout(1.5)


def test_flatten_unflatten_identity():
    x = matgrad.randn(2, 3, 4)
    assert nn.Flatten()(x).shape == (2, 12)
    assert nn.Flatten(0, 1)(x).shape == (6, 4)
    assert nn.Unflatten(1, (3, 1))(nn.Flatten()(x)[:, :3]).shape == (2, 3, 1)
    assert nn.Identity(54, unused="x")(x) is x


def test_layer_norm_closed_form():
    ln = nn.LayerNorm((3, 4))
    with matgrad.no_grad():
        ln.weight.copy_(matgrad.randn(3, 4))
        ln.bias.copy_(matgrad.randn(3, 4))
    x = matgrad.randn(2, 3, 4)
    a = arr(x)
    mu = a.mean(axis=(1, 2), keepdims=True)
    var = a.var(axis=(1, 2), keepdims=True)
    expected = (a - mu) / np.sqrt(var + 1e-5) * arr(ln.weight) + arr(ln.bias)
    np.testing.assert_allclose(arr(ln(x)), expected, rtol=1e-12)
    plain = nn.LayerNorm(4, elementwise_affine=False)
    assert list(plain.parameters()) == []


def test_batch_norm_running_statistics():
    bn = nn.BatchNorm1d(3, momentum=0.2)
    x = matgrad.randn(8, 3) * 2.0 + 1.0
    a = arr(x)
    y = bn(x)
    np.testing.assert_allclose(arr(y), (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(arr(bn.running_mean), 0.2 * a.mean(0), rtol=1e-12)
    np.testing.assert_allclose(arr(bn.running_var), 0.8 + 0.2 * a.var(0, ddof=1), rtol=1e-12)
    assert int(arr(bn.num_batches_tracked)) == 1
    assert list(bn.state_dict()) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    bn.eval()
    z = bn(x)
    rm, rv = arr(bn.running_mean), arr(bn.running_var)
    np.testing.assert_allclose(arr(z), (a - rm) / np.sqrt(rv + 1e-5), rtol=1e-12)
    assert int(arr(bn.num_batches_tracked)) == 1
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(matgrad.randn(1, 3))


# -- functionals: closed forms and gradcheck ----------------------------------------------------
def test_activation_closed_forms():
    a = RNG.standard_normal((4, 5)) * 3
    a[0, 0] = 0.0
    x = T(a)
    np.testing.assert_allclose(arr(F.relu(x)), np.maximum(a, 0))
    np.testing.assert_allclose(arr(F.leaky_relu(x, 0.1)), np.where(a > 0, a, 0.1 * a))
    np.testing.assert_allclose(arr(F.elu(x, 0.7)), np.where(a > 0, a, 0.7 * np.expm1(a)))
    np.testing.assert_allclose(arr(F.silu(x)), a / (1 + np.exp(-a)), rtol=1e-12)
    np.testing.assert_allclose(
        arr(F.softplus(x, 2.0, 3.0)), np.where(2 * a > 3, a, np.log1p(np.exp(2 * a)) / 2)
    )
    np.testing.assert_allclose(arr(F.hardtanh(x, -0.5, 0.5)), np.clip(a, -0.5, 0.5))
    import scipy.special

    np.testing.assert_allclose(
        arr(F.gelu(x)), a * 0.5 * (1 + scipy.special.erf(a / math.sqrt(2))), rtol=1e-14
    )
    tanh_form = 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))
    np.testing.assert_allclose(arr(F.gelu(x, approximate="tanh")), tanh_form, rtol=1e-14)
    sm = np.exp(a) / np.exp(a).sum(1, keepdims=True)
    np.testing.assert_allclose(arr(F.softmax(x, 1)), sm, rtol=1e-12)
    np.testing.assert_allclose(arr(F.log_softmax(x, 1)), np.log(sm), rtol=1e-12)
    np.testing.assert_allclose(
        arr(F.logsigmoid(T([-800.0, 0.0, 800.0]))), [-800.0, -math.log(2), 0]
    )
    big = T([1000.0, -1000.0], requires_grad=True)
    F.elu(big).sum().backward()
    assert np.all(np.isfinite(arr(big.grad)))


FUNCTIONALS = {
    "linear": (lambda x, w, b: F.linear(x, w, b), [(4, 3), (2, 3), (2,)]),
    "bilinear": (lambda a, b, w: F.bilinear(a, b, w), [(4, 2), (4, 3), (5, 2, 3)]),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), [(3, 4)]),
    "elu": (lambda x: F.elu(x, 1.3), [(3, 4)]),
    "gelu": (lambda x: F.gelu(x), [(3, 4)]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [(3, 4)]),
    "silu": (F.silu, [(3, 4)]),
    "softplus": (lambda x: F.softplus(x * 4, 0.5, 5.0), [(3, 4)]),
    "hardtanh": (lambda x: F.hardtanh(x, -0.7, 0.7), [(3, 4)]),
    "log_softmax": (lambda x: F.log_softmax(x, 1), [(3, 4)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)]),
    "batch_norm": (
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        [(5, 3), (3,), (3,)],
    ),
    "normalize": (lambda x: F.normalize(x, dim=1), [(3, 4)]),
    "cosine_similarity": (lambda a, b: F.cosine_similarity(a, b), [(3, 4), (3, 4)]),
    "pairwise_distance": (lambda a, b: F.pairwise_distance(a, b), [(3, 4), (3, 4)]),
    "mse_loss": (lambda a, b: F.mse_loss(a, b), [(3, 4), (3, 4)]),
    "l1_loss": (lambda a, b: F.l1_loss(a, b, reduction="sum"), [(3, 4), (3, 4)]),
    "smooth_l1_loss": (lambda a, b: F.smooth_l1_loss(a, b, beta=0.5), [(3, 4), (3, 4)]),
    "huber_loss": (lambda a, b: F.huber_loss(a, b, delta=0.5), [(3, 4), (3, 4)]),
    "cross_entropy": (
        lambda x: F.cross_entropy(x, matgrad.tensor(np.array([0, 2, 1])), label_smoothing=0.1),
        [(3, 4)],
    ),
    "cross_entropy_probs": (
        lambda x, p: F.cross_entropy(x, F.softmax(p, 1)),
        [(3, 4), (3, 4)],
    ),
    "nll_loss": (
        lambda x: F.nll_loss(
            x, matgrad.tensor(np.array([0, 2, 1])), weight=T([1.0, 2.0, 3.0, 4.0])
        ),
        [(3, 4)],
    ),
    "bce": (
        lambda x, t: F.binary_cross_entropy(matgrad.sigmoid(x), matgrad.sigmoid(t)),
        [(3, 4), (3, 4)],
    ),
    "bce_logits": (
        lambda x, t: F.binary_cross_entropy_with_logits(
            x, matgrad.sigmoid(t), pos_weight=T([1.0, 2.0, 0.5, 3.0])
        ),
        [(3, 4), (3, 4)],
    ),
    "kl_div": (
        lambda x, t: F.kl_div(F.log_softmax(x, 1), F.softmax(t, 1), reduction="batchmean"),
        [(3, 4), (3, 4)],
    ),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONALS))
def test_functional_gradcheck(name):
    fn, shapes = FUNCTIONALS[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    inputs = [T(rng.standard_normal(s) + 0.1, requires_grad=True) for s in shapes]
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gelu_second_derivative():
    from matgrad.autograd import gradgradcheck

    x = T(RNG.standard_normal(5), requires_grad=True)
    assert gradgradcheck(F.gelu, [x])


def test_losses_closed_forms():
    a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    x, y = T(a), T(b)
    d = a - b
    np.testing.assert_allclose(arr(F.mse_loss(x, y)), (d**2).mean())
    np.testing.assert_allclose(arr(F.mse_loss(x, y, reduction="sum")), (d**2).sum())
    np.testing.assert_allclose(arr(F.l1_loss(x, y, reduction="none")), np.abs(d))
    ad = np.abs(d)
    np.testing.assert_allclose(
        arr(F.smooth_l1_loss(x, y, beta=0.5)), np.where(ad < 0.5, ad**2, ad - 0.25).mean()
    )
    np.testing.assert_allclose(
        arr(F.huber_loss(x, y, delta=0.5)),
        np.where(ad < 0.5, 0.5 * ad**2, 0.5 * (ad - 0.25)).mean(),
    )
    target = np.array([0, 2, 1, 2])
    logp = a - np.log(np.exp(a).sum(1, keepdims=True))
    np.testing.assert_allclose(
        arr(F.cross_entropy(x, matgrad.tensor(target))), -logp[np.arange(4), target].mean()
    )
    ignored = np.array([0, -100, 1, 2])
    kept = [0, 2, 3]
    np.testing.assert_allclose(
        arr(F.cross_entropy(x, matgrad.tensor(ignored))),
        -logp[kept, ignored[kept]].mean(),
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        F.mse_loss(x, y, reduction="avg")
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        F.nll_loss(x, matgrad.tensor(np.array([0, 7, 1, 2])))
    onehot = F.one_hot(matgrad.tensor(np.array([0, 2])), 3)
    assert arr(onehot).tolist() == [[1, 0, 0], [0, 0, 1]]


# -- init --------------------------------------------------------------------------------------
def test_init_functions():
    matgrad.manual_seed(3)
    w = matgrad.zeros(300, 500, requires_grad=True)
    nn.init.xavier_uniform_(w, gain=2.0)
    bound = 2.0 * math.sqrt(6 / 800)
    assert np.abs(arr(w)).max() <= bound and abs(arr(w).var() / (bound**2 / 3) - 1) < 0.02
    assert w.requires_grad and w.is_leaf and w.grad_fn is None
    nn.init.xavier_normal_(w)
    assert abs(arr(w).std() / math.sqrt(2 / 800) - 1) < 0.02
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(arr(w).std() / math.sqrt(2 / 300) - 1) < 0.02
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.abs(arr(w)).max() <= math.sqrt(6 / 500)
    nn.init.trunc_normal_(w, mean=0.5, std=1.0, a=0.0, b=1.0)
    assert arr(w).min() >= 0.0 and arr(w).max() <= 1.0
    q = matgrad.zeros(4, 6)
    nn.init.orthogonal_(q, gain=3.0)
    np.testing.assert_allclose(arr(q) @ arr(q).T, 9 * np.eye(4), atol=1e-12)
    nn.init.eye_(q)
    np.testing.assert_array_equal(arr(q), np.eye(4, 6))
    nn.init.constant_(q, 0.5)
    assert np.all(arr(q) == 0.5)
    nn.init.zeros_(q)
    nn.init.ones_(q)
    assert np.all(arr(q) == 1.0)
    nn.init.uniform_(q, -2.0, -1.0)
    assert arr(q).max() < -1.0 and arr(q).min() >= -2.0
    nn.init.normal_(q, 5.0, 0.1)
    assert abs(arr(q).mean() - 5.0) < 0.2
    assert nn.init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(matgrad.zeros(3))


def test_calculate_gain_matches_torch():
    torch = _torch()
    cases = [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None)]
    cases += [("leaky_relu", None), ("leaky_relu", 0.3), ("selu", None), ("conv2d", None)]
    for name, param in cases:
        assert nn.init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)


# -- utils -------------------------------------------------------------------------------------
def test_clip_grad_and_vectors():
    ps = [nn.Parameter(matgrad.randn(3, 2)), nn.Parameter(matgrad.randn(4))]
    g = [RNG.standard_normal((3, 2)), RNG.standard_normal(4)]
    for p, gi in zip(ps, g, strict=True):
        p.grad = T(gi)
    total = math.sqrt(sum((gi**2).sum() for gi in g))
    norm = nn.utils.clip_grad_norm_(ps, 0.5)
    np.testing.assert_allclose(float(arr(norm)), total)
    coef = 0.5 / (total + 1e-6)
    for p, gi in zip(ps, g, strict=True):
        np.testing.assert_allclose(arr(p.grad), gi * coef)
    inf = nn.utils.clip_grad_norm_(ps, 100.0, norm_type=math.inf)
    np.testing.assert_allclose(float(arr(inf)), max(np.abs(gi).max() for gi in g) * coef)
    ps[0].grad = T(np.full((3, 2), np.inf))
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        nn.utils.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    ps[0].grad = T(g[0])
    nn.utils.clip_grad_value_(ps, 0.1)
    assert all(np.abs(arr(p.grad)).max() <= 0.1 for p in ps)
    vec = nn.utils.parameters_to_vector(ps)
    assert vec.shape == (10,)
    np.testing.assert_array_equal(arr(vec)[:6], arr(ps[0]).ravel())
    nn.utils.vector_to_parameters(matgrad.arange(10.0), ps)
    np.testing.assert_array_equal(arr(ps[1]), [6.0, 7.0, 8.0, 9.0])
    assert ps[0].shape == (3, 2) and isinstance(ps[0], nn.Parameter)


def test_clip_grad_norm_matches_torch():
    torch = _torch()
    g = [RNG.standard_normal((3, 2)), RNG.standard_normal(4)]
    for norm_type in (2.0, 1.0, 3.0, math.inf):
        ours = [nn.Parameter(T(np.zeros_like(gi))) for gi in g]
        theirs = [torch.zeros(gi.shape, dtype=torch.float64, requires_grad=True) for gi in g]
        for a, b, gi in zip(ours, theirs, g, strict=True):
            a.grad = T(gi)
            b.grad = torch.tensor(gi)
        n1 = nn.utils.clip_grad_norm_(ours, 0.3, norm_type)
        n2 = torch.nn.utils.clip_grad_norm_(theirs, 0.3, norm_type)
        np.testing.assert_allclose(float(arr(n1)), n2.item(), rtol=1e-12)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(arr(a.grad), b.grad.numpy(), rtol=1e-12)


# -- differential checks against PyTorch ---------------------------------------------------------
def _compare_module(torch, ours, theirs, inputs, rtol=1e-10, grads=True):
    copy_weights(torch, ours, theirs)
    xs = [T(a, requires_grad=grads and np.asarray(a).dtype.kind == "f") for a in inputs]
    txs = [tt(torch, a, requires_grad=grads and np.asarray(a).dtype.kind == "f") for a in inputs]
    for x, a in zip(xs, inputs, strict=True):
        if np.asarray(a).dtype.kind != "f":
            x._data = np.asarray(a)
    y, ty = ours(*xs), theirs(*txs)
    np.testing.assert_allclose(arr(y), ty.detach().numpy(), rtol=rtol, atol=1e-12)
    if not grads:
        return
    cot = RNG.standard_normal(tuple(y.shape))
    y.backward(T(cot))
    ty.backward(torch.tensor(cot))
    for x, tx in zip(xs, txs, strict=True):
        if tx.requires_grad:
            np.testing.assert_allclose(arr(x.grad), tx.grad.numpy(), rtol=rtol, atol=1e-12)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(
            arr(p.grad), theirs_params[name].grad.numpy(), rtol=rtol, atol=1e-12, err_msg=name
        )


def _module_cases(torch):
    tn = torch.nn
    x34 = RNG.standard_normal((3, 4)) * 2
    x34[0, :2] = [0.0, 25.0]
    return [
        (nn.Linear(4, 5), tn.Linear(4, 5, dtype=torch.float64), [x34]),
        (nn.Linear(4, 2, bias=False), tn.Linear(4, 2, bias=False, dtype=torch.float64), [x34]),
        (
            nn.Bilinear(4, 3, 2),
            tn.Bilinear(4, 3, 2, dtype=torch.float64),
            [x34, RNG.standard_normal((3, 3))],
        ),
        (nn.ReLU(), tn.ReLU(), [x34]),
        (nn.LeakyReLU(0.3), tn.LeakyReLU(0.3), [x34]),
        (nn.ELU(0.8), tn.ELU(0.8), [x34]),
        (nn.GELU(), tn.GELU(), [x34]),
        (nn.GELU("tanh"), tn.GELU("tanh"), [x34]),
        (nn.SiLU(), tn.SiLU(), [x34]),
        (nn.Softplus(), tn.Softplus(), [x34]),
        (nn.Softplus(2.0, 5.0), tn.Softplus(2.0, 5.0), [x34]),
        (nn.Tanh(), tn.Tanh(), [x34]),
        (nn.Sigmoid(), tn.Sigmoid(), [x34]),
        (nn.LogSigmoid(), tn.LogSigmoid(), [x34]),
        (nn.Hardtanh(-1.5, 2.0), tn.Hardtanh(-1.5, 2.0), [x34]),
        (nn.Softmax(dim=1), tn.Softmax(dim=1), [x34]),
        (nn.LogSoftmax(dim=0), tn.LogSoftmax(dim=0), [x34]),
        (nn.LayerNorm(4), tn.LayerNorm(4, dtype=torch.float64), [x34]),
        (
            nn.LayerNorm((3, 4), elementwise_affine=False),
            tn.LayerNorm((3, 4), elementwise_affine=False, dtype=torch.float64),
            [RNG.standard_normal((2, 3, 4))],
        ),
        (nn.BatchNorm1d(4), tn.BatchNorm1d(4, dtype=torch.float64), [x34]),
        (
            nn.BatchNorm1d(3, affine=False, momentum=None),
            tn.BatchNorm1d(3, affine=False, momentum=None, dtype=torch.float64),
            [RNG.standard_normal((2, 3, 5))],
        ),
        (nn.Flatten(), tn.Flatten(), [RNG.standard_normal((2, 3, 4))]),
        (
            nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)),
            tn.Sequential(
                tn.Linear(4, 8, dtype=torch.float64),
                tn.Tanh(),
                tn.Linear(8, 2, dtype=torch.float64),
            ),
            [x34],
        ),
    ]


def test_modules_match_torch():
    torch = _torch()
    for ours, theirs, inputs in _module_cases(torch):
        _compare_module(torch, ours, theirs, inputs)
        # running statistics too, after a training step, and eval mode
        if isinstance(ours, nn.BatchNorm1d):
            for k, v in ours.state_dict().items():
                np.testing.assert_allclose(
                    arr(v), theirs.state_dict()[k].numpy(), rtol=1e-12, err_msg=k
                )
            ours.eval()
            theirs.eval()
            _compare_module(torch, ours, theirs, inputs)


def test_embedding_matches_torch():
    torch = _torch()
    ours = nn.Embedding(6, 3, padding_idx=1)
    theirs = torch.nn.Embedding(6, 3, padding_idx=1, dtype=torch.float64)
    copy_weights(torch, ours, theirs)
    idx = np.array([[0, 1, 5], [1, 1, 2]])
    y, ty = ours(matgrad.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_array_equal(arr(y), ty.detach().numpy())
    cot = RNG.standard_normal(y.shape)
    y.backward(T(cot))
    ty.backward(torch.tensor(cot))
    np.testing.assert_allclose(arr(ours.weight.grad), theirs.weight.grad.numpy(), rtol=1e-12)


def _loss_cases(torch):
    tn = torch.nn
    x = RNG.standard_normal((5, 4))
    y = RNG.standard_normal((5, 4))
    y[0, 0] = x[0, 0] + 0.3  # inside the quadratic zone of the smooth losses
    labels = np.array([0, 3, 1, 1, 2])
    with_ignored = np.array([0, -100, 1, 3, -100])
    w = np.array([0.5, 2.0, 1.0, 3.0])
    probs = np.exp(y) / np.exp(y).sum(1, keepdims=True)
    x3 = RNG.standard_normal((2, 4, 3))
    labels3 = np.array([[0, 1, 3], [2, 2, 0]])
    p01 = 1 / (1 + np.exp(-x))
    t01 = 1 / (1 + np.exp(-y))
    cases = []
    for red in ("mean", "sum", "none"):
        cases += [
            (nn.MSELoss(reduction=red), tn.MSELoss(reduction=red), x, y),
            (nn.L1Loss(reduction=red), tn.L1Loss(reduction=red), x, y),
            (
                nn.SmoothL1Loss(reduction=red, beta=0.7),
                tn.SmoothL1Loss(reduction=red, beta=0.7),
                x,
                y,
            ),
            (
                nn.SmoothL1Loss(reduction=red, beta=0.0),
                tn.SmoothL1Loss(reduction=red, beta=0.0),
                x,
                y,
            ),
            (nn.HuberLoss(reduction=red, delta=0.6), tn.HuberLoss(reduction=red, delta=0.6), x, y),
            (nn.CrossEntropyLoss(reduction=red), tn.CrossEntropyLoss(reduction=red), x, labels),
            (
                nn.CrossEntropyLoss(T(w), reduction=red, ignore_index=-100),
                tn.CrossEntropyLoss(torch.tensor(w), reduction=red),
                x,
                with_ignored,
            ),
            (
                nn.CrossEntropyLoss(reduction=red, label_smoothing=0.2),
                tn.CrossEntropyLoss(reduction=red, label_smoothing=0.2),
                x,
                with_ignored,
            ),
            (
                nn.CrossEntropyLoss(T(w), reduction=red, label_smoothing=0.15),
                tn.CrossEntropyLoss(torch.tensor(w), reduction=red, label_smoothing=0.15),
                x,
                with_ignored,
            ),
            (nn.CrossEntropyLoss(reduction=red), tn.CrossEntropyLoss(reduction=red), x, probs),
            (
                nn.CrossEntropyLoss(T(w), reduction=red, label_smoothing=0.1),
                tn.CrossEntropyLoss(torch.tensor(w), reduction=red, label_smoothing=0.1),
                x,
                probs,
            ),
            (
                nn.CrossEntropyLoss(reduction=red, ignore_index=2),
                tn.CrossEntropyLoss(reduction=red, ignore_index=2),
                x3,
                labels3,
            ),
            (
                nn.CrossEntropyLoss(reduction=red),
                tn.CrossEntropyLoss(reduction=red),
                x[0],
                np.array(2),
            ),
            (nn.NLLLoss(reduction=red), tn.NLLLoss(reduction=red), x, labels),
            (
                nn.NLLLoss(T(w), ignore_index=1, reduction=red),
                tn.NLLLoss(torch.tensor(w), ignore_index=1, reduction=red),
                x,
                labels,
            ),
            (nn.BCELoss(reduction=red), tn.BCELoss(reduction=red), p01, t01),
            (
                nn.BCELoss(T(w), reduction=red),
                tn.BCELoss(torch.tensor(w), reduction=red),
                p01,
                t01,
            ),
            (nn.BCEWithLogitsLoss(reduction=red), tn.BCEWithLogitsLoss(reduction=red), 9 * x, t01),
            (
                nn.BCEWithLogitsLoss(T(w), reduction=red, pos_weight=T(w[::-1].copy())),
                tn.BCEWithLogitsLoss(
                    torch.tensor(w), reduction=red, pos_weight=torch.tensor(w[::-1].copy())
                ),
                x,
                t01,
            ),
            (nn.KLDivLoss(reduction=red), tn.KLDivLoss(reduction=red), x, probs),
            (
                nn.KLDivLoss(reduction=red, log_target=True),
                tn.KLDivLoss(reduction=red, log_target=True),
                x,
                y,
            ),
        ]
    cases.append(
        (nn.KLDivLoss(reduction="batchmean"), tn.KLDivLoss(reduction="batchmean"), x, probs)
    )
    cases.append((nn.MSELoss(False), tn.MSELoss(False), x, y))  # the legacy size_average flag
    cases.append(
        (
            nn.CrossEntropyLoss(None, True, 1, False),
            tn.CrossEntropyLoss(None, True, 1, False),
            x,
            labels,
        )
    )
    return cases


@pytest.mark.filterwarnings("ignore:size_average and reduce")
def test_losses_match_torch():
    torch = _torch()
    import warnings

    cases = _loss_cases(torch)
    assert len(cases) == 66
    for k, (ours, theirs, x, y) in enumerate(cases):
        target_grad = y.dtype.kind == "f" and not isinstance(ours, nn.KLDivLoss | nn.BCELoss)
        xi, yi = T(x, requires_grad=True), matgrad.tensor(y)
        yi.requires_grad_(target_grad)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.tensor(y, requires_grad=target_grad)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, tout = ours(xi, yi), theirs(tx, ty)
        msg = f"case {k}: {ours!r} reduction={ours.reduction}"
        np.testing.assert_allclose(arr(out), tout.detach().numpy(), rtol=1e-10, err_msg=msg)
        cot = RNG.standard_normal(tuple(out.shape))
        out.backward(T(cot))
        tout.backward(torch.tensor(cot))
        np.testing.assert_allclose(
            arr(xi.grad), tx.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=msg
        )
        if target_grad:
            np.testing.assert_allclose(
                arr(yi.grad), ty.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=msg
            )


def test_functionals_match_torch():
    torch = _torch()
    tf = torch.nn.functional
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    a[1] = 0.0
    cases = [
        (lambda f, x, y: f.normalize(x, dim=1), a, b),
        (lambda f, x, y: f.normalize(x, p=1.0, dim=0), a, b),
        (lambda f, x, y: f.cosine_similarity(x + 1.0, y, dim=1), a, b),
        (lambda f, x, y: f.pairwise_distance(x, y), a, b),
        (lambda f, x, y: f.pad(x, (1, 2), value=0.5), a, b),
        (lambda f, x, y: f.pad(x, (1, 0, 0, 1)), a, b),
    ]
    for k, (fn, x, y) in enumerate(cases):
        xi, yi = T(x, requires_grad=True), T(y, requires_grad=True)
        tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
        out, tout = fn(F, xi, yi), fn(tf, tx, ty)
        np.testing.assert_allclose(arr(out), tout.detach().numpy(), rtol=1e-10, err_msg=str(k))
        cot = RNG.standard_normal(tuple(out.shape))
        out.backward(T(cot))
        tout.backward(torch.tensor(cot))
        for ours, theirs in ((xi, tx), (yi, ty)):
            if theirs.grad is not None:
                np.testing.assert_allclose(
                    arr(ours.grad), theirs.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=str(k)
                )
    wt = np.abs(RNG.standard_normal((3, 4)))
    for red in ("mean", "sum", "none"):
        for name in ("mse_loss", "l1_loss", "huber_loss"):
            xi = T(a, requires_grad=True)
            tx = torch.tensor(a, requires_grad=True)
            out = getattr(F, name)(xi, T(b), reduction=red, weight=T(wt))
            tout = getattr(tf, name)(tx, torch.tensor(b), reduction=red, weight=torch.tensor(wt))
            np.testing.assert_allclose(arr(out), tout.detach().numpy(), rtol=1e-10, err_msg=name)
            out.sum().backward()
            tout.sum().backward()
            np.testing.assert_allclose(arr(xi.grad), tx.grad.numpy(), rtol=1e-10, err_msg=name)
    oh = F.one_hot(matgrad.tensor(np.array([[1, 0], [3, 2]])))
    toh = tf.one_hot(torch.tensor([[1, 0], [3, 2]]))
    np.testing.assert_array_equal(arr(oh), toh.numpy())
