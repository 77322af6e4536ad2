"""Anomaly mode: ``autograd.detect_anomaly()`` / ``set_detect_anomaly``. Errors and messages
are compared with PyTorch's; the forward stack a node records is checked against this file's
own lines."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matgrad as mg
from matgrad.core import graph as core_graph

# NumPy's own warnings for 0/0 and log(0) in the forward passes below are expected
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _anomaly_off_afterwards():
    yield
    assert not mg.autograd.anomaly_mode.is_anomaly_enabled()
    assert core_graph.NODE_WATCHERS == []


def _quiet_detect_anomaly(lib, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lib.autograd.detect_anomaly(**kwargs)


def _backward_error(lib, make):
    """The error message of a backward pass under anomaly mode, and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with lib.autograd.detect_anomaly():
            out = make(lib)
            with pytest.raises(RuntimeError) as info:
                out.sum().backward()
    return str(info.value), [str(w.message) for w in caught]


def _div(lib):
    a = lib.tensor([0.0, 1.0], requires_grad=True)
    b = lib.tensor([0.0, 1.0], requires_grad=True)
    return a / b  # grad of a: 1/b = [inf, 1]; of b: -a/b^2 = [nan, -1]


def _sqrt(lib):
    return lib.tensor([-1.0], requires_grad=True).sqrt()


def test_nan_in_backward_names_the_node_and_the_forward_line():
    message, caught = _backward_error(mg, _div)
    assert message == "Function 'DivBackward0' returned nan values in its 1th output."
    assert caught[0].startswith("Anomaly Detection has been enabled")
    trace = [w for w in caught if w.startswith("Error detected in DivBackward0")]
    assert len(trace) == 1
    assert "Traceback of forward call that caused the error" in trace[0]
    assert "return a / b" in trace[0] and __file__ in trace[0]  # the line that recorded it


@pytest.mark.parametrize("make", [_div, _sqrt])
def test_anomaly_errors_match_torch(torch, make):
    got, got_warnings = _backward_error(mg, make)
    want, want_warnings = _backward_error(torch, make)
    assert got == want
    name = got.split("'")[1]
    assert any(w.startswith(f"Error detected in {name}") for w in got_warnings)
    assert any(w.startswith(f"Error detected in {name}") for w in want_warnings)


def test_inf_is_not_an_anomaly_unless_asked():
    """log(0)' = 1/0 = inf: PyTorch checks NaN only; check_inf=True (matgrad) flags it."""
    with _quiet_detect_anomaly(mg):
        t = mg.tensor([0.0], requires_grad=True)
        t.log().sum().backward()
    assert np.isinf(t.grad.numpy()[0])
    with _quiet_detect_anomaly(mg, check_inf=True):
        t = mg.tensor([0.0, 1.0], requires_grad=True)
        with (
            warnings.catch_warnings(),
            pytest.raises(RuntimeError, match="'LogBackward0' returned inf values in its 0th"),
        ):
            warnings.simplefilter("ignore")
            t.log().sum().backward()


def test_docstring_example_error_in_a_custom_backward():
    """detect_anomaly's docstring: an error raised in a Function's backward propagates, and
    the warning shows the forward stack through run_fn to MyFunc.apply."""

    class MyFunc(mg.autograd.Function):
        @staticmethod
        def forward(ctx, inp):
            return inp.clone()

        @staticmethod
        def backward(ctx, gO):
            raise RuntimeError("Some error in backward")

    def run_fn(a):
        out = MyFunc.apply(a)
        return out.sum()

    inp = mg.rand(10, 10, requires_grad=True)
    out = run_fn(inp)
    with pytest.raises(RuntimeError, match="Some error in backward"):
        out.backward()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mg.autograd.detect_anomaly():
            inp = mg.rand(10, 10, requires_grad=True)
            out = run_fn(inp)
            with pytest.raises(RuntimeError, match="Some error in backward"):
                out.backward()
    trace = next(str(w.message) for w in caught if "MyFuncBackward" in str(w.message))
    assert "out = run_fn(inp)" in trace and "out = MyFunc.apply(a)" in trace
    assert trace.index("out = run_fn(inp)") < trace.index("out = MyFunc.apply(a)")


def test_nodes_record_the_user_stack_without_matgrads_frames():
    with _quiet_detect_anomaly(mg):
        x = mg.randn(3, requires_grad=True)
        y = mg.nn.functional.softplus(x)  # a composite: its primitives are made inside matgrad
    trace = y.grad_fn.metadata["traceback_"]
    assert isinstance(trace, list) and all(isinstance(line, str) for line in trace)
    assert "y = mg.nn.functional.softplus(x)" in trace[-1] and __file__ in trace[-1]
    assert not any("/matgrad/" in line.split(",")[0] for line in trace)


def test_nodes_made_in_a_create_graph_backward_record_their_parent(torch):
    def parent_name(lib):
        with _quiet_detect_anomaly(lib):
            x = lib.tensor([1.0], requires_grad=True)
            y = x.exp()
            (g,) = lib.autograd.grad(y, x, create_graph=True)
        return g.grad_fn.metadata["parent_"].name()

    assert parent_name(mg) == "ExpBackward0"
    assert parent_name(mg) == parent_name(torch)


def test_node_made_before_anomaly_mode_has_no_forward_information():
    a = mg.tensor([0.0], requires_grad=True)
    b = mg.tensor([0.0], requires_grad=True)
    c = a / b
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mg.autograd.detect_anomaly(), pytest.raises(RuntimeError, match="nan values"):
            c.backward()
    assert any("No forward pass information available" in str(w.message) for w in caught)


def test_off_by_default_and_restored():
    anomaly = mg.autograd.anomaly_mode
    assert not anomaly.is_anomaly_enabled()
    a = mg.tensor([0.0], requires_grad=True)
    y = a / a
    assert "traceback_" not in y.grad_fn.metadata  # nothing recorded when off
    y.backward()  # NaN gradients pass silently when off, as in PyTorch
    assert np.isnan(a.grad.numpy()[0])
    mg.autograd.set_detect_anomaly(True)
    try:
        assert anomaly.is_anomaly_enabled() and anomaly.is_anomaly_check_nan_enabled()
        with mg.autograd.set_detect_anomaly(False):
            assert not anomaly.is_anomaly_enabled()
        assert anomaly.is_anomaly_enabled()
    finally:
        mg.autograd.set_detect_anomaly(False)
    with _quiet_detect_anomaly(mg, check_nan=False):
        a = mg.tensor([0.0], requires_grad=True)
        (a / a).backward()  # no NaN check
        assert not anomaly.is_anomaly_check_nan_enabled()
    assert anomaly.is_anomaly_check_nan_enabled()


def test_gradients_are_unchanged_under_anomaly_mode():
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((3, 4))
    x = mg.tensor(x0, requires_grad=True)
    with _quiet_detect_anomaly(mg):
        (x.tanh() * x).sum().backward()
    t = np.tanh(x0)
    np.testing.assert_allclose(x.grad.numpy(), t + x0 * (1 - t * t), rtol=1e-12)
