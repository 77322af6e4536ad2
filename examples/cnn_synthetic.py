"""A small CNN, written as for PyTorch (``import matgrad as torch``), that learns which
quadrant of a noisy 16x16 image holds a bright blob (4 classes).

Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d (twice), then Linear; CrossEntropyLoss and Adam.
It prints the training loss per epoch and the accuracy on held-out images (eval mode: the
BatchNorm2d running statistics), and ends with ``reached loss=... target=... accuracy=...``
when the final epoch's mean training loss is at most the stated target (exit status 1 if
not).

Run: ``python examples/cnn_synthetic.py [--small]`` (``--small``, or ``MATGRAD_EXAMPLE_SMALL=1``:
fewer images and epochs, a few seconds, as in CI).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import matgrad as torch

SIZE = 16
TARGET_LOSS = {"small": 0.1, "full": 0.02}


def make_images(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian noise with a bright 3x3 blob in a random quadrant; the label is the quadrant
    (0: top left, 1: top right, 2: bottom left, 3: bottom right)."""
    x = rng.normal(0.0, 0.5, (n, 1, SIZE, SIZE))
    labels = rng.integers(0, 4, n)
    half = SIZE // 2
    for i, q in enumerate(labels):
        top = (q // 2) * half + rng.integers(0, half - 2)
        left = (q % 2) * half + rng.integers(0, half - 2)
        x[i, 0, top : top + 3, left : left + 3] += 1.0
    return torch.tensor(x), torch.tensor(labels)


def build() -> torch.nn.Module:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * (SIZE // 4) ** 2, 4),
    )


def main(small: bool = False) -> tuple[float, float]:
    """Train; return (final epoch's mean training loss, held-out accuracy)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_train, epochs, batch = (384, 5, 32) if small else (4096, 8, 64)
    x, y = make_images(n_train, rng)
    x_test, y_test = make_images(512, rng)
    model = build()
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    epoch_loss = float("nan")
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(n_train)
        losses = []
        for start in range(0, n_train, batch):
            idx = order[start : start + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        epoch_loss = float(np.mean(losses))
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch}  loss {epoch_loss:.4f}  held-out accuracy {accuracy:.3f}")
    return epoch_loss, accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="a few seconds (CI)")
    args = parser.parse_args()
    small = args.small or os.environ.get("MATGRAD_EXAMPLE_SMALL") == "1"
    target = TARGET_LOSS["small" if small else "full"]
    loss, accuracy = main(small)
    if loss > target:
        print(f"missed loss={loss:.4f} target={target} accuracy={accuracy:.3f}")
        sys.exit(1)
    print(f"reached loss={loss:.4f} target={target} accuracy={accuracy:.3f}")
