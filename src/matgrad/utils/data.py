"""``matgrad.utils.data``: datasets and loaders, following ``torch.utils.data``."""

from __future__ import annotations

__all__: list[str] = []
