"""``matgrad.autograd.graph``: Node, GradientEdge, saved-tensor hooks, save_on_cpu,
disable_saved_tensors_hooks, register_multi_grad_hook, allow_mutation_on_saved_tensors,
increment_version; and the engine details of issue #11 (post-accumulate-grad hooks,
retains_grad, ``autograd.backward`` without gradients, ``autograd.grad(only_inputs=...)``).

Values are checked against closed forms and against PyTorch, running the examples of
``torch.autograd.graph``'s docstrings with ``import matgrad as torch`` and with PyTorch.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pytest

import matgrad as mg
from matgrad.autograd import graph as mg_graph
from matgrad.core import graph as core_graph


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def values(t) -> np.ndarray:
    return np.asarray(t.detach().numpy())


@pytest.fixture(autouse=True)
def _no_instrumentation_left():
    """Every context of this module must leave the hot path as it found it: empty lists."""
    yield
    assert core_graph.NODE_WATCHERS == []
    assert core_graph.OP_OBSERVERS == []
    assert core_graph.HOOKS.saved == [] and core_graph.HOOKS.disabled is None


# -- Node -----------------------------------------------------------------------------------------
def _node_docstring_examples(lib):
    """torch.autograd.graph.Node.name / register_hook / register_prehook examples."""
    out = []
    a = lib.tensor([0.0, 0.0, 0.0], requires_grad=True)
    b = a.clone()
    assert isinstance(b.grad_fn, lib.autograd.graph.Node)
    out.append(b.grad_fn.name())
    handle = b.grad_fn.register_hook(lambda gI, gO: (gO[0] * 2,))
    b.sum().backward(retain_graph=True)
    out.append(values(a.grad).tolist())
    handle.remove()
    a.grad = None
    b.sum().backward(retain_graph=True)
    out.append(values(a.grad).tolist())
    a = lib.tensor([0.0, 0.0, 0.0], requires_grad=True)
    b = a.clone()
    handle = b.grad_fn.register_prehook(lambda gI: (gI[0] * 2,))
    b.sum().backward(retain_graph=True)
    out.append(values(a.grad).tolist())
    handle.remove()
    a.grad = None
    b.sum().backward(retain_graph=True)
    out.append(values(a.grad).tolist())
    return out


def test_node_docstring_examples():
    assert _node_docstring_examples(mg) == [
        "CloneBackward0",
        [2.0, 2.0, 2.0],
        [1.0, 1.0, 1.0],
        [2.0, 2.0, 2.0],
        [1.0, 1.0, 1.0],
    ]


def test_node_docstring_examples_match_torch(torch):
    assert _node_docstring_examples(mg) == _node_docstring_examples(torch)


def test_every_node_is_a_graph_node():
    class Double(mg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = mg.randn(3, requires_grad=True)
    y = Double.apply(x)
    z = (x * 3).exp()
    for node in (y.grad_fn, z.grad_fn, z.grad_fn.next_functions[0][0], x._accumulator()):
        assert isinstance(node, mg.autograd.graph.Node)
    assert mg.autograd.graph.Node is mg.autograd.Node
    assert not isinstance(x, mg.autograd.graph.Node)


def test_node_metadata_is_a_dict_kept_with_the_node():
    x = mg.randn(2, requires_grad=True)
    y = x * 2
    assert y.grad_fn.metadata == {}
    y.grad_fn.metadata["tag"] = 7
    assert y.grad_fn.metadata is y.grad_fn.metadata
    assert y.grad_fn.metadata["tag"] == 7
    assert x._accumulator().metadata == {}


# -- saved_tensors_hooks --------------------------------------------------------------------------
def _saved_hooks_docstring_example(lib):
    """The saved_tensors_hooks docstring: what pack and unpack see, in order."""
    log = []

    def describe(x):
        return (
            values(x).tolist(),
            x.requires_grad,
            None if x.grad_fn is None else x.grad_fn.name(),
        )

    def pack_hook(x):
        log.append(("pack", *describe(x)))
        return x.detach()

    def unpack_hook(x):
        log.append(("unpack", *describe(x)))
        return x

    a = lib.ones(5, requires_grad=True)
    b = lib.ones(5, requires_grad=True) * 2
    with lib.autograd.graph.saved_tensors_hooks(pack_hook, unpack_hook):
        y = a * b
    y.sum().backward()
    return log, values(a.grad).tolist()


def test_saved_tensors_hooks_docstring_example():
    log, grad = _saved_hooks_docstring_example(mg)
    assert log == [
        ("pack", [2.0] * 5, True, "MulBackward0"),
        ("pack", [1.0] * 5, True, None),
        ("unpack", [2.0] * 5, False, None),
        ("unpack", [1.0] * 5, False, None),
    ]
    assert grad == [2.0] * 5  # d(a * b)/da = b = 2


def test_saved_tensors_hooks_docstring_example_matches_torch(torch):
    assert _saved_hooks_docstring_example(mg) == _saved_hooks_docstring_example(torch)


def _outputs_are_packed(lib):
    x = lib.tensor([0.5, 1.0], requires_grad=True)
    seen = []
    with lib.autograd.graph.saved_tensors_hooks(
        lambda t: seen.append(t) or t.detach(), lambda t: t
    ):
        y = x.exp()  # saves its result
    return [s is y for s in seen], [s.grad_fn.name() for s in seen]


def test_outputs_saved_by_a_node_are_packed_with_their_grad_fn(torch):
    assert _outputs_are_packed(mg) == ([True], ["ExpBackward0"])
    assert _outputs_are_packed(mg) == _outputs_are_packed(torch)


def test_packed_values_give_the_gradients_and_the_node_keeps_no_array():
    """An offloading pair of hooks: pack stores a copy elsewhere and returns a key; the
    node must not hold the original array any more (it is freed), and the gradients are the
    closed form."""
    store: dict[int, np.ndarray] = {}

    def pack(t):
        store[len(store)] = t.numpy().copy()
        return len(store) - 1

    def unpack(key):
        return mg.from_numpy(store[key])

    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(6)
    x = mg.tensor(x0, requires_grad=True)
    with mg.autograd.graph.saved_tensors_hooks(pack, unpack):
        h = x * x
        ref = weakref.ref(h._data)
        y = h.sin()  # sin saves its input h
    del h
    assert ref() is None  # nothing but the pack hook's copy kept h's values
    assert len(store) == 3  # x twice (mul saves self and other), h once
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos(x0 * x0) * 2 * x0, rtol=1e-12)


def test_create_graph_through_packed_values_reaches_the_original_graph():
    """d2/dx2 of x**3 is 6x: the unpacked x must carry x's graph for the second pass."""
    x = mg.tensor([1.0, 2.0, -0.5], requires_grad=True)
    with mg.autograd.graph.saved_tensors_hooks(lambda t: t.detach() * 1, lambda t: t):
        y = x.pow(3)
    (g,) = mg.autograd.grad(y.sum(), x, create_graph=True)
    np.testing.assert_allclose(values(g), 3 * np.array([1.0, 4.0, 0.25]))
    (h,) = mg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * np.array([1.0, 2.0, -0.5]))


