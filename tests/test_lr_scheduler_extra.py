"""The schedulers beyond the first five (ConstantLR, LinearLR, PolynomialLR,
CosineAnnealingWarmRestarts, SequentialLR, ChainedScheduler, ReduceLROnPlateau, OneCycleLR)
against PyTorch's: every param group's ``lr`` (and the momentum OneCycleLR cycles) after every
step, ``get_last_lr()``, state_dict round trips that continue the same sequence, and errors."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import matgrad
import matgrad.optim as optim
from matgrad.optim import lr_scheduler

torch = pytest.importorskip("torch")

# torch warns when a scheduler steps before its optimizer; here no optimizer step is needed
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")


def _optimizers(name="SGD", **kw):
    """The same two-group optimizer in matgrad and in torch (lr 0.1 and 0.3)."""
    ours = getattr(optim, name)(
        [
            {"params": [matgrad.zeros(2, requires_grad=True)]},
            {"params": [matgrad.zeros(1, requires_grad=True)], "lr": 0.3},
        ],
        lr=0.1,
        **kw,
    )
    theirs = getattr(torch.optim, name)(
        [
            {"params": [torch.zeros(2, requires_grad=True)]},
            {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.3},
        ],
        lr=0.1,
        **kw,
    )
    return ours, theirs


def _hyper(opt):
    """What a scheduler may change in each group: lr, momentum, beta1."""
    out = []
    for g in opt.param_groups:
        out.append(g["lr"])
        if "momentum" in g:
            out.append(g["momentum"])
        if "betas" in g:
            out.append(g["betas"][0])
    return out


def _assert_same(ours_opt, theirs_opt, ours, theirs, where):
    np.testing.assert_allclose(_hyper(ours_opt), _hyper(theirs_opt), rtol=1e-13, err_msg=where)
    np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-13)


def _run_pair(make, steps, optimizer="SGD", opt_kw=None, metrics=None):
    """Build the scheduler with ``make(lr_scheduler_module, optimizer)`` in both libraries
    and step both ``steps`` times, comparing after each step; returns both schedulers and
    the learning rates seen (group 0)."""
    ours_opt, theirs_opt = _optimizers(optimizer, **(opt_kw or {}))
    ours = make(lr_scheduler, ours_opt)
    theirs = make(torch.optim.lr_scheduler, theirs_opt)
    seen = []
    for i in range(steps):
        _assert_same(ours_opt, theirs_opt, ours, theirs, f"before step {i}")
        seen.append(ours_opt.param_groups[0]["lr"])
        if metrics is None:
            ours.step()
            theirs.step()
        else:
            ours.step(metrics[i])
            theirs.step(metrics[i])
    _assert_same(ours_opt, theirs_opt, ours, theirs, "at the end")
    return ours, theirs, seen


CHAINABLE = {
    "constant": lambda s, o: s.ConstantLR(o, factor=0.5, total_iters=4),
    "constant-zero-iters": lambda s, o: s.ConstantLR(o, factor=0.25, total_iters=0),
    "linear": lambda s, o: s.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=6),
    "linear-default": lambda s, o: s.LinearLR(o),
    "polynomial": lambda s, o: s.PolynomialLR(o, total_iters=7, power=2.0),
    "polynomial-linear": lambda s, o: s.PolynomialLR(o, total_iters=4),
    "warm-restarts": lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=3, eta_min=0.01),
    "warm-restarts-mult": lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
    "sequential": lambda s, o: s.SequentialLR(
        o,
        [s.LinearLR(o, start_factor=0.1, total_iters=3), s.ExponentialLR(o, gamma=0.8)],
        milestones=[3],
    ),
    "sequential-3": lambda s, o: s.SequentialLR(
        o,
        [
            s.ConstantLR(o, factor=0.5, total_iters=2),
            s.CosineAnnealingLR(o, T_max=4),
            s.StepLR(o, step_size=2, gamma=0.5),
        ],
        milestones=[2, 6],
    ),
    "chained": lambda s, o: s.ChainedScheduler(
        [s.ConstantLR(o, factor=0.3, total_iters=3), s.ExponentialLR(o, gamma=0.9)]
    ),
    "chained-warmup-cosine": lambda s, o: s.ChainedScheduler(
        [s.LinearLR(o, start_factor=0.2, total_iters=4), s.CosineAnnealingLR(o, T_max=10)],
        optimizer=o,
    ),
}


@pytest.mark.parametrize("case", list(CHAINABLE))
def test_scheduler_matches_torch(case):
    _run_pair(CHAINABLE[case], 15)


def test_known_values():
    """Closed forms, independent of both implementations."""
    _, _, seen = _run_pair(CHAINABLE["linear"], 8)
    factors = [0.25 + (0.9 - 0.25) * min(t, 6) / 6 for t in range(8)]
    np.testing.assert_allclose(seen, [0.1 * f for f in factors], rtol=1e-13)
    _, _, seen = _run_pair(CHAINABLE["polynomial"], 9)
    np.testing.assert_allclose(
        seen, [0.1 * (1 - min(t, 7) / 7) ** 2 for t in range(9)], rtol=1e-12, atol=1e-17
    )
    _, _, seen = _run_pair(CHAINABLE["warm-restarts"], 7)
    expect = [0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * (t % 3) / 3)) / 2 for t in range(7)]
    np.testing.assert_allclose(seen, expect, rtol=1e-13)


def test_warm_restarts_fractional_epochs():
    ours_opt, theirs_opt = _optimizers()
    ours = lr_scheduler.CosineAnnealingWarmRestarts(ours_opt, T_0=2, T_mult=3, eta_min=0.001)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        theirs_opt, T_0=2, T_mult=3, eta_min=0.001
    )
    for epoch in [0.0, 0.5, 1.25, 2.0, 3.7, 7.9, 8.0, 9.5, 30.2, 1.5]:
        ours.step(epoch)
        theirs.step(epoch)
        _assert_same(ours_opt, theirs_opt, ours, theirs, f"epoch {epoch}")
    with pytest.raises(ValueError, match="Expected non-negative epoch"):
        ours.step(-1)


ONE_CYCLE = [
    ("SGD", {"momentum": 0.9}, {"max_lr": 1.0, "total_steps": 20}),
    ("SGD", {"momentum": 0.9}, {"max_lr": [1.0, 0.5], "epochs": 4, "steps_per_epoch": 5}),
    (
        "SGD",
        {"momentum": 0.9},
        {"max_lr": 0.5, "total_steps": 17, "anneal_strategy": "linear", "pct_start": 0.4},
    ),
    ("SGD", {"momentum": 0.5}, {"max_lr": 0.5, "total_steps": 23, "three_phase": True}),
    (
        "SGD",
        {"momentum": 0.9},
        {
            "max_lr": 0.2,
            "total_steps": 12,
            "base_momentum": [0.8, 0.7],
            "max_momentum": 0.99,
            "div_factor": 10.0,
            "final_div_factor": 100.0,
        },
    ),
    ("SGD", {}, {"max_lr": 0.2, "total_steps": 10, "cycle_momentum": False}),
    ("Adam", {}, {"max_lr": 0.01, "total_steps": 15}),
    ("AdamW", {"betas": (0.9, 0.95)}, {"max_lr": 0.01, "total_steps": 14, "three_phase": True}),
]


@pytest.mark.parametrize("name,opt_kw,kw", ONE_CYCLE, ids=[str(i) for i in range(len(ONE_CYCLE))])
def test_one_cycle_matches_torch(name, opt_kw, kw):
    steps = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
    # total_steps - 1 steps reach the last value; one more is allowed, the next raises
    ours, theirs, seen = _run_pair(
        lambda s, o: s.OneCycleLR(o, **kw), steps, optimizer=name, opt_kw=opt_kw
    )
    max_lr = kw["max_lr"][0] if isinstance(kw["max_lr"], list) else kw["max_lr"]
    assert seen[0] == pytest.approx(max_lr / kw.get("div_factor", 25.0), rel=1e-13)
    assert max(seen) == pytest.approx(max_lr, rel=0.05)
    final = max_lr / kw.get("div_factor", 25.0) / kw.get("final_div_factor", 1e4)
    assert seen[-1] == pytest.approx(final, rel=1e-9)
    with pytest.raises(ValueError, match=f"Tried to step {steps + 1} times"):
        ours.step()
    with pytest.raises(ValueError):
        theirs.step()


def test_one_cycle_errors():
    opt, _ = _optimizers(momentum=0.9)
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="Expected positive integer total_steps"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=0)
    with pytest.raises(ValueError, match="Expected float between 0 and 1 pct_start"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear'"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr must have the same length"):
        lr_scheduler.OneCycleLR(opt, max_lr=[1.0, 2.0, 3.0], total_steps=10)
    adagrad = optim.Adagrad([matgrad.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        lr_scheduler.OneCycleLR(adagrad, max_lr=1.0, total_steps=10)


PLATEAU = [
    ({}, [1.0] * 30),
    ({"patience": 2}, [5.0, 4.0, 4.0, 4.0, 4.0, 3.9999, 3.0, 3.0, 3.0, 3.0, 2.0, 2.0]),
    (
        {"patience": 1, "cooldown": 2, "factor": 0.5},
        [3.0, 3.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.1, 1.2, 1.3, 1.4],
    ),
    (
        {"mode": "max", "patience": 0, "threshold": 0.1, "threshold_mode": "abs"},
        [0.1, 0.15, 0.3, 0.35, 0.5, 0.5, 0.61, 0.2],
    ),
    ({"mode": "max", "patience": 1, "threshold": 0.05}, [1.0, 1.04, 1.06, 1.1, 1.2, 1.0, 0.9]),
    (
        {"patience": 0, "min_lr": [0.01, 0.2], "factor": 0.3},
        [9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0],
    ),
    ({"patience": 0, "min_lr": 0.05, "eps": 0.02}, [2.0, 2.0, 2.0, 2.0, 2.0]),
    ({"mode": "min", "threshold_mode": "abs", "threshold": 0.5, "patience": 1}, [4, 3.6, 3.2, 2.8]),
]


@pytest.mark.parametrize("kw,metrics", PLATEAU, ids=[str(i) for i in range(len(PLATEAU))])
def test_reduce_on_plateau_matches_torch(kw, metrics):
    ours, theirs, _ = _run_pair(
        lambda s, o: s.ReduceLROnPlateau(o, **kw),
        len(metrics),
        opt_kw={"momentum": 0.9},
        metrics=metrics,
    )
    for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
        assert getattr(ours, key) == getattr(theirs, key), key


def test_reduce_on_plateau_closed_form_and_tensor_metric():
    """patience 2, factor 0.5: a constant loss halves the rate every third epoch."""
    w = matgrad.zeros(1, requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=2, factor=0.5)
    lrs = []
    for _ in range(10):
        sched.step(matgrad.tensor(1.0))  # a one-element tensor works as the metric
        lrs.append(sched.get_last_lr()[0])
    # epoch 1 sets best; epochs 2-4 are bad, the third bad one (> patience) reduces
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


def test_reduce_on_plateau_errors():
    opt, _ = _optimizers()
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown!"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="threshold mode pct is unknown!"):
        lr_scheduler.ReduceLROnPlateau(opt, threshold_mode="pct")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 3"):
        lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0.0, 0.0, 0.0])
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.ReduceLROnPlateau("sgd")
    sched = lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0.0, 0.0], patience=0)
    opt.add_param_group({"params": [matgrad.zeros(3, requires_grad=True)]})
    sched.step(1.0)
    with pytest.raises(RuntimeError, match="The number of param groups in the `optimizer`"):
        sched.step(2.0)


def test_composite_errors():
    opt, _ = _optimizers()
    other, _ = _optimizers()
    a = lr_scheduler.ExponentialLR(opt, gamma=0.9)
    with pytest.raises(ValueError, match="expects at least one scheduler"):
        lr_scheduler.SequentialLR(opt, [], milestones=[])
    with pytest.raises(ValueError, match="one more than the number of milestone points"):
        lr_scheduler.SequentialLR(opt, [a, lr_scheduler.StepLR(opt, 2)], milestones=[])
    with pytest.raises(ValueError, match="to belong to the same optimizer"):
        lr_scheduler.ChainedScheduler([a, lr_scheduler.StepLR(other, 2)])
    plateau = lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        lr_scheduler.ChainedScheduler([a, plateau])
    with pytest.raises(ValueError, match="between 0 and 1"):
        lr_scheduler.ConstantLR(opt, factor=2.0)
    with pytest.raises(ValueError, match="greater than 0 and less or equal to 1"):
        lr_scheduler.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="Expected positive integer T_0"):
        lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="Expected integer T_mult >= 1"):
        lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)


ROUND_TRIP = {
    "linear": CHAINABLE["linear"],
    "warm-restarts-mult": CHAINABLE["warm-restarts-mult"],
    "sequential": CHAINABLE["sequential"],
    "chained": CHAINABLE["chained"],
    "one-cycle": lambda s, o: s.OneCycleLR(o, max_lr=1.0, total_steps=16, three_phase=True),
    "plateau": lambda s, o: s.ReduceLROnPlateau(o, patience=1, cooldown=1, factor=0.5),
}


@pytest.mark.parametrize("case", list(ROUND_TRIP))
def test_state_dict_round_trip_continues_the_torch_sequence(case):
    """Step 5 times, copy the optimizer's and the scheduler's state_dicts into fresh ones,
    and step on: the learning rates stay those of torch's uninterrupted run."""
    make = ROUND_TRIP[case]
    metrics = [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    plateau = case == "plateau"
    ours_opt, theirs_opt = _optimizers(momentum=0.9)
    ours = make(lr_scheduler, ours_opt)
    theirs = make(torch.optim.lr_scheduler, theirs_opt)

    def step(sched, i):
        sched.step(metrics[i]) if plateau else sched.step()

    for i in range(5):
        step(ours, i)
        step(theirs, i)
    sd = copy.deepcopy(ours.state_dict())
    assert "optimizer" not in sd
    theirs_sd = theirs.state_dict()
    assert set(sd) <= set(theirs_sd), set(sd) - set(theirs_sd)
    opt_sd = copy.deepcopy(ours_opt.state_dict())
    fresh_opt, _ = _optimizers(momentum=0.9)
    fresh = make(lr_scheduler, fresh_opt)
    fresh_opt.load_state_dict(opt_sd)
    fresh.load_state_dict(sd)
    for i in range(5, 11):
        step(fresh, i)
        step(theirs, i)
        _assert_same(fresh_opt, theirs_opt, fresh, theirs, f"step {i}")


RESUMABLE = {
    "step": lambda s, o, e: s.StepLR(o, step_size=2, gamma=0.5, last_epoch=e),
    "multistep": lambda s, o, e: s.MultiStepLR(o, milestones=[4, 6], gamma=0.5, last_epoch=e),
    "exponential": lambda s, o, e: s.ExponentialLR(o, gamma=0.9, last_epoch=e),
    "cosine": lambda s, o, e: s.CosineAnnealingLR(o, T_max=5, eta_min=0.01, last_epoch=e),
    "constant": lambda s, o, e: s.ConstantLR(o, factor=0.5, total_iters=5, last_epoch=e),
    "linear": lambda s, o, e: s.LinearLR(o, start_factor=0.5, total_iters=6, last_epoch=e),
    "polynomial": lambda s, o, e: s.PolynomialLR(o, total_iters=6, power=2.0, last_epoch=e),
    "warm-restarts": lambda s, o, e: s.CosineAnnealingWarmRestarts(o, T_0=4, last_epoch=e),
}


@pytest.mark.parametrize("case", list(RESUMABLE))
def test_resuming_with_last_epoch_like_torch(case):
    """A scheduler built with ``last_epoch=3`` (resuming) does not step the rates ahead at
    construction, and then follows torch's."""
    ours_opt, theirs_opt = _optimizers()
    for opt in (ours_opt, theirs_opt):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    ours = RESUMABLE[case](lr_scheduler, ours_opt, 3)
    theirs = RESUMABLE[case](torch.optim.lr_scheduler, theirs_opt, 3)
    for i in range(8):
        _assert_same(ours_opt, theirs_opt, ours, theirs, f"step {i}")
        ours.step()
        theirs.step()
    with pytest.raises(KeyError, match="param 'initial_lr' is not specified"):
        RESUMABLE[case](lr_scheduler, _optimizers()[0], 3)
