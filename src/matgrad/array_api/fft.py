"""The Array API's ``fft`` extension over matgrad tensors: the transforms run in ``numpy.fft``
without gradients (refused when the input requires one); ``fftshift``/``ifftshift`` are rolls
(differentiable)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.grad_mode import state as _grad_state
from ..core.tensor_base import Tensor
from ..ops import composite as _ops
from ._creation import _tensor
from ._dtypes import _default_float
from ._helpers import _dtype, _from_table, _place, _wrap


def _fft_input(op: str, x: Any) -> Any:
    x = _tensor(x)
    if x.requires_grad and _grad_state.enabled:
        raise NotImplementedError(
            f"fft.{op}: gradients of the FFT are not implemented; detach() the input or "
            "run under matgrad.no_grad()"
        )
    return x._data


def _named(fn: Any, name: str) -> Any:
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``numpy.fft.{name}`` on the tensor's data (no gradient)."
    return fn


def _fft1(name: str) -> Any:
    np_fn = getattr(np.fft, name)

    def fn(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Any:
        return _wrap(np.asarray(np_fn(_fft_input(name, x), n=n, axis=axis, norm=norm)))

    return _named(fn, name)


def _fftn(name: str) -> Any:
    np_fn = getattr(np.fft, name)

    def fn(
        x: Tensor,
        /,
        *,
        s: Sequence[int] | None = None,
        axes: Sequence[int] | None = None,
        norm: str = "backward",
    ) -> Any:
        data = _fft_input(name, x)
        if s is not None and axes is None:
            axes = tuple(range(-len(s), 0))
        return _wrap(np.asarray(np_fn(data, s=s, axes=axes, norm=norm)))

    return _named(fn, name)


fft = _fft1("fft")
ifft = _fft1("ifft")
rfft = _fft1("rfft")
irfft = _fft1("irfft")
hfft = _fft1("hfft")
ihfft = _fft1("ihfft")
fftn = _fftn("fftn")
ifftn = _fftn("ifftn")
rfftn = _fftn("rfftn")
irfftn = _fftn("irfftn")


def fftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Tensor:
    out = np.fft.fftfreq(n, d=d).astype(_dtype(dtype) or _default_float(), copy=False)
    return _place(_wrap(out), device)


def rfftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Tensor:
    out = np.fft.rfftfreq(n, d=d).astype(_dtype(dtype) or _default_float(), copy=False)
    return _place(_wrap(out), device)


def _shift(x: Tensor, axes: Any, inverse: builtins.bool) -> Tensor:
    x = _tensor(x)
    if axes is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axes, int | np.integer):
        axes = (int(axes),)
    axes = tuple(int(a) for a in axes)
    if not axes:
        return x
    shifts = tuple(-(x.shape[a] // 2) if inverse else x.shape[a] // 2 for a in axes)
    return _ops.roll(x, shifts, axes)


def fftshift(x: Tensor, /, *, axes: Any = None) -> Tensor:
    """The zero frequency moved to the centre (a roll: differentiable)."""
    return _shift(x, axes, False)


def ifftshift(x: Tensor, /, *, axes: Any = None) -> Tensor:
    return _shift(x, axes, True)


# rows of derivatives.yaml whose array_api variant is `fft.<name>` (none: the transforms have
# no rows)
_TABLE: dict[str, Any] = _from_table("fft")
globals().update(_TABLE)

__all__ = [
    "fft",
    "ifft",
    "rfft",
    "irfft",
    "hfft",
    "ihfft",
    "fftn",
    "ifftn",
    "rfftn",
    "irfftn",
    "fftfreq",
    "rfftfreq",
    "fftshift",
    "ifftshift",
    *_TABLE,
]