def test_create_graph_through_a_packed_intermediate_and_output():
    """y = exp(2x): the saved output reconnects to the node itself, so d2y/dx2 = 4 exp(2x)."""
    x0 = np.array([0.1, -0.3])
    x = mg.tensor(x0, requires_grad=True)
    with mg.autograd.graph.saved_tensors_hooks(lambda t: t.detach().clone(), lambda t: t):
        y = (x * 2).exp()
    (g,) = mg.autograd.grad(y.sum(), x, create_graph=True)
    (h,) = mg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 4 * np.exp(2 * x0), rtol=1e-12)


def test_unpack_hook_must_return_the_tensor_it_packed():
    x = mg.randn(3, requires_grad=True)
    with mg.autograd.graph.saved_tensors_hooks(lambda t: 1, lambda p: p):
        y = x * x
    with pytest.raises(TypeError, match="unpack_hook expected to be a Tensor but got .* int"):
        y.sum().backward()
    with mg.autograd.graph.saved_tensors_hooks(lambda t: t.detach(), lambda t: t[:2]):
        y = x * x
    with pytest.raises(RuntimeError, match=r"MulBackward0\._saved_.*shape \(2,\)"):
        y.sum().backward()


def _in_place_after_packing(lib):
    a = lib.ones(3, requires_grad=True)
    with lib.autograd.graph.saved_tensors_hooks(lambda x: x.detach(), lambda x: x):
        c = a * 1
        d = c * c
    c.add_(1)  # the hooks decide what is kept: no version check (PyTorch's rule)
    d.sum().backward()
    return values(a.grad).tolist()


