"""A structured batch of cotangents or tangents: the identity that seeds a vectorized Jacobian.

Computing a whole Jacobian in one pass sends the identity through the graph as a batch (row k:
the k-th unit vector). Stored densely, the first rule it meets multiplies an n x n identity by
something: for ``f(x) = tanh(W @ x)`` the product ``I @ W``, an n^3 matrix product where the
Jacobian itself costs n^2. :class:`OneHotBatch` keeps the batch in the form it has at the start,
``diag(vec(d))`` reshaped to ``(n, *core)`` (element k is ``d`` at its k-th position, 0
elsewhere), as long as the rules only scale it (``grad * other``, ``grad / other``, ``-grad``)
and spends what it saved where a matrix product consumes it: ``batch @ M`` is ``d[:, None] * M``.
Any other operation gets the dense array, computed once (NumPy's ``__array_ufunc__`` and
``__array_function__`` protocols route every call here), so results never change: only cost.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np


class Structured:
    """An array kept in a cheaper form than its dense values; behaves as the dense array
    (``dense()``, computed at most once) wherever its structure does not help."""

    __slots__ = ("_dense",)
    __array_priority__ = 2000
    __matgrad_numpy_like__ = True  # lives on the NumPy backend

    shape: tuple[int, ...]
    dtype: np.dtype

    def _make_dense(self) -> np.ndarray:
        raise NotImplementedError

    def dense(self) -> np.ndarray:
        if self._dense is None:
            self._dense = self._make_dense()
        return self._dense

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        dense = self.dense()
        return dense if dtype is None else dense.astype(dtype)

    def __getattr__(self, name: str) -> Any:  # methods and attributes of the dense array
        return getattr(self.dense(), name)

    def __getitem__(self, index: Any) -> Any:
        return self.dense()[index]

    def __len__(self) -> int:
        return self.shape[0]

    # -- NumPy's protocols ---------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "__call__" and not kwargs:
            result = _structured(ufunc, inputs)
            if result is not NotImplemented:
                return result
        inputs = tuple(_dense(x) for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_dense(x) for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return func(*_dense_all(args), **_dense_all(kwargs))

    # -- Python's operators, through the ufuncs ------------------------------------------------
    def __mul__(self, other: Any) -> Any:
        return np.multiply(self, other)

    def __rmul__(self, other: Any) -> Any:
        return np.multiply(other, self)

    def __truediv__(self, other: Any) -> Any:
        return np.true_divide(self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return np.true_divide(other, self)

    def __add__(self, other: Any) -> Any:
        return np.add(self, other)

    def __radd__(self, other: Any) -> Any:
        return np.add(other, self)

    def __sub__(self, other: Any) -> Any:
        return np.subtract(self, other)

    def __rsub__(self, other: Any) -> Any:
        return np.subtract(other, self)

    def __matmul__(self, other: Any) -> Any:
        return np.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return np.matmul(other, self)

    def __neg__(self) -> Any:
        return np.negative(self)

    def __pos__(self) -> Structured:
        return self

    def __pow__(self, other: Any) -> Any:
        return np.power(self, other)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return np.equal(self, other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return np.not_equal(self, other)

    def __gt__(self, other: Any) -> Any:
        return np.greater(self, other)

    def __lt__(self, other: Any) -> Any:
        return np.less(self, other)

    def __ge__(self, other: Any) -> Any:
        return np.greater_equal(self, other)

    def __le__(self, other: Any) -> Any:
        return np.less_equal(self, other)

    __hash__ = None  # type: ignore[assignment]


class OneHotBatch(Structured):
    """``n = prod(core)`` arrays of shape ``core``; the k-th is ``d`` at its k-th position
    (row-major) and zero elsewhere: ``diag(vec(d))`` reshaped to ``(n, *core)``."""

    __slots__ = ("d",)

    def __init__(self, d: np.ndarray) -> None:
        self.d = d
        self._dense = None

    @classmethod
    def identity(cls, core: tuple[int, ...], dtype: Any) -> OneHotBatch:
        return cls(np.ones(core, dtype=dtype))

    @property
    def shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return (self.d.size, *self.d.shape)

    @property
    def dtype(self) -> np.dtype:  # type: ignore[override]
        return self.d.dtype

    def _make_dense(self) -> np.ndarray:
        n = self.d.size
        out = np.zeros((n, n), dtype=self.d.dtype)
        out.flat[:: n + 1] = self.d.ravel()
        return out.reshape(self.shape)

    def __repr__(self) -> str:
        return f"OneHotBatch(shape={self.shape}, d={self.d!r})"


class ScaledArray(Structured):
    """``base * f_1 * f_2 * ...``: an array times factors that broadcast to its shape, kept
    apart so that scaling it again costs the size of the factor, not of the array, and the
    values are made in one allocation when needed (``I @ W`` in a batch is ``W`` with scaled
    rows; an elementwise rule then scales its columns)."""

    __slots__ = ("base", "factors")

    def __init__(self, base: np.ndarray, factors: tuple[np.ndarray, ...]) -> None:
        self.base, self.factors = base, factors
        self._dense = None

    @property
    def shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.base.shape

    @property
    def dtype(self) -> np.dtype:  # type: ignore[override]
        return np.result_type(self.base, *self.factors)

    def _make_dense(self) -> np.ndarray:
        if not self.factors:
            return np.array(self.base)  # never hand out the (user's) base array itself
        out = np.multiply(self.base, self.factors[0])
        for f in self.factors[1:]:
            np.multiply(out, f, out=out)
        return out

    def __repr__(self) -> str:
        return f"ScaledArray(shape={self.shape}, factors={len(self.factors)})"


def _dense(x: Any) -> Any:
    return x.dense() if isinstance(x, Structured) else x


def _dense_all(obj: Any) -> Any:
    if isinstance(obj, Structured):
        return obj.dense()
    if isinstance(obj, list | tuple):
        return type(obj)(_dense_all(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _dense_all(v) for k, v in obj.items()}
    return obj


def _scales(batch: OneHotBatch, other: Any) -> bool:
    """True when ``other`` broadcasts into ``batch``'s core shape without changing it (then
    multiplying by it scales each element of the batch in place)."""
    if isinstance(other, Structured):
        return False
    shape = np.shape(other)
    if len(shape) > batch.d.ndim:
        return False
    try:
        return np.broadcast_shapes(batch.d.shape, shape) == batch.d.shape
    except ValueError:
        return False


def _structured(ufunc: np.ufunc, inputs: tuple) -> Any:
    """The result of ``ufunc(*inputs)`` kept structured, or made cheaply from the structure;
    NotImplemented where the dense arrays must be used."""
    if any(isinstance(x, ScaledArray) for x in inputs):
        return _scaled(ufunc, inputs)
    if ufunc is np.negative:
        return OneHotBatch(-inputs[0].d)
    if len(inputs) != 2:
        return NotImplemented
    a, b = inputs
    if ufunc is np.multiply:
        if isinstance(a, OneHotBatch) and _scales(a, b):
            return OneHotBatch(a.d * b)
        if isinstance(b, OneHotBatch) and _scales(b, a):
            return OneHotBatch(a * b.d)
    elif ufunc is np.true_divide:
        if isinstance(a, OneHotBatch) and _scales(a, b):
            return OneHotBatch(a.d / b)
    elif ufunc in (np.add, np.subtract):
        if isinstance(a, OneHotBatch) and isinstance(b, OneHotBatch) and a.d.shape == b.d.shape:
            op = operator.add if ufunc is np.add else operator.sub
            return OneHotBatch(op(a.d, b.d))
    elif ufunc is np.matmul:
        return _matmul(a, b)
    return NotImplemented


def _small_factor(array: ScaledArray, other: Any) -> bool:
    """``other`` scales ``array`` without changing its shape and is smaller than it."""
    if isinstance(other, Structured):
        return False
    shape = np.shape(other)
    if len(shape) > array.ndim or math.prod(shape) >= array.size:
        return False
    try:
        return np.broadcast_shapes(array.shape, shape) == array.shape
    except ValueError:
        return False


def _scaled(ufunc: np.ufunc, inputs: tuple) -> Any:
    if ufunc is np.negative:
        (a,) = inputs
        return ScaledArray(a.base, (*a.factors, -1.0))
    if len(inputs) != 2:
        return NotImplemented
    a, b = inputs
    if ufunc is np.multiply:
        if isinstance(a, ScaledArray) and _small_factor(a, b):
            return ScaledArray(a.base, (*a.factors, b))
        if isinstance(b, ScaledArray) and _small_factor(b, a):
            return ScaledArray(b.base, (*b.factors, a))
    elif ufunc is np.true_divide and isinstance(a, ScaledArray) and _small_factor(a, b):
        return ScaledArray(a.base, (*a.factors, np.reciprocal(np.asarray(b, dtype=a.dtype))))
    return NotImplemented


def _matmul(a: Any, b: Any) -> Any:
    if isinstance(a, OneHotBatch) and isinstance(b, np.ndarray) and b.ndim == 2:
        d = a.d
        if d.ndim == 1 and b.shape[0] == d.shape[0]:  # (n, n) @ (n, p): row k is d_k M_k
            return ScaledArray(b, (d[:, None],))
        if d.ndim == 2 and b.shape[0] == d.shape[1]:  # (n, r, c) @ (c, p)
            r, c = d.shape
            out = np.zeros((r, c, r, b.shape[1]), dtype=np.result_type(d, b))
            rows = np.arange(r)
            out[rows, :, rows, :] = d[:, :, None] * b[None, :, :]
            return out.reshape(r * c, r, b.shape[1])
    if isinstance(b, OneHotBatch) and isinstance(a, np.ndarray) and a.ndim == 2:
        d = b.d
        if d.ndim == 1 and a.shape[1] == d.shape[0]:  # M @ diag(d): NumPy's 2-D product
            return a * d[None, :]
        if d.ndim == 2 and a.shape[1] == d.shape[0]:  # (p, r) @ (n, r, c)
            r, c = d.shape
            out = np.zeros((r, c, a.shape[0], c), dtype=np.result_type(a, d))
            cols = np.arange(c)
            # element (i, j): column j of the result is d_ij a[:, i]
            out[:, cols, :, cols] = (a.T[:, None, :] * d[:, :, None]).transpose(1, 0, 2)
            return out.reshape(r * c, a.shape[0], c)
    return NotImplemented


def is_structured(x: Any) -> bool:
    return isinstance(x, Structured)
