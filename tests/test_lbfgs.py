"""optim.LBFGS against torch.optim.LBFGS: the same iterates after every ``step`` (float64),
the same ``func_evals``/``n_iter`` counters and state layout, with and without the
strong-Wolfe line search, on Rosenbrock's function, a regularised least-squares problem and a
two-parameter model; closed-form optima; state_dict round trips; errors; and the curve-fit
example, run in a subprocess.

Tolerances: PyTorch's CPU ``add_(x, alpha=t)`` rounds once (a fused multiply-add) where NumPy
rounds twice, so the two differ in the last bit from the first update; how far that grows
depends on the problem. Converging runs stay within 1e-12 (least squares) to 1e-10
(Rosenbrock with the line search). A fixed step of lr=1 on Rosenbrock overshoots chaotically
for many iterations, amplifying those last bits to 1e-4 after 60 iterations (any two BLAS
builds would differ as much), so that run is compared over its first step only."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import matgrad
import matgrad.optim as optim

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
X0_ROSEN = np.array([-1.2, 1.0, -0.5, 0.8, 1.3])
_rng = np.random.default_rng(0)
A_LSQ = _rng.standard_normal((20, 6))
B_LSQ = _rng.standard_normal(20)


def rosenbrock(lib, x):
    return ((1 - x[:-1]) ** 2).sum() + 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


def least_squares(lib, x, quartic=0.1):
    r = lib.tensor(A_LSQ) @ x - lib.tensor(B_LSQ)
    return (r * r).sum() + quartic * (x**4).sum()


def soft_abs(lib, x):
    """sum sqrt(x^2 + 1e-4): nearly |x|, so a cubic fits it badly and the line search's zoom
    must move trial points off the bracket ends (lr=100 makes the first trials far)."""
    return ((x**2 + 1e-4) ** 0.5).sum()


def _run(lib, f, x0, steps, **kw):
    """``steps`` calls of ``step(closure)``; the iterate and the returned loss after each."""
    x = lib.tensor(np.array(x0, copy=True), requires_grad=True)
    opt = (torch.optim.LBFGS if lib is torch else optim.LBFGS)([x], **kw)

    def closure():
        opt.zero_grad()
        loss = f(lib, x)
        loss.backward()
        return loss

    iterates, losses = [], []
    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
        iterates.append(np.array(x.detach().numpy(), copy=True))
    return np.array(iterates), np.array(losses), opt, x


def _compare(f, x0, steps, atol, **kw):
    ours, our_losses, opt, x = _run(matgrad, f, x0, steps, **kw)
    theirs, their_losses, topt, tx = _run(torch, f, x0, steps, **kw)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-9, atol=atol)
    for key in ("func_evals", "n_iter"):
        assert opt.state[x][key] == topt.state[tx][key], key
    assert np.abs(ours[-1] - np.asarray(x0)).max() > 1e-2  # it moved
    return ours, opt, x


CASES = [
    ("rosenbrock", rosenbrock, X0_ROSEN, 5, 1e-9, {"line_search_fn": "strong_wolfe"}),
    (
        "rosenbrock-short-history",
        rosenbrock,
        X0_ROSEN,
        8,
        1e-9,
        {"line_search_fn": "strong_wolfe", "history_size": 3, "max_iter": 7},
    ),
    ("rosenbrock-fixed-step", rosenbrock, X0_ROSEN, 6, 1e-11, {"lr": 0.5}),
    ("rosenbrock-lr1-one-step", rosenbrock, X0_ROSEN, 1, 1e-12, {}),
    (
        "soft-abs-zoom-safeguard",
        soft_abs,
        np.linspace(-1, 1, 6),
        4,
        1e-12,
        {"line_search_fn": "strong_wolfe", "lr": 100},
    ),
    ("lsq", least_squares, np.zeros(6), 3, 1e-12, {}),
    ("lsq-wolfe", least_squares, np.zeros(6), 3, 1e-12, {"line_search_fn": "strong_wolfe"}),
    ("lsq-small-lr", least_squares, np.zeros(6), 6, 1e-12, {"lr": 0.1, "max_eval": 17}),
    ("lsq-history", least_squares, np.zeros(6), 4, 1e-12, {"lr": 0.2, "history_size": 4}),
    (
        "lsq-tolerances",
        least_squares,
        np.ones(6),
        4,
        1e-12,
        {"line_search_fn": "strong_wolfe", "tolerance_grad": 1e-3, "tolerance_change": 1e-4},
    ),
]


@pytest.mark.parametrize("name,f,x0,steps,atol,kw", CASES, ids=[c[0] for c in CASES])
def test_iterates_match_torch(name, f, x0, steps, atol, kw):
    _compare(f, x0, steps, atol, **kw)


def test_rosenbrock_reaches_its_minimum():
    """Rosenbrock's minimum is at (1, ..., 1), with value 0."""
    ours, opt, x = _compare(rosenbrock, X0_ROSEN, 5, 1e-9, line_search_fn="strong_wolfe")
    np.testing.assert_allclose(ours[-1], np.ones(5), atol=1e-4)
    assert float(rosenbrock(matgrad, x.detach())) < 1e-8


