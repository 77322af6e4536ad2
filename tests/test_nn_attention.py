"""Attention: F.scaled_dot_product_attention, F.multi_head_attention_forward through
nn.MultiheadAttention, nn.TransformerEncoderLayer and F.gumbel_softmax. Outputs and
gradients against PyTorch from the same inputs and weights, gradcheck in float64, dropout's
scaling and reproducibility, the Gumbel-max sampling law, straight-through gradients against
their closed form, and PyTorch's errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import matgrad
import matgrad.nn as nn
import matgrad.nn.functional as F
from matgrad.autograd import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RNG = np.random.default_rng(2024)


def arr(t):
    return np.asarray(t.detach()._data)


def both(a, requires_grad=True):
    """The same array as a matgrad and a torch tensor (float arrays require grad)."""
    rg = requires_grad and a.dtype.kind == "f"
    return matgrad.tensor(a, requires_grad=rg), torch.tensor(a, requires_grad=rg)


def check_same(m_outs, t_outs, m_inputs, t_inputs, atol=1e-10):
    """Equal outputs, and equal gradients of a random weighted sum of the outputs with
    respect to every input that requires grad (NaN outputs: forward only)."""
    for m, t in zip(m_outs, t_outs, strict=True):
        assert tuple(m.shape) == tuple(t.shape)
        np.testing.assert_allclose(arr(m), t.detach().numpy(), atol=atol, rtol=1e-9)
    if any(np.isnan(t.detach().numpy()).any() for t in t_outs):
        return
    weights = [RNG.standard_normal(tuple(t.shape)) for t in t_outs]
    sum(
        ((m * matgrad.tensor(w)).sum() for m, w in zip(m_outs, weights, strict=True)),
        start=matgrad.tensor(0.0),
    ).backward()
    sum((t * torch.tensor(w)).sum() for t, w in zip(t_outs, weights, strict=True)).backward()
    for m, t in zip(m_inputs, t_inputs, strict=True):
        if t.requires_grad:
            np.testing.assert_allclose(arr(m.grad), t.grad.numpy(), atol=atol, rtol=1e-8)


# -- scaled_dot_product_attention --------------------------------------------------------------
SHAPES = {
    "4d": ((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 2)),
    "3d": ((2, 4, 3), (2, 6, 3), (2, 6, 5)),
    "2d": ((4, 3), (6, 3), (6, 2)),
    "broadcast": ((2, 3, 4, 5), (1, 3, 6, 5), (3, 6, 2)),
}
MASKS = ["none", "bool", "bool_batch", "float", "float_grad", "dead_row"]


def _mask(kind, q_shape, k_shape):
    n_l, n_s = q_shape[-2], k_shape[-2]
    if kind == "none":
        return None
    if kind == "bool":
        return RNG.random((n_l, n_s)) > 0.3
    if kind == "bool_batch":
        return RNG.random((q_shape[0], 1, n_l, n_s) if len(q_shape) == 4 else (n_l, n_s)) > 0.3
    if kind in ("float", "float_grad"):
        return RNG.standard_normal((n_l, n_s))
    mask = RNG.random((n_l, n_s)) > 0.3
    mask[1] = False  # a row that attends to nothing: zeros, as PyTorch
    return mask


@pytest.mark.parametrize(
    "shapes,mask_kind,is_causal,scale",
    [
        c
        for c in itertools.product(SHAPES, MASKS, (False, True), (None, 0.7))
        if not (c[2] and c[1] != "none")  # a mask with is_causal raises (tested below)
    ],
)
def test_sdpa_matches_torch(shapes, mask_kind, is_causal, scale):
    q_shape, k_shape, v_shape = SHAPES[shapes]
    arrays = [RNG.standard_normal(s) for s in (q_shape, k_shape, v_shape)]
    mask = _mask(mask_kind, q_shape, k_shape)
    m_in, t_in = zip(*(both(a) for a in arrays), strict=True)
    m_in, t_in = list(m_in), list(t_in)
    m_mask = t_mask = None
    if mask is not None:
        m_mask, t_mask = both(mask, requires_grad=mask_kind == "float_grad")
        m_in.append(m_mask)
        t_in.append(t_mask)
    m_out = F.scaled_dot_product_attention(
        *m_in[:3], attn_mask=m_mask, is_causal=is_causal, scale=scale
    )
    t_out = TF.scaled_dot_product_attention(
        *t_in[:3], attn_mask=t_mask, is_causal=is_causal, scale=scale
    )
    check_same([m_out], [t_out], m_in, t_in)


def test_sdpa_is_the_closed_form():
    q, k, v = (RNG.standard_normal(s) for s in ((3, 2), (4, 2), (4, 3)))
    out = F.scaled_dot_product_attention(matgrad.tensor(q), matgrad.tensor(k), matgrad.tensor(v))
    s = q @ k.T / math.sqrt(2)
    w = np.exp(s - s.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    np.testing.assert_allclose(arr(out), w @ v, rtol=1e-12)
    # causal with L < S: query l sees keys 0..l (upper-left alignment)
    out = F.scaled_dot_product_attention(
        matgrad.tensor(q), matgrad.tensor(k), matgrad.tensor(v), is_causal=True
    )
    s = np.where(np.tri(3, 4, dtype=bool), s, -np.inf)
    w = np.exp(s - s.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    np.testing.assert_allclose(arr(out), w @ v, rtol=1e-12)


def test_sdpa_enable_gqa_matches_torch():
    arrays = [RNG.standard_normal(s) for s in ((2, 4, 3, 5), (2, 2, 6, 5), (2, 2, 6, 3))]
    m_in, t_in = zip(*(both(a) for a in arrays), strict=True)
    m_out = F.scaled_dot_product_attention(*m_in, enable_gqa=True)
    t_out = TF.scaled_dot_product_attention(*t_in, enable_gqa=True)
    check_same([m_out], [t_out], m_in, t_in)


def test_sdpa_gradcheck():
    q, k, v = (
        matgrad.tensor(RNG.standard_normal(s), requires_grad=True)
        for s in ((1, 3, 2), (1, 4, 2), (1, 4, 2))
    )
    fmask = matgrad.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    bmask = matgrad.tensor(RNG.random((3, 4)) > 0.3)
    assert gradcheck(
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, m), (q, k, v, fmask)
    )
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, bmask), (q, k, v))
    assert gradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.5),
        (q, k, v),
    )
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), (q, k, v))


def test_sdpa_dropout_scaling_and_reproducibility():
    """With value = identity, the output is the dropped-out weight matrix: each entry 0 or
    the undropped weight / (1 - p); about a fraction p is zeroed, and the mean over many
    draws is the undropped output (E[mask / (1 - p)] = 1)."""
    p, n_l, n_s = 0.3, 8, 6
    q = matgrad.tensor(RNG.standard_normal((400, n_l, 4)))
    k = matgrad.tensor(RNG.standard_normal((400, n_s, 4)))
    v = matgrad.tensor(np.broadcast_to(np.eye(n_s), (400, n_s, n_s)).copy())
    plain = arr(F.scaled_dot_product_attention(q, k, v))
    matgrad.manual_seed(3)
    a = arr(F.scaled_dot_product_attention(q, k, v, dropout_p=p))
    matgrad.manual_seed(3)
    b = arr(F.scaled_dot_product_attention(q, k, v, dropout_p=p))
    np.testing.assert_array_equal(a, b)
    kept = a != 0
    np.testing.assert_allclose(a[kept], plain[kept] / (1 - p), rtol=1e-12)
    assert abs((~kept).mean() - p) < 0.01  # 19200 draws: standard error 0.0033
    # unbiased: the mean over the 400 batches of (dropped - plain) is near 0
    err = (a - plain).mean(0)
    sd = np.sqrt(p / (1 - p)) * np.sqrt((plain**2).mean(0) / 400)
    assert np.all(np.abs(err) < 5 * sd + 1e-12)
    c = arr(F.scaled_dot_product_attention(q, k, v, dropout_p=p))
    assert not np.array_equal(a, c)  # a new draw without reseeding


def test_sdpa_errors():
    q, k, v = matgrad.randn(2, 3, 4), matgrad.randn(2, 5, 4), matgrad.randn(2, 5, 4)
    sdpa = F.scaled_dot_product_attention
    with pytest.raises(RuntimeError, match="at least 2 dimensional.*query.dim: 1"):
        sdpa(matgrad.randn(4), k, v)
    with pytest.raises(RuntimeError, match="same dtype.*float32"):
        sdpa(q, k.float(), v)
    with pytest.raises(RuntimeError, match="same embedding size.*\\[2, 3, 4\\].*\\[2, 5, 3\\]"):
        sdpa(q, matgrad.randn(2, 5, 3), v)
    with pytest.raises(RuntimeError, match="same sequence length"):
        sdpa(q, k, matgrad.randn(2, 6, 4))
    with pytest.raises(RuntimeError, match="attn_mask of shape \\[4, 5\\] does not broadcast"):
        sdpa(q, k, v, attn_mask=matgrad.ones(4, 5).bool())
    with pytest.raises(RuntimeError, match="Expected attn_mask dtype to be bool or float"):
        sdpa(q, k, v, attn_mask=matgrad.ones(3, 5).long())
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        sdpa(q, k, v, dropout_p=1.5)
    mask = matgrad.ones(3, 5).bool()
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal"):
        sdpa(q, k, v, attn_mask=mask, is_causal=True)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal"):
        TF.scaled_dot_product_attention(
            *(torch.randn(2, 3, 4, requires_grad=True),) * 3,
            attn_mask=torch.ones(3, 3).bool(),
            is_causal=True,
        )
    with pytest.raises(RuntimeError, match="do not broadcast"):
        sdpa(q, matgrad.randn(3, 5, 4), matgrad.randn(3, 5, 4))


# -- MultiheadAttention ------------------------------------------------------------------------
def to_torch(ours, theirs):
    theirs = theirs.double()
    theirs.load_state_dict(
        {k: torch.tensor(np.array(v._data)) for k, v in ours.state_dict().items()}
    )
    return theirs


MHA_CONFIGS = {
    "plain": {},
    "batch_first": {"batch_first": True},
    "kdim_vdim": {"kdim": 3, "vdim": 5},
    "no_bias": {"bias": False},
    "bias_kv_zero_attn": {"add_bias_kv": True, "add_zero_attn": True},
}
MHA_MASKS = ["none", "kpm_bool", "attn_bool", "both_bool", "both_float", "attn_3d", "causal"]


def _mha_inputs(cfg, batched, self_attention):
    E, L, S, N = 4, 3, 5, 2
    kdim, vdim = cfg.get("kdim", E), cfg.get("vdim", E)
    if self_attention:
        S = L
    lead_q = (N, L) if cfg.get("batch_first") else (L, N)
    lead_k = (N, S) if cfg.get("batch_first") else (S, N)
    if not batched:
        lead_q, lead_k = (L,), (S,)
    q = RNG.standard_normal((*lead_q, E))
    if self_attention and kdim == vdim == E:
        return q, q, q, L, S
    return q, RNG.standard_normal((*lead_k, kdim)), RNG.standard_normal((*lead_k, vdim)), L, S


def _mha_masks(kind, n_l, n_s, batched, num_heads=2, n=2):
    kpm = attn = None
    kpm_shape = (n, n_s) if batched else (n_s,)
    if kind in ("kpm_bool", "both_bool"):
        kpm = RNG.random(kpm_shape) < 0.3
    if kind in ("attn_bool", "both_bool"):
        attn = RNG.random((n_l, n_s)) < 0.3
    if kind == "both_float":
        kpm = RNG.standard_normal(kpm_shape)
        attn = RNG.standard_normal((n_l, n_s))
    if kind == "attn_3d":
        attn = RNG.standard_normal(((n if batched else 1) * num_heads, n_l, n_s))
    if kind == "causal":
        attn = ~np.tri(n_l, n_s, dtype=bool)  # True: not attended (MHA convention)
    return kpm, attn


@pytest.mark.parametrize(
    "config,masks,need_weights,average,batched",
    [
        c
        for c in itertools.product(
            MHA_CONFIGS, MHA_MASKS, (True, False), (True, False), (True, False)
        )
        if not (c[2] is False and c[3] is False)  # average only matters with weights
    ],
)
def test_multihead_attention_matches_torch(config, masks, need_weights, average, batched):
    cfg = MHA_CONFIGS[config]
    ours = nn.MultiheadAttention(4, 2, **cfg)
    theirs = to_torch(ours, torch.nn.MultiheadAttention(4, 2, **cfg))
    self_attention = (masks == "causal" or config == "no_bias") and "kdim" not in cfg
    q, k, v, n_l, n_s = _mha_inputs(cfg, batched, self_attention or masks == "causal")
    kpm, attn = _mha_masks(masks, n_l, n_s, batched)
    if self_attention:
        mq, tq = both(q)
        m_in, t_in = [mq], [tq]
        m_qkv, t_qkv = (mq, mq, mq), (tq, tq, tq)
    else:
        m_in, t_in = zip(*(both(a) for a in (q, k, v)), strict=True)
        m_qkv, t_qkv = m_in, t_in
    kw_m, kw_t = {}, {}
    for name, mask in (("key_padding_mask", kpm), ("attn_mask", attn)):
        if mask is not None:
            kw_m[name], kw_t[name] = both(mask, requires_grad=False)
    common = dict(
        need_weights=need_weights, average_attn_weights=average, is_causal=masks == "causal"
    )
    m_out, m_w = ours(*m_qkv, **kw_m, **common)
    t_out, t_w = theirs(*t_qkv, **kw_t, **common)
    m_outs, t_outs = [m_out], [t_out]
    if need_weights:
        m_outs.append(m_w)
        t_outs.append(t_w)
    else:
        assert m_w is None and t_w is None
    m_params = [p for _, p in ours.named_parameters()]
    t_params = [p for _, p in theirs.named_parameters()]
    check_same(m_outs, t_outs, [*m_in, *m_params], [*t_in, *t_params])


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_fully_padded_sequence_matches_torch(need_weights):
    """A batch entry whose keys are all padding: NaN from the weights path, zeros from the
    SDPA path (PyTorch's behaviour in each)."""
    ours = nn.MultiheadAttention(4, 2)
    theirs = to_torch(ours, torch.nn.MultiheadAttention(4, 2))
    q = RNG.standard_normal((3, 2, 4))
    kpm = np.zeros((2, 3), dtype=bool)
    kpm[1] = True
    out, _ = ours(
        *(matgrad.tensor(q),) * 3, key_padding_mask=matgrad.tensor(kpm), need_weights=need_weights
    )
    t_out, _ = theirs(
        *(torch.tensor(q),) * 3, key_padding_mask=torch.tensor(kpm), need_weights=need_weights
    )
    np.testing.assert_allclose(arr(out), t_out.detach().numpy(), atol=1e-12)
    assert np.isnan(arr(out)[:, 1]).all() == need_weights


def test_multihead_attention_parameters_init_and_repr_are_torchs():
    for cfg in MHA_CONFIGS.values():
        ours, theirs = nn.MultiheadAttention(8, 2, **cfg), torch.nn.MultiheadAttention(8, 2, **cfg)
        assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == [
            (n, tuple(p.shape)) for n, p in theirs.named_parameters()
        ]
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert repr(ours) == repr(theirs)
    matgrad.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4)
    w = arr(mha.in_proj_weight)
    bound = math.sqrt(6.0 / (16 + 48))  # xavier_uniform on (3E, E)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.97 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    np.testing.assert_array_equal(arr(mha.in_proj_bias), 0.0)
    np.testing.assert_array_equal(arr(mha.out_proj.bias), 0.0)


