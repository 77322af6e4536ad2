"""Forward computations on raw arrays that take more than one line, and the raw-array helpers
rule formulas call.

A row of ``derivatives.yaml`` names its forward: a one-line expression on the array namespace
(``forward: xp.tanh(self)``), or a function here (or in :mod:`matgrad.backend.lapack`) named
like the row. Functions here take the row's parameters. Calls go through NumPy's API, which
dispatches to other array libraries that implement ``__array_function__`` (Dask, CuPy).

Conventions: ``dim`` arguments arrive normalised to negative integers (counted from the last
axis), so the same formulas work when cotangents carry extra leading batch dimensions.
"""

from __future__ import annotations

import builtins
import itertools
import math
from typing import Any

import numpy as np
import scipy.special

from . import arrays as _backend

Array = Any


# -- elementwise -------------------------------------------------------------------------------
# NumPy's ufuncs themselves where the op is one (saves a Python call on every op)


def expm1(self: Array) -> Array:
    """exp(x) - 1, accurate near 0. Complex infinities, NaNs and zeros take exp(x) - 1 (exact
    there), which gives the Array API's special values where NumPy's expm1 gives NaN (+inf + 0j)
    or -0 (-0 + 0j)."""
    out = np.expm1(self)
    if getattr(out, "dtype", None) is not None and out.dtype.kind == "c":
        bad = ~np.isfinite(self) | (self == 0)
        if _backend.backend_of(bad) != "numpy" or np.any(bad):
            with np.errstate(invalid="ignore", over="ignore"):
                out = np.where(bad, np.exp(self) - 1, out)
    return out


# the Array API's elementwise functions (NumPy's ufuncs)


def floor_divide(self: Array, other: Array) -> Array:
    """floor(self / other), NumPy's ``floor_divide`` with the Array API's special cases where
    an operand is infinite (NumPy gives NaN for inf // 2 and -1 for -1 // inf; the standard
    wants +-inf and -0, i.e. the quotient itself)."""
    if np.result_type(self, other).kind == "f":
        infinite = np.isinf(self) | np.isinf(other)
        if _backend.backend_of(infinite) != "numpy" or np.any(infinite):
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(infinite, np.true_divide(self, other), np.floor_divide(self, other))
    return np.floor_divide(self, other)


def clamp(self: Array, min: Any = None, max: Any = None) -> Array:  # noqa: A002
    _real_only("clamp", self)
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return np.clip(self, min, max)


# -- comparisons and other functions without gradient -----------------------------------------


def zeros_like(self: Array) -> Array:
    return np.zeros_like(self)


def ones_like(self: Array) -> Array:
    return np.ones_like(self)


# -- reductions --------------------------------------------------------------------------------


def has_zero(self: Array) -> bool:
    """Whether ``self`` holds a zero (True for lazy arrays: not known without computing)."""
    if _backend.backend_of(self) != "numpy":
        return True
    return not np.all(self)


# -- shape ops ---------------------------------------------------------------------------------


def permute(self: Array, dims: tuple[int, ...]) -> Array:
    # dims are negative; keep any extra leading (batch) axes in front, in order
    lead = self.ndim - len(dims)
    return np.transpose(self, tuple(range(lead)) + tuple(d + self.ndim for d in dims))


def expand(self: Array, shape: tuple[int, ...]) -> Array:
    lead = self.ndim - len(shape)  # extra leading batch axes of self, kept as they are
    if lead > 0:
        shape = self.shape[:lead] + tuple(shape)
    if isinstance(self, np.ndarray):
        return np.broadcast_to(self, shape)
    return _backend.broadcast_to(self, shape)


def getitem(self: Array, index: Any) -> Array:
    out = self[index]
    if isinstance(out, np.generic) and isinstance(self, np.ndarray):
        # integers down to one element: NumPy returns a scalar copy; the 0-d view instead
        # (PyTorch's `b[0]` is a view), indexing with a trailing Ellipsis
        rest = tuple(i for i in _as_tuple(index) if i is not Ellipsis)
        out = self[(*rest, Ellipsis)]
    if not isinstance(out, np.ndarray | np.generic) and any(s != s for s in out.shape):
        raise _backend.unsupported(
            "indexing with a lazy boolean mask",
            self,
            "the result's size is unknown until computed; compute the mask first",
        )
    return out


def mT(self: Array) -> Array:  # noqa: N802 - the Array API's name
    """The matrix transpose (last two axes swapped)."""
    return self.mT if isinstance(self, np.ndarray) else np.swapaxes(self, -1, -2)


def index_put(self: Array, values: Array, index: Any) -> Array:
    out = self.copy()
    out[index] = values
    return out


def zeros_scatter(self: Array, shape: tuple[int, ...], index: Any) -> Array:
    """zeros(shape) with ``self`` added at ``index`` (repeated indices accumulate)."""
    lead = self.ndim - _index_result_ndim(shape, index)
    full_index = (slice(None),) * lead + _as_tuple(index)
    advanced = any(isinstance(i, np.ndarray | list) or _backend.is_array(i) for i in full_index)
    if _backend.backend_of(self) == "numpy":
        out = np.zeros(self.shape[:lead] + tuple(shape), dtype=self.dtype)
        if advanced:  # indices may repeat: accumulate (np.add.at is slow, so only here)
            np.add.at(out, full_index, np.asarray(self))
        else:  # basic indices select each element once: assignment is the adjoint
            out[full_index] = self
        return out
    if advanced:
        raise _backend.unsupported("the gradient of advanced indexing", self, "no scatter-add")
    out = np.zeros_like(self, shape=self.shape[:lead] + tuple(shape))
    out[full_index] = self
    return out


