"""Devices, as PyTorch names them: ``matgrad.device('cpu' | 'cuda' | 'cuda:0')``,
``matgrad.cuda`` and ``matgrad.backends``.

``'cpu'`` is NumPy (and Dask, whose data may be spread over a cluster but is reached from the
CPU); ``'cuda'`` is the CuPy backend, available only where CuPy is installed and sees a GPU.
Elsewhere ``.cuda()`` and ``device='cuda'`` raise, as PyTorch's CPU build does.
"""

from __future__ import annotations

import functools
import types
from typing import Any

_DEFAULT = ["cpu"]


class device:  # noqa: N801 - PyTorch's name
    """Where a tensor's data lives: ``device('cpu')``, ``device('cuda')``, ``device('cuda:1')``,
    ``device('cuda', 1)``. Compares equal to its string (``t.device == 'cpu'``)."""

    __slots__ = ("type", "index")

    def __init__(self, spec: Any, index: int | None = None) -> None:
        if isinstance(spec, device):
            spec, index = spec.type, spec.index if index is None else index
        if isinstance(spec, int):  # device(0): a CUDA ordinal, as PyTorch takes it
            spec, index = "cuda", spec
        if not isinstance(spec, str):
            raise TypeError(f"device(): expected a string or an int, got {type(spec).__name__}")
        kind, colon, number = spec.partition(":")
        if colon:
            if index is not None or not number.isdecimal():
                raise RuntimeError(f"Invalid device string: {spec!r}")
            index = int(number)
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(
                f"Expected one of cpu, cuda device type at start of device string: {spec!r} "
                "(matgrad has the CPU (NumPy, Dask) and CUDA (CuPy) backends)"
            )
        if index is not None and (index < 0 or (kind == "cpu" and index != 0)):
            raise RuntimeError(f"Invalid device index {index} for {kind}")
        self.type = kind
        self.index = index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        extra = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{extra})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, TypeError):
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))


def as_device(spec: Any) -> device | None:
    return None if spec is None else device(spec)


@functools.cache
def _cuda_device_count() -> int:
    try:
        import cupy  # noqa: PLC0415 - optional, probed once

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no CuPy, no driver, no GPU: no CUDA device
        return 0


def _cuda_is_available() -> bool:
    """Whether the 'cuda' device (CuPy with a GPU) can be used."""
    return _cuda_device_count() > 0


def _cuda_manual_seed(seed: int) -> None:
    if _cuda_is_available():
        import cupy  # noqa: PLC0415

        cupy.random.seed(int(seed) % 2**32)


cuda = types.SimpleNamespace(
    is_available=_cuda_is_available,
    device_count=_cuda_device_count,
    manual_seed=_cuda_manual_seed,
    manual_seed_all=_cuda_manual_seed,
    current_device=lambda: 0,
    is_initialized=_cuda_is_available,
    synchronize=lambda device=None: None,
)

# `torch.backends.<name>.is_available()`: what matgrad has no backend for answers False
backends = types.SimpleNamespace(
    mps=types.SimpleNamespace(is_available=lambda: False, is_built=lambda: False),
    cudnn=types.SimpleNamespace(is_available=lambda: False, enabled=False),
    mkldnn=types.SimpleNamespace(is_available=lambda: False),
    openmp=types.SimpleNamespace(is_available=lambda: False),
    cuda=types.SimpleNamespace(is_built=_cuda_is_available),
)


def set_default_device(spec: Any) -> None:
    """The device creation functions use when ``device=`` is not given."""
    _DEFAULT[0] = "cpu" if spec is None else str(device(spec))


def get_default_device() -> device:
    return device(_DEFAULT[0])


def backend_for(spec: Any) -> str:
    """The array library of a device: 'numpy' for the CPU, 'cupy' for CUDA (which must be
    available)."""
    dev = device(spec)
    if dev.type == "cpu":
        return "numpy"
    if not _cuda_is_available():
        raise RuntimeError(
            f"{dev}: CUDA is not available here (matgrad's 'cuda' device is CuPy on a GPU; "
            "install cupy and run on a machine with a GPU), as in PyTorch's CPU build"
        )
    return "cupy"