def test_multihead_attention_dropout_train_and_eval():
    mha = nn.MultiheadAttention(4, 2, dropout=0.5)
    x = matgrad.tensor(RNG.standard_normal((5, 3, 4)))
    mha.eval()
    a, wa = mha(x, x, x)
    b, wb = mha(x, x, x)
    np.testing.assert_array_equal(arr(a), arr(b))
    np.testing.assert_allclose(arr(wa).sum(-1), 1.0, rtol=1e-12)
    mha.train()
    matgrad.manual_seed(1)
    c, wc = mha(x, x, x, average_attn_weights=False)
    matgrad.manual_seed(1)
    d, _ = mha(x, x, x, average_attn_weights=False)
    np.testing.assert_array_equal(arr(c), arr(d))
    assert not np.allclose(arr(a), arr(c))
    # the returned weights are the dropped-out ones: 0 or twice the eval weights
    mha.eval()
    wc, we = arr(wc), arr(mha(x, x, x, average_attn_weights=False)[1])
    np.testing.assert_allclose(wc[wc != 0], 2 * we[wc != 0], rtol=1e-12)


def test_multihead_attention_errors():
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(5, 2)
    with pytest.raises(ValueError, match="embed_dim and num_heads must be greater than 0"):
        nn.MultiheadAttention(4, 0)
    mha = nn.MultiheadAttention(4, 2)
    x = matgrad.randn(3, 2, 4)
    with pytest.raises(AssertionError, match="was expecting embedding dimension of 4, but got 6"):
        mha(matgrad.randn(3, 2, 6), x, x)
    with pytest.raises(
        RuntimeError, match="The shape of the 2D attn_mask is \\(3, 4\\), but should be \\(3, 3\\)"
    ):
        mha(x, x, x, attn_mask=matgrad.zeros(3, 4))
    with pytest.raises(AssertionError, match="expected `key` and `value` to be 3-D"):
        mha(x, matgrad.randn(3, 4), x)
    with pytest.raises(AssertionError, match="Expected key_padding_mask of shape \\(2, 3\\)"):
        mha(x, x, x, key_padding_mask=matgrad.zeros(2, 4).bool())
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(AssertionError, match="only bool and floating types of attn_mask"):
        mha(x, x, x, attn_mask=matgrad.zeros(3, 3).long())


