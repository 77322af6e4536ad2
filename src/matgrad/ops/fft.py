"""``matgrad.fft``: PyTorch's ``torch.fft``, with gradients in both modes.

Three rows of ``derivatives.yaml`` compute every transform, as in PyTorch: ``fft_c2c`` (the
complex DFT, either direction), ``fft_r2c`` (the forward DFT of a real signal, one- or
two-sided) and ``fft_c2r`` (the real inverse DFT of a one-sided Hermitian spectrum). The
public functions are composites of them and of ``pad`` (``n``/``s``: zero padding or
cropping), ``conj`` (``hfft``/``ihfft``, and ``ifft`` of a real signal) and ``roll``
(``fftshift``/``ifftshift``), so the graph shows what was computed::

    x = matgrad.randn(8, requires_grad=True)
    y = matgrad.fft.rfft(x)               # FftR2cBackward0, 5 complex bins
    y.abs().pow(2).sum().backward()       # x.grad: the gradient of the power spectrum

Arguments follow PyTorch's: ``n`` (1-d) or ``s`` (n-d) is the signal size along each
transformed axis (-1 in ``s``: the input's), ``dim`` the axes (``fft2``: the last two;
``fftn``: those of ``s``, else all), ``norm`` one of ``"backward"`` (default: the inverse
scales by 1/n), ``"forward"`` (the forward scales by 1/n) and ``"ortho"`` (both by
1/sqrt(n)). Integer inputs are promoted to the default floating dtype; float32 and complex64
transforms stay in single precision. Errors are PyTorch's (``RuntimeError`` for a bad
``norm``, repeated dims, a size below 1 or a complex input to ``rfft``; ``IndexError`` for an
axis out of range).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.apply import normalize_dim as _norm_dim
from ..core.tensor_base import Tensor, as_tensor, get_default_dtype
from . import composite as _ops
from .registry import PRIMITIVES as P

__all__ = [
    "fft",
    "ifft",
    "rfft",
    "irfft",
    "hfft",
    "ihfft",
    "fft2",
    "ifft2",
    "rfft2",
    "irfft2",
    "hfft2",
    "ihfft2",
    "fftn",
    "ifftn",
    "rfftn",
    "irfftn",
    "hfftn",
    "ihfftn",
    "fftshift",
    "ifftshift",
    "fftfreq",
    "rfftfreq",
]

Dims = int | Sequence[int] | None
Sizes = int | Sequence[int] | None


# -- arguments -----------------------------------------------------------------------------------
def _mode(op: str, norm: str | None, inverse: bool) -> str:
    """The rows' normalization for ``norm`` in the direction of the transform (PyTorch's
    norm_from_string): "backward" scales the inverse by 1/n, "forward" the forward one,
    "ortho" both by 1/sqrt(n)."""
    if norm is None or norm == "backward":
        return "by_n" if inverse else "none"
    if norm == "forward":
        return "none" if inverse else "by_n"
    if norm == "ortho":
        return "by_root_n"
    raise RuntimeError(
        f'{op}: Invalid normalization mode: "{norm}" (expected "backward", "forward", '
        '"ortho" or None)'
    )


def _input(op: str, input: Any, *, real: bool = False, complex_: bool = False) -> Tensor:
    """``input`` as a floating or complex tensor: integers and booleans promoted to the
    default floating dtype (PyTorch's promote_tensor_fft); ``real`` refuses complex input,
    ``complex_`` converts real input to the matching complex dtype."""
    x = input if isinstance(input, Tensor) else as_tensor(input)
    dt = x.dtype
    if dt.kind in "biu":
        x = _ops.to_dtype(x, get_default_dtype())
    elif dt not in (np.float32, np.float64, np.complex64, np.complex128):
        raise RuntimeError(
            f"{op}: Unsupported dtype {dt} (float32, float64, complex64 and complex128 are)"
        )
    if x.dtype.kind == "c":
        if real:
            raise RuntimeError(f"{op} expects a real input tensor, but got {x.dtype}")
    elif complex_:
        x = _ops.to_dtype(x, np.complex64 if x.dtype == np.float32 else np.complex128)
    return x


def _points(op: str, n: Any) -> int:
    if isinstance(n, builtins.bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"{op}: the number of points must be an int, not {type(n).__name__}")
    if n < 1:
        raise RuntimeError(f"{op}: Invalid number of data points ({int(n)}) specified")
    return int(n)


def _axis(op: str, x: Tensor, dim: Any) -> int:
    if isinstance(dim, builtins.bool) or not isinstance(dim, int | np.integer):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__} {dim!r}")
    if x.ndim == 0:
        raise IndexError(f"{op}: Dimension specified as {int(dim)} but tensor has no dimensions")
    return _norm_dim(op, int(dim), x.ndim)


def _one_dim(op: str, x: Tensor, n: Any, dim: Any) -> tuple[list[int], list[int]]:
    """The 1-d functions' (dims, sizes) for ``n`` and ``dim``."""
    d = _axis(op, x, dim)
    return [d], [_points(op, x.shape[d] if n is None else n)]


def _n_dims(op: str, x: Tensor, s: Sizes, dim: Dims) -> tuple[list[int], list[int]]:
    """(dims, sizes) for ``s`` and ``dim`` (PyTorch's canonicalize_fft_shape_and_dim_args):
    ``dim`` as given (distinct), else the last len(s) axes, else all; a size of -1 (or no
    ``s``) is the input's."""
    nd = x.ndim
    sizes = None if s is None else ([s] if isinstance(s, int | np.integer) else list(s))
    if dim is not None:
        given = [dim] if isinstance(dim, int | np.integer) else list(dim)
        dims = [_axis(op, x, d) for d in given]
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"{op}: FFT dims must be unique, got dim={tuple(given)}")
        if sizes is not None and len(sizes) != len(dims):
            raise RuntimeError(
                f"{op}: When given, dim and shape arguments must have the same length "
                f"(s={tuple(sizes)}, dim={tuple(given)})"
            )
    elif sizes is not None:
        if len(sizes) > nd:
            raise RuntimeError(
                f"{op}: Got shape with {len(sizes)} values but input tensor only has {nd} "
                "dimensions."
            )
        dims = list(range(-len(sizes), 0))
    else:
        dims = list(range(-nd, 0))
    if sizes is None:
        sizes = [x.shape[d] for d in dims]
    sizes = [x.shape[d] if isinstance(n, int | np.integer) and n == -1 else n
             for d, n in zip(dims, sizes, strict=True)]  # fmt: skip
    return dims, [_points(op, n) for n in sizes]


