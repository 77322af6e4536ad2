"""matgrad.special and the elementwise functions of the special-function rows: values and
derivatives against closed forms (DLMF / Abramowitz & Stegun), mpmath and PyTorch; the
derivatives PyTorch does not implement raise; errors, dtypes, methods and in-place forms.

The rows' VJP, JVP, second order and batching are checked against finite differences by the
generic table test (test_rules.py, samples in op_specs.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special

import matgrad as mg
from matgrad import special as sp
from matgrad.autograd import forward_ad as fw
from matgrad.autograd import gradcheck, gradgradcheck

rng = np.random.default_rng(11)


def leaf(x) -> mg.Tensor:
    return mg.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)


def d(fn, x, order: int = 1) -> np.ndarray:
    """The first (or second) derivative of an elementwise ``fn`` at the points ``x``."""
    t = leaf(x)
    (g,) = mg.autograd.grad(fn(t).sum(), t, create_graph=order > 1)
    if order == 2:
        (g,) = mg.autograd.grad(g.sum(), t)
    return g.detach().numpy()


# -- closed forms --------------------------------------------------------------------------------
EULER = 0.5772156649015329
ZETA3 = 1.2020569031595942


def test_gamma_family_at_known_points():
    # psi(1) = -gamma, psi'(1) = pi^2/6, psi''(1) = -2 zeta(3) (DLMF 5.4.12, 5.15.2)
    np.testing.assert_allclose(d(mg.lgamma, [1.0]), [-EULER], rtol=1e-14)
    np.testing.assert_allclose(d(mg.lgamma, [1.0], 2), [math.pi**2 / 6], rtol=1e-14)
    np.testing.assert_allclose(d(mg.digamma, [1.0]), [math.pi**2 / 6], rtol=1e-14)
    np.testing.assert_allclose(d(lambda x: mg.polygamma(1, x), [1.0]), [-2 * ZETA3], rtol=1e-13)
    np.testing.assert_allclose(d(mg.digamma, [1.0], 2), [-2 * ZETA3], rtol=1e-13)
    # psi(1/2) = -gamma - 2 ln 2 (DLMF 5.4.13): the gradient of lgamma at 1/2
    np.testing.assert_allclose(d(sp.gammaln, [0.5]), [-EULER - 2 * math.log(2)], rtol=1e-14)
    # log Gamma_2(x) = log(pi)/2 + lgamma(x) + lgamma(x - 1/2) (DLMF 35.3.4)
    x = np.array([1.2, 2.5, 4.0])
    np.testing.assert_allclose(
        mg.mvlgamma(mg.tensor(x), 2).numpy(),
        math.log(math.pi) / 2 + scipy.special.gammaln(x) + scipy.special.gammaln(x - 0.5),
        rtol=1e-14,
    )
    np.testing.assert_allclose(
        d(lambda t: sp.multigammaln(t, 2), x),
        scipy.special.psi(x) + scipy.special.psi(x - 0.5),
        rtol=1e-14,
    )


def test_error_function_family():
    x = np.array([-1.5, -0.2, 0.0, 0.7, 2.5])
    gauss = 2 / math.sqrt(math.pi) * np.exp(-(x**2))
    np.testing.assert_allclose(d(mg.erfc, x), -gauss, rtol=1e-14)
    # erfcx(x) = exp(x^2) erfc(x): d = 2x erfcx(x) - 2/sqrt(pi)
    np.testing.assert_allclose(
        d(sp.erfcx, x), 2 * x * scipy.special.erfcx(x) - 2 / math.sqrt(math.pi), rtol=1e-13
    )
    # erfinv is the inverse of erf: its derivative at erf(y) is 1 / erf'(y)
    y = np.array([-1.2, 0.1, 0.9])
    np.testing.assert_allclose(
        d(mg.erfinv, scipy.special.erf(y)), 1 / (2 / math.sqrt(math.pi) * np.exp(-(y**2))),
        rtol=1e-12,
    )  # fmt: skip
    # ndtri is the inverse of ndtr, whose derivative is the normal density
    pdf = np.exp(-(y**2) / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(d(sp.ndtri, scipy.special.ndtr(y)), 1 / pdf, rtol=1e-12)
    np.testing.assert_allclose(d(sp.ndtr, y), pdf, rtol=1e-14)
    np.testing.assert_allclose(d(sp.log_ndtr, y), pdf / scipy.special.ndtr(y), rtol=1e-13)


def test_normal_tails_keep_their_precision():
    # ndtr goes through erfc: relative precision in the left tail (1 + erf(x/sqrt2) gives 0)
    x = np.array([-30.0, -12.0, -5.0])
    np.testing.assert_allclose(sp.ndtr(mg.tensor(x)).numpy(), scipy.special.ndtr(x), rtol=1e-12)
    # d log ndtr = phi / Phi ~ -x - 1/x for x -> -inf (Mills' ratio, A&S 26.2.12), finite
    g = d(sp.log_ndtr, x)
    np.testing.assert_allclose(g, -x - 1 / x + 2 / x**3, rtol=3e-3)
    assert d(sp.log_ndtr, [-1e3])[0] == pytest.approx(1e3, rel=1e-5)
    assert d(sp.log_ndtr, [40.0])[0] == pytest.approx(0.0, abs=1e-300)


def test_bessel_functions():
    x = np.array([-2.5, -0.3, 0.0, 0.8, 4.0])
    i0, i1 = scipy.special.i0(x), scipy.special.i1(x)
    np.testing.assert_allclose(d(mg.i0, x), i1, rtol=1e-14)  # A&S 9.6.27
    # I1' = I0 - I1/x (A&S 9.6.26) = (I0 + I2)/2 (DLMF 10.29.1), 1/2 at 0
    np.testing.assert_allclose(d(sp.i1, x), (i0 + scipy.special.iv(2, x)) / 2, rtol=1e-13)
    # the exponentially scaled ones: d[e^-|x| I(x)] = e^-|x| (I'(x) - sign(x) I(x))
    scale = np.exp(-np.abs(x))
    np.testing.assert_allclose(d(sp.i0e, x), scale * (i1 - np.sign(x) * i0), rtol=1e-13)
    di1 = (i0 + scipy.special.iv(2, x)) / 2
    np.testing.assert_allclose(d(sp.i1e, x), scale * (di1 - np.sign(x) * i1), rtol=1e-13)
    # J0' = -J1, J1' = (J0 - J2)/2 (DLMF 10.6.1, 10.6.3): 1/2 at 0; J1''(0) = 0
    j = [scipy.special.jv(k, x) for k in range(3)]
    np.testing.assert_allclose(d(sp.bessel_j0, x), -j[1], rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(d(sp.bessel_j1, x), (j[0] - j[2]) / 2, rtol=1e-12, atol=1e-15)
    assert d(sp.bessel_j1, [0.0], 2)[0] == 0.0 and d(sp.i1, [0.0], 2)[0] == 0.0


def test_bessel_j0_agrees_with_mpmath_where_torch_is_off():
    # torch.special.bessel_j0 is off by 5.6e-6 (relative) here, near its zero at 5.52
    mpmath = pytest.importorskip("mpmath")
    x = -5.4215280659972755
    assert sp.bessel_j0(mg.tensor([x])).item() == pytest.approx(
        float(mpmath.besselj(0, x)), rel=1e-13
    )


def test_sinc_and_its_derivatives_at_zero():
    x = np.array([-1.5, -0.25, 0.0, 0.5, 2.0])
    px = np.pi * x
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(x == 0, 0.0, (np.cos(px) - np.sinc(x)) / x)
    np.testing.assert_allclose(d(mg.sinc, x), expected, rtol=1e-13, atol=1e-16)
    # sinc(x) = 1 - (pi x)^2/6 + ...: sinc''(0) = -pi^2/3
    assert d(mg.sinc, [0.0], 2)[0] == pytest.approx(-(math.pi**2) / 3, rel=1e-14)
    assert gradgradcheck(mg.sinc, [leaf([0.0, 1e-3, -0.4])])


def test_zeta_in_q_and_its_values():
    # zeta(2, 1) = pi^2/6 (DLMF 25.6.1); d/dq zeta(s, q) = -s zeta(s + 1, q) (DLMF 25.11.17)
    q = leaf([1.0, 2.5])
    z = sp.zeta(2.0, q)
    np.testing.assert_allclose(z.detach().numpy()[0], math.pi**2 / 6, rtol=1e-14)
    (g,) = mg.autograd.grad(z.sum(), q)
    np.testing.assert_allclose(g.numpy(), -2 * scipy.special.zeta(3, [1.0, 2.5]), rtol=1e-13)
    assert g.numpy()[0] == pytest.approx(-2 * ZETA3, rel=1e-13)
    assert gradcheck(lambda t: sp.zeta(mg.tensor([2.0, 3.5]), t), [q], check_forward_ad=True)


@pytest.mark.parametrize(
    ("fn", "op"),
    [
        (lambda s, q: sp.zeta(s, q), "special_zeta"),
        (lambda s, q: sp.gammainc(s, q), "igamma"),
        (lambda s, q: mg.igammac(s, q), "igammac"),
        (lambda s, q: mg.heaviside(s, q), "heaviside"),
    ],
    ids=["zeta", "gammainc", "gammaincc", "heaviside"],
)
def test_derivatives_pytorch_does_not_have_raise(fn, op):
    """zeta in s, gammainc/gammaincc in a, heaviside in x: no derivative (PyTorch's "the
    derivative for 'zeta' is not implemented"), raised in both modes instead of a zero."""
    s, q = leaf([2.0, 3.0]), mg.tensor([1.5, 2.0])
    with pytest.raises(NotImplementedError, match=f"derivative for '{op}' with respect to 'self'"):
        fn(s, q).sum().backward()
    with fw.dual_level():
        dual = fw.make_dual(mg.tensor([2.0, 3.0]), mg.ones(2))
        with pytest.raises(NotImplementedError, match=op):
            fn(dual, q)
    # the other input is differentiable, and the first one as a constant is fine
    q = leaf([1.5, 2.0])
    fn(mg.tensor([2.0, 3.0]), q).sum().backward()
    assert q.grad is not None and np.all(np.isfinite(q.grad.numpy()))


def test_heaviside_values_and_its_derivative_in_values():
    x, v = mg.tensor([-2.0, 0.0, 3.0, np.nan]), leaf([0.5, 0.25, 0.75, 0.1])
    out = mg.heaviside(x, v)
    np.testing.assert_array_equal(out.detach().numpy(), [0.0, 0.25, 1.0, np.nan])
    (g,) = mg.autograd.grad(out.sum(), v)
    np.testing.assert_array_equal(g.numpy(), [0.0, 1.0, 0.0, 0.0])


def test_incomplete_gamma_in_x():
    # d/dx P(a, x) = x^(a-1) e^-x / Gamma(a) (DLMF 8.8.13)
    a, x = 2.5, np.array([0.3, 1.0, 4.0])
    expected = x ** (a - 1) * np.exp(-x) / math.gamma(a)
    np.testing.assert_allclose(d(lambda t: sp.gammainc(a, t), x), expected, rtol=1e-13)
    np.testing.assert_allclose(d(lambda t: sp.gammaincc(a, t), x), -expected, rtol=1e-13)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # 0 / 0 in d/dy at (0, 0)
def test_xlogy_and_xlog1py_at_zero():
    """x log y is 0 at x = 0; its derivative in x there is log y where that is a number and
    0 where y <= 0 (PyTorch's rule); in y it is x / y."""
    x, y = leaf([0.0, 0.0, 0.0, 2.0]), leaf([0.0, -1.0, 3.0, 0.5])
    out = mg.xlogy(x, y)
    np.testing.assert_array_equal(out.detach().numpy(), [0.0, 0.0, 0.0, 2 * math.log(0.5)])
    gx, gy = mg.autograd.grad(out.sum(), [x, y])
    np.testing.assert_allclose(gx.numpy(), [0.0, 0.0, math.log(3.0), math.log(0.5)], rtol=1e-15)
    np.testing.assert_allclose(gy.numpy()[1:], [0.0, 0.0, 4.0])
    x, y = leaf([0.0, 0.0, 1.5]), leaf([-1.0, 2.0, 0.5])
    gx, gy = mg.autograd.grad(sp.xlog1py(x, y).sum(), [x, y])
    np.testing.assert_allclose(gx.numpy(), [0.0, math.log(3.0), math.log(1.5)], rtol=1e-15)
    np.testing.assert_allclose(gy.numpy()[1:], [0.0, 1.0])
    # entr(x) = -x log x: 0 at 0, -inf below; d = -(1 + log x)
    np.testing.assert_array_equal(sp.entr(mg.tensor([0.0, -1.0])).numpy(), [0.0, -np.inf])
    np.testing.assert_allclose(d(sp.entr, [0.5, 2.0]), -(1 + np.log([0.5, 2.0])), rtol=1e-15)


def test_logit_with_eps_clamps_and_stops_the_gradient():
    x = np.array([0.05, 0.3, 0.5, 0.97])
    np.testing.assert_allclose(
        mg.logit(mg.tensor(x), eps=0.1).numpy(), scipy.special.logit(np.clip(x, 0.1, 0.9))
    )
    np.testing.assert_allclose(
        d(lambda t: t.logit(0.1), x), np.where((x < 0.1) | (x > 0.9), 0.0, 1 / (x * (1 - x)))
    )
    np.testing.assert_allclose(d(mg.logit, x), 1 / (x * (1 - x)), rtol=1e-14)


def test_piecewise_constant_functions_have_zero_gradient():
    x = leaf([-1.5, -0.5, 0.5, 1.5, 2.5])
    for fn in (mg.floor, mg.ceil, mg.trunc, mg.fix, mg.round, lambda t: t.round(decimals=1)):
        out = fn(x)
        assert out.requires_grad and out.grad_fn is not None
        (g,) = mg.autograd.grad(out.sum(), x)
        np.testing.assert_array_equal(g.numpy(), np.zeros(5))
    # round half to even, as PyTorch and NumPy
    np.testing.assert_array_equal(mg.round(x).detach().numpy(), [-2.0, -0.0, 0.0, 2.0, 2.0])
    np.testing.assert_array_equal(mg.frac(x).detach().numpy(), [-0.5, -0.5, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(d(mg.frac, [0.3, -2.7]), [1.0, 1.0])
    # integer tensors keep their dtype
    assert mg.floor(mg.tensor([1, 2])).dtype == np.int64


def test_fmod_gradient_in_the_divisor():
    # fmod(x, y) = x - y trunc(x / y): d/dy = -trunc(x / y)
    x, y = leaf([5.3, -5.3, 0.4]), leaf([2.0, 2.0, -0.3])
    out = mg.fmod(x, y)
    np.testing.assert_allclose(out.detach().numpy(), np.fmod([5.3, -5.3, 0.4], [2.0, 2.0, -0.3]))
    gx, gy = mg.autograd.grad(out.sum(), [x, y])
    np.testing.assert_array_equal(gx.numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(gy.numpy(), [-2.0, 2.0, 1.0])


def test_nextafter_moves_one_ulp_and_passes_the_gradient_as_pytorch():
    x, y = leaf([1.0, 1.0, 2.0]), leaf([2.0, 0.0, 2.0])
    out = mg.nextafter(x, y)
    np.testing.assert_array_equal(out.detach().numpy(), np.nextafter([1.0, 1.0, 2.0], [2, 0, 2]))
    gx, gy = mg.autograd.grad(out.sum(), [x, y])
    np.testing.assert_array_equal(gx.numpy(), [1.0, 1.0, 0.0])  # 0 where x == y
    np.testing.assert_array_equal(gy.numpy(), [0.0, 0.0, 0.0])


def test_rsqrt_and_exp2():
    x = np.array([0.25, 1.0, 9.0])
    np.testing.assert_allclose(mg.rsqrt(mg.tensor(x)).numpy(), [2.0, 1.0, 1 / 3], rtol=1e-15)
    np.testing.assert_allclose(d(mg.rsqrt, x), -0.5 * x**-1.5, rtol=1e-15)
    assert mg.exp2(mg.tensor([3.0, -1.0])).tolist() == [8.0, 0.5]  # exact at integers
    np.testing.assert_allclose(d(mg.exp2, [3.0]), [8 * math.log(2)], rtol=1e-15)


# -- errors ------------------------------------------------------------------------------------
def test_domain_and_argument_errors_name_the_op():
    with pytest.raises(
        RuntimeError, match=r"mvlgamma: all elements must be greater than \(p-1\)/2"
    ):
        mg.mvlgamma(mg.tensor([0.5, 2.0]), 3)
    with pytest.raises(RuntimeError, match="mvlgamma: p has to be an integer >= 1"):
        mg.mvlgamma(mg.tensor([2.0]), 0)
    with pytest.raises(RuntimeError, match="does not support negative n"):
        mg.polygamma(-1, mg.tensor([0.5]))
    with pytest.raises(TypeError, match="polygamma: n must be an integer"):
        mg.polygamma(1.5, mg.tensor([0.5]))
    for fn in (mg.erfc, mg.lgamma, sp.i0e, sp.erfcx, mg.floor):
        with pytest.raises(NotImplementedError, match="not supported for complex"):
            fn(mg.tensor([1.0 + 1.0j]))
    with pytest.raises(RuntimeError, match="different dtypes"):
        mg.heaviside(mg.tensor([1.0]), mg.tensor([1], dtype=mg.int64))


# -- dtypes, methods, in-place, namespaces -------------------------------------------------------
def test_float32_stays_float32():
    x = mg.tensor([0.5, 1.5], dtype=mg.float32, requires_grad=True)
    outs = [
        mg.polygamma(2, x), mg.mvlgamma(x + 1, 2), mg.xlogy(2.0, x),
        sp.xlog1py(x, 0.5), sp.zeta(2.0, x), sp.gammainc(1.5, x), mg.round(x, decimals=1),
        sp.ndtr(x), mg.erfinv(x * 0.5),
    ]  # fmt: skip
    for out in outs:
        assert out.dtype == np.float32, out.grad_fn
        (g,) = mg.autograd.grad(out.sum(), x)
        assert g.dtype == np.float32


def test_methods_and_inplace_forms():
    x = mg.tensor([0.3, 1.7])
    assert np.array_equal(x.polygamma(2).numpy(), mg.polygamma(2, x).numpy())
    for name in ("erfc", "erfinv", "lgamma", "digamma", "i0", "sinc", "logit", "rsqrt", "exp2",
                 "frac", "floor", "ceil", "round", "trunc", "fix"):  # fmt: skip
        y = mg.tensor([0.3, 0.7])
        expected = getattr(mg, name)(y).numpy()
        assert getattr(y, name)().numpy().tolist() == expected.tolist(), name
        assert getattr(y, name + "_")() is y and y.numpy().tolist() == expected.tolist(), name
    y = mg.tensor([2.0, 3.0])
    y.mvlgamma_(2)
    np.testing.assert_allclose(y.numpy(), scipy.special.multigammaln(np.array([2.0, 3.0]), 2))
    # in place on a tensor of the graph: recorded, the gradient goes through it
    w = leaf([0.5, 1.5])
    z = w * 1.0
    z.lgamma_()
    z.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), scipy.special.psi([0.5, 1.5]), rtol=1e-14)


def test_special_namespace():
    import matgrad.special as imported

    assert imported is mg.special
    assert sp.expit(mg.tensor([0.0])).item() == 0.5
    assert sp.psi is sp.digamma and sp.multigammaln(mg.tensor([3.0]), 1).item() == pytest.approx(
        math.log(2.0)
    )
    # special.softmax and friends take dim (and dtype) as torch.special's
    x = mg.tensor([[1.0, 2.0, 3.0]], dtype=mg.float32)
    out = sp.softmax(x, 1, dtype=mg.float64)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), scipy.special.softmax([[1.0, 2.0, 3.0]], axis=1))
    np.testing.assert_allclose(
        sp.log_softmax(x, -1).numpy(), scipy.special.log_softmax([[1.0, 2.0, 3.0]], axis=1),
        rtol=1e-6,
    )  # fmt: skip
    assert sp.logsumexp(x, 1).item() == pytest.approx(scipy.special.logsumexp([1.0, 2, 3]))
    np.testing.assert_array_equal(sp.round(mg.tensor([0.15, 2.5]), decimals=1).numpy(), [0.2, 2.5])


