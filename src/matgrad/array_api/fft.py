"""The Array API's ``fft`` extension over matgrad tensors, with gradients: every function is
:mod:`matgrad.fft`'s under the standard's signature (``axis``/``axes`` for ``dim``,
keyword-only arguments), so it records the same rows (``fft_c2c``, ``fft_r2c``, ``fft_c2r``,
with ``pad``, ``conj`` and ``roll`` around them). Code written against the standard, such as
SciPy's ``signal.fftconvolve`` with ``SCIPY_ARRAY_API=1``, is then differentiable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.tensor_base import Tensor
from ..ops import fft as _fft
from ._creation import _tensor
from ._dtypes import _default_float
from ._helpers import _dtype, _from_table, _place

Norm = str


def _fft1(name: str) -> Any:
    impl = getattr(_fft, name)

    def fn(
        x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: Norm = "backward"
    ) -> Tensor:
        return impl(_tensor(x), n=n, dim=axis, norm=norm)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``matgrad.fft.{name}`` (differentiable); ``axis`` is its ``dim``."
    return fn


def _fftn(name: str) -> Any:
    impl = getattr(_fft, name)

    def fn(
        x: Tensor,
        /,
        *,
        s: Sequence[int] | None = None,
        axes: Sequence[int] | None = None,
        norm: Norm = "backward",
    ) -> Tensor:
        # axes=None: those of `s` (the last len(s)), else all, as matgrad.fft's dim=None
        return impl(_tensor(x), s=s, dim=axes, norm=norm)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``matgrad.fft.{name}`` (differentiable); ``axes`` is its ``dim``."
    return fn


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
    """The sample frequencies of an n-point DFT (no gradient)."""
    return _place(_fft.fftfreq(n, d, dtype=_dtype(dtype) or _default_float()), device)


def rfftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Tensor:
    """The sample frequencies of ``rfft``'s bins (no gradient)."""
    return _place(_fft.rfftfreq(n, d, dtype=_dtype(dtype) or _default_float()), device)


def fftshift(x: Tensor, /, *, axes: int | Sequence[int] | None = None) -> Tensor:
    """The zero frequency moved to the centre (a roll: differentiable)."""
    return _fft.fftshift(_tensor(x), dim=axes)


def ifftshift(x: Tensor, /, *, axes: int | Sequence[int] | None = None) -> Tensor:
    """The inverse of ``fftshift``."""
    return _fft.ifftshift(_tensor(x), dim=axes)


# rows of derivatives.yaml whose array_api variant is `fft.<name>` (none: the standard's
# signatures are written above)
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