def _resize(x: Tensor, dims: Sequence[int], sizes: Sequence[int]) -> Tensor:
    """``x`` zero-padded or cropped at the end of each axis in ``dims`` to ``sizes`` (one
    ``pad`` node; a negative amount crops)."""
    change = {d: n - x.shape[d] for d, n in zip(dims, sizes, strict=True) if n != x.shape[d]}
    if not change:
        return x
    amounts: list[int] = []
    for k in range(1, builtins.max(-d for d in change) + 1):
        amounts += [0, change.get(-k, 0)]
    return P.pad(x, pad=tuple(amounts), value=0.0)


def _at_least_one(op: str, dims: Sequence[int]) -> None:
    if not dims:
        raise RuntimeError(f"{op} must transform at least one axis")


# -- the transforms over the rows ---------------------------------------------------------------
def _c2c(op: str, x: Tensor, dims: list[int], norm: str | None, inverse: bool) -> Tensor:
    """The DFT of ``x`` over ``dims``; a real ``x`` through the two-sided r2c (F^H x =
    conj(F x) for real x, as PyTorch computes ifft of a real signal)."""
    mode = _mode(op, norm, inverse)
    if x.dtype.kind == "c":
        return P.fft_c2c(x, dim=tuple(dims), normalization=mode, inverse=inverse)
    out = P.fft_r2c(x, dim=tuple(dims), normalization=mode, onesided=False)
    return P.conj(out) if inverse else out