def test_multihead_attention_gradcheck():
    mha = nn.MultiheadAttention(2, 2, kdim=3)
    q = matgrad.tensor(RNG.standard_normal((2, 1, 2)), requires_grad=True)
    k = matgrad.tensor(RNG.standard_normal((3, 1, 3)), requires_grad=True)
    v = matgrad.tensor(RNG.standard_normal((3, 1, 2)), requires_grad=True)
    kpm = matgrad.tensor(np.array([[False, True, False]]))
    assert gradcheck(
        lambda q, k, v, *_: mha(q, k, v, key_padding_mask=kpm), (q, k, v, *mha.parameters())
    )


# -- TransformerEncoderLayer -------------------------------------------------------------------
@pytest.mark.parametrize(
    "norm_first,batch_first,activation,masks",
    list(itertools.product((False, True), (False, True), ("relu", "gelu"), ("none", "both"))),
)
def test_transformer_encoder_layer_matches_torch(norm_first, batch_first, activation, masks):
    kw = dict(
        dim_feedforward=6,
        dropout=0.0,
        activation=activation,
        batch_first=batch_first,
        norm_first=norm_first,
    )
    ours = nn.TransformerEncoderLayer(4, 2, **kw)
    theirs = to_torch(ours, torch.nn.TransformerEncoderLayer(4, 2, **kw))
    src = RNG.standard_normal((2, 5, 4) if batch_first else (5, 2, 4))
    m_src, t_src = both(src)
    kw_m, kw_t = {}, {}
    if masks == "both":
        mask = ~np.tri(5, dtype=bool)
        kpm = np.zeros((2, 5), dtype=bool)
        kpm[0, -2:] = True
        kw_m = dict(src_mask=matgrad.tensor(mask), src_key_padding_mask=matgrad.tensor(kpm))
        kw_t = dict(src_mask=torch.tensor(mask), src_key_padding_mask=torch.tensor(kpm))
    m_params = [p for _, p in ours.named_parameters()]
    t_params = [p for _, p in theirs.named_parameters()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    check_same(
        [ours(m_src, **kw_m)], [theirs(t_src, **kw_t)], [m_src, *m_params], [t_src, *t_params]
    )


def test_transformer_encoder_layer_structure_and_errors():
    ours, theirs = nn.TransformerEncoderLayer(4, 2, 8), torch.nn.TransformerEncoderLayer(4, 2, 8)
    assert [(n, type(m).__name__) for n, m in ours.named_children()] == [
        (n, type(m).__name__) for n, m in theirs.named_children()
    ]
    assert repr(ours.self_attn) == repr(theirs.self_attn)
    assert repr(ours.linear1) == repr(theirs.linear1)
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(4, 2, activation="tanh")


# -- gumbel_softmax ----------------------------------------------------------------------------
def test_gumbel_softmax_soft_is_a_distribution_and_reproducible():
    logits = matgrad.tensor(RNG.standard_normal((5, 4, 3)))
    for dim in (0, 1, -1):
        matgrad.manual_seed(4)
        y = F.gumbel_softmax(logits, tau=0.5, dim=dim)
        matgrad.manual_seed(4)
        y2 = F.gumbel_softmax(logits, tau=0.5, dim=dim)
        np.testing.assert_array_equal(arr(y), arr(y2))
        assert np.all(arr(y) > 0)
        np.testing.assert_allclose(arr(y).sum(dim), 1.0, rtol=1e-12)


def test_gumbel_max_samples_follow_the_softmax():
    """Gumbel-max trick: argmax(logits + g) ~ Categorical(softmax(logits)), for any tau."""
    p = np.array([0.5, 0.3, 0.15, 0.05])
    logits = matgrad.tensor(np.broadcast_to(np.log(p), (20000, 4)).copy())
    matgrad.manual_seed(0)
    y = arr(F.gumbel_softmax(logits, tau=2.0, hard=True))
    freq = y.mean(0)
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / 20000))