def test_least_squares_solution_is_lstsq():
    """Without the quartic term the minimiser is the least-squares solution."""
    ours, _, _ = _run(
        matgrad,
        lambda lib, x: least_squares(lib, x, quartic=0.0),
        np.zeros(6),
        3,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
    )[:3]
    expect = np.linalg.lstsq(A_LSQ, B_LSQ, rcond=None)[0]
    np.testing.assert_allclose(ours[-1], expect, atol=1e-8)


def test_several_parameters_of_several_shapes():
    """A 2-4-1 tanh net (two weight matrices, a bias) on 16 points: the parameters are
    flattened in order, as in PyTorch."""
    rng = np.random.default_rng(3)
    xs, ys = rng.standard_normal((16, 2)), rng.standard_normal((16, 1))
    start = [rng.standard_normal((2, 4)), rng.standard_normal(4), rng.standard_normal((4, 1))]

    def run(lib):
        ps = [lib.tensor(a.copy(), requires_grad=True) for a in start]
        cls = torch.optim.LBFGS if lib is torch else optim.LBFGS
        opt = cls(ps, line_search_fn="strong_wolfe", max_iter=10)
        x, y = lib.tensor(xs), lib.tensor(ys)

        def closure():
            opt.zero_grad()
            loss = (((lib.tanh(x @ ps[0] + ps[1]) @ ps[2]) - y) ** 2).mean()
            loss.backward()
            return loss

        for _ in range(3):
            opt.step(closure)
        return [p.detach().numpy().copy() for p in ps], opt.state[ps[0]]["func_evals"]

    ours, our_evals = run(matgrad)
    theirs, their_evals = run(torch)
    assert our_evals == their_evals
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-9)


def test_float32_parameters_follow_torch():
    """In float32 both compute in float32; the roundings differ (by more than in float64,
    and Rosenbrock amplifies them in later steps), the first step's 20 iterations agree."""
    x0 = X0_ROSEN.astype(np.float32)
    ours, _, opt, x = _run(matgrad, rosenbrock, x0, 1, line_search_fn="strong_wolfe")
    theirs = _run(torch, rosenbrock, x0, 1, line_search_fn="strong_wolfe")[0]
    assert ours.dtype == np.float32 and x.dtype == np.float32
    assert opt.state[x]["d"].dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_state_layout_like_torch():
    """The same keys, types and values (the last direction and the history pairs are
    differences of nearby gradients: they agree to 1e-8, not to the iterates' 1e-10)."""
    _, _, opt, x = _run(matgrad, rosenbrock, X0_ROSEN, 1, line_search_fn="strong_wolfe")
    _, _, topt, tx = _run(torch, rosenbrock, X0_ROSEN, 1, line_search_fn="strong_wolfe")
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert list(ours["state"]) == list(theirs["state"]) == [0]
    s, t = ours["state"][0], theirs["state"][0]
    assert set(s) == set(t)
    for key, tv in t.items():
        v = s[key]
        if isinstance(tv, list):
            assert len(v) == len(tv), key
            for a, b in zip(v, tv, strict=True):
                assert (a is None) == (b is None), key
                if b is not None:
                    np.testing.assert_allclose(np.asarray(a._data), b.numpy(), atol=1e-8)
        elif isinstance(tv, torch.Tensor):
            assert isinstance(v, matgrad.Tensor), key
            np.testing.assert_allclose(np.asarray(v._data), tv.numpy(), rtol=1e-8, atol=1e-10)
        else:
            assert v == pytest.approx(tv, rel=1e-8), key
    assert ours["param_groups"][0] == {**theirs["param_groups"][0]}


