"""``matgrad.autograd.Function``: every feature of PyTorch's custom Functions.

The examples of PyTorch's "Extending PyTorch" note and of the docstrings in
``torch/autograd/function.py`` are written once, as functions of the module they run with
(``T`` is ``matgrad`` or ``torch``): each is checked against closed forms or finite differences,
and, where torch is installed, against the values torch prints for the same code.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matgrad as mg
from matgrad.autograd import Function, gradcheck, gradgradcheck
from matgrad.autograd import forward_ad as fwAD
from matgrad.autograd.function import VmapInfo, once_differentiable


def _np(x):
    """A tensor's values as a NumPy array (either library), None as is."""
    if x is None:
        return None
    return np.asarray(x.detach().numpy())


def _close(a, b):
    """Two results (nested tuples/lists of arrays, numbers, None) agree."""
    if isinstance(a, tuple | list):
        assert isinstance(b, tuple | list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _close(x, y)
    elif a is None or isinstance(a, bool | str):
        assert a == b
    else:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


def _once_differentiable(T):
    if T is mg:
        return once_differentiable
    from torch.autograd.function import once_differentiable as torch_once

    return torch_once


def _fw_ad(T):
    if T is mg:
        return fwAD
    import torch.autograd.forward_ad as torch_fwad

    return torch_fwad


# -- the examples, written once for both libraries -------------------------------------------
X = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]  # input (2, 3)
W = [[1.0, 2.0, -1.0], [0.5, -0.5, 3.0], [-2.0, 1.0, 0.0], [0.3, 0.2, 0.1]]  # weight (4, 3)
B = [0.1, -0.2, 0.3, 0.4]  # bias (4,)


def ex_linear_combined(T):
    """The note's LinearFunction, forward combined with ctx (``mm``, ``t``, ``expand_as``)."""

    class LinearFunction(T.autograd.Function):
        @staticmethod
        def forward(ctx, input, weight, bias=None):
            ctx.save_for_backward(input, weight, bias)
            output = input.mm(weight.t())
            if bias is not None:
                output += bias.unsqueeze(0).expand_as(output)
            return output

        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = grad_output.mm(weight)
            if ctx.needs_input_grad[1]:
                grad_weight = grad_output.t().mm(input)
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(0)
            return grad_input, grad_weight, grad_bias

    x = T.tensor(X, dtype=T.float64, requires_grad=True)
    w = T.tensor(W, dtype=T.float64, requires_grad=True)
    b = T.tensor(B, dtype=T.float64, requires_grad=True)
    y = LinearFunction.apply(x, w, b)
    (y * y).sum().backward()
    no_bias = LinearFunction.apply(x, w)  # the optional argument left out
    ok = T.autograd.gradcheck(LinearFunction.apply, (x, w, b), eps=1e-6, atol=1e-4)
    return _np(y), _np(x.grad), _np(w.grad), _np(b.grad), _np(no_bias), ok, y.grad_fn.name()


def ex_linear_setup_context(T):
    """The note's LinearFunction with a separate ``setup_context`` (``@``, ``.T``)."""

    class LinearFunction(T.autograd.Function):
        @staticmethod
        def forward(input, weight, bias):
            output = input @ weight.T
            if bias is not None:
                output += bias
            return output

        @staticmethod
        def setup_context(ctx, inputs, output):
            input, weight, bias = inputs
            ctx.save_for_backward(input, weight, bias)

        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = grad_output @ weight
            if ctx.needs_input_grad[1]:
                grad_weight = grad_output.T @ input
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(0)
            return grad_input, grad_weight, grad_bias

    x = T.tensor(X, dtype=T.float64)  # no gradient wanted: needs_input_grad[0] is False
    w = T.tensor(W, dtype=T.float64, requires_grad=True)
    b = T.tensor(B, dtype=T.float64, requires_grad=True)
    y = LinearFunction.apply(x, w, b)
    y.sum().backward()
    return _np(y), x.grad, _np(w.grad), _np(b.grad)


def ex_mul_constant(T):
    """The note's MulConstant, then the variant with ``set_materialize_grads(False)``."""

    class MulConstant(T.autograd.Function):
        @staticmethod
        def forward(ctx, tensor, constant):
            ctx.constant = constant
            return tensor * constant

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * ctx.constant, None

    class MulConstantLazy(T.autograd.Function):
        @staticmethod
        def forward(ctx, tensor, constant):
            ctx.set_materialize_grads(False)
            ctx.constant = constant
            return tensor * constant

        @staticmethod
        def backward(ctx, grad_output):
            if grad_output is None:
                return None, None
            return grad_output * ctx.constant, None

    x = T.tensor([1.0, -2.0, 3.0], dtype=T.float64, requires_grad=True)
    MulConstant.apply(x, 2.5).sum().backward()
    g1 = _np(x.grad)
    x.grad = None
    (MulConstantLazy.apply(x, -4.0) ** 2).sum().backward()
    return g1, _np(x.grad)


