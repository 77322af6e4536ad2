"""matgrad.fft with gradients in both modes (issue #13).

Checked against: finite differences (``gradcheck`` on complex and real inputs, reverse and
forward mode, and ``gradgradcheck``); closed forms (Parseval's theorem, round trips, shifts);
NumPy's transforms and frequencies; and PyTorch's values, vector-Jacobian products (complex
cotangents) and forward-mode tangents for the same inputs. The generic table tests
(tests/test_rules.py, samples in tests/op_specs.py) and PyTorch's own op_db samples
(tests/test_torch_differential.py) check the three rows too.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matgrad as mg
import matgrad.array_api as xp
from matgrad.autograd import gradcheck, gradgradcheck
from matgrad.viz import graph_nodes

rng = np.random.default_rng(13)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def crandn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def leaf(a: np.ndarray) -> mg.Tensor:
    return mg.tensor(a, requires_grad=True)


def nodes(t: mg.Tensor) -> set[str]:
    return {type(n).__name__ for n in graph_nodes([t.grad_fn])} - {"AccumulateGrad"}


F = mg.fft
# (name, function, input arrays, also second order); complex inputs: gradcheck perturbs the
# real and the imaginary part of every element
CASES = [
    ("fft", lambda z: F.fft(z), [crandn(2, 5)], True),
    ("fft n dim ortho", lambda z: F.fft(z, n=7, dim=0, norm="ortho"), [crandn(4, 3)], False),
    ("ifft crop forward", lambda z: F.ifft(z, n=3, norm="forward"), [crandn(5)], True),
    ("fft2 s", lambda z: F.fft2(z, s=(3, 6)), [crandn(2, 4, 5)], False),
    ("ifftn dim order", lambda z: F.ifftn(z, dim=(2, 0), norm="ortho"), [crandn(3, 2, 4)], False),
    ("fftn 0-d", lambda z: F.fftn(z), [np.array(1.5 - 0.5j)], False),
    ("irfft even n", lambda z: F.irfft(z), [crandn(2, 4)], True),
    ("irfft odd n", lambda z: F.irfft(z, n=5, norm="ortho"), [crandn(3)], False),
    ("irfftn", lambda z: F.irfftn(z, s=(4, 5)), [crandn(3, 3)], True),
    ("irfft2 halved dim 0", lambda z: F.irfft2(z, dim=(-1, 0)), [crandn(4, 3)], False),
    ("hfft", lambda z: F.hfft(z, n=6), [crandn(4)], True),
    ("hfftn forward", lambda z: F.hfftn(z, norm="forward"), [crandn(3, 4)], False),
    ("hfft2 s", lambda z: F.hfft2(z, s=(2, 5)), [crandn(3, 3)], False),
    ("fftshift", lambda z: F.fftshift(z), [crandn(3, 4)], False),
    ("ifftshift dim", lambda z: F.ifftshift(z, dim=1), [crandn(3, 5)], False),
    # real inputs
    ("rfft", lambda x: F.rfft(x), [randn(6)], True),
    ("rfft odd n forward", lambda x: F.rfft(x, n=7, norm="forward"), [randn(2, 5)], False),
    ("rfftn dim order", lambda x: F.rfftn(x, dim=(1, 0)), [randn(3, 4)], True),
    ("rfft2 s", lambda x: F.rfft2(x, s=(3, 3), norm="ortho"), [randn(2, 4, 4)], False),
    ("ihfft", lambda x: F.ihfft(x), [randn(6)], True),
    ("ihfftn ortho", lambda x: F.ihfftn(x, s=(3, 4), norm="ortho"), [randn(2, 5)], False),
    ("ihfft2", lambda x: F.ihfft2(x), [randn(3, 5)], False),
    ("fft of real", lambda x: F.fft(x), [randn(2, 4)], True),
    ("ifft2 of real", lambda x: F.ifft2(x, norm="forward"), [randn(3, 4)], False),
    ("irfft of real", lambda x: F.irfft(x, n=4), [randn(3)], False),
    ("hfft of real", lambda x: F.hfft(x), [randn(4)], False),
    ("fftshift real", lambda x: F.fftshift(x, dim=(0, -1)), [randn(3, 2, 4)], False),
]


@pytest.mark.parametrize(
    ("fn", "arrays", "second"), [pytest.param(f, a, s, id=n) for n, f, a, s in CASES]
)
def test_gradients_match_finite_differences(fn, arrays, second):
    inputs = [leaf(a) for a in arrays]
    assert gradcheck(fn, inputs, check_forward_ad=True)
    if second:
        assert gradgradcheck(fn, inputs)


# -- closed forms -------------------------------------------------------------------------------
def test_parseval_gives_the_closed_form_gradient():
    """sum |fft(z)|^2 = n sum |z|^2, so its gradient is 2 n z (ortho: 2 z); for rfft the
    one-sided power spectrum counts the mirrored bins twice: w |X|^2 sums to n sum x^2."""
    z = crandn(3, 8)
    t = leaf(z)
    (g,) = mg.autograd.grad((F.fft(t).abs() ** 2).sum(), [t])
    np.testing.assert_allclose(g.numpy(), 2 * 8 * z, rtol=1e-12)
    (g,) = mg.autograd.grad((F.fftn(t, norm="ortho").abs() ** 2).sum(), [t])
    np.testing.assert_allclose(g.numpy(), 2 * z, rtol=1e-12)
    for n in (6, 7):  # with and without a Nyquist bin
        x = randn(2, n)
        w = np.full(n // 2 + 1, 2.0)
        w[0] = 1.0
        if n % 2 == 0:
            w[-1] = 1.0
        t = leaf(x)
        (g,) = mg.autograd.grad((F.rfft(t).abs() ** 2 * mg.tensor(w)).sum(), [t])
        np.testing.assert_allclose(g.numpy(), 2 * n * x, rtol=1e-12)


def test_round_trips_have_identity_gradients():
    """irfft(rfft(x)) = x and hfft(ihfft(x)) = x: the composed VJP is the identity."""
    for n in (5, 6):
        x, g = randn(3, n), randn(3, n)
        t = leaf(x)
        for forward, back in [(F.rfft, F.irfft), (F.ihfft, F.hfft)]:
            y = back(forward(t), n=n)
            np.testing.assert_allclose(y.detach().numpy(), x, atol=1e-12)
            (gx,) = mg.autograd.grad(y, [t], mg.tensor(g))
            np.testing.assert_allclose(gx.numpy(), g, atol=1e-12)
    z, c = crandn(2, 3, 4), crandn(2, 3, 4)
    t = leaf(z)
    y = F.ifftn(F.fftn(t, norm="ortho"), norm="ortho")
    (gz,) = mg.autograd.grad(y, [t], mg.tensor(c))
    np.testing.assert_allclose(gz.numpy(), c, atol=1e-12)


def test_the_adjoint_of_the_dft_is_the_inverse_direction():
    """<F x, g> = <x, F^H g>: the VJP of fft with cotangent g is n ifft(g) (conj(F)^T = n F^-1),
    and that of ifft is fft(g) / n."""
    z, g = crandn(5), crandn(5)
    t = leaf(z)
    (gz,) = mg.autograd.grad(F.fft(t), [t], mg.tensor(g))
    np.testing.assert_allclose(gz.numpy(), 5 * np.fft.ifft(g), rtol=1e-12)
    (gz,) = mg.autograd.grad(F.ifft(t), [t], mg.tensor(g))
    np.testing.assert_allclose(gz.numpy(), np.fft.fft(g) / 5, rtol=1e-12)


def test_irfft_ignores_the_imaginary_parts_of_the_self_conjugate_bins():
    """Bin 0 and (even n) bin n/2 of a real signal's spectrum are real: irfft drops their
    imaginary parts (as numpy.fft.irfft), so the gradient there is real."""
    z = crandn(4)  # n = 6: bins 0..3, bin 3 is the Nyquist bin
    t = leaf(z)
    np.testing.assert_allclose(F.irfft(t).detach().numpy(), np.fft.irfft(z), atol=1e-12)
    (g,) = mg.autograd.grad(F.irfft(t), [t], mg.tensor(randn(6)))
    assert g.numpy()[0].imag == 0 and g.numpy()[3].imag == 0
    assert np.all(g.numpy()[1:3].imag != 0)


def test_fftshift_gradient_is_the_inverse_shift():
    x, g = randn(3, 5), randn(3, 5)
    t = leaf(x)
    y = F.fftshift(t)
    np.testing.assert_array_equal(y.detach().numpy(), np.fft.fftshift(x))
    (gx,) = mg.autograd.grad(y, [t], mg.tensor(g))
    np.testing.assert_array_equal(gx.numpy(), np.fft.ifftshift(g))
    np.testing.assert_array_equal(F.ifftshift(t, dim=0).detach().numpy(), np.fft.ifftshift(x, 0))
    assert nodes(y) == {"RollBackward0"}
    np.testing.assert_array_equal(
        F.fftshift(t, np.int64(1)).detach().numpy(), np.fft.fftshift(x, 1)
    )


# -- values against NumPy -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs", "np_kwargs"),
    [
        ("fft", {"n": 7, "dim": 0, "norm": "ortho"}, {"n": 7, "axis": 0, "norm": "ortho"}),
        ("ifft", {"norm": "forward"}, {"norm": "forward"}),
        ("rfft", {"n": 4}, {"n": 4}),
        ("irfft", {"n": 9, "dim": 0}, {"n": 9, "axis": 0}),
        ("hfft", {"n": 5}, {"n": 5}),
        ("ihfft", {"dim": 0, "norm": "ortho"}, {"axis": 0, "norm": "ortho"}),
        ("fftn", {"s": (3, 8)}, {"s": (3, 8), "axes": (-2, -1)}),
        ("ifft2", {}, {}),
        ("rfftn", {"dim": (1, 0)}, {"axes": (1, 0)}),
        ("irfftn", {"s": (4, 7)}, {"s": (4, 7), "axes": (-2, -1)}),
        ("rfft2", {"norm": "forward"}, {"norm": "forward"}),
        ("irfft2", {"s": (3, 5), "dim": (1, 0)}, {"s": (3, 5), "axes": (1, 0)}),
    ],
)
def test_values_equal_numpy(name, kwargs, np_kwargs):
    real = name in ("rfft", "ihfft", "rfftn", "rfft2")
    a = randn(4, 6) if real else crandn(4, 6)
    got = getattr(F, name)(mg.tensor(a), **kwargs).numpy()
    expected = getattr(np.fft, name)(a, **np_kwargs)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_frequencies():
    for n in (1, 4, 7):
        for d in (1.0, 0.25):
            np.testing.assert_array_equal(F.fftfreq(n, d).numpy(), np.fft.fftfreq(n, d))
            np.testing.assert_array_equal(F.rfftfreq(n, d).numpy(), np.fft.rfftfreq(n, d))
    np.testing.assert_allclose(F.fftfreq(5).numpy(), [0, 0.2, 0.4, -0.4, -0.2])
    np.testing.assert_allclose(F.rfftfreq(4, 0.5).numpy(), [0, 0.5, 1.0])
    assert F.fftfreq(4).dtype == mg.get_default_dtype()
    assert F.fftfreq(4, dtype=mg.float32).dtype == np.float32
    assert F.fftfreq(0).shape == (0,)
    assert F.fftfreq(3, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError, match="fftfreq: n must be a non-negative int"):
        F.fftfreq(-1)
    with pytest.raises(RuntimeError, match="rfftfreq: n must be a positive int"):
        F.rfftfreq(0)  # no bins of no signal (torch gives [nan])


# -- graphs, dtypes, batching -------------------------------------------------------------------
def test_graphs_show_the_rows_and_what_is_around_them():
    z, x = leaf(crandn(2, 4)), leaf(randn(2, 4))
    assert nodes(F.fft(z)) == {"FftC2cBackward0"}
    assert nodes(F.fft(x)) == {"FftR2cBackward0"}  # two-sided, as PyTorch's fft of a real x
    assert nodes(F.ifft(x)) == {"FftR2cBackward0", "ConjBackward0"}
    assert nodes(F.rfft(x, n=10)) == {"FftR2cBackward0", "PadBackward0"}
    assert nodes(F.irfft(z)) == {"FftC2rBackward0"}
    assert nodes(F.irfft(x)) == {"FftC2rBackward0", "ToDtypeBackward0"}
    assert nodes(F.hfft(z, n=3)) == {"FftC2rBackward0", "ConjBackward0", "PadBackward0"}
    assert nodes(F.hfftn(z)) == {"FftC2rBackward0", "ConjBackward0", "FftC2cBackward0"}
    assert nodes(F.ihfftn(x)) == {"FftR2cBackward0", "ConjBackward0", "FftC2cBackward0"}
    y = F.rfftn(x, dim=(1, 0), norm="ortho")
    assert y.grad_fn._saved_dim == (-1, -2)  # the caller's order: the last one is halved
    assert y.grad_fn._saved_normalization == "by_root_n" and y.grad_fn._saved_onesided


def test_single_precision_stays_single():
    x = leaf(randn(2, 6).astype(np.float32))
    y = F.rfft(x)
    assert y.dtype == np.complex64
    back = F.irfft(y)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back.detach().numpy(), x.detach().numpy(), atol=1e-6)
    (g,) = mg.autograd.grad((back * back).sum(), [x])
    assert g.dtype == np.float32
    np.testing.assert_allclose(g.numpy(), 2 * x.detach().numpy(), rtol=1e-5)
    z = leaf(crandn(3).astype(np.complex64))
    assert F.fft(z).dtype == np.complex64 and F.hfft(z).dtype == np.float32
    assert F.fft(mg.tensor([1, 2, 3])).dtype == np.complex128  # integers: the default float


def test_vmap_and_vectorized_jacobians_need_no_loop():
    from matgrad.func import jacrev, vmap
    from matgrad.ops.batching import VmapFallbackWarning

    z = crandn(4, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VmapFallbackWarning)
        out = vmap(lambda v: F.irfft(F.fft(v)[..., :4], n=6, norm="ortho"))(mg.tensor(z))
        x = mg.tensor(randn(5))
        J = jacrev(lambda v: mg.view_as_real(F.rfft(v)))(x)
    expected = np.fft.irfft(np.fft.fft(z)[:, :4], n=6, norm="ortho")
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    dft = np.fft.rfft(np.eye(5), axis=0)  # column j: rfft of the j-th unit vector
    np.testing.assert_allclose(J.numpy(), np.stack([dft.real, dft.imag], -1).transpose(0, 2, 1))


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: F.fft(mg.ones(4), norm="bad"), RuntimeError, 'Invalid normalization mode: "bad"'),
        (lambda: F.fft(mg.ones(4), n=0), RuntimeError, r"Invalid number of data points \(0\)"),
        (lambda: F.irfft(mg.ones(1)), RuntimeError, r"Invalid number of data points \(0\)"),
        (lambda: F.fft(mg.ones(4), n=2.5), TypeError, "must be an int"),
        (lambda: F.rfft(mg.ones(4) * 1j), RuntimeError, "rfft expects a real input"),
        (lambda: F.ihfft2(mg.ones(2, 2) * 1j), RuntimeError, "ihfft2 expects a real input"),
        (lambda: F.fftn(mg.ones(2, 2), dim=(0, -2)), RuntimeError, "FFT dims must be unique"),
        (lambda: F.fftn(mg.ones(2, 2), s=(2,), dim=(0, 1)), RuntimeError, "same length"),
        (lambda: F.fftn(mg.ones(2), s=(2, 2)), RuntimeError, "only has 1 dimensions"),
        (lambda: F.fft(mg.ones(2, 2), dim=2), IndexError, "out of range"),
        (lambda: F.fft(mg.tensor(1.0)), IndexError, "tensor has no dimensions"),
        (lambda: F.rfftn(mg.ones(2), dim=()), RuntimeError, "must transform at least one axis"),
        (lambda: F.fft(mg.ones(2, dtype=mg.float16)), RuntimeError, "Unsupported dtype float16"),
    ],
)
def test_bad_arguments_raise_like_torch(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_rows_check_their_own_arguments():
    P = mg.ops.registry.PRIMITIVES
    with pytest.raises(ValueError, match="fft_c2r: a real signal of last_dim_size=6 points"):
        P.fft_c2r(mg.ones(3, dtype=mg.complex128), dim=(-1,), last_dim_size=6)
    with pytest.raises(ValueError, match="normalization must be one of"):
        P.fft_c2c(mg.ones(3, dtype=mg.complex128), dim=(-1,), normalization="ortho")
    with pytest.raises(TypeError, match="fft_r2c: expects a real input"):
        P.fft_r2c(mg.ones(3, dtype=mg.complex128), dim=(-1,))


# -- the Array API extension ----------------------------------------------------------------------
def test_array_api_fft_records_the_same_rows():
    x = leaf(randn(3, 6))
    y = xp.fft.rfftn(x, s=(2, 8), axes=(1, 0), norm="ortho")
    expected = np.fft.rfftn(x.detach().numpy(), s=(2, 8), axes=(1, 0), norm="ortho")
    np.testing.assert_allclose(y.detach().numpy(), expected, atol=1e-12)
    assert nodes(y) == {"FftR2cBackward0", "PadBackward0"}
    assert nodes(xp.fft.irfft(y, n=5, axis=0)) >= {"FftC2rBackward0"}
    for fn, arrays in [
        (lambda a: xp.fft.fft(a, n=5, axis=0), [crandn(4, 2)]),
        (lambda a: xp.fft.ifftn(a, axes=(0,), norm="forward"), [crandn(3, 2)]),
        (lambda a: xp.fft.irfftn(a, s=(4, 4)), [crandn(3, 3)]),
        (lambda a: xp.fft.hfft(a, norm="ortho"), [crandn(4)]),
        (lambda a: xp.fft.ihfft(a), [randn(5)]),
        (lambda a: xp.fft.fftshift(a, axes=1), [randn(2, 3)]),
    ]:
        assert gradcheck(fn, [leaf(a) for a in arrays], check_forward_ad=True)
    freqs = xp.fft.fftfreq(6, d=0.5, dtype=xp.float32)
    assert freqs.dtype == xp.float32
    np.testing.assert_allclose(freqs.numpy(), np.fft.fftfreq(6, 0.5))
    P = inspect.Parameter
    params = inspect.signature(xp.fft.fftn).parameters.values()
    assert [p.kind for p in params] == [P.POSITIONAL_ONLY] + [P.KEYWORD_ONLY] * 3


# -- against PyTorch ------------------------------------------------------------------------------
torch = pytest.importorskip("torch")

# (name, keyword arguments, complex input?, input shape); the same call on both sides
TORCH_CASES = [
    ("fft", {"n": 6, "dim": 0, "norm": "ortho"}, True, (4, 3)),
    ("ifft", {"n": 3}, False, (2, 5)),
    ("rfft", {"norm": "forward"}, False, (3, 7)),
    ("irfft", {"n": 8, "dim": 0}, True, (4, 2)),
    ("irfft", {}, False, (3, 5)),
    ("hfft", {"n": 7, "norm": "ortho"}, True, (2, 4)),
    ("ihfft", {"dim": 0}, False, (6, 2)),
    ("fft2", {"s": (3, 5)}, True, (2, 4, 4)),
    ("ifftn", {"dim": (2, 0), "norm": "forward"}, False, (3, 2, 4)),
    ("rfftn", {"dim": (1, 0)}, False, (5, 4)),
    ("rfft2", {"s": (4, 3), "norm": "ortho"}, False, (2, 3, 5)),
    ("irfftn", {"s": (4, 5)}, True, (3, 3)),
    ("irfft2", {"dim": (1, 0)}, True, (4, 3)),
    ("hfftn", {"s": (3, 6), "norm": "forward"}, True, (2, 4)),
    ("hfft2", {}, True, (3, 3, 4)),
    ("ihfftn", {"s": (4, 5), "norm": "ortho"}, False, (3, 4)),
    ("ihfft2", {"dim": (0, 1)}, False, (4, 5)),
    ("fftshift", {"dim": (0, 1)}, True, (3, 4)),
    ("ifftshift", {}, False, (5,)),
]


def _cotangent(shape, is_complex, seed):
    g = np.random.default_rng(seed)
    c = g.standard_normal(shape)
    return c + 1j * g.standard_normal(shape) if is_complex else c


def _torch_numpy(t):
    return t.detach().resolve_conj().numpy()


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
@pytest.mark.parametrize(
    ("name", "kwargs", "cx", "shape"),
    [pytest.param(*c, id=f"{c[0]}-{i}") for i, c in enumerate(TORCH_CASES)],
)
def test_values_and_gradients_equal_torch(name, kwargs, cx, shape, single):
    a = crandn(*shape) if cx else randn(*shape)
    if single:
        a = a.astype(np.complex64 if cx else np.float32)
    tol = {"rtol": 1e-4, "atol": 1e-5} if single else {"rtol": 1e-10, "atol": 1e-12}
    m_in, t_in = leaf(a), torch.tensor(a, requires_grad=True)
    m_out = getattr(F, name)(m_in, **kwargs)
    t_out = getattr(torch.fft, name)(t_in, **kwargs)
    assert str(m_out.dtype) == str(t_out.dtype).removeprefix("torch.")
    assert tuple(m_out.shape) == tuple(t_out.shape)
    np.testing.assert_allclose(m_out.detach().numpy(), _torch_numpy(t_out), **tol)
    c = _cotangent(tuple(t_out.shape), t_out.is_complex(), len(name)).astype(
        _torch_numpy(t_out).dtype
    )
    (tg,) = torch.autograd.grad(t_out, [t_in], torch.tensor(c))
    (mg_,) = mg.autograd.grad(m_out, [m_in], mg.tensor(c))
    assert mg_.dtype == _torch_numpy(tg).dtype
    np.testing.assert_allclose(mg_.numpy(), _torch_numpy(tg), **tol)


@pytest.mark.parametrize(
    ("name", "kwargs", "cx", "shape"),
    [pytest.param(*c, id=f"{c[0]}-{i}") for i, c in enumerate(TORCH_CASES)],
)
def test_forward_mode_equals_torch(name, kwargs, cx, shape):
    from matgrad.autograd import forward_ad as mfw

    fw = torch.autograd.forward_ad
    a, da = (crandn(*shape), crandn(*shape)) if cx else (randn(*shape), randn(*shape))
    with fw.dual_level():
        t_out = fw.unpack_dual(
            getattr(torch.fft, name)(fw.make_dual(torch.tensor(a), torch.tensor(da)), **kwargs)
        )
    with mfw.dual_level():
        m_out = mfw.unpack_dual(
            getattr(F, name)(mfw.make_dual(mg.tensor(a), mg.tensor(da)), **kwargs)
        )
    np.testing.assert_allclose(
        m_out.tangent.numpy(), _torch_numpy(t_out.tangent), rtol=1e-10, atol=1e-12
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"]),
    length=st.integers(1, 9),
    n=st.one_of(st.none(), st.integers(1, 10)),
    norm=st.sampled_from([None, "backward", "forward", "ortho"]),
    dim=st.sampled_from([0, -1]),
    seed=st.integers(0, 2**16),
)
def test_random_1d_calls_equal_torch(name, length, n, norm, dim, seed):
    g = np.random.default_rng(seed)
    shape = (length, 2) if dim == 0 else (2, length)
    a = g.standard_normal(shape)
    if name in ("fft", "ifft", "irfft", "hfft"):
        a = a + 1j * g.standard_normal(shape)
    t_in = torch.tensor(a, requires_grad=True)
    m_in = leaf(a)
    try:
        t_out = getattr(torch.fft, name)(t_in, n=n, dim=dim, norm=norm)
    except RuntimeError:  # too few points (irfft of one bin): matgrad must refuse too
        with pytest.raises(RuntimeError, match="Invalid number of data points"):
            getattr(F, name)(m_in, n=n, dim=dim, norm=norm)
        return
    m_out = getattr(F, name)(m_in, n=n, dim=dim, norm=norm)
    np.testing.assert_allclose(m_out.detach().numpy(), _torch_numpy(t_out), rtol=1e-10, atol=1e-12)
    c = _cotangent(tuple(t_out.shape), t_out.is_complex(), seed)
    (tg,) = torch.autograd.grad(t_out, [t_in], torch.tensor(c))
    (mg_,) = mg.autograd.grad(m_out, [m_in], mg.tensor(c))
    np.testing.assert_allclose(mg_.numpy(), _torch_numpy(tg), rtol=1e-10, atol=1e-12)


def test_frequencies_equal_torch():
    for n in (1, 2, 5, 8):
        for d in (1.0, 0.1):
            np.testing.assert_allclose(
                F.fftfreq(n, d).numpy(), torch.fft.fftfreq(n, d, dtype=torch.float64).numpy()
            )
            np.testing.assert_allclose(
                F.rfftfreq(n, d).numpy(), torch.fft.rfftfreq(n, d, dtype=torch.float64).numpy()
            )
