"""``matgrad.utils.checkpoint``: checkpoint and checkpoint_sequential recompute activations in
backward; gradients are bit-identical to the plain run, activations are freed, the memory of
a deep MLP falls, and misuse raises."""

from __future__ import annotations

import gc
import tracemalloc
import warnings
import weakref

import numpy as np
import pytest

import matgrad as mg
from matgrad.core import graph as core_graph
from matgrad.utils.checkpoint import CheckpointError, checkpoint, checkpoint_sequential


@pytest.fixture(autouse=True)
def _hooks_closed_afterwards():
    yield
    assert core_graph.NODE_WATCHERS == [] and core_graph.HOOKS.saved == []


def _mlp(depth: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = [
        mg.tensor(rng.standard_normal((width, width)) / np.sqrt(width), requires_grad=True)
        for _ in range(depth)
    ]
    x = mg.tensor(rng.standard_normal((5, width)), requires_grad=True)
    return x, weights


def _layer(w):
    return lambda h: (h @ w).tanh()


def _plain_grads(x, weights):
    h = x
    for w in weights:
        h = _layer(w)(h)
    return [g.numpy() for g in mg.autograd.grad((h * h).sum(), [x, *weights])]


def _grads_after(out, leaves):
    for p in leaves:
        p.grad = None
    (out * out).sum().backward()
    return [p.grad.numpy() for p in leaves]


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpoint_per_layer_gives_identical_gradients(use_reentrant):
    x, weights = _mlp(6, 8)
    want = _plain_grads(x, weights)
    h = x
    for w in weights:
        h = checkpoint(_layer(w), h, use_reentrant=use_reentrant)
    got = _grads_after(h, [x, *weights])
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)  # the same nodes run on recomputed, equal values


@pytest.mark.parametrize("segments", [1, 2, 3, 6])
def test_checkpoint_sequential_gives_identical_gradients(segments):
    x, weights = _mlp(6, 8, seed=1)
    want = _plain_grads(x, weights)
    out = checkpoint_sequential([_layer(w) for w in weights], segments, x, use_reentrant=False)
    got = _grads_after(out, [x, *weights])
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


def test_checkpoint_with_autograd_grad_and_create_graph():
    x0 = np.array([0.5, -1.0, 2.0])
    x = mg.tensor(x0, requires_grad=True)
    y = checkpoint(lambda t: (t**3).sin().sum(), x, use_reentrant=False)
    (g,) = mg.autograd.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), np.cos(x0**3) * 3 * x0**2, rtol=1e-12)
    (h,) = mg.autograd.grad(g.sum(), x)  # d/dx [3 x^2 cos(x^3)]
    want = 6 * x0 * np.cos(x0**3) - 9 * x0**4 * np.sin(x0**3)
    np.testing.assert_allclose(h.numpy(), want, rtol=1e-12)


def test_nn_sequential_with_dropout_reuses_the_rng_state():
    mg.manual_seed(0)
    model = mg.nn.Sequential(
        mg.nn.Linear(6, 6), mg.nn.Tanh(), mg.nn.Dropout(0.5), mg.nn.Linear(6, 6), mg.nn.Tanh()
    )
    x = mg.randn(4, 6)
    mg.manual_seed(7)
    model(x).sum().backward()
    want = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    mg.manual_seed(7)
    checkpoint_sequential(model, 2, x, use_reentrant=False).sum().backward()
    for p, w in zip(model.parameters(), want, strict=True):
        assert np.array_equal(p.grad.numpy(), w)


def test_activations_are_not_kept_and_the_function_reruns_once():
    calls = []

    def f(t):
        calls.append("start")
        h = t * t
        refs.append(weakref.ref(h._data))
        out = h.sin()  # sin saves h
        calls.append("end")
        return out

    x0 = np.array([0.3, 0.9])
    x = mg.tensor(x0, requires_grad=True)
    refs: list = []
    y_plain = f(x)
    assert refs[-1]() is not None  # the plain run keeps h alive in SinBackward0
    del y_plain
    calls.clear()
    y = checkpoint(f, x, use_reentrant=False)
    gc.collect()
    assert refs[-1]() is None  # checkpointed: nothing holds h
    y.sum().backward()
    # rerun once, stopped early after the last tensor the first run saved (sin's input)
    assert calls == ["start", "end", "start"]
    np.testing.assert_allclose(x.grad.numpy(), np.cos(x0 * x0) * 2 * x0, rtol=1e-12)
    calls.clear()
    y = checkpoint(f, x, use_reentrant=False, early_stop=False)
    y.sum().backward()
    assert calls == ["start", "end", "start", "end"]


