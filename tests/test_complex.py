"""Complex autograd with PyTorch's convention (issue #11).

The gradient of a real loss L at z = x + iy is dL/dx + i dL/dy. Checked three ways: closed
forms; ``gradcheck`` on complex inputs, which perturbs the real and imaginary part of every
element and compares the real Jacobian of the map (reverse and forward mode, and second order
through ``gradgradcheck``); and PyTorch's gradients for the same inputs and cotangents.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matgrad as mg
from matgrad import linalg as la
from matgrad.autograd import Function, GradcheckError, gradcheck, gradgradcheck

rng = np.random.default_rng(11)


def crandn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def leaf(a: np.ndarray) -> mg.Tensor:
    return mg.tensor(a, requires_grad=True)


def herm(z: mg.Tensor) -> mg.Tensor:
    return (z + z.mH) * 0.5


def _svd_polar(a):
    U, S, Vh = la.svd(a, full_matrices=False)
    return S, U @ Vh  # U Vh does not depend on the phases of the singular vectors


def _svd_full_projector(a):
    U, S, Vh = la.svd(a, full_matrices=True)
    k = S.shape[-1]
    return S, U[..., k:] @ U[..., k:].mH, (U[..., :k] * S.unsqueeze(-2)) @ Vh[..., :k, :]


def _eigh_projector(a):
    L, Q = la.eigh(herm(a))
    return L, Q[..., :1] @ Q[..., :1].mH


def _eig_invariants(a):
    L, V = la.eig(a)
    phase = V[..., :1, :].conj() / V[..., :1, :].abs()  # makes each column's first entry real
    return L, V * phase


_A = crandn(3, 3) + 3 * np.eye(3)
# (name, function, complex input arrays, also check second order)
CASES = [
    ("exp", mg.exp, [crandn(3)], True),
    ("log", mg.log, [crandn(3)], True),
    ("sqrt", mg.sqrt, [crandn(2, 2)], True),
    ("sin", mg.sin, [crandn(3)], True),
    ("cos", mg.cos, [crandn(3)], False),
    ("tan", mg.tan, [0.5 * crandn(3)], False),
    ("tanh", mg.tanh, [0.5 * crandn(3)], True),
    ("sigmoid", mg.sigmoid, [0.5 * crandn(3)], False),
    ("asin", mg.asin, [0.4 * crandn(3)], False),
    ("acos", mg.acos, [0.4 * crandn(3)], False),
    ("atan", mg.atan, [0.4 * crandn(3)], False),
    ("sinh", mg.sinh, [crandn(3)], False),
    ("cosh", mg.cosh, [crandn(3)], False),
    ("asinh", mg.asinh, [0.4 * crandn(3)], False),
    ("acosh", mg.acosh, [crandn(4)], False),
    ("atanh", mg.atanh, [0.4 * crandn(3)], False),
    ("log2", mg.log2, [crandn(3)], False),
    ("log10", mg.log10, [crandn(3)], False),
    ("log1p", mg.log1p, [crandn(3)], False),
    ("expm1", mg.expm1, [crandn(3)], False),
    ("square", mg.square, [crandn(3)], False),
    ("reciprocal", mg.reciprocal, [crandn(3)], True),
    ("abs", mg.abs, [crandn(2, 3)], True),
    ("angle", mg.angle, [crandn(2, 3)], True),
    ("real", mg.real, [crandn(3)], False),
    ("imag", mg.imag, [crandn(3)], False),
    ("conj", mg.conj, [crandn(3)], False),
    ("sgn", mg.sgn, [crandn(3)], False),
    ("view_as_real", mg.view_as_real, [crandn(3, 2)], False),
    ("mul", lambda a, b: a * b, [crandn(3, 2), crandn(2)], True),
    ("div", lambda a, b: a / b, [crandn(3, 2), crandn(2)], True),
    ("pow", lambda a, b: a**b, [crandn(3), crandn(3)], False),
    ("pow scalar", lambda a: a**2.5, [crandn(3)], False),
    ("sum", lambda a: a.sum(0), [crandn(3, 2)], False),
    ("mean", lambda a: a.mean(), [crandn(3, 2)], False),
    ("prod", lambda a: a.prod(1), [crandn(2, 3)], True),
    ("cumprod", lambda a: mg.cumprod(a, 0), [crandn(3, 2)], False),
    ("matmul", lambda a, b: a @ b, [crandn(2, 3, 2), crandn(2, 4)], True),
    ("mv", lambda a, b: a @ b, [crandn(3, 2), crandn(2)], False),
    ("dot", mg.dot, [crandn(3), crandn(3)], False),
    ("vdot", mg.vdot, [crandn(3), crandn(3)], False),
    ("outer", mg.outer, [crandn(3), crandn(2)], False),
    ("einsum", lambda a, b: mg.einsum("ij,jk->ik", a, b), [crandn(2, 3), crandn(3, 2)], False),
    ("inv", la.inv, [_A], True),
    ("det", la.det, [_A], True),
    ("slogdet", lambda a: tuple(la.slogdet(a)), [_A], True),
    ("logdet", la.logdet, [_A], False),
    ("solve", la.solve, [_A, crandn(3, 2)], True),
    (
        "solve_triangular",
        lambda a, b: la.solve_triangular(a, b, upper=False),
        [_A, crandn(3)[:, None]],
        False,
    ),
    ("cholesky", lambda a: la.cholesky(herm(a) @ herm(a).mH + mg.eye(3)), [crandn(3, 3)], False),
    ("eigh", _eigh_projector, [crandn(3, 3)], True),
    ("eigvalsh", lambda a: la.eigvalsh(herm(a)), [crandn(2, 3, 3)], False),
    ("svd", _svd_polar, [crandn(3, 2)], True),
    ("svd full_matrices", _svd_full_projector, [crandn(4, 2)], False),
    ("svdvals", la.svdvals, [crandn(2, 3)], False),
    ("eig", _eig_invariants, [crandn(3, 3)], True),
    ("eigvals", la.eigvals, [crandn(3, 3)], False),
    ("pinv", la.pinv, [crandn(3, 2)], False),
    ("matrix_exp", la.matrix_exp, [0.5 * crandn(3, 3)], False),
    ("vector_norm", lambda x: la.vector_norm(x, dim=-1), [crandn(2, 3)], True),
    ("vector_norm ord 3", lambda x: la.vector_norm(x, 3), [crandn(3)], False),
    ("matrix_norm nuc", lambda x: la.matrix_norm(x, "nuc"), [crandn(3, 2)], False),
    ("vecdot", lambda x, y: la.vecdot(x, y), [crandn(2, 3), crandn(3)], False),
]


@pytest.mark.parametrize(
    ("fn", "arrays", "second"), [pytest.param(f, a, s, id=n) for n, f, a, s in CASES]
)
def test_complex_inputs_match_finite_differences(fn, arrays, second):
    inputs = [leaf(a) for a in arrays]
    assert gradcheck(fn, inputs, check_forward_ad=True)
    if second:
        assert gradgradcheck(fn, inputs)


def test_gradcheck_perturbs_the_imaginary_part_too():
    class WrongConj(Function):  # the holomorphic derivative without the conjugate
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return z * z

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            return g * 2 * z  # PyTorch's convention needs g * conj(2 z)

    z = leaf(crandn(3))
    with pytest.raises(GradcheckError, match="backward"):
        gradcheck(WrongConj.apply, [z])
    # on the real line 2z is real, so the same rule is right there
    assert gradcheck(WrongConj.apply, [leaf(rng.standard_normal(3) + 0j)])


def test_closed_forms():
    z = leaf(np.array([3 + 4j, -1 + 0.5j, 0j]))
    (g,) = mg.autograd.grad((z * z.conj()).real.sum(), [z])  # |z|^2: 2z
    np.testing.assert_allclose(g.numpy(), 2 * z.detach().numpy())
    (g,) = mg.autograd.grad(z.abs().sum(), [z])  # z / |z|, 0 at 0
    np.testing.assert_allclose(g.numpy(), [0.6 + 0.8j, (-1 + 0.5j) / abs(-1 + 0.5j), 0])
    (g,) = mg.autograd.grad(z.angle().sum(), [z])  # i z / |z|^2, 0 at 0
    np.testing.assert_allclose(g.numpy()[:2], 1j * z.detach().numpy()[:2] / [25, 1.25])
    assert g.numpy()[2] == 0
    (g,) = mg.autograd.grad(z.imag.sum(), [z])
    np.testing.assert_allclose(g.numpy(), [1j, 1j, 1j])
    (g,) = mg.autograd.grad(z.real.sum(), [z])
    np.testing.assert_allclose(g.numpy(), [1, 1, 1])
    # holomorphic f: grad * conj(f'(z)); Re(exp z) with cotangent 1 -> conj(exp z)
    (g,) = mg.autograd.grad(mg.exp(z).real.sum(), [z])
    np.testing.assert_allclose(g.numpy(), np.conj(np.exp(z.detach().numpy())))
    # a real input of a complex result takes the real part: d/dx Im(x (2 + 3i)) = 3
    x = leaf(np.array([1.0, -2.0]))
    (g,) = mg.autograd.grad((x * (2 + 3j)).imag.sum(), [x])
    assert g.dtype == np.float64
    np.testing.assert_allclose(g.numpy(), [3.0, 3.0])
    # complex(a, b) -> grad a = Re g, grad b = Im g; polar(r, t) = r e^{it}
    a, b = leaf(np.array([1.0])), leaf(np.array([2.0]))
    w = mg.complex(a, b)
    ga, gb = mg.autograd.grad(w, [a, b], mg.tensor(np.array([0.5 - 3j])))
    assert (ga.item(), gb.item()) == (0.5, -3.0)
    r, t = leaf(np.array([2.0])), leaf(np.array([0.3]))
    gr, gt = mg.autograd.grad(mg.polar(r, t).imag.sum(), [r, t])  # r sin t
    np.testing.assert_allclose([gr.item(), gt.item()], [np.sin(0.3), 2 * np.cos(0.3)])


def test_det_and_slogdet_closed_forms():
    A = leaf(_A)
    a = _A
    (g,) = mg.autograd.grad(la.det(A).real, [A])  # conj(det(A) A^-T)
    np.testing.assert_allclose(g.numpy(), np.conj(np.linalg.det(a) * np.linalg.inv(a).T))
    sign, logabs = la.slogdet(A)
    np.testing.assert_allclose(sign.detach().numpy(), np.linalg.slogdet(a)[0])
    (g,) = mg.autograd.grad(logabs, [A])  # d log|det| = Re tr(A^-1 dA): A^-H
    np.testing.assert_allclose(g.numpy(), np.linalg.inv(a).conj().T)


def test_backward_needs_a_real_scalar():
    z = leaf(crandn(1))
    with pytest.raises(RuntimeError, match="only for real scalar outputs but got complex128"):
        z.sum().backward()
    z.sum().backward(mg.tensor(1.0 + 0j))  # an explicit gradient is fine
    np.testing.assert_allclose(z.grad.numpy(), [1.0])


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (mg.relu, "clamp is not supported for complex"),
        (lambda z: mg.clamp(z, 0.0, 1.0), "clamp is not supported for complex"),
        (lambda z: mg.maximum(z, z), "maximum is not supported for complex"),
        (lambda z: mg.minimum(z, z), "minimum is not supported for complex"),
        (mg.sign, "sign is not intended to support complex"),
        (mg.amax, "amax is not supported for complex"),
        (mg.erf, "erf is not supported for complex"),
    ],
)
def test_real_only_ops_raise_for_complex(fn, match):
    with pytest.raises(NotImplementedError, match=match):
        fn(mg.tensor(crandn(3)))


def test_unsupported_complex_linear_algebra_is_refused():
    with pytest.raises(TypeError, match="linalg.qr: complex input"):
        la.qr(mg.tensor(crandn(3, 3)))
    with pytest.raises(RuntimeError, match="only supported for complex"):
        mg.view_as_real(mg.ones(2))
    with pytest.raises(RuntimeError, match="last dimension of size 2"):
        mg.view_as_complex(mg.ones(3))
    with pytest.raises(TypeError, match="same dtype"):
        mg.complex(mg.ones(2), mg.ones(2, dtype=mg.float32))
    with pytest.raises(RuntimeError, match="non-complex"):
        _ = mg.ones(2).imag


@pytest.mark.parametrize(
    "loss",
    [
        pytest.param(lambda a: la.eigh(herm(a))[1].real.sum(), id="eigh"),
        pytest.param(lambda a: la.svd(a)[0].real.sum(), id="svd"),
        pytest.param(lambda a: la.eig(a)[1].real.sum(), id="eig"),
    ],
)
def test_phase_dependent_losses_raise(loss):
    A = leaf(crandn(3, 3))
    with pytest.raises(RuntimeError, match=r"specified up to multiplication by e\^\{i phi\}"):
        loss(A).backward()


def test_views_share_memory_and_version():
    x = mg.tensor(np.array([1 + 2j, 3 - 1j]))
    r, i, v = x.real, x.imag, mg.view_as_real(x)
    r[0] = 5.0
    i[1] = 7.0
    assert x.tolist() == [5 + 2j, 3 + 7j]
    assert v.shape == (2, 2) and v.tolist() == [[5.0, 2.0], [3.0, 7.0]]
    assert x._version == r._version == v._version == 2
    c = mg.view_as_complex(v)
    c[0] = 0j
    assert x.tolist()[0] == 0j
    real = mg.tensor([1.0, 2.0])
    assert real.real.tolist() == [1.0, 2.0] and real.real._base is real
    # an in-place write through such a view while recording a graph would change part of
    # each complex element, which the graph cannot express: refused, memory untouched
    z = leaf(crandn(2)) * 1
    before = z.detach().numpy().copy()
    with pytest.raises(NotImplementedError, match="view made by real"):
        z.real.mul_(2.0)
    np.testing.assert_array_equal(z.detach().numpy(), before)


def test_dtypes_and_attributes():
    assert mg.cfloat == mg.complex64 == np.complex64
    assert mg.cdouble == mg.complex128 == np.complex128
    z = mg.randn(40000, dtype=mg.cfloat)
    assert z.dtype == np.complex64 and z.is_complex() and not z.is_floating_point()
    assert mg.is_complex(z) and not mg.is_complex(mg.ones(1))
    # PyTorch's complex normal: E|z|^2 = 1, variance 1/2 per part
    assert abs(float(z.real.var()) - 0.5) < 0.02 and abs(float(z.imag.var()) - 0.5) < 0.02
    A = mg.tensor(crandn(2, 3))
    np.testing.assert_array_equal(A.mH.numpy(), A.numpy().conj().T)
    np.testing.assert_array_equal(A.H.numpy(), A.numpy().conj().T)
    with pytest.raises(RuntimeError, match="only supported on matrices"):
        _ = mg.tensor(crandn(2, 2, 2)).H
    assert A.conj_physical().tolist() == A.conj().tolist() == A.numpy().conj().tolist()
    assert A.resolve_conj() is A and not A.conj().is_conj()
    L = la.eig(mg.tensor(np.diag([1.0, 2.0])))[0]
    assert L.dtype == np.complex128  # complex even for a real matrix with real eigenvalues


# -- against PyTorch ----------------------------------------------------------------------------
torch = pytest.importorskip("torch")


def _torch_herm(z):
    return (z + z.mH) * 0.5


# (name, matgrad function, torch function, input arrays): the same inputs and a random complex
# cotangent per (complex) output, and the input gradients must agree
TORCH_CASES = [
    ("mul", lambda a, b: a * b, lambda a, b: a * b, [crandn(3, 2), crandn(2)]),
    ("mul real", lambda a, b: a * b, lambda a, b: a * b, [rng.standard_normal(3), crandn(3)]),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [crandn(3), crandn(3)]),
    ("pow", lambda a: a**3, lambda a: a**3, [crandn(3)]),
    ("exp", mg.exp, torch.exp, [crandn(3)]),
    ("log", mg.log, torch.log, [crandn(3)]),
    ("sqrt", mg.sqrt, torch.sqrt, [crandn(3)]),
    ("sin", mg.sin, torch.sin, [crandn(3)]),
    ("tanh", mg.tanh, torch.tanh, [crandn(3)]),
    ("sigmoid", mg.sigmoid, torch.sigmoid, [crandn(3)]),
    ("reciprocal", mg.reciprocal, torch.reciprocal, [crandn(3)]),
    ("abs", mg.abs, torch.abs, [crandn(3)]),
    ("angle", mg.angle, torch.angle, [crandn(3)]),
    ("real", mg.real, torch.real, [crandn(3)]),
    ("imag", mg.imag, torch.imag, [crandn(3)]),
    ("conj", mg.conj, lambda z: torch.conj(z).resolve_conj(), [crandn(3)]),
    ("view_as_real", mg.view_as_real, torch.view_as_real, [crandn(3)]),
    ("view_as_complex", mg.view_as_complex, torch.view_as_complex, [rng.standard_normal((3, 2))]),
    ("complex", mg.complex, torch.complex, [rng.standard_normal(3), rng.standard_normal(3)]),
    ("polar", mg.polar, torch.polar, [rng.uniform(0.5, 2, 3), rng.standard_normal(3)]),
    ("sum", lambda a: a.sum(), lambda a: a.sum(), [crandn(2, 3)]),
    ("prod", lambda a: a.prod(0), lambda a: a.prod(0), [crandn(3, 2)]),
    ("cumprod", lambda a: mg.cumprod(a, 0), lambda a: torch.cumprod(a, 0), [crandn(3)]),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [crandn(2, 3), crandn(3, 4)]),
    ("mv", lambda a, b: a @ b, lambda a, b: a @ b, [crandn(2, 3), crandn(3)]),
    ("dot", mg.dot, torch.dot, [crandn(3), crandn(3)]),
    ("vdot", mg.vdot, torch.vdot, [crandn(3), crandn(3)]),
    ("outer", mg.outer, torch.outer, [crandn(3), crandn(2)]),
    ("vecdot", la.vecdot, torch.linalg.vecdot, [crandn(2, 3), crandn(2, 3)]),
    ("inv", la.inv, torch.linalg.inv, [_A]),
    ("det", la.det, torch.linalg.det, [_A]),
    ("slogdet", lambda a: tuple(la.slogdet(a)), lambda a: tuple(torch.linalg.slogdet(a)), [_A]),
    ("solve", la.solve, torch.linalg.solve, [_A, crandn(3, 2)]),
    ("matrix_exp", la.matrix_exp, torch.linalg.matrix_exp, [0.5 * crandn(3, 3)]),
    ("vector_norm", la.vector_norm, torch.linalg.vector_norm, [crandn(3, 2)]),
    ("svdvals", la.svdvals, torch.linalg.svdvals, [crandn(3, 2)]),
    (
        "eigvalsh",
        lambda a: la.eigvalsh(herm(a)),
        lambda a: torch.linalg.eigvalsh(_torch_herm(a)),
        [crandn(3, 3)],
    ),
    ("eigvals", la.eigvals, torch.linalg.eigvals, [crandn(3, 3)]),
    ("eigvals real", la.eigvals, torch.linalg.eigvals, [rng.standard_normal((3, 3))]),
    (
        "svd polar",
        _svd_polar,
        lambda a: (lambda r: (r[1], r[0] @ r[2]))(torch.linalg.svd(a, full_matrices=False)),
        [crandn(3, 2)],
    ),
    (
        "eigh projector",
        _eigh_projector,
        lambda a: (lambda r: (r[0], r[1][:, :1] @ r[1][:, :1].mH))(
            torch.linalg.eigh(_torch_herm(a))
        ),
        [crandn(3, 3)],
    ),
    (
        "eig |V|",
        lambda a: la.eig(a)[1].abs(),
        lambda a: torch.linalg.eig(a)[1].abs(),
        [crandn(3, 3)],
    ),
    (
        "pinv",
        la.pinv,
        torch.linalg.pinv,
        [crandn(3, 2)],
    ),
    (
        "cholesky",
        lambda a: la.cholesky(herm(a) @ herm(a).mH + mg.eye(3)),
        lambda a: torch.linalg.cholesky(_torch_herm(a) @ _torch_herm(a).mH + torch.eye(3)),
        [crandn(3, 3)],
    ),
]


def _cotangent(shape, is_complex, k):
    g = np.random.default_rng(k)
    c = g.standard_normal(shape)
    return c + 1j * g.standard_normal(shape) if is_complex else c


@pytest.mark.parametrize(
    ("m_fn", "t_fn", "arrays"), [pytest.param(m, t, a, id=n) for n, m, t, a in TORCH_CASES]
)
def test_gradients_equal_torch(m_fn, t_fn, arrays):
    m_in = [leaf(a) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    m_out = m_fn(*m_in)
    t_out = t_fn(*t_in)
    m_out = m_out if isinstance(m_out, tuple) else (m_out,)
    t_out = t_out if isinstance(t_out, tuple) else (t_out,)
    for m, t in zip(m_out, t_out, strict=True):
        assert str(m.dtype) == str(t.dtype).removeprefix("torch.")
        np.testing.assert_allclose(m.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    cots = [_cotangent(tuple(t.shape), t.is_complex(), k) for k, t in enumerate(t_out)]
    t_grads = torch.autograd.grad(t_out, t_in, [torch.tensor(c) for c in cots])
    m_grads = mg.autograd.grad(m_out, m_in, [mg.tensor(c) for c in cots])
    for m, t in zip(m_grads, t_grads, strict=True):
        t = t.resolve_conj().numpy()
        assert m.dtype == t.dtype
        np.testing.assert_allclose(m.numpy(), t, rtol=1e-9, atol=1e-11)


def test_forward_mode_equals_torch():
    fwAD = torch.autograd.forward_ad  # noqa: N806
    from matgrad.autograd import forward_ad as mfw

    z, t = crandn(3, 3), crandn(3, 3)
    cases = [
        (mg.sin, torch.sin),
        (mg.abs, torch.abs),
        (la.inv, torch.linalg.inv),
        (la.eigvals, torch.linalg.eigvals),
        (lambda a: la.vector_norm(a, dim=0), lambda a: torch.linalg.vector_norm(a, dim=0)),
    ]
    for m_fn, t_fn in cases:
        with fwAD.dual_level():
            out = fwAD.unpack_dual(t_fn(fwAD.make_dual(torch.tensor(z), torch.tensor(t))))
        with mfw.dual_level():
            got = mfw.unpack_dual(m_fn(mfw.make_dual(mg.tensor(z), mg.tensor(t))))
        np.testing.assert_allclose(got.tangent.numpy(), out.tangent.numpy(), rtol=1e-9)


def test_torch_raises_for_the_same_phase_dependent_loss():
    a = crandn(3, 3)
    with pytest.raises(RuntimeError, match="e\\^\\{i phi\\}"):
        torch.linalg.eig(torch.tensor(a, requires_grad=True))[1].real.sum().backward()
    with pytest.raises(RuntimeError, match="e\\^\\{i phi\\}"), warnings.catch_warnings():
        la.eig(leaf(a))[1].real.sum().backward()


def test_view_as_complex_refuses_a_strided_last_axis_as_pytorch():
    """A copy would not be the view the op promises (writes would not reach the base)."""
    x = mg.randn(2, 4)
    with pytest.raises(RuntimeError, match="last dimension with stride 1"):
        mg.view_as_complex(x[:, ::2])
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="last dimension with stride 1"):
        torch.view_as_complex(torch.randn(2, 4)[:, ::2])
    y = mg.randn(3, 2)
    z = mg.view_as_complex(y)
    z.numpy()[0] = 5 + 6j  # the view shares memory with y
    np.testing.assert_array_equal(y.numpy()[0], [5.0, 6.0])