def test_packed_tensors_are_not_version_checked_as_in_torch(torch):
    assert _in_place_after_packing(mg) == [4.0, 4.0, 4.0]  # 2 * c, c now 2
    assert _in_place_after_packing(mg) == _in_place_after_packing(torch)


def _saved_self_access(lib):
    calls = []
    a = lib.tensor([1.0, 2.0], requires_grad=True)
    with lib.autograd.graph.saved_tensors_hooks(
        lambda x: x.detach(), lambda x: calls.append(1) or x
    ):
        f = a.pow(2)
    s1 = f.grad_fn._saved_self
    s2 = f.grad_fn._saved_self
    return len(calls), values(s1).tolist(), s1 is a, s2.requires_grad, s2.grad_fn, s2.is_leaf


def test_saved_self_unpacks_on_each_access(torch):
    assert _saved_self_access(mg) == (2, [1.0, 2.0], False, True, None, True)
    assert _saved_self_access(mg) == _saved_self_access(torch)


def test_only_the_innermost_hooks_apply_and_pack_runs_without_grad():
    log = []

    def pack(name):
        def hook(t):
            log.append((name, mg.is_grad_enabled()))
            return t.detach()

        return hook

    x = mg.randn(2, requires_grad=True)
    with mg.autograd.graph.saved_tensors_hooks(pack("outer"), lambda t: t):
        with mg.autograd.graph.saved_tensors_hooks(pack("inner"), lambda t: t):
            _ = x * x
        _ = x.sin()
    assert log == [("inner", False), ("inner", False), ("outer", False)]


def test_saved_tensors_hooks_are_per_thread():
    seen = []
    x = mg.randn(2, requires_grad=True)
    done = threading.Event()
    results = {}

    def other():
        results["y"] = x * x  # no hooks in this thread
        done.set()

    with mg.autograd.graph.saved_tensors_hooks(lambda t: seen.append(t) or t.detach(), lambda t: t):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert done.is_set() and seen == []
    results["y"].sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * values(x))


def test_custom_function_saved_tensors_go_through_the_hooks():
    class Cube(mg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * x * g

    packed, unpacked = [], []
    x = mg.tensor([1.0, -2.0], requires_grad=True)
    with mg.autograd.graph.saved_tensors_hooks(
        lambda t: packed.append(t) or t.detach(), lambda t: unpacked.append(t) or t
    ):
        y = Cube.apply(x)
    assert len(packed) == 1 and packed[0] is x
    y.sum().backward()
    assert len(unpacked) == 1
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])


def test_save_on_cpu_keeps_numpy_data_without_copies():
    x0 = np.array([0.2, 0.7, -1.1])
    x = mg.tensor(x0, requires_grad=True)
    with mg.autograd.graph.save_on_cpu():
        y = x.tanh() * x
    y.sum().backward()
    t = np.tanh(x0)
    np.testing.assert_allclose(x.grad.numpy(), t + x0 * (1 - t * t), rtol=1e-12)
    with mg.autograd.graph.save_on_cpu(pin_memory=True):
        z = x.sin()
    saved = z.grad_fn._saved_self
    assert np.shares_memory(saved._data, x._data)  # already on the CPU: no copy, as PyTorch


