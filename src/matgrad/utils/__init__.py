"""``matgrad.utils``: ``data`` (datasets and loaders) and ``checkpoint`` (recompute in
backward), following ``torch.utils``."""

from . import checkpoint, data

__all__ = ["checkpoint", "data"]