def _leading_ones(indices: Array, ndim: int) -> Array:
    """``indices`` with size-1 axes in front up to ``ndim`` axes (extra leading batch axes of
    a tangent or cotangent broadcast against them)."""
    extra = ndim - indices.ndim
    return indices.reshape((1,) * extra + indices.shape) if extra > 0 else indices


def take_along_axis(self: Array, indices: Array, dim: int) -> Array:
    """``out[..., j, ...] = self[..., indices[..., j, ...], ...]`` along ``dim`` (the other axes
    of ``indices`` broadcast against those of ``self``)."""
    if _backend.backend_of(self) != "numpy":
        raise _backend.unsupported("take_along_axis (a gather)", self)
    return np.take_along_axis(np.asarray(self), _leading_ones(indices, self.ndim), axis=dim)


def zeros_scatter_along(self: Array, indices: Array, dim: int, shape: tuple[int, ...]) -> Array:
    """zeros(shape) with ``self`` added at ``indices`` along ``dim`` (repeated indices
    accumulate; axes where ``shape`` has size 1 and ``self`` does not are summed): the adjoint
    of :func:`take_along_axis`."""
    if _backend.backend_of(self) != "numpy":
        raise _backend.unsupported("zeros_scatter_along (a scatter-add)", self)
    nd = self.ndim
    lead = nd - len(shape)
    out_shape = self.shape[:lead] + tuple(shape)
    out = np.zeros(out_shape, dtype=self.dtype)
    index: list[Array] = []
    for a in range(nd):
        if a == nd + dim:
            index.append(_leading_ones(indices, nd))
            continue
        n = self.shape[a]
        positions = np.arange(n) if out_shape[a] == n else np.zeros(n, dtype=np.intp)
        index.append(positions.reshape((1,) * a + (n,) + (1,) * (nd - a - 1)))
    np.add.at(out, tuple(index), np.asarray(self))
    return out


def diagonal(self: Array, offset: int, dim1: int, dim2: int) -> Array:
    """The diagonal as a view; writable where ``self`` is (NumPy marks it read-only), so
    in-place ops on it write into ``self`` as PyTorch's do."""
    out = np.diagonal(self, offset=offset, axis1=dim1, axis2=dim2)
    if isinstance(out, np.ndarray) and isinstance(self, np.ndarray) and self.flags.writeable:
        out.flags.writeable = True
    return out