def _full(op: str, input: Any, s: Sizes, dim: Dims, norm: str | None, inverse: bool) -> Tensor:
    x = _input(op, input)
    dims, sizes = _n_dims(op, x, s, dim)
    return _c2c(op, _resize(x, dims, sizes), dims, norm, inverse)


def _forward_real(op: str, x: Tensor, dims: list[int], sizes: list[int], norm: str | None):
    """rfftn: the one-sided forward DFT of the real ``x`` (the last of ``dims`` halved)."""
    _at_least_one(op, dims)
    x = _resize(x, dims, sizes)
    return P.fft_r2c(x, dim=tuple(dims), normalization=_mode(op, norm, False), onesided=True)


def _inverse_hermitian(op: str, x: Tensor, dims: list[int], sizes: list[int], norm: str | None):
    """ihfftn: ifftn of the real ``x``, one-sided: conj(r2c) over the last axis, then the
    inverse c2c over the others (PyTorch's fft_ihfftn)."""
    _at_least_one(op, dims)
    x = _resize(x, dims, sizes)
    mode = _mode(op, norm, True)
    out = P.conj(P.fft_r2c(x, dim=(dims[-1],), normalization=mode, onesided=True))
    if len(dims) > 1:
        out = P.fft_c2c(out, dim=tuple(dims[:-1]), normalization=mode, inverse=True)
    return out


def _c2r_sizes(op: str, x: Tensor, dims: list[int], sizes: list[int], given: bool) -> int:
    """The real output's size along the last axis (``sizes[-1]`` if given, else 2 (m - 1)
    for m input bins); ``sizes[-1]`` becomes the number of one-sided bins it needs."""
    _at_least_one(op, dims)
    n = sizes[-1] if given else 2 * (x.shape[dims[-1]] - 1)
    if n < 1:
        raise RuntimeError(f"{op}: Invalid number of data points ({n}) specified")
    sizes[-1] = n // 2 + 1
    return n


def _inverse_real(op: str, x: Tensor, dims: list[int], sizes: list[int], n: int, norm: Any):
    """irfftn: the real inverse DFT of the one-sided spectrum ``x``."""
    x = _resize(x, dims, sizes)
    mode = _mode(op, norm, True)
    return P.fft_c2r(x, dim=tuple(dims), normalization=mode, last_dim_size=n)


def _forward_hermitian(op: str, x: Tensor, dims: list[int], sizes: list[int], n: int, norm: Any):
    """hfftn: the forward DFT of a Hermitian signal given by its one-sided half: the forward
    c2c over all but the last axis, then c2r of the conjugate over the last (PyTorch's
    fft_hfftn)."""
    x = _resize(x, dims, sizes)
    mode = _mode(op, norm, False)
    if len(dims) > 1:
        x = P.fft_c2c(x, dim=tuple(dims[:-1]), normalization=mode, inverse=False)
    return P.fft_c2r(P.conj(x), dim=(dims[-1],), normalization=mode, last_dim_size=n)


