"""The backward engine, graph inspection, hooks, grad modes, in-place semantics, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import matgrad as mg
from matgrad.autograd import Function, gradcheck


def test_seed_example_graph_is_inspectable():
    torch = mg  # the seed's code, unchanged but for the import
    A = torch.randn(5, 5, requires_grad=True)
    B = torch.randn(5, 5, requires_grad=True)
    C = A @ B
    assert C.grad_fn.name() == "MmBackward0"
    assert "grad_fn=<MmBackward0>" in repr(C)
    assert C.grad_fn._saved_self is A and C.grad_fn._saved_mat2 is B
    grad_C = torch.randn(5, 5)
    grad_A, grad_B = C.grad_fn(grad_C)
    a, b, g = A.detach().numpy(), B.detach().numpy(), grad_C.numpy()
    np.testing.assert_allclose(grad_A.numpy(), g @ b.T, rtol=1e-12)
    np.testing.assert_allclose(grad_B.numpy(), a.T @ g, rtol=1e-12)
    (acc_a, nr_a), (acc_b, nr_b) = C.grad_fn.next_functions
    assert acc_a.name() == "AccumulateGrad" and acc_a.variable is A and nr_a == 0
    assert acc_b.variable is B and nr_b == 0


def test_seed_script_runs(tmp_path):
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path(__file__).parents[1] / "examples" / "seed.py"))


def test_next_functions_none_for_inputs_without_grad():
    a = mg.randn(3, requires_grad=True)
    b = mg.randn(3)
    c = a * b
    assert c.grad_fn.next_functions[1] == (None, 0)
    d = c.exp()
    assert d.grad_fn.next_functions[0] == (c.grad_fn, 0)


def test_backward_accumulates_and_matches_closed_form():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.array([1.0, 2.0, 3.0]))


def test_second_backward_without_retain_graph_raises():
    x = mg.randn(3, requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = mg.randn(3, requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_saved_tensors_are_freed_after_backward():
    x = mg.randn(3, requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    with pytest.raises(RuntimeError, match="freed"):
        node._saved_result  # noqa: B018


def test_nonscalar_backward_needs_gradient():
    x = mg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(mg.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.ones(3))


def test_gradient_shape_mismatch_is_reported():
    x = mg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(mg.ones(4))


def test_grad_of_unused_input():
    x = mg.randn(3, requires_grad=True)
    z = mg.randn(3, requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="not have been used in the graph"):
        mg.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = mg.autograd.grad(y, [x, z], allow_unused=True)
    assert gz is None
    np.testing.assert_allclose(gx.numpy(), 2 * np.ones(3))
    assert x.grad is None  # autograd.grad returns, it does not accumulate


def test_grad_wrt_intermediate():
    x = mg.randn(4, requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    (gh,) = mg.autograd.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.detach().numpy())


def test_long_chain_no_recursion():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_each_node_runs_once_after_all_consumers():
    x = mg.randn(3, requires_grad=True)
    h = x.exp()
    calls = []
    h.grad_fn.register_prehook(lambda grads: calls.append(grads[0].numpy().copy()))
    y = (h * 2 + h * 3 + h.sin()).sum()
    y.backward()
    assert len(calls) == 1  # one call, with the sum of the three incoming gradients
    np.testing.assert_allclose(calls[0], 5 + np.cos(h.detach().numpy()))
    np.testing.assert_allclose(
        x.grad.numpy(), (5 + np.cos(np.exp(x.detach().numpy()))) * np.exp(x.detach().numpy())
    )


def test_retain_grad_and_tensor_hooks():
    x = mg.randn(3, requires_grad=True)
    h = x * 2
    h.retain_grad()
    h.register_hook(lambda g: g * 10)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    (h * h).sum().backward()
    expected_h = 2 * h.detach().numpy() * 10
    np.testing.assert_allclose(h.grad.numpy(), expected_h)  # sees the hook's change
    np.testing.assert_allclose(x.grad.numpy(), 2 * expected_h)
    np.testing.assert_allclose(seen[0], 2 * expected_h)


def test_node_post_hook_replaces_input_grads():
    x = mg.randn(3, requires_grad=True)
    y = x * 2
    y.grad_fn.register_hook(lambda gin, gout: (gin[0] * 0, None))
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.zeros(3))


def test_grad_modes():
    x = mg.randn(3, requires_grad=True)
    with mg.no_grad():
        assert (x * 2).grad_fn is None
        with mg.enable_grad():
            assert (x * 2).grad_fn is not None
    with mg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert mg.is_grad_enabled()
    with mg.inference_mode():
        assert not (x * 2).requires_grad and mg.is_inference_mode_enabled()

    @mg.no_grad()
    def f(t):
        return t * 2

    assert f(x).grad_fn is None and mg.is_grad_enabled()

    @mg.set_grad_enabled(False)
    def g(t):
        return t * 2

    assert mg.is_grad_enabled()  # the decorator does not switch at definition time
    assert g(x).grad_fn is None


def test_grad_mode_is_thread_local():
    result = {}

    def worker():
        result["enabled"] = mg.is_grad_enabled()

    with mg.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert result["enabled"] is True


def test_inplace_on_leaf_requiring_grad_raises_but_allowed_under_no_grad():
    w = mg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.add_(1.0)
    before = w.detach().numpy().copy()
    with mg.no_grad():
        w -= 0.5
    np.testing.assert_allclose(w.detach().numpy(), before - 0.5)
    assert w.is_leaf and w._version == 1


def test_modified_saved_tensor_is_detected():
    x = mg.randn(3, requires_grad=True)
    h = x * 1.0
    y = h.sin()  # saves h
    h.mul_(2)
    with pytest.raises(RuntimeError, match=r"SinBackward0.*version 0.*version 1"):
        y.sum().backward()


def test_inplace_on_nonleaf_has_correct_gradient():
    def f(x):
        h = x * 1.0
        h += x.exp()
        h *= 3.0
        h[0] = h[1] * 2
        return h

    x = mg.randn(4, requires_grad=True)
    assert gradcheck(f, (x,))
    h = f(x)
    assert h._version == 3 and h.grad_fn.name() == "IndexPutBackward0"


def test_setitem_into_constant_tensor_makes_it_part_of_the_graph():
    x = mg.randn(3, requires_grad=True)
    z = mg.zeros(5)
    z[1:4] = x * 2
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.ones(3))


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        mg.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        mg.arange(3).requires_grad_()


def test_shape_errors_name_the_op_and_shapes():
    a, b = mg.randn(2, 3), mg.randn(4, 5)
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4, 5\)"):
        a + b
    with pytest.raises(RuntimeError, match="reshape"):
        a.reshape(4, 2)


def test_error_leaves_state_unchanged():
    x = mg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        x.add_(mg.ones(4))  # leaf error first
    h = x * 1.0
    with pytest.raises(RuntimeError):
        h.add_(mg.ones(2, 3))  # shape error
    assert h._version == 0 and h.grad_fn.name() == "MulBackward0"


def test_create_graph_gives_second_derivatives():
    x = mg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = (x**3).sum()
    (g,) = mg.autograd.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
    assert g.grad_fn is not None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.detach().numpy())


def test_broadcast_gradients_are_reduced_to_input_shapes():
    a = mg.randn(4, 1, 3, requires_grad=True)
    b = mg.randn(5, 1, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (4, 1, 3) and b.grad.shape == (5, 1)
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(b.detach().numpy().sum(), (4, 1, 3)))
    np.testing.assert_allclose(b.grad.numpy(), np.full((5, 1), a.detach().numpy().sum()))


def test_leaf_grads_do_not_share_memory():
    a = mg.randn(3, requires_grad=True)
    b = mg.randn(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.add_(1.0)
    np.testing.assert_allclose(b.grad.numpy(), np.ones(3))


def test_python_scalars_and_arrays_on_either_side():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = 2.0 - x
    z = np.array([3.0, 4.0]) * y
    assert isinstance(z, mg.Tensor)
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-3.0, -4.0])


def test_float32_stays_float32():
    x = mg.randn(3, dtype=mg.float32, requires_grad=True)
    y = (x * 2.5 + 1).tanh().sum()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


class Cube(Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x * x * ctx.scale, None


def test_custom_function():
    x = mg.randn(4, requires_grad=True)
    y = Cube.apply(x, 2.0)
    assert y.grad_fn.name() == "CubeBackward"
    assert gradcheck(lambda t: Cube.apply(t, 2.0), (x,))
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.detach().numpy() ** 2)


class WrongCube(Cube):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x * ctx.scale, None


def test_gradcheck_reports_worst_element():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(mg.autograd.GradcheckError, match="worst at"):
        gradcheck(lambda t: WrongCube.apply(t, 1.0), (x,))
    assert not gradcheck(lambda t: WrongCube.apply(t, 1.0), (x,), raise_exception=False)


def test_needs_input_grad():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b):
            seen["needs"] = ctx.needs_input_grad
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g, g

    Probe.apply(mg.randn(2, requires_grad=True), mg.randn(2))
    assert seen["needs"] == (True, False)


def test_backward_inputs_argument_limits_accumulation():
    a = mg.randn(3, requires_grad=True)
    b = mg.randn(3, requires_grad=True)
    (a * b).sum().backward(inputs=[a])
    assert a.grad is not None and b.grad is None


def test_detach_and_numpy():
    x = mg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    d = x.detach()
    assert not d.requires_grad and d.numpy() is x._data


def test_grad_runs_only_the_formulas_of_inputs_on_a_path_to_its_inputs():
    """autograd.grad(zeta(s, q), q) with s requiring grad too: zeta has no derivative in s
    (its formula raises, as PyTorch's), and the engine must not run it, as PyTorch's
    should_compute_output does not. d zeta(s, q)/dq = -s zeta(s + 1, q)."""
    import scipy.special

    s = mg.tensor(2.5, requires_grad=True)
    q = mg.tensor(1.5, requires_grad=True)
    (dq,) = mg.autograd.grad(mg.special.zeta(s, q), q)
    np.testing.assert_allclose(dq.item(), -2.5 * scipy.special.zeta(3.5, 1.5), rtol=1e-12)
    (dq2,) = mg.autograd.grad(mg.special.zeta(s, q) * 2.0, q, create_graph=True)
    np.testing.assert_allclose(dq2.item(), -5.0 * scipy.special.zeta(3.5, 1.5), rtol=1e-12)
    with pytest.raises(NotImplementedError):  # asked for, the derivative in s still raises
        mg.autograd.grad(mg.special.zeta(s, q), s)