def diag_embed(self: Array, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Array:
    n = self.shape[-1] + builtins.abs(offset)
    out_ndim = self.ndim + 1
    d1, d2 = dim1 % out_ndim, dim2 % out_ndim
    # the vector padded to length n, times the identity shifted by `offset`: out[i, i+offset]
    padded = np.pad(
        self, [(0, 0)] * (self.ndim - 1) + [(builtins.max(-offset, 0), builtins.max(offset, 0))]
    )
    eye = _backend.namespace(self).eye(n, n, k=offset, dtype=self.dtype)
    out = padded[..., :, None] * eye
    # the new pair of axes sits last; move it to (dim1, dim2)
    return np.moveaxis(out, (-2, -1), (d1, d2))


def pad(self: Array, pad: tuple[int, ...], value: float = 0.0) -> Array:
    """Constant padding; ``pad`` lists (before, after) pairs from the last axis backwards,
    as in ``torch.nn.functional.pad``. Negative amounts crop."""
    widths = [(0, 0)] * self.ndim
    slices = [slice(None)] * self.ndim
    for k in range(len(pad) // 2):
        before, after = pad[2 * k], pad[2 * k + 1]
        axis = self.ndim - 1 - k
        widths[axis] = (builtins.max(before, 0), builtins.max(after, 0))
        n = self.shape[axis]
        slices[axis] = slice(builtins.max(-before, 0), n - builtins.max(-after, 0))
    out = np.pad(self[tuple(slices)], widths, mode="constant", constant_values=value)
    return out


# -- products ----------------------------------------------------------------------------------


def outer(self: Array, other: Array) -> Array:
    return np.multiply(self[..., :, None], other[..., None, :])


# -- helpers -----------------------------------------------------------------------------------
def _as_tuple(index: Any) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def _index_result_ndim(shape: tuple[int, ...], index: Any) -> int:
    """ndim of ``zeros(shape)[index]``, computed on a zero-stride view (no allocation)."""
    return np.broadcast_to(np.empty((), dtype=np.bool_), shape)[index].ndim


# -- dtype and constants -----------------------------------------------------------------------


def full_like_shape(value: Any, shape: tuple[int, ...], dtype: Any) -> Array:
    return np.full(shape, value, dtype=dtype)


def eye_like(self: Array, n: int) -> Array:
    return _backend.namespace(self).eye(n, dtype=self.dtype)


# -- real-only ops (PyTorch raises for complex inputs; NumPy would order complex numbers
# lexicographically, or take z/|z| for sign) --------------------------------------------------


def _real_only(op: str, *xs: Array) -> None:
    for x in xs:
        if getattr(getattr(x, "dtype", None), "kind", None) == "c" or isinstance(x, complex):
            raise NotImplementedError(f"{op} is not supported for complex inputs (dtype {x.dtype})")


def relu(self: Array) -> Array:
    if self.dtype.kind == "c":
        raise NotImplementedError("clamp is not supported for complex types (relu)")
    return np.maximum(self, 0)


def maximum(self: Array, other: Array) -> Array:
    _real_only("maximum", self, other)
    return np.maximum(self, other)


def minimum(self: Array, other: Array) -> Array:
    _real_only("minimum", self, other)
    return np.minimum(self, other)


def sign(self: Array) -> Array:
    if self.dtype.kind == "c":
        raise NotImplementedError(
            "Unlike NumPy, sign is not intended to support complex numbers (PyTorch's rule); "
            "use sgn, z / |z|"
        )
    return np.sign(self)


def erf(self: Array) -> Array:
    _real_only("erf", self)
    return scipy.special.erf(self)


def sigmoid(self: Array) -> Array:
    """1 / (1 + e^-x): SciPy's expit for real x (accurate in the tails), the formula itself for
    complex z (expit takes no complex input)."""
    if self.dtype.kind == "c":
        return 1.0 / (1.0 + np.exp(-self))
    return scipy.special.expit(self)


def amax(self: Array, dim: Any = None, keepdim: bool = False) -> Array:
    _real_only("amax", self)
    return np.amax(self, axis=dim, keepdims=keepdim)


def amin(self: Array, dim: Any = None, keepdim: bool = False) -> Array:
    _real_only("amin", self)
    return np.amin(self, axis=dim, keepdims=keepdim)


# -- special functions (matgrad.special and PyTorch's elementwise functions) -----------------
# Forwards through SciPy (scipy.special) on NumPy arrays. PyTorch implements these for real
# inputs only (complex: "not implemented for 'ComplexDouble'"), so complex inputs raise rather
# than taking SciPy's complex branches that PyTorch would refuse.


def _real_special(op: str, fn: Any) -> Any:
    """``fn`` (a SciPy ufunc) for real inputs, raising NotImplementedError for complex ones.
    With two inputs the result takes NumPy 2's promotion of them (SciPy's ufuncs turn a Python
    float and a float32 array into float64; PyTorch and NumPy keep float32)."""

    def forward(*xs: Array) -> Array:
        _real_only(op, *xs)
        return fn(*xs) if len(xs) == 1 else _like(fn(*xs), *xs)

    forward.__name__ = forward.__qualname__ = op
    forward.__doc__ = f"scipy.special.{fn.__name__} of real inputs (PyTorch's {op})."
    forward.ufunc = fn  # type: ignore[attr-defined] - the ufunc it guards (as `erf.ufunc`)
    return forward


erfc = _real_special("erfc", scipy.special.erfc)
erfinv = _real_special("erfinv", scipy.special.erfinv)
special_erfcx = _real_special("special_erfcx", scipy.special.erfcx)
special_ndtri = _real_special("special_ndtri", scipy.special.ndtri)
special_log_ndtr = _real_special("special_log_ndtr", scipy.special.log_ndtr)
digamma = _real_special("digamma", scipy.special.psi)
i0 = _real_special("i0", scipy.special.i0)
special_i0e = _real_special("special_i0e", scipy.special.i0e)
special_i1 = _real_special("special_i1", scipy.special.i1)
special_i1e = _real_special("special_i1e", scipy.special.i1e)
special_bessel_j0 = _real_special("special_bessel_j0", scipy.special.j0)
special_bessel_j1 = _real_special("special_bessel_j1", scipy.special.j1)
xlogy = _real_special("xlogy", scipy.special.xlogy)
special_xlog1py = _real_special("special_xlog1py", scipy.special.xlog1py)
special_entr = _real_special("special_entr", scipy.special.entr)
special_zeta = _real_special("special_zeta", scipy.special.zeta)
igamma = _real_special("igamma", scipy.special.gammainc)
igammac = _real_special("igammac", scipy.special.gammaincc)
nextafter = _real_special("nextafter", np.nextafter)
fmod = _real_special("fmod", np.fmod)
floor = _real_special("floor", np.floor)
ceil = _real_special("ceil", np.ceil)
trunc = _real_special("trunc", np.trunc)


def _like(out: Array, *xs: Array) -> Array:
    """``out`` in the floating dtype NumPy's promotion gives the inputs (float32 stays float32
    where SciPy computes in float64, as polygamma and multigammaln do)."""
    dtypes = [x.dtype if hasattr(x, "dtype") else x for x in xs]
    dt = np.result_type(*dtypes, 1.0)  # integers: the default float64, as SciPy gives
    return out.astype(dt, copy=False) if getattr(out, "dtype", dt) != dt else out


def lgamma(self: Array) -> Array:
    """log|Gamma(x)| (scipy's gammaln); +inf at -inf, as PyTorch (SciPy gives -inf there)."""
    _real_only("lgamma", self)
    out = scipy.special.gammaln(self)
    if _backend.backend_of(self) == "numpy" and np.any(np.isneginf(self)):
        out = np.where(np.isneginf(self), np.inf, out).astype(out.dtype, copy=False)
    return out


def polygamma(self: Array, n: int) -> Array:
    """psi^(n)(x), the n-th derivative of the digamma function (n >= 0)."""
    _real_only("polygamma", self)
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"polygamma: n must be an integer, got {type(n).__name__} {n!r}")
    if n < 0:
        raise RuntimeError(f"polygamma: polygamma(n, x) does not support negative n (got {n})")
    if n == 0:
        return scipy.special.psi(self)
    return _like(scipy.special.polygamma(int(n), self), self)


def mvlgamma(self: Array, p: int) -> Array:
    """The multivariate log-gamma function of dimension p (DLMF 35.3.1, 35.3.4):
    log Gamma_p(x) = p (p - 1)/4 log(pi) + sum_{j<p} log Gamma(x - j/2), for x > (p - 1)/2."""
    _real_only("mvlgamma", self)
    if isinstance(p, bool) or not isinstance(p, int | np.integer) or p < 1:
        raise RuntimeError(f"mvlgamma: p has to be an integer >= 1 (got {p!r})")
    if _backend.backend_of(self) == "numpy" and not np.all(np.asarray(self) > (p - 1) / 2):
        raise RuntimeError(
            f"mvlgamma: all elements must be greater than (p-1)/2 = {(p - 1) / 2} (p = {p})"
        )
    out = sum(scipy.special.gammaln(self - 0.5 * j) for j in range(int(p)))
    return _like(out + p * (p - 1) / 4 * np.log(np.pi), self)


def logit(self: Array, eps: float | None = None) -> Array:
    """log(x / (1 - x)), of x clamped to [eps, 1 - eps] when eps >= 0 is given (PyTorch)."""
    _real_only("logit", self)
    if eps is not None and eps >= 0:
        self = np.clip(self, eps, 1.0 - eps)
    return scipy.special.logit(self)


def frac(self: Array) -> Array:
    """x - trunc(x): the fractional part, with the sign of x (PyTorch's frac)."""
    _real_only("frac", self)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, as PyTorch
        return self - np.trunc(self)


def round_decimals(self: Array, decimals: int = 0) -> Array:
    """Round half to even at ``decimals`` digits, as PyTorch: rint(x 10^d) / 10^d, or for
    d < 0 rint(x / 10^-d) 10^-d (NumPy's round multiplies by 10^d in both cases)."""
    _real_only("round", self)
    if decimals == 0 or np.result_type(self).kind in "iub":
        return np.round(self)
    scale = 10.0 ** builtins.abs(decimals)
    if decimals > 0:
        return np.rint(self * scale) / scale
    return np.rint(self / scale) * scale


def heaviside(self: Array, values: Array) -> Array:
    """0 where x < 0, ``values`` where x == 0, 1 where x > 0 (NaN stays NaN)."""
    _real_only("heaviside", self, values)
    dtypes = [getattr(x, "dtype", None) for x in (self, values)]  # None: a Python number
    if all(dt is not None for dt in dtypes) and dtypes[0] != dtypes[1]:
        raise RuntimeError(
            f"heaviside is not yet implemented for tensors with different dtypes (input "
            f"{dtypes[0]}, values {dtypes[1]})"
        )
    return np.heaviside(self, values)


def rsqrt(self: Array) -> Array:
    """1 / sqrt(x) (inf at 0, NaN below, as PyTorch)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.reciprocal(np.sqrt(self))


# the ufunc each guard computes (explain's per-element engine maps ufuncs to rows)
maximum.ufunc, minimum.ufunc, sign.ufunc = np.maximum, np.minimum, np.sign  # type: ignore[attr-defined]
erf.ufunc, sigmoid.ufunc = scipy.special.erf, scipy.special.expit  # type: ignore[attr-defined]


# -- complex numbers ---------------------------------------------------------------------------
# `real`, `imag`, `view_as_real` and `view_as_complex` return views of NumPy arrays (shared
# memory, as PyTorch's); other array libraries get their own (lazy) results.


def real(self: Array) -> Array:
    """Re z (a view); a real array itself (as a view: PyTorch's ``x.real`` is ``x``)."""
    if self.dtype.kind != "c":
        return self.view() if isinstance(self, np.ndarray) else self
    return np.real(self)


def imag(self: Array) -> Array:
    if self.dtype.kind != "c":
        raise RuntimeError(
            f"imag is not implemented for tensors with non-complex dtypes (got {self.dtype})"
        )
    return np.imag(self)


def angle(self: Array) -> Array:
    """arg z in (-pi, pi]; for real x: pi where x < 0, else 0 (NaN stays NaN), as PyTorch."""
    if self.dtype.kind == "c":
        return np.angle(self)
    out = np.where(self < 0, np.pi, 0.0)
    return np.where(np.isnan(self), self, out).astype(self.dtype, copy=False)


def _float_of(dtype: Any) -> np.dtype:
    return np.dtype(np.float32 if np.dtype(dtype) == np.complex64 else np.float64)


def view_as_real(self: Array) -> Array:
    """complex (...) -> real (..., 2): a view when the last axis is contiguous, as NumPy's
    ``view`` allows (PyTorch's is always a view)."""
    if self.dtype.kind != "c":
        raise RuntimeError(f"view_as_real is only supported for complex tensors, got {self.dtype}")
    if isinstance(self, np.ndarray):
        if self.ndim == 0:
            return self.reshape(1).view(_float_of(self.dtype))
        try:  # NumPy's view needs the last axis contiguous
            return self.view(_float_of(self.dtype)).reshape(self.shape + (2,))
        except ValueError:
            pass
    return np.stack([np.real(self), np.imag(self)], axis=-1)


def view_as_complex(self: Array) -> Array:
    """real (..., 2) -> complex (...): a view of a float32/float64 array whose last axis (of
    size 2) is contiguous; other NumPy layouts raise, as PyTorch's (a copy would not be the
    view the op promises); Dask and CuPy data get their library's complex array."""
    if self.dtype not in (np.float32, np.float64):
        raise RuntimeError(
            f"view_as_complex is only supported for float32 and float64 tensors, got {self.dtype}"
        )
    if self.ndim == 0 or self.shape[-1] != 2:
        raise RuntimeError(
            f"view_as_complex: the tensor must have a last dimension of size 2, got shape "
            f"{tuple(self.shape)}"
        )
    cdtype = np.complex64 if self.dtype == np.float32 else np.complex128
    if isinstance(self, np.ndarray):
        if self.strides[-1] != self.itemsize:
            raise RuntimeError("Tensor must have a last dimension with stride 1")
        try:  # NumPy's view needs the last axis contiguous
            return self.view(cdtype)[..., 0]
        except ValueError:
            raise RuntimeError(  # e.g. a storage offset that breaks complex alignment
                "view_as_complex: the tensor's memory cannot be viewed as complex (PyTorch "
                "needs a last dimension with stride 1 and the other strides even)"
            ) from None
    return make_complex(self[..., 0], self[..., 1])


def _complex_parts(op: str, a: Array, b: Array) -> np.dtype:
    for x in (a, b):
        if getattr(x, "dtype", None) not in (np.float32, np.float64):
            raise TypeError(
                f"{op}: expected float32 or float64 tensors, got {getattr(x, 'dtype', type(x))}"
            )
    if a.dtype != b.dtype:
        raise TypeError(
            f"{op}: expected both inputs to have the same dtype, got {a.dtype} and {b.dtype}"
        )
    return np.dtype(np.complex64 if a.dtype == np.float32 else np.complex128)


def make_complex(real: Array, imag: Array) -> Array:
    """real + i imag (PyTorch's ``torch.complex``): the parts are written, not added, so
    infinities and signed zeros stay as given."""
    cdtype = _complex_parts("complex", real, imag)
    if isinstance(real, np.ndarray) and isinstance(imag, np.ndarray):
        out = np.empty(np.broadcast_shapes(real.shape, imag.shape), dtype=cdtype)
        out.real = real
        out.imag = imag
        return out
    return (real + imag * 1j).astype(cdtype)


def polar(abs: Array, angle: Array) -> Array:  # noqa: A002 - PyTorch's name
    """abs (cos angle + i sin angle)."""
    _complex_parts("polar", abs, angle)
    return make_complex(abs * np.cos(angle), abs * np.sin(angle))


# -- fft ---------------------------------------------------------------------------------------
# The three transforms of the fft rows (PyTorch's _fft_c2c, _fft_r2c, _fft_c2r), over the axes
# ``dim`` (negative, distinct; for r2c and c2r the last one is the halved axis). The rows'
# ``normalization`` scales the result by 1 ("none"), 1/sqrt(n) ("by_root_n") or 1/n ("by_n"),
# n the product of the signal sizes (c2r: of the output); numpy.fft's ``norm`` names the
# direction that carries the 1/n instead, so its value depends on the direction too.
_FFT_NORMS = {
    False: {"none": "backward", "by_root_n": "ortho", "by_n": "forward"},  # exp(-2 pi i jk/n)
    True: {"none": "forward", "by_root_n": "ortho", "by_n": "backward"},  # exp(+2 pi i jk/n)
}


def _fft_prepare(op: str, self: Array, dim: tuple[int, ...], normalization: str, inverse: bool):
    """(the input ready for numpy.fft along ``dim``, numpy's ``norm``): a Dask array is made
    one chunk along each transformed axis (``dask.array.fft`` transforms only those)."""
    norms = _FFT_NORMS[builtins.bool(inverse)]
    if normalization not in norms:
        raise ValueError(
            f"{op}: normalization must be one of {', '.join(map(repr, norms))}, "
            f"got {normalization!r}"
        )
    nd = np.ndim(self)
    if any(not -nd <= d < 0 for d in dim) or len(set(dim)) != len(dim):
        raise IndexError(f"{op}: dim {tuple(dim)} must be distinct negative axes of {nd}-d input")
    if _backend.backend_of(self) == "dask" and dim:
        self = self.rechunk({nd + d: -1 for d in dim})
    return self, norms[normalization]


def _as_complex(self: Array) -> Array:
    return self.astype(np.result_type(self.dtype, np.complex64))


def fft_c2c(
    self: Array, dim: tuple[int, ...], normalization: str = "none", inverse: bool = False
) -> Array:
    """y_k = c sum_j x_j exp(-+2 pi i j.k / n) over the axes ``dim`` (+ for ``inverse``), c
    the ``normalization``; a copy (as complex) over no axes."""
    x, norm = _fft_prepare("fft_c2c", self, dim, normalization, inverse)
    if not dim:
        return _as_complex(x)
    return (np.fft.ifftn if inverse else np.fft.fftn)(x, axes=dim, norm=norm)


def fft_r2c(
    self: Array, dim: tuple[int, ...], normalization: str = "none", onesided: bool = True
) -> Array:
    """The forward DFT of a real signal over ``dim``; ``onesided`` keeps the bins
    0 .. n//2 of the last axis of ``dim`` (the others are their mirror images' conjugates)."""
    if np.iscomplexobj(self):
        raise TypeError(f"fft_r2c: expects a real input, got {self.dtype}")
    x, norm = _fft_prepare("fft_r2c", self, dim, normalization, False)
    if not dim:
        if onesided:
            raise ValueError("fft_r2c: a one-sided transform needs at least one axis")
        return _as_complex(x)
    return (np.fft.rfftn if onesided else np.fft.fftn)(x, axes=dim, norm=norm)


def fft_c2r(
    self: Array, dim: tuple[int, ...], normalization: str = "none", last_dim_size: int = 1
) -> Array:
    """The inverse DFT (exp(+2 pi i j.k / n)) of the Hermitian-symmetric signal whose bins
    0 .. last_dim_size//2 along the last axis of ``dim`` are ``self``: a real signal of
    ``last_dim_size`` points along that axis. The imaginary parts of the bins that are their
    own mirror images (0, and n/2 for even n) are ignored, as every real inverse FFT does."""
    if not dim:
        raise ValueError("fft_c2r: the transform needs at least one axis")
    n = int(last_dim_size)
    x, norm = _fft_prepare("fft_c2r", self, dim, normalization, True)
    m = np.shape(self)[dim[-1]]
    if n < 1 or m != n // 2 + 1:
        raise ValueError(
            f"fft_c2r: a real signal of last_dim_size={n} points has {n // 2 + 1} bins along "
            f"axis {dim[-1]}, the input has {m}"
        )
    s = [np.shape(self)[d] for d in dim[:-1]] + [n]
    return np.fft.irfftn(x, s=s, axes=dim, norm=norm)


# -- nn primitives: addmm, threshold_backward, im2col / col2im -------------------------------
def addmm(
    self: Array,
    mat1: Array,
    mat2: Array,
    beta: Any = 1,
    alpha: Any = 1,
    mat2_colmajor: bool = False,
) -> Array:
    """``beta * self + alpha * (mat1 @ mat2)``, ``self`` broadcast to the product; beta = 0
    ignores ``self`` (its nan and inf too), as PyTorch. The sum is made in the product's own
    memory when the types allow (one array of the result's size, not two). ``mat2_colmajor``
    is read by the backward pass only."""
    out = np.matmul(mat1, mat2)
    if alpha != 1:
        out = np.multiply(out, alpha)
    if beta == 0:
        return out
    bias = self if beta == 1 else np.multiply(self, beta)
    shape = np.shape(bias)
    if (
        type(out) is np.ndarray
        and shape == out.shape[out.ndim - len(shape) :]  # (the usual (p,) or (n, p))
        and (getattr(bias, "dtype", None) == out.dtype or np.result_type(bias, out) == out.dtype)
    ):
        return np.add(bias, out, out=out)
    return np.add(bias, out)


def threshold_backward(grad_output: Array, self: Array, threshold: Any) -> Array:
    """``grad_output`` where ``self > threshold``, 0 elsewhere; a NaN in ``self`` passes the
    gradient (PyTorch's ``self <= threshold ? 0 : grad``). For NumPy floats of one shape the
    selection is a bit mask (and-ing the float's bits with all-ones or zero), which gives
    exactly ``where``'s values: ``np.where`` on a mask of random signs (ReLU's) runs about 10x
    slower, its branch mispredicted on every other element."""
    drop = np.less_equal(self, threshold)
    g = grad_output
    if (
        type(g) is np.ndarray
        and type(drop) is np.ndarray  # (a 0-d comparison gives a NumPy scalar)
        and g.dtype.kind == "f"
        and g.dtype.itemsize in (2, 4, 8)
        and g.shape == drop.shape
    ):
        bits = np.dtype(f"u{g.dtype.itemsize}")
        keep = drop.astype(bits)  # 1 where dropped
        np.subtract(keep, 1, out=keep)  # unsigned wrap-around: 0 where dropped, ~0 where kept
        np.bitwise_and(keep, g.view(bits), out=keep)
        return keep.view(g.dtype)
    return np.where(drop, np.zeros((), dtype=np.result_type(g)), g)


def _pairs(op: str, padding: Any, nd: int) -> tuple[tuple[int, int], ...]:
    """Padding per spatial axis as (before, after): an int (both sides) or a pair each."""
    if isinstance(padding, int | np.integer):
        padding = (int(padding),) * nd
    padding = tuple(padding)
    if len(padding) != nd:
        raise ValueError(f"{op}: expected {nd} padding values, got {list(padding)}")
    pairs = tuple(
        (int(p), int(p)) if isinstance(p, int | np.integer) else (int(p[0]), int(p[1]))
        for p in padding
    )
    if any(b < 0 or a < 0 for b, a in pairs):
        raise ValueError(f"{op}: padding must be non-negative, got {list(padding)}")
    return pairs


def _window_plan(
    op: str,
    spatial: tuple[int, ...],
    kernel_size: Any,
    dilation: Any,
    padding: Any,
    stride: Any,
) -> tuple[tuple[int, ...], list[tuple[tuple[slice, ...], tuple[slice, ...]] | None]]:
    """Where each kernel offset's windows read: the number of windows per axis, and per
    offset k (row-major over the kernel) the output range whose windows read a real element
    and the strided input slice they read (None: every window of that offset is in the
    padding). Window o of offset i reads the input at o * stride + i * dilation - before."""
    nd = len(spatial)
    ks, ds, ss = (tuple(int(v) for v in t) for t in (kernel_size, dilation, stride))
    if not len(ks) == len(ds) == len(ss) == nd:
        raise ValueError(
            f"{op}: kernel_size {list(ks)}, dilation {list(ds)} and stride {list(ss)} must "
            f"have one value per spatial axis ({nd})"
        )
    if any(v <= 0 for v in ks + ds + ss):
        raise ValueError(
            f"{op}: kernel_size, dilation and stride must be positive, got kernel_size="
            f"{list(ks)}, dilation={list(ds)}, stride={list(ss)}"
        )
    pads = _pairs(op, padding, nd)
    outs = tuple(
        (n + b + a - d * (k - 1) - 1) // s + 1
        for n, k, d, s, (b, a) in zip(spatial, ks, ds, ss, pads, strict=True)
    )
    if any(o < 1 for o in outs):
        raise ValueError(
            f"{op}: input of spatial size {list(spatial)} with kernel_size={list(ks)}, "
            f"dilation={list(ds)}, padding={list(pads)} gives {list(outs)} windows per axis; "
            "each must be at least one"
        )
    per_axis = []
    for n, k, d, s, (b, _), o in zip(spatial, ks, ds, ss, pads, outs, strict=True):
        spans = []
        for i in range(k):
            first = i * d - b  # the input index window 0 reads
            lo = 0 if first >= 0 else (-first + s - 1) // s
            hi = min(o, (n - 1 - first) // s + 1) if first <= n - 1 else 0
            spans.append((lo, hi, first + lo * s) if hi > lo else None)
        per_axis.append(spans)
    plan: list[tuple[tuple[slice, ...], tuple[slice, ...]] | None] = []
    for offsets in itertools.product(*(range(k) for k in ks)):
        spans = [per_axis[a][i] for a, i in enumerate(offsets)]
        if any(sp is None for sp in spans):
            plan.append(None)
            continue
        out_sl = tuple(slice(lo, hi) for lo, hi, _ in spans)  # type: ignore[misc]
        in_sl = tuple(
            slice(start, start + (hi - lo - 1) * s + 1, s)
            for (lo, hi, start), s in zip(spans, ss, strict=True)  # type: ignore[misc]
        )
        plan.append((out_sl, in_sl))
    return outs, plan


def im2col(self: Array, kernel_size: Any, dilation: Any, padding: Any, stride: Any) -> Array:
    """The sliding windows of the last ``len(kernel_size)`` axes (zero padding), as columns:
    (..., C, *spatial) -> (..., C * K, L), K = prod(kernel_size), L the number of windows;
    row c * K + k holds kernel offset k (row-major) of channel c, column l window l
    (row-major), as ``torch.nn.functional.unfold``. Made with one strided slice copy per
    kernel offset (the zero padding is never materialised: the windows that reach into it
    get zeros in those places)."""
    nd = len(tuple(kernel_size))
    shape = np.shape(self)
    if len(shape) < nd + 1:
        raise ValueError(
            f"im2col: expected at least {nd + 1} axes (channels and {nd} spatial), got input "
            f"of shape {list(shape)}"
        )
    lead, spatial = tuple(shape[: -nd - 1]), tuple(shape[-nd:])
    outs, plan = _window_plan("im2col", spatial, kernel_size, dilation, padding, stride)
    k_count = len(plan)
    if type(self) is not np.ndarray:  # Dask, CuPy: a functional form (pad, slice, stack)
        cols = _im2col_functional(self, kernel_size, dilation, padding, stride, outs)
        return np.reshape(cols, lead + (shape[-nd - 1] * k_count, math.prod(outs)))
    cols = np.empty(lead + (shape[-nd - 1], k_count) + outs, dtype=self.dtype)
    for k, entry in enumerate(plan):
        dst = cols[(Ellipsis, k) + (slice(None),) * nd]
        if entry is None:
            dst[...] = 0
            continue
        out_sl, in_sl = entry
        dst[(Ellipsis,) + out_sl] = self[(Ellipsis,) + in_sl]
        for a, sl in enumerate(out_sl):  # the windows of this offset that read padding
            for strip in (slice(0, sl.start), slice(sl.stop, outs[a])):
                if strip.stop > strip.start:
                    rest = (slice(None),) * (nd - a - 1)
                    dst[(Ellipsis,) + (slice(None),) * a + (strip,) + rest] = 0
    return cols.reshape(lead + (shape[-nd - 1] * k_count, math.prod(outs)))


def col2im(
    self: Array,
    output_size: Any,
    kernel_size: Any,
    dilation: Any,
    padding: Any,
    stride: Any,
) -> Array:
    """The adjoint of :func:`im2col`: (..., C * K, L) -> (..., C, *output_size), each column
    entry added where its window read it (overlaps sum; entries in the padding are
    dropped), as ``torch.nn.functional.fold``. One zero array and K strided in-place
    slice-adds."""
    spatial = tuple(int(v) for v in output_size)
    shape = np.shape(self)
    outs, plan = _window_plan("col2im", spatial, kernel_size, dilation, padding, stride)
    k_count, length = len(plan), math.prod(outs)
    if len(shape) < 2 or shape[-1] != length or shape[-2] % k_count:
        raise ValueError(
            f"col2im: expected an input of shape (..., C * {k_count}, {length}) for "
            f"output_size={list(spatial)}, kernel_size={list(kernel_size)}, got {list(shape)}"
        )
    lead, c = tuple(shape[:-2]), shape[-2] // k_count
    cols = np.reshape(self, lead + (c, k_count) + outs)
    if type(self) is not np.ndarray:  # Dask, CuPy: a sum of spread, padded window slices
        return _col2im_functional(cols, spatial, kernel_size, dilation, padding, stride, outs)
    out = np.zeros(lead + (c,) + spatial, dtype=self.dtype)
    for k, entry in enumerate(plan):
        if entry is None:
            continue
        out_sl, in_sl = entry
        dst = out[(Ellipsis,) + in_sl]
        np.add(dst, cols[(Ellipsis, k) + out_sl], out=dst)
    return out


def _offsets(kernel_size: Any, dilation: Any) -> Any:
    """The start of each kernel offset (row-major) in the padded input, per axis."""
    return itertools.product(
        *(range(0, int(k) * int(d), int(d)) for k, d in zip(kernel_size, dilation, strict=True))
    )


def _im2col_functional(
    x: Array, kernel_size: Any, dilation: Any, padding: Any, stride: Any, outs: tuple[int, ...]
) -> Array:
    """:func:`im2col` without writing into arrays (immutable Dask arrays): pad, one strided
    slice per kernel offset, stacked as (..., C, K, *outs)."""
    nd = len(outs)
    pads = _pairs("im2col", padding, nd)
    xp_ = np.pad(x, [(0, 0)] * (np.ndim(x) - nd) + [list(p) for p in pads])
    slices = [
        xp_[
            (Ellipsis,)
            + tuple(
                slice(i, i + (o - 1) * int(s) + 1, int(s))
                for i, o, s in zip(start, outs, stride, strict=True)
            )
        ]
        for start in _offsets(kernel_size, dilation)
    ]
    return np.stack(slices, axis=-nd - 1)


def _spread(x: Array, axis: int, step: int) -> Array:
    """Zero insertion along ``axis`` (non-negative): ``step - 1`` zeros between elements."""
    if step == 1:
        return x
    n = np.shape(x)[axis]
    zeros = np.zeros_like(x)
    y = np.stack([x] + [zeros] * (step - 1), axis=axis + 1)
    shape = list(np.shape(x))
    shape[axis] = n * step
    keep = (slice(None),) * axis + (slice(0, (n - 1) * step + 1),)
    return np.reshape(y, shape)[keep]


def _col2im_functional(
    cols: Array,
    spatial: tuple[int, ...],
    kernel_size: Any,
    dilation: Any,
    padding: Any,
    stride: Any,
    outs: tuple[int, ...],
) -> Array:
    """:func:`col2im` without writing into arrays: each kernel offset's (..., C, *outs)
    slice spread by the stride and padded into place in the padded input, summed, cropped."""
    nd = len(spatial)
    pads = _pairs("col2im", padding, nd)
    full = [n + b + a for n, (b, a) in zip(spatial, pads, strict=True)]
    total = None
    for k, start in enumerate(_offsets(kernel_size, dilation)):
        part = cols[(Ellipsis, k) + (slice(None),) * nd]
        first = np.ndim(part) - nd
        widths = [(0, 0)] * first
        for a, (i, o, s) in enumerate(zip(start, outs, stride, strict=True)):
            part = _spread(part, first + a, int(s))
            widths.append((i, full[a] - i - ((o - 1) * int(s) + 1)))
        term = np.pad(part, widths)
        total = term if total is None else total + term
    crop = tuple(slice(b, b + n) for (b, _), n in zip(pads, spatial, strict=True))
    return total[(Ellipsis,) + crop]


def log_softmax(self: Array, dim: int) -> Array:
    """x - logsumexp(x) along ``dim``, shifted by the (finite) maximum for stability."""
    if self.dtype.kind == "c":
        raise NotImplementedError("log_softmax is not supported for complex types here")
    shift = np.max(self, axis=dim, keepdims=True)
    shifted = self - np.where(np.isfinite(shift), shift, 0)
    return shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))
