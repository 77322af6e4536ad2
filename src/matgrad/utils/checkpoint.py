"""``matgrad.utils.checkpoint``: recompute activations in backward."""

from __future__ import annotations

__all__: list[str] = []
