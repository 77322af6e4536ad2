"""matgrad.optim: optimizers against PyTorch (same parameters after 5 steps, rtol 1e-10 in
float64, for every configuration), state_dict layout and round trips, param groups,
schedulers, and an end-to-end training run with matgrad.nn."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import matgrad
import matgrad.nn as nn
import matgrad.optim as optim
from matgrad.optim import lr_scheduler


def arr(t):
    return np.asarray(t._data)


CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.01, "weight_decay": 0.01, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-6}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "maximize": True, "betas": (0.3, 0.7)}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5}),
    ("RMSprop", {"lr": 0.01, "centered": True, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.9, "maximize": True}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6, "maximize": True}),
]


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal((4, 2))]


def _loss_np_like(lib, ps, x):
    """A smooth nonquadratic loss, written for either library."""
    h = lib.tanh(x @ ps[0] + ps[1])
    return ((h @ ps[2]) ** 2).sum() + (ps[1] ** 4).sum()


def _run_ours(name, kw, start, steps=5, seed=1):
    ps = [matgrad.tensor(a, requires_grad=True) for a in start]
    opt = getattr(optim, name)(ps, **kw)
    x = matgrad.tensor(np.random.default_rng(seed).standard_normal((5, 3)))
    for _ in range(steps):
        opt.zero_grad()
        _loss_np_like(matgrad, ps, x).backward()
        opt.step()
    return ps, opt


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_optimizer_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    start = _problem()
    ours, _ = _run_ours(name, kw, start)
    tps = [torch.tensor(a, requires_grad=True) for a in start]
    opt = getattr(torch.optim, name)(tps, **kw)
    x = torch.tensor(np.random.default_rng(1).standard_normal((5, 3)))
    for _ in range(5):
        opt.zero_grad()
        _loss_np_like(torch, tps, x).backward()
        opt.step()
    for a, b, s in zip(ours, tps, start, strict=True):
        np.testing.assert_allclose(arr(a), b.detach().numpy(), rtol=1e-10, atol=1e-13)
        assert np.abs(arr(a) - s).max() > 1e-4  # the parameters did move


@pytest.mark.parametrize("name,kw", CONFIGS[1::3], ids=lambda v: str(v))
def test_state_dict_round_trip_continues_the_same_trajectory(name, kw):
    start = _problem()
    ref, _ = _run_ours(name, kw, start, steps=6)
    ps, opt = _run_ours(name, kw, start, steps=3)
    sd = copy.deepcopy(opt.state_dict())
    # a fresh optimizer over fresh parameters with the same values, loaded from sd
    ps2 = [matgrad.tensor(arr(p), requires_grad=True) for p in ps]
    opt2 = getattr(optim, name)(ps2, **kw)
    opt2.load_state_dict(sd)
    x = matgrad.tensor(np.random.default_rng(1).standard_normal((5, 3)))
    for _ in range(3):
        opt2.zero_grad()
        _loss_np_like(matgrad, ps2, x).backward()
        opt2.step()
    for a, b in zip(ref, ps2, strict=True):
        np.testing.assert_allclose(arr(a), arr(b), rtol=1e-13)


def test_state_dict_layout_like_torch():
    torch = pytest.importorskip("torch")
    start = _problem()
    for name, kw in [("Adam", {"amsgrad": True}), ("SGD", {"momentum": 0.9}), ("RMSprop", {})]:
        ps = [matgrad.tensor(a, requires_grad=True) for a in start]
        tps = [torch.tensor(a, requires_grad=True) for a in start]
        ours = getattr(optim, name)([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.5}], **kw)
        theirs = getattr(torch.optim, name)(
            [{"params": tps[:2]}, {"params": tps[2:], "lr": 0.5}], **kw
        )
        for p, t in zip(ps, tps, strict=True):
            p.grad = matgrad.ones(*p.shape)
            t.grad = torch.ones(t.shape, dtype=torch.float64)
        ours.step()
        theirs.step()
        a, b = ours.state_dict(), theirs.state_dict()
        assert list(a) == ["state", "param_groups"] == list(b)
        assert list(a["state"]) == list(b["state"]) == [0, 1, 2]
        for k in a["state"]:
            assert set(a["state"][k]) == set(b["state"][k])
            for key, v in a["state"][k].items():
                np.testing.assert_allclose(arr(v), b["state"][k][key].numpy(), rtol=1e-12)
        assert [g["params"] for g in a["param_groups"]] == [[0, 1], [2]]
        assert [g["params"] for g in b["param_groups"]] == [[0, 1], [2]]
        for ga, gb in zip(a["param_groups"], b["param_groups"], strict=True):
            assert set(ga) <= set(gb)
            for key in ga:
                assert ga[key] == gb[key], key


def test_param_groups_zero_grad_and_errors():
    w = matgrad.zeros(2, requires_grad=True)
    b = matgrad.zeros(1, requires_grad=True)
    opt = optim.SGD([{"params": [w]}, {"params": b, "lr": 1.0}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert opt.param_groups[1]["momentum"] == 0.5
    w.grad = matgrad.ones(2)
    b.grad = matgrad.ones(1)
    opt.step()
    np.testing.assert_allclose(arr(w), [-0.1, -0.1])
    np.testing.assert_allclose(arr(b), [-1.0])
    assert w._version == 1  # updated in place, as an in-place op
    opt.zero_grad(set_to_none=False)
    assert np.all(arr(w.grad) == 0)
    opt.zero_grad()
    assert w.grad is None and b.grad is None
    opt.step()  # no gradients: nothing changes
    np.testing.assert_allclose(arr(w), [-0.1, -0.1])
    c = matgrad.zeros(3, requires_grad=True)
    opt.add_param_group({"params": [c], "lr": 2.0})
    assert opt.param_groups[2]["momentum"] == 0.5
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [w]})
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.Adam([w], lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum"):
        optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([w], lr=0.1).load_state_dict(opt.state_dict())


def test_step_with_closure():
    w = matgrad.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(arr(loss)) == 5.0
    np.testing.assert_allclose(arr(w), [0.5, -1.0])


def _schedules(lib, opt):
    s = lib.optim.lr_scheduler
    return [
        lambda: s.StepLR(opt, step_size=3, gamma=0.5),
        lambda: s.MultiStepLR(opt, milestones=[2, 5, 5], gamma=0.3),
        lambda: s.ExponentialLR(opt, gamma=0.9),
        lambda: s.CosineAnnealingLR(opt, T_max=4, eta_min=0.01),
        lambda: s.LambdaLR(opt, lambda epoch: 1.0 / (epoch + 1)),
    ]


def test_schedulers_match_torch():
    torch = pytest.importorskip("torch")
    for k in range(5):
        w = matgrad.zeros(2, requires_grad=True)
        ours_opt = optim.SGD(
            [{"params": [w]}, {"params": [matgrad.zeros(1, requires_grad=True)], "lr": 0.3}], lr=0.1
        )
        tw = torch.zeros(2, requires_grad=True)
        theirs_opt = torch.optim.SGD(
            [{"params": [tw]}, {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.3}], lr=0.1
        )
        ours = _schedules(matgrad, ours_opt)[k]()
        theirs = _schedules(torch, theirs_opt)[k]()
        for _ in range(12):
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-13)
            assert [g["lr"] for g in ours_opt.param_groups] == pytest.approx(
                [g["lr"] for g in theirs_opt.param_groups], rel=1e-13
            )
            ours_opt.step()
            theirs_opt.step()
            ours.step()
            theirs.step()


def test_scheduler_state_dict_round_trip():
    w = matgrad.zeros(2, requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        sched.step()
    sd = sched.state_dict()
    assert sd["last_epoch"] == 3 and "optimizer" not in sd
    opt2 = optim.SGD([matgrad.zeros(2, requires_grad=True)], lr=1.0)
    sched2 = lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    sched2.load_state_dict(sd)
    assert sched2.last_epoch == 3 and sched2.get_last_lr() == [0.5]
    lam = lr_scheduler.LambdaLR(opt, lambda e: 0.5**e)
    assert lam.state_dict()["lr_lambdas"] == [None]


def test_end_to_end_regression_with_sgd():
    """A 2-16-1 tanh net fits y = sin(3 x1) + x2^2 / 2 on 64 fixed points: 200 full-batch
    SGD steps (lr 0.1, momentum 0.9) take the mean squared error from about 0.5 to below
    0.02."""
    matgrad.manual_seed(0)
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, (64, 2))
    ys = np.sin(3 * xs[:, :1]) + 0.5 * xs[:, 1:] ** 2
    x, y = matgrad.tensor(xs), matgrad.tensor(ys)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.MSELoss()
    first = float(arr(loss_fn(model(x), y)))
    for _ in range(200):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    final = float(arr(loss_fn(model(x), y)))
    assert first > 0.2
    assert final < 0.02, final
    assert math.isfinite(final)