# -- 1-d -----------------------------------------------------------------------------------------
def fft(input: Any, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The DFT along ``dim``: X_k = sum_j x_j exp(-2 pi i jk/n)."""
    x = _input("fft", input)
    dims, sizes = _one_dim("fft", x, n, dim)
    return _c2c("fft", _resize(x, dims, sizes), dims, norm, False)


def ifft(input: Any, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The inverse DFT along ``dim``: x_j = (1/n) sum_k X_k exp(2 pi i jk/n)."""
    x = _input("ifft", input)
    dims, sizes = _one_dim("ifft", x, n, dim)
    return _c2c("ifft", _resize(x, dims, sizes), dims, norm, True)


def rfft(input: Any, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The DFT of a real signal, bins 0 .. n//2 (the rest are their mirrors' conjugates)."""
    x = _input("rfft", input, real=True)
    dims, sizes = _one_dim("rfft", x, n, dim)
    return _forward_real("rfft", x, dims, sizes, norm)


def irfft(input: Any, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The inverse of ``rfft``: a real signal of ``n`` points (default 2 (m - 1)) from m
    one-sided bins (the imaginary parts of bin 0, and of bin n/2 for even n, are ignored)."""
    x = _input("irfft", input, complex_=True)
    d = _axis("irfft", x, dim)
    dims, sizes = [d], [x.shape[d] if n is None else _points("irfft", n)]
    last = _c2r_sizes("irfft", x, dims, sizes, n is not None)
    return _inverse_real("irfft", x, dims, sizes, last, norm)


def hfft(input: Any, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The DFT of a Hermitian-symmetric signal given by its one-sided half: a real spectrum of
    ``n`` points (default 2 (m - 1))."""
    x = _input("hfft", input, complex_=True)
    d = _axis("hfft", x, dim)
    dims, sizes = [d], [x.shape[d] if n is None else _points("hfft", n)]
    last = _c2r_sizes("hfft", x, dims, sizes, n is not None)
    return _forward_hermitian("hfft", x, dims, sizes, last, norm)


def ihfft(input: Any, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """The inverse of ``hfft``: the one-sided half (bins 0 .. n//2) of ifft of a real
    signal."""
    x = _input("ihfft", input, real=True)
    dims, sizes = _one_dim("ihfft", x, n, dim)
    return _inverse_hermitian("ihfft", x, dims, sizes, norm)


# -- n-d -----------------------------------------------------------------------------------------
def fftn(input: Any, s: Sizes = None, dim: Dims = None, norm: str | None = None) -> Tensor:
    """The DFT over ``dim`` (default: the axes of ``s``, else all)."""
    return _full("fftn", input, s, dim, norm, False)


def ifftn(input: Any, s: Sizes = None, dim: Dims = None, norm: str | None = None) -> Tensor:
    return _full("ifftn", input, s, dim, norm, True)


def _rfftn(op: str, input: Any, s: Sizes, dim: Dims, norm: str | None) -> Tensor:
    x = _input(op, input, real=True)
    dims, sizes = _n_dims(op, x, s, dim)
    return _forward_real(op, x, dims, sizes, norm)


def _irfftn(op: str, input: Any, s: Sizes, dim: Dims, norm: str | None) -> Tensor:
    x = _input(op, input, complex_=True)
    dims, sizes, last = _c2r_args(op, x, s, dim)
    return _inverse_real(op, x, dims, sizes, last, norm)


def _hfftn(op: str, input: Any, s: Sizes, dim: Dims, norm: str | None) -> Tensor:
    x = _input(op, input, complex_=True)
    dims, sizes, last = _c2r_args(op, x, s, dim)
    return _forward_hermitian(op, x, dims, sizes, last, norm)


def _ihfftn(op: str, input: Any, s: Sizes, dim: Dims, norm: str | None) -> Tensor:
    x = _input(op, input, real=True)
    dims, sizes = _n_dims(op, x, s, dim)
    return _inverse_hermitian(op, x, dims, sizes, norm)


def rfftn(input: Any, s: Sizes = None, dim: Dims = None, norm: str | None = None) -> Tensor:
    """The DFT of a real signal over ``dim``, one-sided along the last of them."""
    return _rfftn("rfftn", input, s, dim, norm)


def _c2r_args(op: str, x: Tensor, s: Sizes, dim: Dims) -> tuple[list[int], list[int], int]:
    dims, sizes = _n_dims(op, x, s, dim)
    given = None if s is None else ([s] if isinstance(s, int | np.integer) else list(s))
    last_given = bool(given) and given[-1] != -1
    return dims, sizes, _c2r_sizes(op, x, dims, sizes, last_given)


def irfftn(input: Any, s: Sizes = None, dim: Dims = None, norm: str | None = None) -> Tensor:
    """The inverse of ``rfftn``: a real signal; ``s[-1]`` (default 2 (m - 1)) points along
    the last axis of ``dim``."""
    return _irfftn("irfftn", input, s, dim, norm)


def hfftn(input: Any, s: Sizes = None, dim: Dims = None, norm: str | None = None) -> Tensor:
    """The n-d DFT of a Hermitian-symmetric signal given by its one-sided half (along the
    last axis of ``dim``): a real result."""
    return _hfftn("hfftn", input, s, dim, norm)


def ihfftn(input: Any, s: Sizes = None, dim: Dims = None, norm: str | None = None) -> Tensor:
    """The inverse of ``hfftn``: the one-sided half of ifftn of a real signal."""
    return _ihfftn("ihfftn", input, s, dim, norm)


def fft2(input: Any, s: Sizes = None, dim: Dims = (-2, -1), norm: str | None = None) -> Tensor:
    return _full("fft2", input, s, dim, norm, False)


def ifft2(input: Any, s: Sizes = None, dim: Dims = (-2, -1), norm: str | None = None) -> Tensor:
    return _full("ifft2", input, s, dim, norm, True)


def rfft2(input: Any, s: Sizes = None, dim: Dims = (-2, -1), norm: str | None = None) -> Tensor:
    return _rfftn("rfft2", input, s, dim, norm)


def irfft2(input: Any, s: Sizes = None, dim: Dims = (-2, -1), norm: str | None = None) -> Tensor:
    return _irfftn("irfft2", input, s, dim, norm)


def hfft2(input: Any, s: Sizes = None, dim: Dims = (-2, -1), norm: str | None = None) -> Tensor:
    return _hfftn("hfft2", input, s, dim, norm)


def ihfft2(input: Any, s: Sizes = None, dim: Dims = (-2, -1), norm: str | None = None) -> Tensor:
    return _ihfftn("ihfft2", input, s, dim, norm)


for _fn, _base in [
    (fft2, fftn), (ifft2, ifftn), (rfft2, rfftn), (irfft2, irfftn), (hfft2, hfftn),
    (ihfft2, ihfftn),
]:  # fmt: skip
    _fn.__doc__ = f"``{_base.__name__}`` over the last two axes by default."


# -- helpers -------------------------------------------------------------------------------------
def _shift(op: str, input: Any, dim: Dims, sign: int) -> Tensor:
    x = input if isinstance(input, Tensor) else as_tensor(input)
    if dim is None:
        dims = list(range(x.ndim))
    else:
        dims = [dim] if isinstance(dim, int | np.integer) else list(dim)
    if not dims:
        return P.clone(x)
    axes = [_norm_dim(op, d, x.ndim) for d in dims]
    return _ops.roll(x, tuple(sign * (x.shape[d] // 2) for d in axes), tuple(axes))


def fftshift(input: Any, dim: Dims = None) -> Tensor:
    """The zero frequency moved to the centre: a roll by n//2 along each axis of ``dim``
    (default: all)."""
    return _shift("fftshift", input, dim, 1)


def ifftshift(input: Any, dim: Dims = None) -> Tensor:
    """The inverse of ``fftshift``: a roll by -(n//2)."""
    return _shift("ifftshift", input, dim, -1)


def _frequencies(
    op: str, n: Any, d: float, onesided: bool, dtype: Any, device: Any, requires_grad: bool
) -> Tensor:
    if isinstance(n, builtins.bool) or not isinstance(n, int | np.integer) or n < onesided:
        raise RuntimeError(
            f"{op}: n must be a {'positive' if onesided else 'non-negative'} int, got {n!r}"
        )
    n = int(n)
    if onesided:
        k = np.arange(n // 2 + 1, dtype=np.float64)
    else:
        k = np.concatenate([np.arange((n - 1) // 2 + 1), np.arange(-(n // 2), 0)]).astype(float)
    values = k / (n * float(d)) if n else k
    out_dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
    out = Tensor(values.astype(out_dtype), requires_grad=builtins.bool(requires_grad))
    return _ops._placed(out, device)


def fftfreq(
    n: int,
    d: float = 1.0,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """The sample frequencies of an n-point DFT with spacing ``d``: [0, 1, .., (n-1)//2,
    -(n//2), .., -1] / (n d)."""
    return _frequencies("fftfreq", n, d, False, dtype, device, requires_grad)


def rfftfreq(
    n: int,
    d: float = 1.0,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """The sample frequencies of ``rfft``'s bins: [0, 1, .., n//2] / (n d)."""
    return _frequencies("rfftfreq", n, d, True, dtype, device, requires_grad)
