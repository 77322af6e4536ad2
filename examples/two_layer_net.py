"""A two-layer net fitted with nn + optim, written as for PyTorch (``import matgrad as torch``).

Run: ``python examples/two_layer_net.py [--steps N]``; prints the loss every fifth of the run.
"""

from __future__ import annotations

import argparse

import matgrad as torch


def main(steps: int = 500) -> float:
    torch.manual_seed(0)
    x = torch.linspace(-3.0, 3.0, 256).reshape(-1, 1)
    y = torch.sin(x) + 0.1 * torch.randn(256, 1)
    model = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.MSELoss()
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if step % max(steps // 5, 1) == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    return loss.item()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    main(parser.parse_args().steps)
