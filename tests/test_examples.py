"""The examples run, at a small size, and reach their stated result."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_layer_net_fits_sin_down_to_the_noise(capsys):
    # y = sin(x) + noise of variance 0.01: a good fit's mean squared error nears 0.01
    loss = load("two_layer_net").main(steps=200)
    assert 0.009 < loss < 0.02
    assert "step  200" in capsys.readouterr().out