# -- against PyTorch -----------------------------------------------------------------------------
torch_cases = [
    # (matgrad function, torch function name, domain)
    ("erfc", "erfc", (-2, 2)),
    ("erfinv", "erfinv", (-0.9, 0.9)),
    ("lgamma", "lgamma", (0.2, 4)),
    ("digamma", "digamma", (0.2, 4)),
    ("i0", "i0", (-3, 3)),
    ("sinc", "sinc", (-2, 2)),
    ("logit", "logit", (0.05, 0.95)),
    ("rsqrt", "rsqrt", (0.2, 3)),
    ("exp2", "exp2", (-2, 2)),
    ("special.erfcx", "special.erfcx", (-1, 3)),
    ("special.ndtri", "special.ndtri", (0.05, 0.95)),
    ("special.ndtr", "special.ndtr", (-3, 3)),
    ("special.log_ndtr", "special.log_ndtr", (-6, 3)),
    ("special.i0e", "special.i0e", (-3, 3)),
    ("special.i1", "special.i1", (-3, 3)),
    ("special.i1e", "special.i1e", (-3, 3)),
    ("special.entr", "special.entr", (0.1, 3)),
    ("special.gammaln", "special.gammaln", (0.2, 4)),
    ("special.psi", "special.psi", (0.2, 4)),
    ("special.expit", "special.expit", (-3, 3)),
]


