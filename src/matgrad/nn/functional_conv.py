"""``nn.functional``'s convolutions, pooling, unfold/fold, interpolation."""

from __future__ import annotations

__all__: list[str] = []