def test_gumbel_softmax_hard_is_one_hot_with_the_soft_gradient():
    x = RNG.standard_normal((6, 5))
    w = RNG.standard_normal((6, 5))
    tau = 0.7
    logits_soft = matgrad.tensor(x, requires_grad=True)
    logits_hard = matgrad.tensor(x, requires_grad=True)
    matgrad.manual_seed(11)
    soft = F.gumbel_softmax(logits_soft, tau=tau)
    matgrad.manual_seed(11)
    hard = F.gumbel_softmax(logits_hard, tau=tau, hard=True)
    h, s = arr(hard), arr(soft)
    assert set(np.unique(h)) <= {0.0, 1.0}
    np.testing.assert_array_equal(h.sum(-1), 1.0)
    np.testing.assert_array_equal(h.argmax(-1), s.argmax(-1))
    (soft * matgrad.tensor(w)).sum().backward()
    (hard * matgrad.tensor(w)).sum().backward()
    # d/dlogits sum(w * softmax((logits + g) / tau)) = y (w - sum(w y)) / tau
    closed = s * (w - (w * s).sum(-1, keepdims=True)) / tau
    np.testing.assert_allclose(arr(logits_soft.grad), closed, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(arr(logits_hard.grad), closed, rtol=1e-10, atol=1e-14)


def test_gumbel_softmax_arguments():
    logits = matgrad.randn(3, 4)
    with pytest.raises(ValueError, match="tau must be positive"):
        F.gumbel_softmax(logits, tau=0.0)
    with pytest.warns(UserWarning, match="`eps` parameter is deprecated"):
        F.gumbel_softmax(logits, eps=1e-5)
    y = F.gumbel_softmax(logits, hard=True, dim=0)
    np.testing.assert_array_equal(arr(y).sum(0), 1.0)