def _resolve(root, name):
    for part in name.split("."):
        root = getattr(root, part)
    return root


@pytest.mark.parametrize(
    ("name", "torch_name", "domain"), torch_cases, ids=[c[0] for c in torch_cases]
)
def test_values_and_two_derivatives_agree_with_torch(name, torch_name, domain):
    torch = pytest.importorskip("torch")
    x = rng.uniform(*domain, 7)
    xt = torch.tensor(x, requires_grad=True)
    (gt,) = torch.autograd.grad(_resolve(torch, torch_name)(xt).sum(), xt, create_graph=True)
    (ggt,) = torch.autograd.grad(gt.sum(), xt)
    fn = _resolve(mg, name)
    np.testing.assert_allclose(
        fn(mg.tensor(x)).numpy(), _resolve(torch, torch_name)(torch.tensor(x)).numpy(), rtol=1e-9
    )
    np.testing.assert_allclose(d(fn, x), gt.detach().numpy(), rtol=1e-9)
    np.testing.assert_allclose(d(fn, x, 2), ggt.numpy(), rtol=1e-7, atol=1e-12)


def test_two_argument_functions_agree_with_torch():
    torch = pytest.importorskip("torch")
    x, y = rng.uniform(-2, 2, (3, 4)), rng.uniform(0.2, 3, 4)
    cases = [
        (mg.xlogy, torch.xlogy, x, y),
        (sp.xlog1py, torch.special.xlog1py, x, y - 0.1),
        (mg.fmod, torch.fmod, x, y),
        (sp.zeta, torch.special.zeta, y + 1.5, y),
        (mg.igammac, torch.igammac, y, np.abs(x) + 0.1),
        (mg.nextafter, torch.nextafter, x, y),
    ]
    for fn, tfn, a, b in cases:
        first = fn not in (sp.zeta, mg.igammac)  # those have no derivative in the first input
        ta, tb = torch.tensor(a, requires_grad=first), torch.tensor(b, requires_grad=True)
        ma, mb = mg.tensor(a, requires_grad=first), leaf(b)
        tout, mout = tfn(ta, tb), fn(ma, mb)
        np.testing.assert_allclose(mout.detach().numpy(), tout.detach().numpy(), rtol=1e-10)
        cot = rng.standard_normal(tout.shape)
        tg = torch.autograd.grad(tout, [ta, tb] if first else [tb], torch.tensor(cot))
        mgr = mg.autograd.grad(mout, [ma, mb] if first else [mb], mg.tensor(cot))
        for g1, g2 in zip(mgr, tg, strict=True):
            np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-9, atol=1e-12)
    for n in range(4):
        xt = torch.tensor(y, requires_grad=True)
        (gt,) = torch.autograd.grad(torch.polygamma(n, xt).sum(), xt)
        np.testing.assert_allclose(d(lambda t, n=n: mg.polygamma(n, t), y), gt.numpy(), rtol=1e-7)
    for decimals in (-1, 0, 2):
        v = rng.uniform(-300, 300, 50)
        np.testing.assert_array_equal(
            mg.round(mg.tensor(v), decimals=decimals).numpy(),
            torch.round(torch.tensor(v), decimals=decimals).numpy(),
        )
        v32 = v.astype(np.float32)
        np.testing.assert_array_equal(
            mg.round(mg.tensor(v32), decimals=decimals).numpy(),
            torch.round(torch.tensor(v32), decimals=decimals).numpy(),
        )