def ex_my_cube(T):
    """The note's MyCube (setup_context, an intermediate returned as an output): first and
    second derivatives by reverse mode, and the Hessian by ``func.jacrev(func.jacrev)``."""

    class MyCube(T.autograd.Function):
        @staticmethod
        def forward(x):
            dx = 3 * x**2
            result = x**3
            return result, dx

        @staticmethod
        def setup_context(ctx, inputs, output):
            (x,) = inputs
            result, dx = output
            ctx.save_for_backward(x, dx)

        @staticmethod
        def backward(ctx, grad_output, grad_dx):
            x, dx = ctx.saved_tensors
            result = grad_output * dx + grad_dx * 6 * x
            return result

    def my_cube(x):
        result, dx = MyCube.apply(x)
        return result

    x = T.tensor([4.0, 2.0, -1.5], dtype=T.float64, requires_grad=True)
    (g,) = T.autograd.grad(my_cube(x).sum(), x, create_graph=True)
    (gg,) = T.autograd.grad(g.sum(), x)
    hess = T.func.jacrev(T.func.jacrev(lambda v: my_cube(v).sum()))(x.detach())
    return _np(g), _np(gg), _np(hess)


def ex_exp_forward_mode(T):
    """An exp with ``setup_context``, ``save_for_backward``/``save_for_forward`` and a
    ``jvp``: forward mode by dual tensors and by ``func.jvp``, reverse mode by backward."""

    class MyExp(T.autograd.Function):
        @staticmethod
        def forward(x):
            return x.exp()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)
            ctx.save_for_forward(output)

        @staticmethod
        def backward(ctx, grad_output):
            (result,) = ctx.saved_tensors
            return grad_output * result

        @staticmethod
        def jvp(ctx, x_t):
            (result,) = ctx.saved_tensors
            return x_t * result

    fw = _fw_ad(T)
    x = T.tensor([0.0, 1.0, -0.5], dtype=T.float64)
    v = T.tensor([1.0, 2.0, 3.0], dtype=T.float64)
    with fw.dual_level():
        y = MyExp.apply(fw.make_dual(x, v))
        primal, tangent = fw.unpack_dual(y)
        primal, tangent = _np(primal), _np(tangent)
    out, jv = T.func.jvp(MyExp.apply, (x,), (v,))
    xr = x.clone().requires_grad_()
    MyExp.apply(xr).sum().backward()
    return primal, tangent, _np(out), _np(jv), _np(xr.grad)


def ex_docstring_save_for_backward(T):
    """``FunctionCtx.save_for_backward``'s docstring example (with ``@once_differentiable``)."""
    once = _once_differentiable(T)

    class Func(T.autograd.Function):
        @staticmethod
        def forward(ctx, x, y, z):
            w = x * z
            out = x * y + y * z + w * y
            ctx.save_for_backward(x, y, w, out)
            ctx.z = z
            return out

        @staticmethod
        @once
        def backward(ctx, grad_out):
            x, y, w, out = ctx.saved_tensors
            z = ctx.z
            gx = grad_out * (y + y * z)
            gy = grad_out * (x + z + w)
            gz = None
            return gx, gy, gz

    a = T.tensor(1.0, requires_grad=True, dtype=T.double)
    b = T.tensor(2.0, requires_grad=True, dtype=T.double)
    c = 4
    d = Func.apply(a, b, c)
    d.backward()
    return _np(d), _np(a.grad), _np(b.grad)


def ex_docstring_save_for_forward(T):
    """``FunctionCtx.save_for_forward``'s docstring example (it defines ``vjp``)."""

    class Func(T.autograd.Function):
        @staticmethod
        def forward(ctx, x, y, z):
            ctx.save_for_backward(x, y)
            ctx.save_for_forward(x, y)
            ctx.z = z
            return x * y * z

        @staticmethod
        def jvp(ctx, x_t, y_t, _):
            x, y = ctx.saved_tensors
            z = ctx.z
            return z * (y * x_t + x * y_t)

        @staticmethod
        def vjp(ctx, grad_out):
            x, y = ctx.saved_tensors
            z = ctx.z
            return z * grad_out * y, z * grad_out * x, None

    fw = _fw_ad(T)
    a = T.tensor(1.0, requires_grad=True, dtype=T.double)
    t = T.tensor(1.0, dtype=T.double)
    b = T.tensor(2.0, requires_grad=True, dtype=T.double)
    c = 4
    with fw.dual_level():
        a_dual = fw.make_dual(a, t)
        d = Func.apply(a_dual, b, c)
        tangent = _np(fw.unpack_dual(d).tangent)
        d.backward()
    return _np(d), tangent, _np(a.grad), _np(b.grad)


