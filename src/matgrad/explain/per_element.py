"""A tiny per-element (scalar) reverse-mode autodiff engine.

This module exists only as a point of comparison for matgrad's tensor-level engine: the
``explain`` report uses it to show what a per-element expansion of a computation would cost
(every multiply, add and elementwise function becomes its own graph node).

Each :class:`Scalar` stores, at creation time, the local partial derivatives with respect to
its parents, so :func:`backward` is a plain weighted sum over an iteratively computed
topological order (no recursion, so very deep graphs work).

Float semantics follow IEEE/NumPy rather than Python's ``math`` module: ``log(0)`` is
``-inf``, ``sqrt(-1)`` is ``nan``, ``1 / 0`` is ``inf``, overflow gives ``inf``; nothing
raises for a value-domain reason.

Conventions at non-differentiable points (matching common autodiff practice):
``abs``/``sign``/``relu`` have derivative 0 at 0, ``x ** 0`` has derivative 0, the
derivative of ``a ** b`` with respect to ``b`` is 0 where ``a == 0`` and ``b >= 0``, and
``maximum``/``minimum`` split the gradient 0.5/0.5 on ties.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NoReturn, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "NO_ELEMENTWISE_FORM",
    "Scalar",
    "UnsupportedScalarOp",
    "apply_elementwise",
    "backward",
    "count_nodes",
    "grads",
    "lift",
    "matmul",
    "maximum",
    "mean",
    "minimum",
    "sum",
    "unsupported",
    "values",
    "zero_grad",
]

Number: TypeAlias = int | float | np.integer | np.floating
Operand: TypeAlias = "Scalar | Number"
ObjectArray: TypeAlias = npt.NDArray[np.object_]
FloatArray: TypeAlias = npt.NDArray[np.float64]

_INF = math.inf
_NAN = math.nan

#: Operations that have no element-wise form (defined through factorizations / algorithms).
NO_ELEMENTWISE_FORM: frozenset[str] = frozenset(
    {
        "inv",
        "pinv",
        "det",
        "slogdet",
        "logdet",
        "svd",
        "svdvals",
        "eig",
        "eigh",
        "eigvals",
        "eigvalsh",
        "solve",
        "lstsq",
        "cholesky",
        "qr",
        "lu",
        "expm",
        "logm",
        "sqrtm",
    }
)


class UnsupportedScalarOp(NotImplementedError):
    """Raised for operations that cannot be expanded into per-element scalar operations."""

    def __init__(self, op_name: str) -> None:
        self.op_name = op_name
        super().__init__(
            f"'{op_name}' has no element-wise (scalar) form: ops like inv, det, svd, eigh and "
            "solve are defined through matrix factorizations or iterative algorithms (pivoting, "
            "Householder/Givens sweeps, convergence loops), so a per-element expansion would "
            "have to differentiate through every scalar step of that algorithm. The scalar "
            f"engine does not model this; use matgrad's tensor-level rule for '{op_name}'."
        )


def unsupported(op_name: str) -> NoReturn:
    """Raise :class:`UnsupportedScalarOp` for ``op_name``."""
    raise UnsupportedScalarOp(op_name)


# ---------------------------------------------------------------------------------------------
# IEEE-style float helpers (Python's math module raises where NumPy returns inf/nan).


def _is_odd_integer(p: float) -> bool:
    return p.is_integer() and int(p) % 2 == 1


def _div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0.0 or a != a:
            return _NAN
        return math.copysign(_INF, a) * math.copysign(1.0, b)


def _pow(a: float, p: float) -> float:
    try:
        return math.pow(a, p)
    except ValueError:  # 0 ** negative, or negative ** non-integer
        if a == 0.0:
            return math.copysign(_INF, a) if _is_odd_integer(p) else _INF
        return _NAN
    except OverflowError:
        return -_INF if a < 0.0 and _is_odd_integer(p) else _INF


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return _INF


def _expm1(x: float) -> float:
    try:
        return math.expm1(x)
    except OverflowError:
        return _INF


def _log(x: float) -> float:
    if x > 0.0:
        return math.log(x)
    return -_INF if x == 0.0 else _NAN


def _log1p(x: float) -> float:
    if x > -1.0:
        return math.log1p(x)
    return -_INF if x == -1.0 else _NAN


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0.0 else _NAN


def _trig(fn: Callable[[float], float], x: float) -> float:
    try:
        return fn(x)
    except ValueError:  # sin/cos/tan of +-inf
        return _NAN


def _sign(x: float) -> float:
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x if x != x else 0.0


def _pow_base_deriv(a: float, p: float) -> float:
    """d(a ** p)/da."""
    return 0.0 if p == 0.0 else p * _pow(a, p - 1.0)


def _pow_exp_deriv(a: float, value: float, p: float) -> float:
    """d(a ** p)/dp given value = a ** p."""
    if a == 0.0 and p >= 0.0:
        return 0.0
    return value * _log(a)


def _num(x: object) -> float | None:
    """Return ``x`` as a float if it is a real Python/NumPy number, else ``None``."""
    if isinstance(x, (int, float, np.integer, np.floating)):
        return float(x)
    return None


# ---------------------------------------------------------------------------------------------


class Scalar:
    """A scalar graph node: a value, an accumulated gradient and weighted parent links."""

    __slots__ = ("_parents", "grad", "op", "value")

    value: float
    grad: float
    _parents: tuple[tuple[Scalar, float], ...]
    op: str

    def __init__(
        self,
        value: float,
        parents: tuple[tuple[Scalar, float], ...] = (),
        op: str = "leaf",
    ) -> None:
        self.value = float(value)
        self.grad = 0.0
        self._parents = parents
        self.op = op

    def __repr__(self) -> str:
        return f"Scalar({self.value!r}, grad={self.grad!r}, op={self.op!r})"

    def __float__(self) -> float:
        return self.value

    # -- binary arithmetic ---------------------------------------------------------------------

    def __add__(self, other: Operand) -> Scalar:
        if isinstance(other, Scalar):
            return Scalar(self.value + other.value, ((self, 1.0), (other, 1.0)), "add")
        o = _num(other)
        if o is None:
            return NotImplemented
        return Scalar(self.value + o, ((self, 1.0),), "add")

    def __radd__(self, other: Number) -> Scalar:
        o = _num(other)
        if o is None:
            return NotImplemented
        return Scalar(o + self.value, ((self, 1.0),), "add")

    def __sub__(self, other: Operand) -> Scalar:
        if isinstance(other, Scalar):
            return Scalar(self.value - other.value, ((self, 1.0), (other, -1.0)), "sub")
        o = _num(other)
        if o is None:
            return NotImplemented
        return Scalar(self.value - o, ((self, 1.0),), "sub")

    def __rsub__(self, other: Number) -> Scalar:
        o = _num(other)
        if o is None:
            return NotImplemented
        return Scalar(o - self.value, ((self, -1.0),), "sub")

    def __mul__(self, other: Operand) -> Scalar:
        if isinstance(other, Scalar):
            a, b = self.value, other.value
            return Scalar(a * b, ((self, b), (other, a)), "mul")
        o = _num(other)
        if o is None:
            return NotImplemented
        return Scalar(self.value * o, ((self, o),), "mul")

    def __rmul__(self, other: Number) -> Scalar:
        o = _num(other)
        if o is None:
            return NotImplemented
        return Scalar(o * self.value, ((self, o),), "mul")

    def __truediv__(self, other: Operand) -> Scalar:
        if isinstance(other, Scalar):
            a, b = self.value, other.value
            inv_b = _div(1.0, b)
            return Scalar(_div(a, b), ((self, inv_b), (other, -_div(a, b * b))), "div")
        o = _num(other)
        if o is None:
            return NotImplemented
        return Scalar(_div(self.value, o), ((self, _div(1.0, o)),), "div")

    def __rtruediv__(self, other: Number) -> Scalar:
        o = _num(other)
        if o is None:
            return NotImplemented
        b = self.value
        return Scalar(_div(o, b), ((self, -_div(o, b * b)),), "div")

    def __pow__(self, other: Operand) -> Scalar:
        a = self.value
        if isinstance(other, Scalar):
            p = other.value
            v = _pow(a, p)
            parents = ((self, _pow_base_deriv(a, p)), (other, _pow_exp_deriv(a, v, p)))
            return Scalar(v, parents, "pow")
        o = _num(other)
        if o is None:
            return NotImplemented
        return Scalar(_pow(a, o), ((self, _pow_base_deriv(a, o)),), "pow")

    def __rpow__(self, other: Number) -> Scalar:
        o = _num(other)
        if o is None:
            return NotImplemented
        p = self.value
        v = _pow(o, p)
        return Scalar(v, ((self, _pow_exp_deriv(o, v, p)),), "pow")

    # -- unary -----------------------------------------------------------------------------------

    def __neg__(self) -> Scalar:
        return Scalar(-self.value, ((self, -1.0),), "neg")

    def __pos__(self) -> Scalar:
        return self

    def __abs__(self) -> Scalar:
        return self.abs()

    def _unary(self, value: float, deriv: float, op: str) -> Scalar:
        return Scalar(value, ((self, deriv),), op)

    def exp(self) -> Scalar:
        """Elementwise e**x."""
        v = _exp(self.value)
        return self._unary(v, v, "exp")

    def log(self) -> Scalar:
        """Natural logarithm."""
        x = self.value
        return self._unary(_log(x), _div(1.0, x), "log")

    def log1p(self) -> Scalar:
        """log(1 + x), accurate for small x."""
        x = self.value
        return self._unary(_log1p(x), _div(1.0, 1.0 + x), "log1p")

    def expm1(self) -> Scalar:
        """exp(x) - 1, accurate for small x."""
        x = self.value
        return self._unary(_expm1(x), _exp(x), "expm1")

    def sqrt(self) -> Scalar:
        """Square root."""
        s = _sqrt(self.value)
        return self._unary(s, _div(0.5, s), "sqrt")

    def abs(self) -> Scalar:
        """Absolute value (derivative 0 at 0)."""
        x = self.value
        return self._unary(abs(x), _sign(x), "abs")

    def sign(self) -> Scalar:
        """Sign of x (-1, 0, 1); derivative 0 everywhere."""
        return self._unary(_sign(self.value), 0.0, "sign")

    def sin(self) -> Scalar:
        """Sine."""
        x = self.value
        return self._unary(_trig(math.sin, x), _trig(math.cos, x), "sin")

    def cos(self) -> Scalar:
        """Cosine."""
        x = self.value
        return self._unary(_trig(math.cos, x), -_trig(math.sin, x), "cos")

    def tan(self) -> Scalar:
        """Tangent."""
        t = _trig(math.tan, self.value)
        return self._unary(t, 1.0 + t * t, "tan")

    def tanh(self) -> Scalar:
        """Hyperbolic tangent."""
        t = math.tanh(self.value)
        return self._unary(t, 1.0 - t * t, "tanh")

    def sigmoid(self) -> Scalar:
        """Logistic function 1 / (1 + exp(-x)), computed stably."""
        x = self.value
        if x >= 0.0:
            s = 1.0 / (1.0 + _exp(-x))
        else:
            e = _exp(x)
            s = e / (1.0 + e)
        return self._unary(s, s * (1.0 - s), "sigmoid")

    def relu(self) -> Scalar:
        """max(x, 0) (derivative 0 at 0)."""
        x = self.value
        if x > 0.0:
            return self._unary(x, 1.0, "relu")
        if x != x:
            return self._unary(x, _NAN, "relu")
        return self._unary(0.0, 0.0, "relu")


def _as_scalar(x: Operand) -> Scalar:
    """Return ``x`` if it is a Scalar, else lift a real number to a new leaf."""
    if isinstance(x, Scalar):
        return x
    o = _num(x)
    if o is None:
        raise TypeError(f"expected a Scalar or a real number, got {type(x).__name__}")
    return Scalar(o)


def _extremum(a: Operand, b: Operand, take_max: bool, op: str) -> Scalar:
    va = a.value if isinstance(a, Scalar) else _num(a)
    vb = b.value if isinstance(b, Scalar) else _num(b)
    if va is None or vb is None:
        raise TypeError(f"{op} expects Scalars or real numbers")
    if va != va:  # nan propagates, gradient flows to the nan operand
        da, db, v = 1.0, 0.0, va
    elif vb != vb:
        da, db, v = 0.0, 1.0, vb
    elif va == vb:
        da, db, v = 0.5, 0.5, va
    elif (va > vb) == take_max:
        da, db, v = 1.0, 0.0, va
    else:
        da, db, v = 0.0, 1.0, vb
    parents = tuple((s, d) for s, d in ((a, da), (b, db)) if isinstance(s, Scalar))
    return Scalar(v, parents, op)


def maximum(a: Operand, b: Operand) -> Scalar:
    """Max of two scalars (numbers act as constants); ties split the gradient 0.5/0.5."""
    return _extremum(a, b, True, "maximum")


def minimum(a: Operand, b: Operand) -> Scalar:
    """Min of two scalars (numbers act as constants); ties split the gradient 0.5/0.5."""
    return _extremum(a, b, False, "minimum")


# ---------------------------------------------------------------------------------------------
# Graph traversal


def _iter_roots(roots: Scalar | Iterable[object] | ObjectArray) -> list[Scalar]:
    if isinstance(roots, Scalar):
        return [roots]
    if isinstance(roots, np.ndarray):
        items: Iterable[object] = roots.ravel().tolist() if roots.dtype == object else ()
    else:
        items = roots
    return [r for r in items if isinstance(r, Scalar)]


def _topological_order(root: Scalar) -> list[Scalar]:
    """Parents-before-children order of every node reachable from ``root`` (iterative DFS)."""
    order: list[Scalar] = []
    visited: set[int] = set()
    stack: list[tuple[Scalar, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        key = id(node)
        if key in visited:
            continue
        visited.add(key)
        stack.append((node, True))
        for parent, _ in node._parents:
            if id(parent) not in visited:
                stack.append((parent, False))
    return order


def backward(root: Scalar) -> None:
    """Reverse-mode sweep from ``root``: add d(root)/d(node) to ``node.grad`` for every node.

    The root is seeded with 1.0. Gradients of one call are computed in a private buffer and
    then *added* to each node's ``grad``, so repeated calls accumulate correctly (a second
    call adds exactly the same amounts again). Use :func:`zero_grad` to reset.
    """
    if not isinstance(root, Scalar):
        raise TypeError(f"backward() expects a Scalar root, got {type(root).__name__}")
    order = _topological_order(root)
    index = {id(node): i for i, node in enumerate(order)}
    buf = [0.0] * len(order)
    buf[-1] = 1.0  # the root is last in parents-before-children order
    for i in range(len(order) - 1, -1, -1):
        g = buf[i]
        for parent, local in order[i]._parents:
            buf[index[id(parent)]] += g * local
    for node, g in zip(order, buf, strict=True):
        node.grad += g


def count_nodes(roots: Scalar | Iterable[object] | ObjectArray) -> int:
    """Number of distinct nodes reachable from ``roots`` (non-Scalar entries are ignored)."""
    visited: set[int] = set()
    stack = _iter_roots(roots)
    while stack:
        node = stack.pop()
        key = id(node)
        if key in visited:
            continue
        visited.add(key)
        stack.extend(p for p, _ in node._parents if id(p) not in visited)
    return len(visited)


def zero_grad(roots: Scalar | Iterable[object] | ObjectArray) -> None:
    """Set ``grad = 0.0`` on every node reachable from ``roots``."""
    visited: set[int] = set()
    stack = _iter_roots(roots)
    while stack:
        node = stack.pop()
        key = id(node)
        if key in visited:
            continue
        visited.add(key)
        node.grad = 0.0
        stack.extend(p for p, _ in node._parents if id(p) not in visited)


# ---------------------------------------------------------------------------------------------
# NumPy object-array helpers


def lift(arr: npt.ArrayLike) -> ObjectArray:
    """Turn a numeric array into an object array (same shape) of fresh Scalar leaves."""
    a = np.asarray(arr, dtype=np.float64)
    out = np.empty(a.shape, dtype=object)
    flat = out.reshape(-1)  # a view: out is freshly allocated and contiguous
    for i, v in enumerate(a.ravel().tolist()):
        flat[i] = Scalar(v)
    return out


def _collect(arr: ObjectArray | Scalar, attr: str) -> FloatArray:
    a = np.asarray(arr, dtype=object)
    out = np.empty(a.shape, dtype=np.float64)
    flat = out.reshape(-1)
    for i, x in enumerate(a.ravel().tolist()):
        if isinstance(x, Scalar):
            flat[i] = getattr(x, attr)
        else:  # plain numbers are constants: their value, zero gradient
            flat[i] = float(x) if attr == "value" else 0.0
    return out


def values(arr: ObjectArray | Scalar) -> FloatArray:
    """float64 array of the values of an object array of Scalars."""
    return _collect(arr, "value")


def grads(arr: ObjectArray | Scalar) -> FloatArray:
    """float64 array of the accumulated gradients of an object array of Scalars."""
    return _collect(arr, "grad")


def matmul(a: ObjectArray, b: ObjectArray) -> ObjectArray:
    """2-D matrix product as an explicit sum of products.

    ``C[i, j] = (((A[i,0]*B[0,j] + A[i,1]*B[1,j]) + ...)``: every product and every partial
    sum is its own node, i.e. ``m*n*(2k - 1)`` new nodes for an (m, k) @ (k, n) product.
    """
    a = np.asarray(a, dtype=object)
    b = np.asarray(b, dtype=object)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul expects 2-D arrays, got {a.ndim}-D and {b.ndim}-D")
    m, k = a.shape
    k2, n = b.shape
    if k != k2:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}")
    if k == 0:
        raise ValueError("matmul with an empty inner dimension is not supported")
    rows = a.tolist()
    cols = b.T.tolist()
    out = np.empty((m, n), dtype=object)
    for i in range(m):
        row = rows[i]
        for j in range(n):
            col = cols[j]
            acc = row[0] * col[0]
            for p in range(1, k):
                acc = acc + row[p] * col[p]
            out[i, j] = acc
    return out


def sum(arr: ObjectArray | Iterable[Operand]) -> Scalar:  # noqa: A001 - mirrors np.sum
    """Sum of all elements as a left-to-right chain of adds (``n - 1`` add nodes).

    An empty input gives a new leaf with value 0.0.
    """
    items = np.asarray(arr, dtype=object).ravel().tolist()
    if not items:
        return Scalar(0.0)
    acc = _as_scalar(items[0])
    for x in items[1:]:
        acc = acc + x
    return acc


def mean(arr: ObjectArray | Iterable[Operand]) -> Scalar:
    """Mean of all elements: :func:`sum` followed by one division node."""
    a = np.asarray(arr, dtype=object)
    if a.size == 0:
        raise ValueError("mean of an empty array")
    return sum(a) / a.size


_UNARY: dict[str, Callable[[Scalar], Scalar]] = {
    "negative": Scalar.__neg__,
    "positive": Scalar.__pos__,
    "exp": Scalar.exp,
    "log": Scalar.log,
    "log1p": Scalar.log1p,
    "expm1": Scalar.expm1,
    "sqrt": Scalar.sqrt,
    "square": lambda x: x * x,
    "abs": Scalar.abs,
    "absolute": Scalar.abs,
    "sign": Scalar.sign,
    "sin": Scalar.sin,
    "cos": Scalar.cos,
    "tan": Scalar.tan,
    "tanh": Scalar.tanh,
    "sigmoid": Scalar.sigmoid,
    "relu": Scalar.relu,
}

_BINARY: dict[str, Callable[[Operand, Operand], Operand]] = {
    "add": lambda x, y: x + y,
    "subtract": lambda x, y: x - y,
    "multiply": lambda x, y: x * y,
    "divide": lambda x, y: x / y,
    "true_divide": lambda x, y: x / y,
    "power": lambda x, y: x**y,
    "maximum": maximum,
    "minimum": minimum,
}


def apply_elementwise(
    name: str | np.ufunc, arr: ObjectArray | npt.ArrayLike, *others: ObjectArray | npt.ArrayLike
) -> ObjectArray:
    """Apply an elementwise op by NumPy-style name (or ufunc, e.g. ``np.exp``) to object arrays.

    Unary names: negative, positive, exp, log, log1p, expm1, sqrt, square, abs/absolute, sign,
    sin, cos, tan, tanh, sigmoid, relu. Binary names (one extra array, broadcast NumPy-style):
    add, subtract, multiply, divide/true_divide, power, maximum, minimum. Plain numbers in
    unary inputs are lifted to new leaves. Names in :data:`NO_ELEMENTWISE_FORM` (inv, det,
    svd, ...) raise :class:`UnsupportedScalarOp`.
    """
    key = name.__name__ if isinstance(name, np.ufunc) else name
    key = key.removeprefix("numpy.").removeprefix("np.").removeprefix("linalg.")
    if key in _UNARY and not others:
        unary = _UNARY[key]
        fn: Callable[..., object] = lambda x: unary(_as_scalar(x))  # noqa: E731
        nin = 1
    elif key in _BINARY and len(others) == 1:
        fn, nin = _BINARY[key], 2
    elif key in NO_ELEMENTWISE_FORM:
        unsupported(key)
    elif key in _UNARY or key in _BINARY:
        arity = 1 if key in _UNARY else 2
        raise TypeError(f"{key!r} takes {arity} array(s), got {1 + len(others)}")
    else:
        known = ", ".join(sorted([*_UNARY, *_BINARY]))
        raise ValueError(f"unknown elementwise op {key!r}; supported: {known}")
    result = np.frompyfunc(fn, nin, 1)(arr, *others)
    return np.asarray(result, dtype=object)