def test_retain_graph_recomputes_for_each_backward_pass():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = checkpoint(lambda t: (t * t).exp().sum(), x, use_reentrant=False)
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 2 * np.array([1.0, 2.0]) * np.exp([1.0, 4.0]))
    # saved values read outside backward are recomputed too
    z = checkpoint(lambda t: t.sin(), x, use_reentrant=False)
    np.testing.assert_allclose(z.grad_fn._saved_self.detach().numpy(), [1.0, 2.0])


def test_misuse_raises():
    x = mg.randn(3, requires_grad=True)
    y = checkpoint(lambda t: t.exp(), x, use_reentrant=True)
    with pytest.raises(RuntimeError, match="incompatible with .grad()"):
        mg.autograd.grad(y.sum(), x)
    with pytest.raises(ValueError, match="Unexpected keyword arguments: scale"):
        checkpoint(lambda t, scale: t * scale, x, use_reentrant=True, scale=2.0)
    with pytest.raises(ValueError, match="determinism_check"):
        checkpoint(lambda t: t, x, use_reentrant=False, determinism_check="strict")
    with pytest.warns(UserWarning, match="use_reentrant parameter should be passed"):
        checkpoint(lambda t: t.exp(), x)
    # keyword arguments work with use_reentrant=False
    y = checkpoint(lambda t, scale: (t * scale).sin(), x, use_reentrant=False, scale=2.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.cos(2 * x.detach().numpy()), rtol=1e-12)


def test_a_function_that_changes_between_runs_is_caught():
    width = [3]

    def f(t):
        return (t[: width[0]] * t[: width[0]]).sum()

    x = mg.randn(4, requires_grad=True)
    y = checkpoint(f, x, use_reentrant=False)
    width[0] = 2
    with pytest.raises(CheckpointError, match="different metadata"):
        y.backward()


def test_inputs_changed_in_place_are_caught():
    a = mg.randn(3, requires_grad=True)
    h = a * 1
    y = checkpoint(lambda t: (t * t).sum(), h, use_reentrant=False)
    with mg.no_grad():
        h.mul_(2)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_matches_torch_checkpoint():
    torch = pytest.importorskip("torch")
    from torch.utils.checkpoint import checkpoint as torch_checkpoint

    rng = np.random.default_rng(5)
    w0, x0 = rng.standard_normal((4, 4)), rng.standard_normal((3, 4))

    def run(lib, ck):
        w = lib.tensor(w0, requires_grad=True)
        x = lib.tensor(x0, requires_grad=True)
        out = ck(lambda t: (t @ w).tanh() @ w, x, use_reentrant=False)
        out.sum().backward()
        return w.grad.numpy(), x.grad.numpy()

    for got, want in zip(run(mg, checkpoint), run(torch, torch_checkpoint), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def _peak(fn) -> int:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_checkpoint_sequential_lowers_peak_memory():
    """16 tanh layers, 256 x 256 activations (512 KiB each): the plain run keeps all 16;
    4 segments keep 4 inputs plus one recomputed segment."""
    depth, batch, width = 16, 256, 32
    rng = np.random.default_rng(2)
    weights = [
        mg.tensor(rng.standard_normal((width, width)) / np.sqrt(width), requires_grad=True)
        for _ in range(depth)
    ]
    x = mg.tensor(rng.standard_normal((batch, width)))
    layers = [_layer(w) for w in weights]

    def plain():
        h = x
        for f in layers:
            h = f(h)
        h.sum().backward()

    def segmented():
        checkpoint_sequential(layers, 4, x, use_reentrant=False).sum().backward()

    plain()  # .grad of the weights exists from now on: later passes add in place
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peak_plain, peak_ck = _peak(plain), _peak(segmented)
    activation = batch * width * 8
    assert peak_plain > depth * activation  # every layer's activation kept
    assert peak_ck < 0.6 * peak_plain
