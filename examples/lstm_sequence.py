"""An LSTM that predicts the next value of a noisy sine wave, written as for PyTorch
(``import matgrad as torch``) and trained with Adam.

Each sequence is ``x_t = sin(w t + phi) + 0.1 e_t`` with its own frequency ``w`` in
[0.3, 0.9] rad/step, phase ``phi`` and Gaussian noise ``e_t``; the model reads
``x_1..x_t`` and predicts ``x_{t+1}``. The noise cannot be predicted, so the best possible
mean squared error is the noise variance, 0.01; repeating the last value (the naive
forecast) scores about 0.2. The script reports the error on held-out sequences (the first
``WARMUP`` steps of each, where the frequency is still unknown, not counted) and should reach
below 0.02 (``--small``: below 0.03, in a few seconds).

Run: ``python examples/lstm_sequence.py [--small] [--steps N]``.
"""

from __future__ import annotations

import argparse
import math

import matgrad as torch
import matgrad.nn as nn

NOISE = 0.1
WARMUP = 8
TARGET = {False: 0.02, True: 0.03}  # held-out MSE the run should reach (full, --small)


def make_batch(n: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy sine sequences of ``length + 1`` values, as (inputs, next values), each
    (length, n, 1) (sequence first, as nn.LSTM's default)."""
    t = torch.arange(length + 1, dtype=torch.float64).reshape(-1, 1)
    w = 0.3 + 0.6 * torch.rand(1, n, dtype=torch.float64)
    phi = 2 * math.pi * torch.rand(1, n, dtype=torch.float64)
    x = torch.sin(t * w + phi) + NOISE * torch.randn(length + 1, n, dtype=torch.float64)
    x = x.unsqueeze(-1)
    return x[:-1], x[1:]


class Forecaster(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out)


def held_out_mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        pred = model(x)
    return ((pred - y)[WARMUP:] ** 2).mean().item()


def main(steps: int | None = None, small: bool = False) -> float:
    """Train, print the loss as it goes, and return the final held-out MSE."""
    torch.manual_seed(0)
    hidden, length, batch = (16, 24, 32) if small else (32, 32, 64)
    steps = steps if steps is not None else (150 if small else 600)
    model = Forecaster(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02 if small else 0.01)
    loss_fn = nn.MSELoss()
    x_test, y_test = make_batch(128, length)
    naive = ((x_test - y_test)[WARMUP:] ** 2).mean().item()
    print(f"naive forecast (repeat the last value): held-out MSE {naive:.4f}")
    for step in range(1, steps + 1):
        x, y = make_batch(batch, length)
        optimizer.zero_grad()
        loss = loss_fn(model(x)[WARMUP:], y[WARMUP:])
        loss.backward()
        optimizer.step()
        if step % max(steps // 5, 1) == 0:
            print(f"step {step:4d}  train loss {loss.item():.4f}")
    mse = held_out_mse(model, x_test, y_test)
    goal = TARGET[small]
    print(f"held-out MSE {mse:.4f} (noise floor {NOISE**2:.4f}, target < {goal})")
    return mse


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="a few seconds' run")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    main(args.steps, args.small)
