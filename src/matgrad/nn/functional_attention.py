"""``nn.functional``'s attention functions."""

from __future__ import annotations

__all__: list[str] = []