def test_save_on_cpu_docstring_example_values(torch):
    """The save_on_cpu docstring example (on CPU tensors): gradients equal PyTorch's."""

    def run(lib, a0, b0, c0):
        a, b, c = (lib.tensor(v, requires_grad=True) for v in (a0, b0, c0))

        def f(a, b, c):
            prod_1 = a * b
            with lib.autograd.graph.save_on_cpu():
                prod_2 = prod_1 * c
            return prod_2 * a

        f(a, b, c).sum().backward()
        return [values(t.grad) for t in (a, b, c)]

    rng = np.random.default_rng(3)
    args = [rng.standard_normal(5) for _ in range(3)]
    for got, want in zip(run(mg, *args), run(torch, *args), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    a0, b0, c0 = args
    np.testing.assert_allclose(run(mg, *args)[0], 2 * a0 * b0 * c0, rtol=1e-12)


def test_disable_saved_tensors_hooks():
    message = "saved tensors default hooks are disabled"
    with mg.autograd.graph.disable_saved_tensors_hooks(message):
        with pytest.raises(RuntimeError, match=message), mg.autograd.graph.save_on_cpu():
            pass
        x = mg.randn(2, requires_grad=True)
        (x * x).sum().backward()  # saving without hooks still works
    with (
        mg.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t),
        pytest.raises(RuntimeError, match="no hooks here"),
        mg.autograd.graph.disable_saved_tensors_hooks("no hooks here"),
    ):
        pass
    with mg.autograd.graph.save_on_cpu():  # enabled again after the block
        pass


# -- register_multi_grad_hook ---------------------------------------------------------------------
def _multi_grad_hook_docstring_example(lib):
    printed = []
    a = lib.rand(2, 3, requires_grad=True)
    b = lib.rand(2, 3, requires_grad=True)
    c = a * b
    d = a * b

    def fn(grads):
        printed.append([g is not None for g in grads])

    handle = lib.autograd.graph.register_multi_grad_hook((a, b, c, d), fn)
    c.sum().backward(retain_graph=True)
    c.sum().backward(inputs=(a,), retain_graph=True)
    handle.remove()
    c.sum().backward(retain_graph=True)
    return printed


def test_register_multi_grad_hook_docstring_example(torch):
    assert _multi_grad_hook_docstring_example(mg) == [
        [True, True, True, False],
        [True, False, True, False],
    ]
    assert _multi_grad_hook_docstring_example(mg) == _multi_grad_hook_docstring_example(torch)


def test_register_multi_grad_hook_passes_the_gradients():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = mg.tensor([3.0, 4.0], requires_grad=True)
    got = []
    mg.autograd.graph.register_multi_grad_hook((a, b), lambda gs: got.append(gs))
    (a * b).sum().backward()
    assert len(got) == 1
    np.testing.assert_allclose(got[0][0].numpy(), [3.0, 4.0])  # d(ab)/da = b
    np.testing.assert_allclose(got[0][1].numpy(), [1.0, 2.0])
    mg.autograd.grad((a * b * b).sum(), [a])  # autograd.grad: a's hooks run, b is skipped
    assert len(got) == 2 and got[1][1] is None
    np.testing.assert_allclose(got[1][0].numpy(), [9.0, 16.0])


def _multi_grad_hook_any(lib):
    a = lib.tensor([1.0, 2.0], requires_grad=True)
    b = lib.tensor([3.0, 4.0], requires_grad=True)
    got = []
    lib.autograd.graph.register_multi_grad_hook(
        (a, b), lambda g: got.append(values(g).copy()), mode="any"
    )
    (a * b).sum().backward()
    (a * 5).sum().backward()
    return [g.tolist() for g in got]


def test_register_multi_grad_hook_any_mode(torch):
    got = _multi_grad_hook_any(mg)
    assert len(got) == 2 and got[1] == [5.0, 5.0]  # once per backward pass
    assert got[0] in ([3.0, 4.0], [1.0, 2.0])
    # which of a and b comes first is the engine's order (PyTorch: a; matgrad: b)
    assert got[1:] == _multi_grad_hook_any(torch)[1:]
    with pytest.raises(ValueError, match="mode"):
        mg.autograd.graph.register_multi_grad_hook(
            (mg.randn(1, requires_grad=True),), print, mode="x"
        )


