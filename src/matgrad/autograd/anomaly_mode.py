"""Anomaly mode (``matgrad.autograd.detect_anomaly``, ``set_detect_anomaly``), as PyTorch's.

While it is on, every node made remembers the Python stack that made it
(``node.metadata["traceback_"]``, matgrad's own frames left out; a node made during a
``create_graph`` backward pass also records the node being run there, ``metadata["parent_"]``).
When a node fails in backward, a ``UserWarning`` shows that forward stack before the error
propagates; a node whose gradient contains NaN is such a failure:
``RuntimeError: Function 'DivBackward0' returned nan values in its 0th output.``

Off by default, at the cost of one truth test where nodes are made and one per node run in
backward. ``check_inf=True`` (a matgrad addition; PyTorch checks NaN only) treats infinite
gradients as failures too.
"""

from __future__ import annotations

import warnings

from ..core.graph import ANOMALY, set_anomaly_enabled

__all__ = [
    "detect_anomaly",
    "is_anomaly_check_nan_enabled",
    "is_anomaly_enabled",
    "set_detect_anomaly",
]


def is_anomaly_enabled() -> bool:
    return ANOMALY.enabled


def is_anomaly_check_nan_enabled() -> bool:
    return ANOMALY.check_nan


class detect_anomaly:  # noqa: N801 - PyTorch's name
    """Context manager that turns anomaly mode on (NaN checks unless ``check_nan=False``)."""

    def __init__(self, check_nan: bool = True, check_inf: bool = False) -> None:
        self.prev = (ANOMALY.enabled, ANOMALY.check_nan, ANOMALY.check_inf)
        self.check_nan = check_nan
        self.check_inf = check_inf
        warnings.warn(
            "Anomaly Detection has been enabled. This mode will increase the runtime and "
            "should only be enabled for debugging.",
            stacklevel=2,
        )

    def __enter__(self) -> None:
        set_anomaly_enabled(True, self.check_nan, self.check_inf)

    def __exit__(self, *exc: object) -> None:
        set_anomaly_enabled(*self.prev)


class set_detect_anomaly:  # noqa: N801
    """Turn anomaly mode on or off now; as a context manager, restore it on exit."""

    def __init__(self, mode: bool, check_nan: bool = True, check_inf: bool = False) -> None:
        self.prev = (ANOMALY.enabled, ANOMALY.check_nan, ANOMALY.check_inf)
        set_anomaly_enabled(mode, check_nan, check_inf)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        set_anomaly_enabled(*self.prev)
