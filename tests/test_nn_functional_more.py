"""Tests of matgrad.nn.functional_more and matgrad.nn.more_layers: gradients by finite
differences, values against closed forms and NumPy, and options, errors, modules and reprs
against PyTorch (the op_db differential tier covers torch's own samples)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import matgrad
import matgrad.nn as nn
import matgrad.nn.functional as F
from matgrad.autograd import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RNG = np.random.default_rng(0)


def arr(*shape, low=-2.0, high=2.0, away=0.05):
    """Random float64 values in [low, high], at least ``away`` from the kinks at 0, +-0.5,
    +-3 that several of these functions have."""
    a = RNG.uniform(low, high, shape)
    for kink in (0.0, 0.5, -0.5, 3.0, -3.0):
        a = np.where(np.abs(a - kink) < away, kink + away * 2 * np.sign(a - kink + 1e-12), a)
    return a


def mt(a, grad=True):
    return matgrad.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def tt(a, grad=True):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def close(m, t, rtol=1e-7, atol=1e-10):
    np.testing.assert_allclose(m.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)


# -- gradients by finite differences ----------------------------------------------------------
LABELS = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 1.0])
UNARY = {
    "celu": lambda x: F.celu(x, 0.7),
    "selu": F.selu,
    "relu6": lambda x: F.relu6(x * 4),
    "hardsigmoid": lambda x: F.hardsigmoid(x * 2),
    "hardswish": lambda x: F.hardswish(x * 2),
    "mish": F.mish,
    "softsign": F.softsign,
    "tanhshrink": F.tanhshrink,
    "softshrink": F.softshrink,
    "hardshrink": F.hardshrink,
    "threshold": lambda x: F.threshold(x, 0.5, -3.0),
    "rrelu_eval": F.rrelu,
    "glu": lambda x: F.glu(x, 0),
    "softmin": lambda x: F.softmin(x, 1),
    "local_response_norm": lambda x: F.local_response_norm(x.reshape(1, 6, 2), 3, 0.5, 0.6, 1.5),
    "rms_norm": lambda x: F.rms_norm(x, (2,), eps=1e-3),
    "instance_norm": lambda x: F.instance_norm(x.reshape(2, 2, 3)),
    "pdist": lambda x: F.pdist(x, 2.0),
    "pdist_p1.5": lambda x: F.pdist(x, 1.5),
    "soft_margin_loss": lambda x: F.soft_margin_loss(x.reshape(-1), mt(np.tile(LABELS, 2), False)),
    "hinge_embedding_loss": lambda x: F.hinge_embedding_loss(
        x.reshape(-1), mt(np.tile(LABELS, 2), False), margin=1.5
    ),
    "multilabel_soft_margin_loss": lambda x: F.multilabel_soft_margin_loss(
        x, mt((LABELS.reshape(6, 1)[:, [0, 0]] > 0), False), weight=mt([0.3, 2.0], False)
    ),
    "multi_margin_loss_p2": lambda x: F.multi_margin_loss(
        x,
        matgrad.tensor(np.array([0, 1, 1, 0, 1, 0])),
        p=2,
        margin=0.7,
        weight=mt([0.5, 2.0], False),
    ),  # fmt: skip
    "multilabel_margin_loss": lambda x: F.multilabel_margin_loss(
        x.reshape(3, 4), matgrad.tensor(np.array([[3, 0, -1, 1], [1, 2, 3, -1], [-1, 0, 0, 0]]))
    ),
    "poisson_nll_loss_full": lambda x: F.poisson_nll_loss(
        x, mt(np.arange(12.0).reshape(6, 2) / 2, False), log_input=True, full=True
    ),
    "gaussian_nll_loss_var": lambda x: F.gaussian_nll_loss(
        x[:, 0], mt(np.arange(6.0), False), x[:, 1] * x[:, 1] + 0.1, full=True
    ),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_gradcheck_unary(name):
    x = mt(arr(6, 2))
    assert gradcheck(UNARY[name], (x,))


@pytest.mark.parametrize(
    "name", ["celu", "selu", "mish", "glu", "local_response_norm", "rms_norm", "instance_norm"]
)
def test_gradgradcheck_smooth(name):
    assert gradgradcheck(UNARY[name], (mt(arr(6, 2)),))


def test_gradcheck_binary_losses():
    a, p, n = mt(arr(4, 3)), mt(arr(4, 3)), mt(arr(4, 3))
    y = mt([1.0, -1.0, -1.0, 1.0], False)
    assert gradcheck(lambda a, b: F.margin_ranking_loss(a, b, y, margin=0.3), (a[:, 0], p[:, 0]))
    assert gradcheck(lambda a, b: F.cosine_embedding_loss(a, b, y, margin=-0.5), (a, p))
    assert gradcheck(
        lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=2.0, p=3, swap=True), (a, p, n)
    )
    w, x = mt(arr(5, 3)), mt(arr(4, 3))
    assert gradcheck(lambda x, w: F.prelu(x, w), (x, mt([0.2, -0.4, 1.3])))
    t = matgrad.tensor(np.array([0, 4, 2, 1]))
    assert gradcheck(lambda x, w: F.linear_cross_entropy(x, w, t, label_smoothing=0.2), (x, w))


# -- values: closed forms and NumPy -----------------------------------------------------------
def test_selu_celu_closed_forms():
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    x = np.array([-50.0, -1.0, 0.0, 2.0])
    expect = scale * np.where(x > 0, x, alpha * np.expm1(x))
    np.testing.assert_allclose(F.selu(mt(x)).detach().numpy(), expect, rtol=1e-15)
    np.testing.assert_allclose(F.celu(mt(x), 2.0).detach().numpy(),
                               np.where(x > 0, x, 2.0 * np.expm1(x / 2.0)), rtol=1e-15)  # fmt: skip


def test_small_activations_closed_forms():
    x = np.array([-4.0, -1.0, 0.0, 0.25, 1.0, 4.0])
    m = mt(x)
    np.testing.assert_allclose(F.softsign(m).detach().numpy(), x / (1 + np.abs(x)))
    np.testing.assert_allclose(F.tanhshrink(m).detach().numpy(), x - np.tanh(x))
    np.testing.assert_allclose(F.hardsigmoid(m).detach().numpy(), np.clip(x / 6 + 0.5, 0, 1))
    np.testing.assert_allclose(F.hardswish(m).detach().numpy(), x * np.clip(x / 6 + 0.5, 0, 1))
    np.testing.assert_allclose(F.relu6(mt(x * 2)).detach().numpy(), np.clip(x * 2, 0, 6))
    np.testing.assert_allclose(
        F.mish(m).detach().numpy(), x * np.tanh(np.log1p(np.exp(x))), rtol=1e-14
    )
    np.testing.assert_allclose(F.softshrink(m, 1.0).detach().numpy(), [-3, 0, 0, 0, 0, 3])
    np.testing.assert_allclose(F.hardshrink(m, 1.0).detach().numpy(), [-4, 0, 0, 0, 0, 4])


def test_local_response_norm_matches_numpy_window():
    x = arr(2, 5, 3)
    size, alpha, beta, k = 3, 0.3, 0.7, 2.0
    sq = np.pad(x * x, ((0, 0), (size // 2, (size - 1) // 2), (0, 0)))
    window = sum(sq[:, i : i + 5] for i in range(size))
    expect = x / (k + alpha / size * window) ** beta
    out = F.local_response_norm(mt(x), size, alpha, beta, k)
    np.testing.assert_allclose(out.detach().numpy(), expect, rtol=1e-13)


def test_rms_norm_and_pdist_match_numpy():
    x = arr(4, 3)
    out = F.rms_norm(mt(x), 3, mt([1.0, 2.0, 3.0]))
    eps = np.finfo(np.float64).eps
    expect = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * [1.0, 2.0, 3.0]
    np.testing.assert_allclose(out.detach().numpy(), expect, rtol=1e-14)
    i, j = np.triu_indices(4, 1)
    for p in (1.0, 2.0, math.inf):
        expect = np.linalg.norm(x[i] - x[j], ord=p, axis=1)
        np.testing.assert_allclose(F.pdist(mt(x), p).detach().numpy(), expect, rtol=1e-14)


def test_multilabel_margin_loss_closed_form():
    # targets {3, 0} (before the -1); the others 1, 2: sum over pairs of max(0, 1 - (x_j - x_i))
    x = np.array([0.1, 0.2, 0.4, 0.8])
    expect = sum(max(0.0, 1 - (x[j] - x[i])) for j in (3, 0) for i in (1, 2)) / 4
    out = F.multilabel_margin_loss(mt(x), matgrad.tensor(np.array([3, 0, -1, 1])))
    assert float(out) == pytest.approx(expect, rel=1e-14)


def test_poisson_nll_loss_closed_form():
    x, t = np.array([0.5, 2.0, 3.0]), np.array([0.0, 1.0, 4.0])
    out = F.poisson_nll_loss(mt(x), mt(t), log_input=False, full=True, reduction="none")
    stirling = np.where(t > 1, t * np.log(np.where(t > 1, t, 1)) - t
                        + 0.5 * np.log(2 * np.pi * np.where(t > 1, t, 1)), 0)  # fmt: skip
    np.testing.assert_allclose(out.detach().numpy(), x - t * np.log(x + 1e-8) + stirling)


# -- against torch: options the op_db samples do not reach ------------------------------------
def test_hardswish_hardsigmoid_gradients_at_the_kinks_match_torch():
    x = np.array([-3.0, -1.0, 0.0, 3.0])
    for name in ("hardswish", "hardsigmoid", "relu6"):
        m, t = mt(x), tt(x)
        getattr(F, name)(m).sum().backward()
        getattr(TF, name)(t).sum().backward()
        close(m.grad, t.grad)


def test_prelu_channels_and_shapes_match_torch():
    x, w = arr(2, 3, 4), np.array([0.1, -0.5, 2.0])
    for xs, ws in ((x, w), (x[0].T, w), (x, w[:1]), (x[0, 0], w[:1]), (x[0, 0, 0], w[0])):
        m_out = F.prelu(mt(xs), mt(ws))
        t_out = TF.prelu(tt(xs), tt(ws))
        close(m_out, t_out)
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers"):
        F.prelu(mt(x), mt([0.1, 0.2]))


def test_instance_norm_running_stats_match_torch():
    x = arr(3, 2, 5)
    m_rm, m_rv = mt(np.zeros(2), False), mt(np.ones(2), False)
    t_rm, t_rv = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    m = F.instance_norm(mt(x), m_rm, m_rv, momentum=0.3, eps=1e-3)
    t = TF.instance_norm(tt(x), t_rm, t_rv, momentum=0.3, eps=1e-3)
    close(m, t)
    close(m_rm, t_rm)
    close(m_rv, t_rv)
    m = F.instance_norm(mt(x), m_rm, m_rv, mt([2.0, 3.0]), mt([1.0, -1.0]), use_input_stats=False)
    t = TF.instance_norm(tt(x), t_rm, t_rv, tt([2.0, 3.0]), tt([1.0, -1.0]), use_input_stats=False)
    close(m, t)


@pytest.mark.parametrize("shape", [(4, 3), (4, 1), (4,)])
def test_gaussian_nll_loss_var_shapes_match_torch(shape):
    x, y, v = arr(4, 3), arr(4, 3), np.abs(arr(*shape)) + 0.1
    v.flat[0] = 1e-8  # clamped to eps: its gradient is that at eps, as torch's
    mx, mv, tx, tv = mt(x), mt(v), tt(x), tt(v)
    m = F.gaussian_nll_loss(mx, mt(y, False), mv, reduction="sum")
    t = TF.gaussian_nll_loss(tx, tt(y, False), tv, reduction="sum")
    close(m, t)
    m.backward()
    t.backward()
    close(mx.grad, tx.grad)
    close(mv.grad, tv.grad, rtol=1e-6)


def test_rrelu_eval_and_training_match_torch_where_defined():
    x = arr(50)
    close(F.rrelu(mt(x), 0.1, 0.4), TF.rrelu(tt(x), 0.1, 0.4))
    matgrad.manual_seed(0)
    out = F.rrelu(mt(x), 0.1, 0.4, training=True).detach().numpy()
    neg = x < 0
    np.testing.assert_array_equal(out[~neg], x[~neg])  # positives unchanged
    slope = out[neg] / x[neg]
    assert np.all((slope >= 0.1) & (slope <= 0.4)) and np.ptp(slope) > 0  # drawn, in range


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_alpha_dropout_affine_correction(p):
    # kept entries become a x + b', dropped ones the constant a (-sat) + b': the mean and the
    # variance of a standard normal input are kept (Klambauer et al. 2017)
    sat = 1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = 1.0 / math.sqrt((sat * sat * p + 1) * (1 - p))
    b = sat * a * p
    matgrad.manual_seed(1)
    x = RNG.standard_normal(200_000)
    out = F.alpha_dropout(mt(x, False), p, training=True).numpy()
    dropped = np.isclose(out, -sat * a + b)
    assert abs(dropped.mean() - p) < 0.01
    np.testing.assert_allclose(out[~dropped], a * x[~dropped] + b, rtol=1e-12)
    assert abs(out.mean()) < 0.02 and abs(out.var() - 1) < 0.02


def test_channel_dropouts_drop_whole_channels():
    matgrad.manual_seed(0)
    x = np.ones((8, 6, 3, 2))
    out = F.dropout2d(mt(x, False), 0.5).numpy()
    per_channel = out.reshape(8, 6, -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0 < (per_channel == 0).all(-1).sum() < 48
    assert F.dropout3d(mt(x[None], False), 0.3, training=False).numpy().tolist() == [x.tolist()]
    out = F.feature_alpha_dropout(mt(x, False), 0.5, training=True).numpy().reshape(8, 6, -1)
    assert np.all(np.ptp(out, -1) == 0)  # constant over each channel
    with pytest.raises(RuntimeError, match="dropout1d"):
        F.dropout1d(mt(x, False))


def test_triplet_margin_with_distance_function_matches_torch():
    a, p, n = arr(4, 3), arr(4, 3), arr(4, 3)

    def cos_dist(x, y, lib):
        return 1.0 - lib.nn.functional.cosine_similarity(x, y)

    m = F.triplet_margin_with_distance_loss(
        mt(a), mt(p), mt(n), distance_function=lambda x, y: cos_dist(x, y, matgrad), swap=True
    )
    t = TF.triplet_margin_with_distance_loss(
        tt(a), tt(p), tt(n), distance_function=lambda x, y: cos_dist(x, y, torch), swap=True
    )
    close(m, t)


def test_linear_cross_entropy_matches_torch_with_options():
    x, w, b = arr(6, 4), arr(5, 4), arr(5)
    t = np.array([0, 4, 2, 2, 1, 3])
    m = F.linear_cross_entropy(
        mt(x), mt(w), matgrad.tensor(t), linear_bias=mt(b), ignore_index=2,
        options=nn.LinearCrossEntropyOptions(batch_chunk_size=2),
    )  # fmt: skip
    tr = TF.linear_cross_entropy(
        tt(x), tt(w), torch.tensor(t), linear_bias=tt(b), ignore_index=2,
        options=torch.nn.LinearCrossEntropyOptions(batch_chunk_size=2),
    )  # fmt: skip
    close(m, tr)


# -- errors: the same error type as torch -----------------------------------------------------
ERRORS = [
    ("glu", lambda lib, x: lib.nn.functional.glu(x[:, :1], 1)),
    ("glu scalar", lambda lib, x: lib.nn.functional.glu(x[0, 0])),
    ("softshrink", lambda lib, x: lib.nn.functional.softshrink(x, -0.5)),
    ("lrn 2d", lambda lib, x: lib.nn.functional.local_response_norm(x, 2)),
    ("rms_norm", lambda lib, x: lib.nn.functional.rms_norm(x, (3,))),
    ("pdist 1d", lambda lib, x: lib.nn.functional.pdist(x[0])),
    ("instance_norm 1 spatial", lambda lib, x: lib.nn.functional.instance_norm(x[:, :, None])),
    ("margin_ranking dims", lambda lib, x: lib.nn.functional.margin_ranking_loss(x, x[0], x)),
    ("multi_margin p", lambda lib, x: lib.nn.functional.multi_margin_loss(x, x[:, 0].long(), 3)),
    ("reduction", lambda lib, x: lib.nn.functional.soft_margin_loss(x, x, reduction="avg")),
    ("gaussian var size", lambda lib, x: lib.nn.functional.gaussian_nll_loss(x, x, x[:1, :3])),
    ("prelu 1d channels", lambda lib, x: lib.nn.functional.prelu(x[0], x[0])),
    ("gaussian var < 0", lambda lib, x: lib.nn.functional.gaussian_nll_loss(x, x, -x * x - 1)),
    ("triplet margin", lambda lib, x: lib.nn.functional.triplet_margin_loss(x, x, x, margin=0.0)),
    (
        "lce ignore with probabilities",
        lambda lib, x: lib.nn.functional.linear_cross_entropy(
            x, x, x[:, :2].softmax(1), ignore_index=0
        ),
    ),
    ("alpha_dropout p", lambda lib, x: lib.nn.functional.alpha_dropout(x, 1.5, True)),
    ("dropout1d dims", lambda lib, x: lib.nn.functional.dropout1d(x[0])),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_match_torch_type(case):
    _, call = case
    x = np.abs(arr(2, 4))
    with pytest.raises(Exception) as t_err:
        call(torch, torch.tensor(x))
    with pytest.raises(type(t_err.value)):
        call(matgrad, matgrad.tensor(x))


# -- modules: defaults, parameters, repr and forward as torch's -------------------------------
MODULES = [
    ("CELU", (), {}), ("CELU", (2.0, True), {}), ("SELU", (), {}), ("SELU", (True,), {}),
    ("RReLU", (), {}), ("RReLU", (0.1, 0.3, True), {}), ("Hardswish", (), {}),
    ("Hardsigmoid", (), {}), ("Mish", (), {}), ("Softsign", (), {}), ("Tanhshrink", (), {}),
    ("Softshrink", (), {}), ("Hardshrink", (0.3,), {}), ("Threshold", (0.1, 20.0), {}),
    ("Threshold", (0.1, 20.0, True), {}), ("GLU", (), {}), ("GLU", (0,), {}), ("PReLU", (), {}),
    ("PReLU", (3, 0.1), {}), ("ReLU6", (), {}), ("ReLU6", (True,), {}), ("Softmin", (1,), {}),
    ("InstanceNorm1d", (3,), {}),
    ("InstanceNorm2d", (3,), {"affine": True, "track_running_stats": True}),
    ("InstanceNorm3d", (3,), {"affine": True, "bias": False, "momentum": 0.2}),
    ("LocalResponseNorm", (2,), {}), ("LocalResponseNorm", (3, 0.1, 0.5, 2.0), {}),
    ("RMSNorm", (4,), {}), ("RMSNorm", ([2, 3],), {"eps": 1e-5, "elementwise_affine": False}),
    ("AlphaDropout", (), {}), ("FeatureAlphaDropout", (0.2, True), {}), ("Dropout1d", (), {}),
    ("Dropout2d", (0.3,), {}), ("Dropout3d", (), {"inplace": True}),
    ("PairwiseDistance", (), {}), ("PairwiseDistance", (1.0, 1e-3, True), {}),
    ("CosineSimilarity", (), {}), ("CosineSimilarity", (0, 1e-4), {}),
    ("MarginRankingLoss", (0.5,), {}), ("HingeEmbeddingLoss", (), {"reduction": "sum"}),
    ("SoftMarginLoss", (), {}), ("MultiLabelSoftMarginLoss", (), {}),
    ("MultiMarginLoss", (2, 0.5), {}), ("MultiLabelMarginLoss", (), {}),
    ("TripletMarginLoss", (), {"swap": True}), ("TripletMarginWithDistanceLoss", (), {}),
    ("CosineEmbeddingLoss", (), {}), ("PoissonNLLLoss", (False, True), {}),
    ("GaussianNLLLoss", (), {"full": True}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "kwargs"), MODULES, ids=[m[0] for m in MODULES])
def test_module_repr_params_and_attributes_match_torch(name, args, kwargs):
    m_mod = getattr(nn, name)(*args, **kwargs)
    t_mod = getattr(torch.nn, name)(*args, **kwargs)
    assert repr(m_mod) == repr(t_mod)
    m_state, t_state = m_mod.state_dict(), t_mod.state_dict()
    assert list(m_state) == list(t_state)
    for k in t_state:
        # matgrad's default dtype is float64, torch's float32
        np.testing.assert_allclose(m_state[k].numpy(), t_state[k].numpy(), rtol=1e-7)
    for attr in ("reduction", "margin", "p", "eps", "momentum", "affine", "inplace", "dim"):
        if hasattr(t_mod, attr):
            assert getattr(m_mod, attr) == getattr(t_mod, attr), attr


def test_module_forward_matches_torch():
    x = arr(2, 3, 4)
    cases = [
        ("PReLU", (3, 0.1), (x,)),
        ("InstanceNorm1d", (3,), (x,)),
        ("InstanceNorm1d", (3,), (x[0],)),  # unbatched
        ("LocalResponseNorm", (2,), (x,)),
        ("RMSNorm", (4,), (x,)),
        ("GLU", (), (x,)),
        ("Softmin", (1,), (x,)),
        ("PairwiseDistance", (), (x[0], x[1])),
        ("TripletMarginLoss", (), (x[0], x[1], x[1] * 0.5)),
        ("CosineEmbeddingLoss", (), (x[0], x[1], np.array([1.0, -1.0, 1.0]))),
        ("GaussianNLLLoss", (), (x, x * 0.5, np.abs(x) + 0.1)),
        ("MultiLabelSoftMarginLoss", (), (x[0], (x[1] > 0).astype(np.float64))),
    ]
    for name, args, inputs in cases:
        m_out = getattr(nn, name)(*args)(*[mt(i) for i in inputs])
        t_out = getattr(torch.nn, name)(*args).double()(*[tt(i) for i in inputs])
        close(m_out, t_out)


def test_instance_norm_module_tracks_and_uses_running_stats_as_torch():
    x = arr(4, 3, 5, 2)
    m_mod = nn.InstanceNorm2d(3, momentum=0.25, affine=True, track_running_stats=True)
    t_mod = torch.nn.InstanceNorm2d(3, momentum=0.25, affine=True, track_running_stats=True)
    t_mod.double()
    close(m_mod(mt(x)), t_mod(tt(x)))
    close(m_mod.running_mean, t_mod.running_mean)
    close(m_mod.running_var, t_mod.running_var)
    m_mod.eval()
    t_mod.eval()
    close(m_mod(mt(x)), t_mod(tt(x)))


def test_prelu_module_learns_its_slope():
    mod = nn.PReLU(3)
    x = mt(-np.ones((2, 3, 2)), False)
    mod(x).sum().backward()
    np.testing.assert_allclose(mod.weight.grad.numpy(), [-4.0, -4.0, -4.0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_cross_entropy_smoothing_weight_ignore_match_torch(reduction):
    # label_smoothing is outside torch's op_db samples
    x, w, cw = arr(6, 4), arr(2, 3, 4), np.array([0.5, 2.0])
    t = np.array([[0, 1, 1], [1, 1, 0], [0, 0, 0], [1, -1, 1], [0, 1, -1], [1, 1, 1]])
    probs = np.abs(arr(6, 2, 3)) + 0.1
    probs /= probs.sum(1, keepdims=True)
    for target_m, target_t, ignore in (
        (matgrad.tensor(t), torch.tensor(t), {"ignore_index": -1}),
        (mt(probs, False), tt(probs, False), {}),  # torch refuses ignore_index here
    ):
        mx, mw, tx, tw = mt(x), mt(w), tt(x), tt(w)
        kw = dict(label_smoothing=0.3, reduction=reduction, **ignore)
        m = F.linear_cross_entropy(mx, mw, target_m, weight=mt(cw, False), **kw)
        tr = TF.linear_cross_entropy(tx, tw, target_t, weight=tt(cw, False), **kw)
        close(m, tr)
        m.sum().backward()
        tr.sum().backward()
        close(mx.grad, tx.grad)
        close(mw.grad, tw.grad)


def test_inplace_variants_write_into_the_input_as_torch():
    x = arr(5, 2) * 4
    for name, args in (("relu6", ()), ("hardswish", ()), ("selu", ()), ("celu", (0.5,)),
                       ("threshold", (0.5, -2.0)), ("rrelu", (0.1, 0.2))):  # fmt: skip
        m, t = mt(x, False), tt(x, False)
        out_m = getattr(F, name)(m, *args, inplace=True)
        out_t = getattr(TF, name)(t, *args, inplace=True)
        assert out_m is m
        close(m, t)
        close(out_m, out_t)


def test_soft_margin_loss_is_stable_for_large_margins():
    # log(1 + exp(z)) = z + log1p(exp(-z)): finite where exp(z) overflows
    out = F.soft_margin_loss(mt([-800.0, 40.0]), mt([1.0, -1.0]), reduction="none")
    np.testing.assert_allclose(out.detach().numpy(), [800.0, 40.0 + math.exp(-40.0)])


# -- ctc_loss ---------------------------------------------------------------------------------
def _ctc_case(seed=0, t_len=7, n=3, c=5):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((t_len, n, c))
    targets = np.array([[1, 2, 2, 0], [3, 1, 4, 4], [2, 0, 0, 0]])  # padded
    in_len = np.array([7, 6, 3])
    tg_len = np.array([3, 4, 1])
    return logits, targets, in_len, tg_len


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_loss_values_and_logit_gradients_match_torch(reduction):
    logits, targets, in_len, tg_len = _ctc_case()
    m_x, t_x = mt(logits), tt(logits)
    m = F.ctc_loss(
        F.log_softmax(m_x, 2), matgrad.tensor(targets), in_len, tg_len, reduction=reduction
    )
    t = TF.ctc_loss(
        TF.log_softmax(t_x, 2),
        torch.tensor(targets),
        torch.tensor(in_len),
        torch.tensor(tg_len),
        reduction=reduction,
    )
    close(m, t)
    cot = np.arange(1.0, 4.0) if reduction == "none" else np.array(1.0)
    (m * mt(cot, False)).sum().backward()
    (t * tt(cot, False)).sum().backward()
    close(m_x.grad, t_x.grad, rtol=1e-6, atol=1e-9)  # equal after log_softmax (see ctc_loss)


def test_ctc_loss_concatenated_targets_unbatched_and_infeasible_match_torch():
    logits, targets, in_len, tg_len = _ctc_case(1)
    lp = np.log(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    flat = np.concatenate([targets[b, :k] for b, k in enumerate(tg_len)])
    m = F.ctc_loss(mt(lp), matgrad.tensor(flat), in_len, tg_len, reduction="none")
    t = TF.ctc_loss(tt(lp), torch.tensor(flat), tuple(in_len), tuple(tg_len), reduction="none")
    close(m, t)
    m = F.ctc_loss(mt(lp[:, 0]), matgrad.tensor(targets[0, :3]), 7, 3, reduction="none")
    t = TF.ctc_loss(tt(lp[:, 0]), torch.tensor(targets[0, :3]), (7,), (3,), reduction="none")
    assert m.shape == t.shape == ()
    close(m, t)
    # 4 labels with a repeat need 5 steps: 4 steps cannot align (inf, or 0 with zero_infinity)
    for zero_inf in (False, True):
        kw = dict(reduction="none", zero_infinity=zero_inf)
        m = F.ctc_loss(mt(lp), matgrad.tensor(targets), np.array([7, 4, 3]), tg_len, **kw)
        t = TF.ctc_loss(tt(lp), torch.tensor(targets), (7, 4, 3), tuple(tg_len), **kw)
        close(m, t)


def test_ctc_loss_gradient_is_the_derivative():
    # the derivative with respect to log_probs as free inputs (torch's is not: see ctc_loss)
    logits, targets, in_len, tg_len = _ctc_case(2, t_len=5)
    targets, tg_len = targets[:, :3], np.minimum(tg_len, 2)
    lp = mt(logits * 0.5 - 1.0)
    tg = matgrad.tensor(targets)
    assert gradcheck(lambda x: F.ctc_loss(x, tg, np.minimum(in_len, 5), tg_len), (lp,))