# -- allow_mutation_on_saved_tensors --------------------------------------------------------------
def _allow_mutation_docstring_example(lib):
    with lib.autograd.graph.allow_mutation_on_saved_tensors():
        a = lib.ones(2, 3, requires_grad=True)
        b = a.clone()
        out = (b**2).sum()
        printed = b.sin_()
        out.sum().backward()
    return values(printed).tolist(), printed.grad_fn.name(), values(a.grad).tolist()


def test_allow_mutation_on_saved_tensors_docstring_example(torch):
    printed, name, grad = _allow_mutation_docstring_example(mg)
    np.testing.assert_allclose(printed, np.full((2, 3), np.sin(1.0)))
    assert name == "SinBackward0"
    assert grad == [[2.0] * 3] * 2  # d sum(b^2)/da with b = a = 1 before the sin_
    got, want = _allow_mutation_docstring_example(mg), _allow_mutation_docstring_example(torch)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    assert got[1:] == want[1:]


def test_allow_mutation_on_saved_tensors_errors():
    a = mg.ones(3, requires_grad=True)
    b = a.clone()
    out = (b**2).sum()
    b.sin_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()  # without the context: the usual error
    with mg.autograd.graph.allow_mutation_on_saved_tensors():
        with (
            pytest.raises(RuntimeError, match="cannot be nested"),
            mg.autograd.graph.allow_mutation_on_saved_tensors(),
        ):
            pass
        b = a.clone()
        out = (b**2).sum()
    with pytest.raises(RuntimeError, match="outside of the 'allow_mutation_on_saved_tensors'"):
        out.backward()


# -- increment_version and gradient edges ---------------------------------------------------------
def test_increment_version_makes_saved_tensors_stale():
    x = mg.randn(3, requires_grad=True)
    h = x * 2
    y = h * h
    before = h._version
    mg.autograd.graph.increment_version(h)
    assert h._version == before + 1
    mg.autograd.graph.increment_version([h, x.detach()])
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_gradient_edges_as_inputs_of_grad(torch):
    def run(lib):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        b = a * 3
        e = lib.autograd.graph.get_gradient_edge(b)
        c = (b * b).sum()
        (gb,) = lib.autograd.grad(c, e, retain_graph=True)
        gb2, ga = lib.autograd.grad(c, [e, a], retain_graph=True, only_inputs=True)
        ea = lib.autograd.graph.get_gradient_edge(a)
        (ga2,) = lib.autograd.grad(c, ea)
        return [values(g).tolist() for g in (gb, gb2, ga, ga2)], e.output_nr, e.node.name()

    grads, nr, name = run(mg)
    assert grads == [[6.0, 12.0], [6.0, 12.0], [18.0, 36.0], [18.0, 36.0]]  # 2b, 2b*3
    assert (nr, name) == (0, "MulBackward0")
    assert run(torch)[0] == grads


