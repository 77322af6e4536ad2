"""3-d convolution and pooling, max unpooling, fractional and power-average pooling, grid
sampling, affine grids and the pixel/channel shuffles (matgrad.nn.functional and their
modules), against PyTorch and finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import matgrad
import matgrad.nn as nn
import matgrad.nn.functional as F
from matgrad.autograd import gradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _pair(*shape, seed=0, low=-1.0, high=1.0):
    a = np.random.default_rng(seed).uniform(low, high, shape)
    return matgrad.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _close(m, t, **kw):
    np.testing.assert_allclose(
        np.asarray(m.detach().numpy()), t.detach().numpy(), rtol=1e-10, atol=1e-12, **kw
    )


def _grads_match(m_out, t_out, m_in, t_in, seed=1):
    """Values and the vector-Jacobian product with one random cotangent agree with torch."""
    _close(m_out, t_out)
    cot = np.random.default_rng(seed).standard_normal(tuple(t_out.shape))
    t_grads = torch.autograd.grad(t_out, t_in, torch.tensor(cot))
    m_grads = matgrad.autograd.grad(m_out, m_in, matgrad.tensor(cot))
    for mg, tg in zip(m_grads, t_grads, strict=True):
        _close(mg, tg)


# -- grid_sample / affine_grid ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "padding_mode", "align_corners"),
    list(itertools.product(("bilinear", "nearest", "bicubic"), ("zeros", "border", "reflection"),
                           (False, True))),
)  # fmt: skip
def test_grid_sample_2d_matches_torch(mode, padding_mode, align_corners):
    x, tx = _pair(2, 3, 4, 5, seed=1)
    # beyond [-1, 1] so that every padding mode is exercised
    g, tg = _pair(2, 3, 6, 2, seed=2, low=-1.4, high=1.4)
    m = F.grid_sample(x, g, mode, padding_mode, align_corners)
    t = TF.grid_sample(tx, tg, mode, padding_mode, align_corners)
    _grads_match(m, t, [x, g], [tx, tg])


@pytest.mark.parametrize(
    ("mode", "padding_mode", "align_corners"),
    list(itertools.product(("bilinear", "nearest"), ("zeros", "border", "reflection"),
                           (False, True))),
)  # fmt: skip
def test_grid_sample_3d_matches_torch(mode, padding_mode, align_corners):
    x, tx = _pair(1, 2, 3, 4, 3, seed=3)
    g, tg = _pair(1, 2, 3, 2, 3, seed=4, low=-1.3, high=1.3)
    m = F.grid_sample(x, g, mode, padding_mode, align_corners)
    t = TF.grid_sample(tx, tg, mode, padding_mode, align_corners)
    _grads_match(m, t, [x, g], [tx, tg])


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_gradcheck(mode, padding_mode):
    x, _ = _pair(1, 2, 3, 4, seed=5)
    g, _ = _pair(1, 2, 3, 2, seed=6, low=-1.2, high=1.2)
    assert gradcheck(lambda a, b: F.grid_sample(a, b, mode, padding_mode, False), (x, g))


def test_grid_sample_identity_grid_reproduces_input():
    # align_corners=True and the corner-to-corner grid: every sample lands on a pixel centre
    x, _ = _pair(1, 2, 4, 5, seed=7)
    theta = matgrad.tensor(np.array([[[1.0, 0, 0], [0, 1.0, 0]]]))
    grid = F.affine_grid(theta, (1, 2, 4, 5), align_corners=True)
    y = F.grid_sample(x, grid, align_corners=True)
    np.testing.assert_allclose(y.detach().numpy(), x.detach().numpy(), atol=1e-12)


def test_grid_sample_errors():
    x = matgrad.zeros(1, 1, 3, 3)
    g = matgrad.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="mode"):
        F.grid_sample(x, g, mode="area")
    with pytest.raises(ValueError, match="padding_mode"):
        F.grid_sample(x, g, padding_mode="circular")
    with pytest.raises(RuntimeError, match="4D or 5D"):
        F.grid_sample(matgrad.zeros(1, 3, 3), g)
    with pytest.raises(RuntimeError, match="bicubic"):
        F.grid_sample(matgrad.zeros(1, 1, 2, 2, 2), matgrad.zeros(1, 1, 1, 1, 3), "bicubic")


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(2, 3, 4, 5), (2, 1, 3, 1, 4), (1, 1, 1, 3)])
def test_affine_grid_matches_torch(size, align_corners):
    nd = len(size) - 2
    th, tth = _pair(size[0], nd, nd + 1, seed=8)
    m = F.affine_grid(th, size, align_corners=align_corners)
    t = TF.affine_grid(tth, size, align_corners=align_corners)
    _grads_match(m, t, [th], [tth])


def test_affine_grid_errors():
    with pytest.raises(ValueError, match="Nx2x3"):
        F.affine_grid(matgrad.zeros(1, 3, 3), (1, 1, 2, 2))
    with pytest.raises(NotImplementedError, match="4D and 5D"):
        F.affine_grid(matgrad.zeros(1, 1, 2), (1, 1, 2))


# -- 3-d convolutions ------------------------------------------------------------------------
def test_conv3d_gradcheck():
    x, _ = _pair(1, 2, 3, 4, 3, seed=9)
    w, _ = _pair(4, 1, 2, 2, 2, seed=10)
    b, _ = _pair(4, seed=11)
    assert gradcheck(
        lambda x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1), padding=1, groups=2), (x, w, b)
    )


def test_conv_transpose3d_matches_torch():
    x, tx = _pair(2, 4, 2, 3, 2, seed=12)
    w, tw = _pair(4, 3, 2, 3, 2, seed=13)
    b, tb = _pair(6, seed=14)
    kw = dict(stride=(2, 1, 2), padding=(1, 0, 0), output_padding=(1, 0, 1), groups=2,
              dilation=(1, 2, 1))  # fmt: skip
    m = F.conv_transpose3d(x, w, b, **kw)
    t = TF.conv_transpose3d(tx, tw, tb, **kw)
    _grads_match(m, t, [x, w, b], [tx, tw, tb])


def test_conv3d_modules_match_torch():
    torch.manual_seed(0)
    for t_mod, cls in (
        (torch.nn.Conv3d(2, 4, (2, 3, 2), stride=2, padding=1, groups=2, dtype=torch.float64),
         nn.Conv3d),
        (torch.nn.Conv3d(2, 3, 3, padding="same", padding_mode="reflect", dtype=torch.float64),
         nn.Conv3d),
        (torch.nn.ConvTranspose3d(2, 3, 2, stride=2, output_padding=1, dtype=torch.float64),
         nn.ConvTranspose3d),
    ):  # fmt: skip
        kw = {"padding_mode": t_mod.padding_mode} if cls is nn.Conv3d else {}
        m_mod = cls(
            t_mod.in_channels, t_mod.out_channels, t_mod.kernel_size, stride=t_mod.stride,
            padding=t_mod.padding, groups=t_mod.groups, **kw,
            **({"output_padding": t_mod.output_padding} if cls is nn.ConvTranspose3d else {}),
        )  # fmt: skip
        assert tuple(m_mod.weight.shape) == tuple(t_mod.weight.shape)
        m_mod.weight.data = matgrad.tensor(t_mod.weight.detach().numpy())
        m_mod.bias.data = matgrad.tensor(t_mod.bias.detach().numpy())
        x, tx = _pair(1, 2, 4, 5, 4, seed=15)
        _close(m_mod(x), t_mod(tx))


# -- 3-d pooling modules ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("m_mod", "t_mod"),
    [
        (nn.MaxPool3d(2, stride=(1, 2, 1), padding=1), torch.nn.MaxPool3d(2, (1, 2, 1), 1)),
        (nn.AvgPool3d(3, 2, 1, count_include_pad=False),
         torch.nn.AvgPool3d(3, 2, 1, count_include_pad=False)),
        (nn.AdaptiveAvgPool3d((2, None, 3)), torch.nn.AdaptiveAvgPool3d((2, None, 3))),
        (nn.AdaptiveMaxPool3d(2), torch.nn.AdaptiveMaxPool3d(2)),
        (nn.LPPool1d(2, 3, 2), torch.nn.LPPool1d(2, 3, 2)),
        (nn.LPPool2d(3, (2, 3), 1, ceil_mode=True), torch.nn.LPPool2d(3, (2, 3), 1, True)),
        (nn.LPPool3d(2, 2), torch.nn.LPPool3d(2, 2)),
        (nn.PixelShuffle(2), torch.nn.PixelShuffle(2)),
        (nn.PixelUnshuffle(2), torch.nn.PixelUnshuffle(2)),
        (nn.ChannelShuffle(2), torch.nn.ChannelShuffle(2)),
    ],
    ids=lambda m: type(m).__name__,
)  # fmt: skip
def test_pooling_and_shuffle_modules_match_torch(m_mod, t_mod):
    name = type(m_mod).__name__
    shape = {"LPPool1d": (2, 3, 7), "LPPool2d": (2, 3, 5, 6), "PixelShuffle": (2, 8, 3, 2),
             "PixelUnshuffle": (2, 2, 4, 6)}.get(name, (2, 4, 4, 5, 6))  # fmt: skip
    # positive input for the power-average pools with odd p (torch takes x^p as is)
    x, tx = _pair(*shape, seed=16, low=0.1 if name.startswith("LP") else -1.0)
    _grads_match(m_mod(x), t_mod(tx), [x], [tx])


# -- max unpooling ---------------------------------------------------------------------------
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_inverts_max_pool(nd):
    shape = (2, 3, *(6, 5, 4)[:nd])
    x, tx = _pair(*shape, seed=17)
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nd - 1]
    unpool = (F.max_unpool1d, F.max_unpool2d, F.max_unpool3d)[nd - 1]
    t_pool = (TF.max_pool1d, TF.max_pool2d, TF.max_pool3d)[nd - 1]
    t_unpool = (TF.max_unpool1d, TF.max_unpool2d, TF.max_unpool3d)[nd - 1]
    y, idx = pool(x, 2, return_indices=True)
    ty, tidx = t_pool(tx, 2, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    m = unpool(y, idx, 2, output_size=shape)
    t = t_unpool(ty, tidx, 2, output_size=shape)
    _grads_match(m, t, [x], [tx])
    # the maxima are back where they were, zeros elsewhere
    kept = np.asarray(m.detach().numpy())
    assert np.count_nonzero(kept) == y.numel()
    np.testing.assert_array_equal(kept[kept != 0], x.detach().numpy()[kept != 0])


def test_max_unpool_repeated_index_gradient_gathers():
    # two inputs written to one position: the value is one of them, and (as PyTorch) both get
    # the output's gradient there
    x, tx = _pair(1, 1, 3, seed=18)
    idx = np.array([[[1, 1, 4]]])
    m = F.max_unpool1d(x, matgrad.tensor(idx), 2)
    t = TF.max_unpool1d(tx, torch.tensor(idx), 2)
    _grads_match(m, t, [x], [tx])


def test_max_unpool_module_and_errors():
    x, tx = _pair(1, 2, 4, 4, seed=19)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    ty, tidx = TF.max_pool2d(tx, 2, return_indices=True)
    _close(nn.MaxUnpool2d(2)(y, idx), torch.nn.MaxUnpool2d(2)(ty, tidx))
    with pytest.raises(ValueError, match="invalid output_size"):
        F.max_unpool2d(y, idx, 2, output_size=(9, 9))
    with pytest.raises(RuntimeError, match="invalid max index"):
        F.max_unpool2d(y, matgrad.tensor(np.full((1, 2, 2, 2), 16)), 2)
    with pytest.raises(RuntimeError, match="shape of indices"):
        F.max_unpool2d(y, matgrad.tensor(np.zeros((1, 2, 2, 1), dtype=np.int64)), 2)


# -- fractional max pooling ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("nd", "kernel", "kw"),
    [
        (2, 2, {"output_size": (4, 3)}),
        (2, (3, 2), {"output_ratio": (0.6, 0.6)}),
        (3, 2, {"output_size": (3, 2, 3)}),
        (3, (2, 1, 3), {"output_ratio": (0.5, 0.7, 0.5)}),
    ],
)
def test_fractional_max_pool_matches_torch_given_samples(nd, kernel, kw):
    shape = (2, 3, *(7, 6, 8)[:nd])
    x, tx = _pair(*shape, seed=20)
    u = np.random.default_rng(21).uniform(0, 1, (2, 3, nd))
    fn = F.fractional_max_pool2d if nd == 2 else F.fractional_max_pool3d
    t_fn = TF.fractional_max_pool2d if nd == 2 else TF.fractional_max_pool3d
    m, mi = fn(x, kernel, return_indices=True, _random_samples=matgrad.tensor(u), **kw)
    t, ti = t_fn(tx, kernel, return_indices=True, _random_samples=torch.tensor(u), **kw)
    np.testing.assert_array_equal(mi.numpy(), ti.numpy())
    _grads_match(m, t, [x], [tx])


def test_fractional_max_pool_random_windows_and_module():
    x, tx = _pair(1, 2, 9, 9, seed=22)
    matgrad.manual_seed(3)
    y, idx = F.fractional_max_pool2d(x, 3, output_size=4, return_indices=True)
    # whatever the draw, each output is the input at its index, the maximum of a 3x3 window
    flat = x.detach().numpy().reshape(1, 2, -1)
    np.testing.assert_array_equal(
        np.take_along_axis(flat, idx.numpy().reshape(1, 2, -1), 2).reshape(y.shape),
        y.detach().numpy(),
    )
    u = np.random.default_rng(23).uniform(0, 1, (1, 2, 2))
    m_mod = nn.FractionalMaxPool2d(3, output_size=4, _random_samples=matgrad.tensor(u))
    t_mod = torch.nn.FractionalMaxPool2d(3, output_size=4, _random_samples=torch.tensor(u))
    _close(m_mod(x), t_mod(tx))
    with pytest.raises(RuntimeError, match="too large"):
        F.fractional_max_pool2d(x, 5, output_size=6)
    with pytest.raises(ValueError, match="output_size or an output_ratio"):
        F.fractional_max_pool2d(x, 2)


# -- power-average pooling -------------------------------------------------------------------
def test_lp_pool_closed_form_and_gradcheck():
    x, _ = _pair(1, 1, 4, seed=24, low=0.5, high=2.0)
    a = x.detach().numpy()[0, 0]
    y = F.lp_pool1d(x, 3.0, 2)
    expected = [(a[0] ** 3 + a[1] ** 3) ** (1 / 3), (a[2] ** 3 + a[3] ** 3) ** (1 / 3)]
    np.testing.assert_allclose(y.detach().numpy()[0, 0], expected, rtol=1e-12)
    x3, _ = _pair(1, 2, 3, 4, 3, seed=25, low=0.5, high=2.0)
    assert gradcheck(lambda t: F.lp_pool3d(t, 2.0, (2, 2, 1), stride=1), (x3,))


# -- pixel / channel shuffles ----------------------------------------------------------------
def test_pixel_shuffle_leading_dims_and_inverse():
    x, tx = _pair(2, 3, 18, 2, 3, seed=26)
    m, t = F.pixel_shuffle(x, 3), TF.pixel_shuffle(tx, 3)
    _grads_match(m, t, [x], [tx])
    back = F.pixel_unshuffle(m, 3)
    np.testing.assert_array_equal(back.detach().numpy(), x.detach().numpy())
    with pytest.raises(RuntimeError, match="divisible"):
        F.pixel_shuffle(x, 4)
    with pytest.raises(RuntimeError, match="divisible"):
        F.pixel_unshuffle(x, 4)
    with pytest.raises(RuntimeError, match="at least 3"):
        F.pixel_shuffle(matgrad.zeros(4, 4), 2)


def test_channel_shuffle_order_and_errors():
    x = matgrad.tensor(np.arange(6.0).reshape(1, 6, 1))
    # 2 groups of 3: channel g * 3 + j moves to j * 2 + g
    np.testing.assert_array_equal(F.channel_shuffle(x, 2).numpy().ravel(), [0, 3, 1, 4, 2, 5])
    with pytest.raises(RuntimeError, match="divisible by groups"):
        F.channel_shuffle(x, 4)


# -- 3-d and circular padding layers ---------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "args", "shape"),
    [
        ("ConstantPad3d", ((1, 0, 2, 1, 0, 1), 2.5), (2, 2, 3, 3, 3)),
        ("ZeroPad3d", (1,), (2, 3, 3, 3)),
        ("ReflectionPad3d", ((1, 2, 0, 1, 2, 0),), (1, 2, 3, 4, 3)),
        ("ReplicationPad3d", (2,), (1, 2, 3, 2, 3)),
        ("CircularPad1d", ((2, 1),), (2, 3, 4)),
        ("CircularPad3d", ((1, 1, 0, 2, 1, 0),), (1, 1, 3, 3, 3)),
    ],
)
def test_padding_3d_modules_match_torch(name, args, shape):
    x, tx = _pair(*shape, seed=27)
    m_mod, t_mod = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    _grads_match(m_mod(x), t_mod(tx), [x], [tx])


def test_module_reprs_match_torch():
    pairs = [
        (nn.Conv3d(2, 4, 3, stride=2, padding=1, bias=False),
         torch.nn.Conv3d(2, 4, 3, stride=2, padding=1, bias=False)),
        (nn.ConvTranspose3d(2, 4, 3, output_padding=0), torch.nn.ConvTranspose3d(2, 4, 3)),
        (nn.PixelShuffle(3), torch.nn.PixelShuffle(3)),
        (nn.PixelUnshuffle(2), torch.nn.PixelUnshuffle(2)),
        (nn.LPPool2d(2, 3), torch.nn.LPPool2d(2, 3)),
        (nn.ZeroPad3d(1), torch.nn.ZeroPad3d(1)),
    ]  # fmt: skip
    for m_mod, t_mod in pairs:
        assert repr(m_mod) == repr(t_mod)