@pytest.mark.parametrize("via_file", [False, True])
def test_state_dict_round_trip_continues_the_torch_run(via_file):
    """3 steps, then a fresh optimizer over a copy of the parameters loads the state (deep
    copied, or saved and loaded with matgrad.save/load) and makes 3 more: the same iterates
    as torch's uninterrupted 6 steps."""
    kw = {"line_search_fn": "strong_wolfe", "history_size": 4, "max_iter": 5}
    theirs = _run(torch, rosenbrock, X0_ROSEN, 6, **kw)[0]
    _, _, opt, x = _run(matgrad, rosenbrock, X0_ROSEN, 3, **kw)
    sd = opt.state_dict()
    if via_file:
        buf = io.BytesIO()
        matgrad.save(sd, buf)
        buf.seek(0)
        sd = matgrad.load(buf)
    else:
        sd = copy.deepcopy(sd)
    x2 = matgrad.tensor(x.detach().numpy().copy(), requires_grad=True)
    opt2 = optim.LBFGS([x2], **kw)
    opt2.load_state_dict(sd)

    def closure():
        opt2.zero_grad()
        loss = rosenbrock(matgrad, x2)
        loss.backward()
        return loss

    for i in range(3, 6):
        opt2.step(closure)
        np.testing.assert_allclose(x2.detach().numpy(), theirs[i], atol=1e-9)


def test_converged_start_and_counters():
    """At the minimum the first gradient is zero: one evaluation, no iteration."""
    x = matgrad.ones(5, requires_grad=True)
    opt = optim.LBFGS([x])
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = rosenbrock(matgrad, x)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.detach()) == 0.0 and len(calls) == 1
    assert opt.state[x] == {"func_evals": 1, "n_iter": 0}
    np.testing.assert_array_equal(x.detach().numpy(), np.ones(5))


def test_max_eval_bounds_the_evaluations():
    x = matgrad.tensor(X0_ROSEN.copy(), requires_grad=True)
    opt = optim.LBFGS([x], max_iter=100, max_eval=7, line_search_fn="strong_wolfe")
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = rosenbrock(matgrad, x)
        loss.backward()
        return loss

    opt.step(closure)
    # the line search may finish the evaluation it started, as PyTorch's does
    assert len(calls) == opt.state[x]["func_evals"] <= 7 + 1
    assert x._version > 0  # the updates are in-place changes


def test_errors():
    w = matgrad.zeros(2, requires_grad=True)
    b = matgrad.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        optim.LBFGS([{"params": [w]}, {"params": [b]}])
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.LBFGS([w], lr=-1)
    with pytest.raises(ValueError, match="line_search_fn must be None or 'strong_wolfe'"):
        optim.LBFGS([w], line_search_fn="backtracking")
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'closure'"):
        optim.LBFGS([w]).step()
    with pytest.raises(TypeError, match="real floating"):
        optim.LBFGS([matgrad.zeros(2, dtype=np.int64)])


def test_curve_fit_example_reaches_its_stated_loss():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "lbfgs_curve_fit.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    last = out.strip().splitlines()[-1]
    assert last.startswith("final loss ")
    assert float(last.split()[-1]) < 1e-4  # the example's TARGET_LOSS, the noise variance
    fitted = [line for line in out.splitlines() if line.startswith("fitted")][0]
    values = np.array(fitted.split("=")[1].strip(" []").split(), dtype=float)
    np.testing.assert_allclose(values, [2.0, 0.3, 2.5, 0.4], rtol=0.01)