def test_gradient_edge_details():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    edge = mg.autograd.graph.get_gradient_edge(a)
    assert isinstance(edge, mg.autograd.graph.GradientEdge)
    assert type(edge.node).__name__ == "AccumulateGrad" and edge.node.variable is a
    assert edge == (edge.node, 0, None)
    with pytest.raises(RuntimeError, match="does not require gradients"):
        mg.autograd.graph.get_gradient_edge(mg.ones(2))
    # an output edge with its gradient: the same as the tensor's
    b = a.exp()
    c = b * 2
    (g,) = mg.autograd.grad(mg.autograd.graph.get_gradient_edge(b), a, grad_outputs=mg.ones(2))
    np.testing.assert_allclose(g.numpy(), np.exp([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="needs its gradient"):
        mg.autograd.grad(mg.autograd.graph.get_gradient_edge(c), a)
    # an unused edge
    d = a * 5
    with pytest.raises(RuntimeError, match="not have been used"):
        mg.autograd.grad(b.sum(), mg.autograd.graph.get_gradient_edge(d))


# -- engine details -------------------------------------------------------------------------------
def _post_accumulate(lib):
    log = []
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    handle = w.register_post_accumulate_grad_hook(
        lambda p: log.append((p is w, values(p.grad).tolist()))
    )
    (w * 3).sum().backward()
    (w * w).sum().backward()
    lib.autograd.grad((w * 3).sum(), w)  # not an accumulation: no call
    handle.remove()
    (w * 3).sum().backward()
    return log, values(w.grad).tolist()


def test_register_post_accumulate_grad_hook(torch):
    log, final = _post_accumulate(mg)
    assert log == [(True, [3.0, 3.0]), (True, [5.0, 7.0])]  # 3 + 2w after the second pass
    assert final == [8.0, 10.0]
    assert _post_accumulate(mg) == _post_accumulate(torch)
    w = mg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(lambda p: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        mg.ones(2).register_post_accumulate_grad_hook(lambda p: None)


def test_retains_grad():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = a * 3
    c = a * 2
    c.retain_grad()
    assert (a.retains_grad, b.retains_grad, c.retains_grad) == (False, False, True)
    (b * c).sum().backward()
    np.testing.assert_allclose(c.grad.numpy(), [3.0, 6.0])  # d(b c)/dc = b


def test_autograd_backward_without_grad_tensors_and_grad_options(torch):
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    mg.autograd.backward((a * a).sum())
    mg.autograd.backward([(a * 3).sum(), (a * 4).sum()])
    np.testing.assert_allclose(a.grad.numpy(), [2.0 + 7.0, 4.0 + 7.0])
    mg.autograd.backward(a * 2, mg.ones(2), inputs=[a])
    np.testing.assert_allclose(a.grad.numpy(), [11.0, 13.0])
    with pytest.warns(FutureWarning, match="grad_variables"):
        mg.autograd.backward(a * 2, grad_variables=mg.ones(2))
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        mg.autograd.backward(a * 2)
    with pytest.warns(FutureWarning, match="only_inputs"):
        mg.autograd.grad((a * a).sum(), a, only_inputs=False)
    # PyTorch's positional order: only_inputs comes before allow_unused
    b = mg.ones(2, requires_grad=True)
    assert mg.autograd.grad((a * a).sum(), [a, b], None, None, False, True, True)[1] is None
    # a dict of named inputs gives a dict of gradients (PyTorch 2.13)
    got = mg.autograd.grad((a * a * 3).sum(), {"a": a})
    np.testing.assert_allclose(got["a"].numpy(), 6 * a.detach().numpy())
    ta = torch.tensor([1.0, 2.0], requires_grad=True)
    want = torch.autograd.grad((ta * ta * 3).sum(), {"a": ta})
    np.testing.assert_allclose(got["a"].numpy(), want["a"].numpy())


def _leaf_hook_in_grad(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: g * 2)
    return values(lib.autograd.grad((x * x).sum(), x)[0]).tolist()


def test_leaf_tensor_hooks_apply_to_autograd_grad(torch):
    assert _leaf_hook_in_grad(mg) == [4.0, 8.0]  # 2 * 2x
    assert _leaf_hook_in_grad(mg) == _leaf_hook_in_grad(torch)


def test_graph_task_queries_outside_backward():
    from matgrad.core import engine

    assert engine.current_graph_task_id() == -1
    with pytest.raises(RuntimeError, match="during the backward pass"):
        engine.will_engine_execute_node(mg.randn(1, requires_grad=True)._accumulator())
    ids = []
    x = mg.randn(2, requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: ids.append(engine.current_graph_task_id()))
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    assert len(ids) == 2 and ids[0] >= 0 and ids[0] != ids[1]


def test_public_names_match_torch(torch):
    for name in (
        "Node",
        "GradientEdge",
        "get_gradient_edge",
        "increment_version",
        "saved_tensors_hooks",
        "save_on_cpu",
        "disable_saved_tensors_hooks",
        "register_multi_grad_hook",
        "allow_mutation_on_saved_tensors",
    ):
        assert hasattr(torch.autograd.graph, name) and hasattr(mg_graph, name), name