def ex_docstring_mark_dirty(T, *, detach_first: bool):
    """``FunctionCtx.mark_dirty``'s docstring example: the forward writes into the input's
    memory through NumPy; ``b = a * a`` saved ``a``, so its backward must raise."""
    once = _once_differentiable(T)

    class Inplace(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x_npy = x.detach().numpy() if detach_first else x.numpy()
            x_npy += 1
            ctx.mark_dirty(x)
            return x

        @staticmethod
        @once
        def backward(ctx, grad_output):
            return grad_output

    a = T.tensor(1.0, requires_grad=True, dtype=T.double).clone()
    b = a * a
    out = Inplace.apply(a)
    facts = (out is a, a._version >= 1, _np(a), out.grad_fn.name())
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        b.backward()
    return facts


def ex_docstring_mark_non_differentiable(T, *, verbatim: bool = False):
    """``FunctionCtx.mark_non_differentiable``'s docstring example (a sort). Not verbatim:
    the sort and the scatter of its backward in NumPy and indexing (matgrad has no
    ``Tensor.sort``/``index_add_`` yet)."""
    once = _once_differentiable(T)

    class Func(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            if verbatim:
                sorted, idx = x.sort()
            else:
                idx = T.tensor(np.argsort(x.detach().numpy(), kind="stable"))
                sorted = x[idx]
            ctx.mark_non_differentiable(idx)
            ctx.save_for_backward(x, idx)
            return sorted, idx

        @staticmethod
        @once
        def backward(ctx, g1, g2):  # still need to accept g2
            x, idx = ctx.saved_tensors
            grad_input = T.zeros_like(x)
            if verbatim:
                grad_input.index_add_(0, idx, g1)
            else:
                grad_input[idx] = g1  # idx is a permutation: the same as index_add_
            return grad_input

    x = T.tensor([3.0, 1.0, 2.0], dtype=T.double, requires_grad=True)
    s, i = Func.apply(x)
    (s * T.tensor([10.0, 20.0, 30.0], dtype=T.double)).sum().backward()
    return _np(s), _np(i), i.requires_grad, s.requires_grad, _np(x.grad)


def ex_docstring_set_materialize_grads(T):
    """``FunctionCtx.set_materialize_grads``'s docstring example (both functions)."""
    once = _once_differentiable(T)
    seen = []

    class SimpleFunc(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone(), x.clone()

        @staticmethod
        @once
        def backward(ctx, g1, g2):
            seen.append(("simple", g2 is None))
            return g1 + g2  # No check for None necessary

    class Func(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            ctx.save_for_backward(x)
            return x.clone(), x.clone()

        @staticmethod
        @once
        def backward(ctx, g1, g2):
            seen.append(("func", g2 is None))
            (x,) = ctx.saved_tensors
            grad_input = T.zeros_like(x)
            if g1 is not None:  # We must check for None now
                grad_input += g1
            if g2 is not None:
                grad_input += g2
            return grad_input

    a = T.tensor(1.0, requires_grad=True, dtype=T.double)
    b, _ = SimpleFunc.apply(a)
    (3 * b).backward()
    g_simple = _np(a.grad)
    a.grad = None
    b, _ = Func.apply(a)  # induces g2 to be undefined
    (5 * b).backward()
    return g_simple, _np(a.grad), seen


def ex_docstring_exp(T):
    """``Function``'s class docstring example."""

    class Exp(T.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result

        @staticmethod
        def backward(ctx, grad_output):
            (result,) = ctx.saved_tensors
            return grad_output * result

    input = T.tensor([0.0, 1.0, -2.0], dtype=T.double, requires_grad=True)
    output = Exp.apply(input)
    output.sum().backward()
    return _np(output), _np(input.grad), output.grad_fn.name()


EXAMPLES = [
    ex_linear_combined,
    ex_linear_setup_context,
    ex_mul_constant,
    ex_my_cube,
    ex_exp_forward_mode,
    ex_docstring_save_for_backward,
    ex_docstring_save_for_forward,
    ex_docstring_mark_non_differentiable,
    ex_docstring_set_materialize_grads,
    ex_docstring_exp,
]


# -- closed forms for each example -------------------------------------------------------------
def test_linear_closed_forms():
    x, w, b = np.array(X), np.array(W), np.array(B)
    y, gx, gw, gb, no_bias, ok, name = ex_linear_combined(mg)
    ref = x @ w.T + b
    _close(y, ref)
    _close(gx, 2 * ref @ w)  # d sum(y^2) = 2 y
    _close(gw, 2 * ref.T @ x)
    _close(gb, 2 * ref.sum(0))
    _close(no_bias, x @ w.T)
    assert ok is True and name == "LinearFunctionBackward"
    y2, gx2, gw2, gb2 = ex_linear_setup_context(mg)
    _close(y2, ref)
    assert gx2 is None
    _close(gw2, np.ones((2, 4)).T @ x)
    _close(gb2, np.full(4, 2.0))


def test_mul_constant_closed_forms():
    g1, g2 = ex_mul_constant(mg)
    _close(g1, np.full(3, 2.5))
    x = np.array([1.0, -2.0, 3.0])
    _close(g2, 2 * (-4.0 * x) * -4.0)  # d sum((-4x)^2) = 32 x


def test_my_cube_derivatives():
    g, gg, hess = ex_my_cube(mg)
    x = np.array([4.0, 2.0, -1.5])
    _close(g, 3 * x**2)
    _close(gg, 6 * x)  # needs the grad_dx term of the backward
    _close(hess, np.diag(6 * x))


def test_exp_forward_mode_closed_forms():
    primal, tangent, out, jv, grad = ex_exp_forward_mode(mg)
    x, v = np.array([0.0, 1.0, -0.5]), np.array([1.0, 2.0, 3.0])
    _close(primal, np.exp(x))
    _close(tangent, v * np.exp(x))
    _close(out, np.exp(x))
    _close(jv, v * np.exp(x))
    _close(grad, np.exp(x))


def test_docstring_examples_closed_forms():
    # out = x y + y z + x z y = 2 + 8 + 8; d/dx = y + y z = 10, d/dy = x + z + x z = 9
    _close(ex_docstring_save_for_backward(mg), (18.0, 10.0, 9.0))
    # x y z = 8; tangent z (y x_t + x y_t) with x_t = 1, y_t = 0 (materialized zeros) = 8
    _close(ex_docstring_save_for_forward(mg), (8.0, 8.0, 8.0, 4.0))
    s, i, i_req, s_req, gx = ex_docstring_mark_non_differentiable(mg)
    _close(s, [1.0, 2.0, 3.0])
    _close(i, [1, 2, 0])
    assert (i_req, s_req) == (False, True)
    _close(gx, [30.0, 10.0, 20.0])  # grad[idx[k]] = g1[k]
    g_simple, g_func, seen = ex_docstring_set_materialize_grads(mg)
    _close((g_simple, g_func), (3.0, 5.0))
    assert seen == [("simple", False), ("func", True)]
    out, grad, name = ex_docstring_exp(mg)
    _close(out, np.exp([0.0, 1.0, -2.0]))
    _close(grad, np.exp([0.0, 1.0, -2.0]))
    assert name == "ExpBackward"


def test_docstring_mark_dirty_example_with_detach():
    same, bumped, value, name = ex_docstring_mark_dirty(mg, detach_first=True)
    assert same and bumped and name == "InplaceBackward"
    _close(value, 2.0)


def test_docstring_mark_non_differentiable_example_verbatim():
    ex_docstring_mark_non_differentiable(mg, verbatim=True)


def test_docstring_mark_non_differentiable_verbatim_in_torch_agrees():
    torch = pytest.importorskip("torch")
    _close(
        ex_docstring_mark_non_differentiable(torch, verbatim=True),
        ex_docstring_mark_non_differentiable(torch),
    )


def test_docstring_mark_dirty_example_verbatim():
    # Tensor.numpy() of a tensor that requires grad works under no_grad, as in torch
    same, bumped, value, name = ex_docstring_mark_dirty(mg, detach_first=False)
    assert same and bumped and name == "InplaceBackward"
    _close(value, 2.0)


# -- the same code under torch prints the same values -------------------------------------------
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda f: f.__name__)
def test_examples_match_torch(example):
    torch = pytest.importorskip("torch")
    _close(example(mg), example(torch))


def test_mark_dirty_example_matches_torch():
    torch = pytest.importorskip("torch")
    _close(
        ex_docstring_mark_dirty(mg, detach_first=True),
        ex_docstring_mark_dirty(torch, detach_first=True),
    )


# -- setup_context and apply's arguments ---------------------------------------------------------
class _Scale(Function):
    """forward(ctx, x, k=2.0, m=5.0) = x * k + m."""

    @staticmethod
    def forward(ctx, x, k=2.0, m=5.0):
        ctx.k = k
        return x * k + m

    @staticmethod
    def backward(ctx, g):
        return g * ctx.k, None, None


def test_apply_places_keyword_arguments_at_their_positions():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    _close(_np(_Scale.apply(x, k=3.0)), [8.0, 11.0])  # m's default is forward's own
    _close(_np(_Scale.apply(x=x)), [7.0, 9.0])
    y = _Scale.apply(x, 3.0, m=0.0)
    _close(_np(y), [3.0, 6.0])
    y.sum().backward()
    _close(_np(x.grad), [3.0, 3.0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"m": 1.0}, r"missing required argument: 'k' \(position 1\)"),
        ({"z": 1.0}, "unexpected keyword argument 'z'"),
        ({"x": 1.0}, "multiple values for argument 'x'"),
    ],
)
def test_apply_keyword_errors_as_torch(kwargs, message):
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=message):
        _Scale.apply(x, **kwargs)


def test_apply_keyword_errors_match_torch():
    torch = pytest.importorskip("torch")

    class TScale(torch.autograd.Function):
        forward = staticmethod(_Scale.forward)
        backward = staticmethod(_Scale.backward)

    for kwargs in ({"m": 1.0}, {"z": 1.0}):
        with pytest.raises(TypeError) as theirs:
            TScale.apply(torch.ones(2), **kwargs)
        with pytest.raises(TypeError) as ours:
            _Scale.apply(mg.ones(2), **kwargs)
        assert str(theirs.value) in str(ours.value)


def test_setup_context_sees_inputs_with_defaults_and_the_raw_output():
    seen = {}

    class Affine(Function):
        @staticmethod
        def forward(x, a=2.0):
            seen["forward_grad"] = mg.is_grad_enabled()
            return x * a

        @staticmethod
        def setup_context(ctx, inputs, output):
            seen.update(
                inputs=inputs,
                output_grad_fn=output.grad_fn,
                setup_grad=mg.is_grad_enabled(),
                needs=ctx.needs_input_grad,
            )
            ctx.a = inputs[1]

        @staticmethod
        def backward(ctx, g):
            seen["backward_grad"] = mg.is_grad_enabled()
            return g * ctx.a, None

    x = mg.tensor([1.0, -3.0], requires_grad=True)
    y = Affine.apply(x)
    assert seen["inputs"][0] is x and seen["inputs"][1] == 2.0 and len(seen["inputs"]) == 2
    assert seen["output_grad_fn"] is None and not seen["forward_grad"]
    assert not seen["setup_grad"] and seen["needs"] == (True, False)
    y.sum().backward()
    assert not seen["backward_grad"]
    _close(_np(x.grad), [2.0, 2.0])
    _close(_np(Affine.apply(x, a=-1.0)), [-1.0, 3.0])  # bound by forward's signature

    class KeywordOnly(Affine):
        @staticmethod
        def forward(x, a=2.0, *, b=None):
            return x * a

    with pytest.raises(TypeError, match="unexpected keyword argument 'b'"):
        KeywordOnly.apply(x)  # PyTorch's apply takes no keyword-only parameter, even unset


def test_needs_input_grad_ignores_grad_mode_as_torch():
    seen = []

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b, c):
            seen.append(ctx.needs_input_grad)
            return a * 1.0

        @staticmethod
        def backward(ctx, g):
            return g, None, None

    a = mg.ones(2, requires_grad=True)
    Probe.apply(a, mg.ones(2), 3)
    with mg.no_grad():
        out = Probe.apply(a, a, 3)
    assert seen == [(True, False, False), (True, True, False)]
    assert out.grad_fn is None and not out.requires_grad


# -- outputs -----------------------------------------------------------------------------------
def test_non_tensor_outputs_pass_through_and_get_none_gradients():
    seen = []

    class Mixed(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, 5, None

        @staticmethod
        def backward(ctx, g, g_int, g_none):
            seen.append((g_int, g_none))
            return g * 2

    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y, five, nothing = Mixed.apply(x)
    assert five == 5 and nothing is None
    y.sum().backward()
    assert seen == [(None, None)]
    _close(_np(x.grad), [2.0, 2.0])


def test_mark_non_differentiable_output_gets_zeros_or_none():
    seen = []

    class Split(Function):
        @staticmethod
        def forward(ctx, x, materialize):
            ctx.set_materialize_grads(materialize)
            a, b = x * 2, x * 3
            ctx.mark_non_differentiable(b)
            return a, b

        @staticmethod
        def backward(ctx, ga, gb):
            seen.append(None if gb is None else _np(gb))
            return ga * 2, None

    x = mg.tensor([1.0, 2.0], requires_grad=True)
    a, b = Split.apply(x, True)
    assert a.requires_grad and not b.requires_grad and b.grad_fn is None and b.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        b.sum().backward()
    (g,) = mg.autograd.grad(a.sum(), x)
    _close(_np(g), [2.0, 2.0])
    _close(seen.pop(), [0.0, 0.0])
    a, _ = Split.apply(x, False)
    a.sum().backward()
    assert seen.pop() is None


def test_integer_outputs_do_not_require_grad_and_get_integer_zeros():
    seen = []

    class ArgSort(Function):
        @staticmethod
        def forward(ctx, x):
            i = mg.tensor(np.argsort(x.detach().numpy()))
            ctx.save_for_backward(i)
            return x[i], i

        @staticmethod
        def backward(ctx, gs, gi):
            seen.append(gi)
            (i,) = ctx.saved_tensors
            g = mg.zeros_like(gs)
            g[i] = gs
            return g

    x = mg.tensor([2.0, 0.5, 1.0], requires_grad=True)
    s, i = ArgSort.apply(x)
    assert not i.requires_grad
    (s * mg.tensor([1.0, 2.0, 3.0])).sum().backward()
    _close(_np(x.grad), [3.0, 1.0, 2.0])
    assert seen[0].dtype.kind == "i" and seen[0].tolist() == [0, 0, 0]


def test_input_returned_as_is_is_a_view_with_the_custom_backward():
    class Twice(Function):  # identity forward with a (deliberately) doubled gradient
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = Twice.apply(x)
    assert y is not x and y._base is x and y.grad_fn.name() == "TwiceBackward"
    assert np.shares_memory(y._data, x._data)
    y.sum().backward()
    _close(_np(x.grad), [2.0, 2.0])
    with mg.no_grad():
        z = Twice.apply(x)
    assert z is not x and z._base is None and not z.requires_grad
    p = mg.ones(2)
    assert Twice.apply(p)._base is p


# -- mark_dirty ------------------------------------------------------------------------------
class _Double(Function):
    """x *= 2 in place."""

    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_mark_dirty_returns_the_input_with_a_new_version_and_history():
    a = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 1.0
    out = _Double.apply(b)
    assert out is b and b.grad_fn.name() == "_DoubleBackward" and b._version == 2
    assert b.grad_fn.next_functions[0][0].name() == "MulBackward0"
    _close(_np(b), [2.0, 4.0, 6.0])
    (b * b).sum().backward()  # d sum((2a)^2) / da = 8 a
    _close(_np(a.grad), [8.0, 16.0, 24.0])


def test_mark_dirty_versions_match_torch():
    torch = pytest.importorskip("torch")

    class TDouble(torch.autograd.Function):
        forward = staticmethod(_Double.forward)
        backward = staticmethod(_Double.backward)

    p, q = mg.ones(2), torch.ones(2)
    _Double.apply(p)
    TDouble.apply(q)
    assert p._version == q._version == 2


def test_mark_dirty_of_an_input_that_does_not_require_grad():
    class AddInto(Function):
        @staticmethod
        def forward(ctx, c, w):
            c.add_(w)
            ctx.mark_dirty(c)
            return c

        @staticmethod
        def backward(ctx, g):
            return g, g * 3

    c = mg.tensor([1.0, 2.0])
    w = mg.ones(2, requires_grad=True)
    out = AddInto.apply(c, w)
    assert out is c and c.requires_grad and c.grad_fn.name() == "AddIntoBackward"
    out.sum().backward()
    _close(_np(w.grad), [3.0, 3.0])


def test_mark_dirty_of_a_leaf_that_requires_grad_raises():
    leaf = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        _Double.apply(leaf)


def test_mark_dirty_of_a_view_rewrites_the_base_history():
    a = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 1.0
    view = b[:2]
    out = _Double.apply(view)
    assert out is view
    _close(_np(b), [2.0, 4.0, 3.0])
    b.sum().backward()  # through the custom backward for the written part
    _close(_np(a.grad), [2.0, 2.0, 1.0])


def test_mark_dirty_of_a_view_matches_torch():
    torch = pytest.importorskip("torch")

    class TDouble(torch.autograd.Function):
        forward = staticmethod(_Double.forward)
        backward = staticmethod(_Double.backward)

    def run(T, fn):
        a = T.tensor([1.0, 2.0, 3.0], dtype=T.float64, requires_grad=True)
        b = a * 3.0  # (b.exp() would have saved b, and the change be an error in both)
        fn.apply(b[1:])
        (b * b).sum().backward()
        return _np(b), _np(a.grad)

    _close(run(mg, _Double), run(torch, TDouble))


def test_mark_dirty_misuse():
    class NotReturned(Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g

    class NotAnInput(Function):
        @staticmethod
        def forward(ctx, x):
            y = x * 1
            ctx.mark_dirty(y)
            return y

        @staticmethod
        def backward(ctx, g):
            return g

    x = mg.tensor([1.0, 2.0], requires_grad=True) * 1.0
    with pytest.raises(RuntimeError, match="marked as dirty .* were not returned as output"):
        NotReturned.apply(x)
    with pytest.warns(UserWarning, match="received a tensor that was not an input"):
        out = NotAnInput.apply(x)
    assert out.grad_fn.name() == "NotAnInputBackward"


def test_saved_tensor_modified_by_a_later_function_is_detected():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = a * 1.0
    c = b * b  # saves b
    _Double.apply(b)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c.sum().backward()


def test_input_saved_and_dirtied_in_the_same_forward_is_not_an_error():
    class SaveThenDouble(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)  # before the change: PyTorch saves at the end of apply
            x.mul_(2)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors  # the doubled value
            return g * y  # some gradient that reads it

    a = mg.tensor([1.0, 3.0], requires_grad=True)
    b = a * 1.0
    SaveThenDouble.apply(b).sum().backward()
    _close(_np(a.grad), [2.0, 6.0])


# -- once_differentiable -------------------------------------------------------------------------
class _OnceCube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x**2


def test_once_differentiable_first_order_and_double_backward_error():
    x = mg.tensor([1.0, -2.0], requires_grad=True)
    assert gradcheck(_OnceCube.apply, (x,))
    (g,) = mg.autograd.grad(_OnceCube.apply(x).sum(), x)
    _close(_np(g), [3.0, 12.0])
    y = _OnceCube.apply(x)
    (g,) = mg.autograd.grad((y * y).sum(), x, create_graph=True)
    _close(_np(g), 6 * np.array([1.0, -2.0]) ** 5)  # d x^6 = 6 x^5
    assert g.requires_grad
    with pytest.raises(
        RuntimeError,
        match="trying to differentiate twice a function that was marked with @once_differentiable",
    ):
        g.sum().backward()
    with pytest.raises(RuntimeError, match="not have been used in the graph"):
        mg.autograd.grad(g.sum(), x)  # as torch: the error node does not lead to x


def test_differentiable_backward_passes_gradgradcheck():
    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x**2

    x = mg.tensor([[0.5, -1.5], [2.0, 0.25]], requires_grad=True)
    assert gradcheck(Cube.apply, (x,)) and gradgradcheck(Cube.apply, (x,))


# -- backward's results --------------------------------------------------------------------------
def _returning(result):
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, k):
            return x.sum() * k

        @staticmethod
        def backward(ctx, g):
            return result(g)

    return Bad


@pytest.mark.parametrize(
    "result, message",
    [
        (lambda g: mg.ones(3), r"expected 2, got 1"),
        (
            lambda g: (mg.ones(3), None),
            r"invalid gradient at index 0 - got \[3\] but expected "
            r"shape compatible with \[2\]",
        ),
        (lambda g: (mg.ones(1, 2, 3), None), r"got \[1, 2, 3\] but expected shape compatible"),
        (lambda g: (3.0, None), r"expected Variable or None \(got float\)"),
        (
            lambda g: (g.expand(2), g),
            r"different than None at position 2, but the "
            "corresponding forward input was not a Variable",
        ),
    ],
    ids=["count", "shape", "rank", "type", "non-tensor input"],
)
def test_backward_results_are_checked_as_torch(result, message):
    y = _returning(result).apply(mg.ones(2, requires_grad=True), 2.0)
    with pytest.raises(RuntimeError, match=message):
        y.backward()


def test_backward_error_texts_match_torch():
    torch = pytest.importorskip("torch")

    class TBad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x.sum() * k

        @staticmethod
        def backward(ctx, g):
            return torch.ones(3), None

    with pytest.raises(RuntimeError) as theirs:
        TBad.apply(torch.ones(2, requires_grad=True), 2.0).backward()
    bad = _returning(lambda g: (mg.ones(3), None))
    bad.__name__ = "TBad"
    with pytest.raises(RuntimeError) as ours:
        bad.apply(mg.ones(2, requires_grad=True), 2.0).backward()
    assert str(ours.value) == str(theirs.value)


def test_broadcast_gradient_is_summed_and_cast_to_the_input():
    class Spread(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return mg.ones(3, 2, dtype=mg.float32) * g  # (3, 2) for a (2,) input

    x = mg.tensor([1.0, 2.0], dtype=mg.float64, requires_grad=True)
    Spread.apply(x).backward()
    assert x.grad.dtype == np.float64
    _close(_np(x.grad), [3.0, 3.0])


def test_gradient_for_an_input_without_grad_is_not_checked():
    class Loose(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g, mg.ones(5)  # wrong shape, but y needs no gradient: ignored as in torch

    x = mg.tensor([1.0, 2.0], requires_grad=True)
    Loose.apply(x, mg.ones(2)).sum().backward()
    _close(_np(x.grad), [1.0, 1.0])


def test_vjp_alias_and_both_defined():
    class ByVjp(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3

        @staticmethod
        def vjp(ctx, g):
            return g * 3

    class Both(ByVjp):
        @staticmethod
        def backward(ctx, g):
            return g

    class Neither(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3

    x = mg.tensor([1.0, 2.0], requires_grad=True)
    ByVjp.apply(x).sum().backward()
    _close(_np(x.grad), [3.0, 3.0])
    with pytest.raises(RuntimeError, match="Implementing both 'backward' and 'vjp'"):
        Both.apply(x).sum().backward()
    with pytest.raises(NotImplementedError, match="implement either the backward or vjp"):
        Neither.apply(x).sum().backward()


def test_node_name_and_ctx_attributes_through_grad_fn():
    y = _Scale.apply(mg.ones(2, requires_grad=True), 4.0)
    assert y.grad_fn.name() == "_ScaleBackward"
    assert y.grad_fn.k == 4.0 and y.grad_fn.needs_input_grad == (True, False)
    with pytest.raises(AttributeError):
        y.grad_fn.missing  # noqa: B018


def test_legacy_instance_use_is_refused():
    with pytest.warns(DeprecationWarning, match="should not be instantiated"):
        f = _Scale()
    with pytest.raises(RuntimeError, match="Legacy autograd function"):
        f(mg.ones(2))
    with pytest.raises(NotImplementedError, match="implement the forward function"):
        Function.apply(mg.ones(2))


# -- forward mode --------------------------------------------------------------------------------
class _Prod(Function):
    """(x * y, x + y) with a hand-written jvp."""

    @staticmethod
    def forward(x, y):
        return x * y, x + y

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_forward(*inputs)
        ctx.save_for_backward(*inputs)

    @staticmethod
    def jvp(ctx, xt, yt):
        x, y = ctx.saved_tensors
        return xt * y + x * yt, xt + yt

    @staticmethod
    def backward(ctx, g1, g2):
        x, y = ctx.saved_tensors
        return g1 * y + g2, g1 * x + g2


def test_jvp_with_dual_tensors():
    x, y = mg.tensor([1.0, 2.0]), mg.tensor([3.0, -1.0])
    xt, yt = mg.tensor([1.0, 0.5]), mg.tensor([-2.0, 4.0])
    with fwAD.dual_level():
        p, s = _Prod.apply(fwAD.make_dual(x, xt), fwAD.make_dual(y, yt))
        _close(_np(fwAD.unpack_dual(p).tangent), [1 * 3 + 1 * -2, 0.5 * -1 + 2 * 4])
        _close(_np(fwAD.unpack_dual(s).tangent), [-1.0, 4.5])
        # only x carries a tangent: y's is materialized as zeros
        p, _ = _Prod.apply(fwAD.make_dual(x, xt), y)
        _close(_np(fwAD.unpack_dual(p).tangent), [3.0, -0.5])
    assert fwAD.unpack_dual(p).tangent is None  # dropped with the level


def test_func_jvp_and_jacfwd_through_a_custom_jvp():
    x, y = mg.tensor([1.0, 2.0]), mg.tensor([3.0, -1.0])
    (p, s), (pt, st) = mg.func.jvp(_Prod.apply, (x, y), (mg.ones(2), mg.zeros(2)))
    _close((_np(p), _np(s), _np(pt), _np(st)), ([3.0, -2.0], [4.0, 1.0], [3.0, -1.0], [1.0, 1.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback to one pass per column may warn
        jac = mg.func.jacfwd(lambda v: _Prod.apply(v, y)[0])(x)
    _close(_np(jac), np.diag([3.0, -1.0]))


def test_jvp_matches_finite_differences():
    class Sin(Function):
        @staticmethod
        def forward(x):
            return x.sin()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def jvp(ctx, t):
            (x,) = ctx.saved_tensors
            return t * x.cos()

        @staticmethod
        def backward(ctx, g):
            raise AssertionError("forward mode does not call backward")

    x = np.array([0.3, -1.2, 2.0])
    v = np.array([1.0, -0.5, 0.25])
    _, jv = mg.func.jvp(Sin.apply, (mg.tensor(x),), (mg.tensor(v),))
    eps = 1e-6
    fd = (np.sin(x + eps * v) - np.sin(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(_np(jv), fd, rtol=1e-8)


def test_jvp_is_not_pushed_through_the_forward():
    class Wrong(Function):  # the forward's ops would give 2 t; the jvp says 5 t
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def jvp(ctx, t):
            return t * 5

        @staticmethod
        def backward(ctx, g):
            return g * 2

    with fwAD.dual_level():
        out = Wrong.apply(fwAD.make_dual(mg.tensor([1.0]), mg.tensor([1.0])))
        _close(_np(fwAD.unpack_dual(out).tangent), [5.0])


def test_jvp_without_materialized_grads_gets_none():
    seen = []

    class Lazy(Function):
        @staticmethod
        def forward(ctx, x, y):
            ctx.set_materialize_grads(False)
            return x * y

        @staticmethod
        def jvp(ctx, xt, yt):
            seen.append(yt)
            return xt * 2

        @staticmethod
        def backward(ctx, g):
            return g, g

    with fwAD.dual_level():
        Lazy.apply(fwAD.make_dual(mg.ones(2), mg.ones(2)), mg.ones(2))
    assert seen == [None]


def test_jvp_misuse_raises_as_torch():
    def with_jvp(jvp):
        class F(Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2, x * 3

            @staticmethod
            def backward(ctx, g1, g2):
                return g1

        F.jvp = staticmethod(jvp)
        return F

    cases = [
        (lambda ctx, t: t, r"invalid number of forward gradients \(expected 2 but got 1\)"),
        (
            lambda ctx, t: (mg.ones(3), t),
            r"Tensor is of size \[2\] while the given forward "
            r"gradient is of size \[3\]",
        ),
        (lambda ctx, t: (3.0, t), r"expected Variable or None \(got float\) for grad output 0"),
    ]
    for jvp, message in cases:
        with fwAD.dual_level(), pytest.raises(RuntimeError, match=message):
            with_jvp(jvp).apply(fwAD.make_dual(mg.ones(2), mg.ones(2)))

    class NoJvp(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    with fwAD.dual_level():
        _close(_np(NoJvp.apply(mg.ones(2))), [2.0, 2.0])  # no tangent: jvp not needed
        with pytest.raises(NotImplementedError, match="You must implement the jvp function"):
            NoJvp.apply(fwAD.make_dual(mg.ones(2), mg.ones(2)))


def test_jvp_of_an_inplace_function_modifies_the_tangent_in_place():
    class InplaceMul(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.mark_dirty(x)
            x.mul_(2)
            return x

        @staticmethod
        def jvp(ctx, xt):
            xt.mul_(2)
            return xt

        @staticmethod
        def backward(ctx, g):
            return g * 2

    class OutOfPlaceJvp(InplaceMul):
        @staticmethod
        def jvp(ctx, xt):
            return xt * 2

    with fwAD.dual_level():
        q = fwAD.make_dual(mg.tensor([1.0, 3.0]), mg.tensor([1.0, -1.0]))
        r = InplaceMul.apply(q)
        assert r is q
        _close(
            (_np(fwAD.unpack_dual(r).primal), _np(fwAD.unpack_dual(r).tangent)),
            ([2.0, 6.0], [2.0, -2.0]),
        )
        q = fwAD.make_dual(mg.tensor([1.0]), mg.tensor([1.0]))
        with pytest.raises(RuntimeError, match="not modifying the forward mode gradients"):
            OutOfPlaceJvp.apply(q)


def test_forward_mode_matches_torch():
    torch = pytest.importorskip("torch")
    import torch.autograd.forward_ad as tfw

    class TProd(torch.autograd.Function):
        forward = staticmethod(_Prod.forward)
        setup_context = staticmethod(_Prod.setup_context)
        jvp = staticmethod(_Prod.jvp)
        backward = staticmethod(_Prod.backward)

    def run(T, fw, fn):
        x = T.tensor([1.0, 2.0], dtype=T.float64, requires_grad=True)
        y = T.tensor([3.0, -1.0], dtype=T.float64)
        with fw.dual_level():
            p, s = fn.apply(fw.make_dual(x, T.tensor([0.5, 1.0], dtype=T.float64)), y)
            tangents = (_np(fw.unpack_dual(p).tangent), _np(fw.unpack_dual(s).tangent))
            (p * s).sum().backward()
        return tangents, _np(x.grad)

    _close(run(mg, fwAD, _Prod), run(torch, tfw, TProd))


# -- vmap attributes (func.vmap wires them in) ----------------------------------------------------
def test_vmap_rule_validation_texts_as_torch():
    class Generated(Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x):
            return x * 2

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, g):
            return g * 2

    class Ambiguous(Generated):
        @staticmethod
        def vmap(info, in_dims, x):
            return x * 2, in_dims[0]

    class Custom(Ambiguous):
        generate_vmap_rule = False

    class Unsupported(Generated):
        generate_vmap_rule = False

    assert Generated._vmap_rule() == "generate" and Custom._vmap_rule() == "vmap"
    with pytest.raises(
        RuntimeError,
        match="You tried to vmap over Ambiguous, but it has both generate_vmap_rule=True and an "
        "overridden vmap staticmethod. Please set generate_vmap_rule=False or delete the "
        "overridden vmap staticmethod to avoid ambiguity",
    ):
        Ambiguous._vmap_rule()
    with pytest.raises(
        RuntimeError,
        match="You tried to vmap over Unsupported, but it does not have vmap support. Please "
        "override and implement the vmap staticmethod or set generate_vmap_rule=True",
    ):
        Unsupported._vmap_rule()
    with pytest.raises(RuntimeError, match="it must override the setup_context staticmethod"):
        _Scale._vmap_rule()
    out, out_dims = Custom._call_vmap(VmapInfo(3, "error"), (0,), mg.ones(3, 2))
    assert out_dims == 0
    _close(_np(out), np.full((3, 2), 2.0))

    class BadReturn(Custom):
        @staticmethod
        def vmap(info, in_dims, x):
            return x

    with pytest.raises(RuntimeError, match="Expected the vmap staticmethod to have two returns"):
        BadReturn._call_vmap(VmapInfo(3, "error"), (0,), mg.ones(3, 2))
    with pytest.raises(NotImplementedError, match="override the vmap staticmethod"):
        Function.vmap(VmapInfo(3, "error"), (0,), mg.ones(3))


def test_save_for_forward_takes_only_tensors():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_forward(x, 3)
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(AssertionError, match="save_for_forward expects all arguments to be"):
        Bad.apply(mg.ones(2))
