"""A tiny per-element (scalar) reverse-mode autodiff engine, driven by the rule table.

This module exists as a point of comparison for matgrad's tensor-level engine: the ``explain``
report uses it to show what a per-element expansion of a computation would cost (every
multiply, add and elementwise function becomes its own graph node).

Each :class:`Scalar` stores, at creation time, the local partial derivatives with respect to
its parents, so :func:`backward` is a plain weighted sum over an iteratively computed
topological order (no recursion, so very deep graphs work).

There is no second copy of any derivative here. A scalar node of an elementwise op of
``derivatives.yaml`` (``kind: elementwise``) computes its value with the row's forward
(``FORWARDS[name]``) and its local partials with the row's compiled vector-Jacobian product
(``RULES[name].vjp``), both evaluated on NumPy float64 scalars with the raw-array formula
namespace and ``grad = 1``. ``Scalar.tanh()``, ``Scalar.exp()``, ... are made from the rows
(one method per row, under the row's name, its function and method names and its NumPy ufunc's
name, so ``np.tanh`` of an object array of Scalars works), and the operators ``+ - * / **``,
unary ``-`` and ``abs`` are the rows that compute NumPy's ``add``, ``subtract``, ``multiply``,
``true_divide``, ``power``, ``negative`` and ``absolute``. Matrix products, sums and means are
compositions of those (sums of products), not rules.

Float semantics follow IEEE/NumPy: ``log(0)`` is ``-inf``, ``sqrt(-1)`` is ``nan``, ``1 / 0``
is ``inf``, overflow gives ``inf``; nothing raises or warns for a value-domain reason.
Conventions at non-differentiable points are the table's: ``abs``/``sign``/``relu`` have
derivative 0 at 0, ``x ** 0`` has derivative 0, the derivative of ``a ** b`` with respect to
``b`` is 0 where ``a == 0``, and ``maximum``/``minimum`` split the gradient 0.5/0.5 on ties.

The second half of the module is the per-element backend of the ``explain`` evaluator: it runs
an expression on NumPy object arrays of Scalars.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, TypeAlias

import numpy as np
import numpy.typing as npt

from ..core.apply import ATTR, DTYPE, INPUT, NDIM, OUTPUT, RNDIM, RSHAPE, SHAPE, plan_of
from ..core.table import Rule
from ..ops.registry import FORWARDS, RAW, RULES
from .evaluate import Backend, Stop, numel, row_of, split_call
from .language import SCALAR_NODE_LIMIT

__all__ = [
    "ELEMENTWISE",
    "NO_ELEMENTWISE_FORM",
    "NotModelled",
    "Scalar",
    "ScalarBackend",
    "TooBig",
    "UnsupportedScalarOp",
    "apply_elementwise",
    "apply_op",
    "backward",
    "count_nodes",
    "grads",
    "lift",
    "matmul",
    "maximum",
    "mean",
    "minimum",
    "quiet",
    "sum",
    "unsupported",
    "values",
    "zero_grad",
]

Number: TypeAlias = int | float | np.integer | np.floating
Operand: TypeAlias = "Scalar | Number"
ObjectArray: TypeAlias = npt.NDArray[np.object_]
FloatArray: TypeAlias = npt.NDArray[np.float64]

#: The table's elementwise rows (``kind: elementwise``): the ops a scalar node can be.
ELEMENTWISE: dict[str, Rule] = {n: r for n, r in RULES.items() if r.kind == "elementwise"}

#: Names of ops with no element-wise form: the table's ``kind: linalg`` rows (defined through
#: factorizations and iterative algorithms), under their row names and public names.
NO_ELEMENTWISE_FORM: frozenset[str] = frozenset(
    name
    for rule in RULES.values()
    if rule.kind == "linalg"
    for name in (rule.name, *(n for names in rule.variants.values() for n in names))
)


class UnsupportedScalarOp(NotImplementedError, Stop):
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
# IEEE semantics without warnings: one errstate per batch of scalar operations

_QUIET = [0]  # > 0 inside quiet(): the per-operation errstate is already in force


@contextmanager
def quiet() -> Iterator[None]:
    """Run scalar operations with NumPy's floating-point warnings off (IEEE results, no
    messages), once for the whole block instead of once per operation."""
    with np.errstate(all="ignore"):
        _QUIET[0] += 1
        try:
            yield
        finally:
            _QUIET[0] -= 1


def _num(x: object) -> float | None:
    """``x`` as a float if it is a real Python/NumPy number (or bool), else ``None``."""
    if isinstance(x, int | float | np.integer | np.floating | np.bool_):
        return float(x)
    return None


# ---------------------------------------------------------------------------------------------
# a row of the table on scalars

_NEEDED = (True,)  # the edge of an input that wants its partial (see core.nodes: needs[i][0])
_NOT_NEEDED = (None,)
_ONE = np.float64(1.0)
_F64 = np.float64
_F64_DTYPE = np.dtype(np.float64)


class _RowOnScalars:
    """One elementwise row, compiled for scalars: its forward, its VJP and the order of the
    values the VJP reads (the row's ``vjp_args``, as ``core.apply.Op._gather`` assembles them
    for tensors: inputs, outputs, attributes and metadata, which for scalars is shape ``()``,
    ndim 0 and the operand's dtype)."""

    __slots__ = ("name", "rule", "forward", "vjp", "plan", "n_inputs")

    def __init__(self, rule: Rule) -> None:
        if any(rule.input_is_list) or rule.n_outputs != 1:
            raise ValueError(f"the row {rule.name!r} is not an op of scalars")
        self.name = rule.name
        self.rule = rule
        self.forward = FORWARDS[rule.name]
        self.vjp = rule.vjp
        self.plan = plan_of(rule)
        self.n_inputs = len(rule.inputs)

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[list, dict]:
        """``(operands, attrs)`` of a call with the row's signature (inputs, then attributes,
        by position or by name; attributes may take their defaults)."""
        rule = self.rule
        params = (*rule.inputs, *rule.attrs)
        if len(args) > len(params):
            raise TypeError(f"{self.name}() takes at most {len(params)} arguments")
        given = dict(zip(params, args, strict=False))
        for key, value in kwargs.items():
            if key not in params or key in given:
                raise TypeError(f"{self.name}() got an unexpected or repeated argument {key!r}")
            given[key] = value
        missing = [n for n in rule.inputs if n not in given]
        missing += [n for n in rule.attrs if n not in given and n not in rule.attr_defaults]
        if missing:
            raise TypeError(f"{self.name}() is missing {', '.join(missing)}")
        attrs = {n: given.get(n, rule.attr_defaults.get(n)) for n in rule.attrs}
        return [given[n] for n in rule.inputs], attrs

    def node(self, operands: tuple[Any, ...] | list[Any], attrs: Mapping[str, Any]) -> Any:
        """The scalar node of this op on ``operands`` (Scalars, or numbers as constants); a
        plain float when no operand is a Scalar."""
        vals: list[Any] = []
        needs: list[tuple[Any]] = []
        tracked = False
        for x in operands:
            if isinstance(x, Scalar):
                vals.append(_F64(x.value))
                needs.append(_NEEDED)
                tracked = True
            elif type(x) is float or type(x) is int:  # the common constants, fast
                vals.append(_F64(x))
                needs.append(_NOT_NEEDED)
            else:
                vals.append(self._constant(x))
                needs.append(_NOT_NEEDED)
        value = self.forward(*vals, **attrs) if attrs else self.forward(*vals)
        if not tracked:
            return float(value)
        meta = self._meta
        args = [
            vals[key] if kind == INPUT else value if kind == OUTPUT else meta(kind, key, attrs)
            for kind, key in self.plan
        ]
        partials = self.vjp(RAW, needs, _ONE, *args)
        parents = []
        for x, p in zip(operands, partials, strict=True):
            if isinstance(x, Scalar):  # no formula (copysign's sign input): no gradient
                parents.append((x, 0.0 if p is None else float(p)))
        return Scalar(float(value), tuple(parents), self.name)

    def _constant(self, x: Any) -> Any:
        if isinstance(x, bool | np.bool_):  # a condition (where): kept as it is
            return x
        v = _num(x)
        if v is None:
            raise TypeError(f"{self.name} expects Scalars or real numbers, got {type(x).__name__}")
        return _F64(v)

    def _meta(self, kind: int, key: Any, attrs: Mapping[str, Any]) -> Any:
        # what a formula reads besides inputs and outputs, for scalars
        if kind == ATTR:
            return attrs[key]
        if kind in (SHAPE, RSHAPE):
            return ()
        if kind in (NDIM, RNDIM):
            return 0
        if kind == DTYPE:
            return _F64_DTYPE
        raise ValueError(f"the row {self.name!r} reads list metadata")  # refused in __init__

    def __call__(self, *operands: Any, **attrs: Any) -> Any:
        if _QUIET[0]:
            return self.node(operands, attrs)
        with np.errstate(all="ignore"):
            return self.node(operands, attrs)


_ROWS: dict[str, _RowOnScalars] = {}


def _row(name: str) -> _RowOnScalars:
    """The elementwise row ``name``, compiled for scalars (once)."""
    op = _ROWS.get(name)
    if op is None:
        if name not in ELEMENTWISE:
            raise ValueError(f"{name!r} is not an elementwise row of the table")
        op = _ROWS[name] = _RowOnScalars(ELEMENTWISE[name])
    return op


def _ufunc_rows() -> dict[np.ufunc, str]:
    # a forward that guards a ufunc (real-only rows refuse complex input) names it `ufunc`
    found = ((name, getattr(fn, "ufunc", fn)) for name, fn in FORWARDS.items())
    return {fn: name for name, fn in found if name in ELEMENTWISE and isinstance(fn, np.ufunc)}


_ROW_OF_UFUNC = _ufunc_rows()


def _row_of_ufunc(ufunc: np.ufunc) -> str:
    name = _ROW_OF_UFUNC.get(ufunc)
    if name is None:
        raise RuntimeError(
            f"no elementwise row of derivatives.yaml computes numpy.{ufunc.__name__}"
        )
    return name


# Python's operators on numbers, as NumPy computes them for arrays: the table's rows with
# these forwards are what `+ - * / **`, unary `-` and `abs()` of a Scalar record
_OPERATOR_UFUNCS: dict[str, np.ufunc] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "**": np.power,
}
OPERATOR_ROWS: dict[str, str] = {sym: _row_of_ufunc(u) for sym, u in _OPERATOR_UFUNCS.items()}
NEG_ROW = _row_of_ufunc(np.negative)
ABS_ROW = _row_of_ufunc(np.absolute)


def _names_of(rule: Rule) -> list[str]:
    """The names an elementwise row goes by: its own, its function and method names, and the
    name of the NumPy ufunc that is its forward."""
    names = [rule.name]
    for variant in ("function", "method"):
        names.extend(rule.variants.get(variant, ()))
    fn = FORWARDS[rule.name]
    if isinstance(fn, np.ufunc):
        names.append(fn.__name__)
    return list(dict.fromkeys(names))


#: ``name -> row`` for every name of an elementwise row (see :func:`apply_elementwise`).
ELEMENTWISE_NAMES: dict[str, str] = {}
for _rule in ELEMENTWISE.values():
    if not any(_rule.input_is_list) and _rule.n_outputs == 1:
        for _name in _names_of(_rule):
            ELEMENTWISE_NAMES.setdefault(_name, _rule.name)


def apply_op(name: str, *operands: Operand, **attrs: Any) -> Any:
    """The elementwise row ``name`` of the table on scalars: a :class:`Scalar` node (a float
    when no operand is a Scalar). ``attrs`` are the row's attributes (``clamp``'s min, max)."""
    return _row(ELEMENTWISE_NAMES.get(name, name))(*operands, **attrs)


# ---------------------------------------------------------------------------------------------


class Scalar:
    """A scalar graph node: a value, an accumulated gradient and weighted parent links.

    Besides the operators, a Scalar has a method per elementwise row of the table whose first
    input is ``self`` (``x.tanh()``, ``x.exp()``, ``x.clamp(0, 1)``, ``x.atan2(y)``), under
    each of the row's names (``x.arcsin()`` too, so NumPy's ufuncs work on object arrays)."""

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

    def __pos__(self) -> Scalar:
        return self


def _operator(row: str, reflected: bool) -> Callable[[Scalar, Operand], Any]:
    op = _row(row)

    node = op.node
    no_attrs: dict[str, Any] = {}

    def method(self: Scalar, other: Operand) -> Any:
        if type(other) is not float and not isinstance(other, Scalar) and _num(other) is None:
            return NotImplemented
        operands = (other, self) if reflected else (self, other)
        if _QUIET[0]:
            return node(operands, no_attrs)
        with np.errstate(all="ignore"):
            return node(operands, no_attrs)

    method.__doc__ = f"The table's `{row}` row (derivatives.yaml line {op.rule.line})."
    return method


def _unary_operator(row: str) -> Callable[[Scalar], Any]:
    op = _row(row)

    def method(self: Scalar) -> Any:
        return op(self)

    method.__doc__ = f"The table's `{row}` row (derivatives.yaml line {op.rule.line})."
    return method


def _row_method(row: str, public: str) -> Callable[..., Any]:
    op = _row(row)
    formulas = "; ".join(f"{k}: {v}" for k, v in op.rule.vjp_formulas.items())

    def method(self: Scalar, *args: Any, **kwargs: Any) -> Any:
        operands, attrs = op.bind((self, *args), kwargs)
        return op(*operands, **attrs)

    method.__name__ = method.__qualname__ = public
    method.__doc__ = (
        f"The table's `{row}` row (derivatives.yaml line {op.rule.line}): the value from its "
        f"forward, the partials from its vector-Jacobian product ({formulas})."
    )
    return method


_DUNDERS = {"__add__": "+", "__sub__": "-", "__mul__": "*", "__truediv__": "/", "__pow__": "**"}
for _dunder, _sym in _DUNDERS.items():
    setattr(Scalar, _dunder, _operator(OPERATOR_ROWS[_sym], reflected=False))
    setattr(Scalar, "__r" + _dunder[2:], _operator(OPERATOR_ROWS[_sym], reflected=True))
Scalar.__neg__ = _unary_operator(NEG_ROW)  # type: ignore[attr-defined]
Scalar.__abs__ = _unary_operator(ABS_ROW)  # type: ignore[attr-defined]
for _rule in ELEMENTWISE.values():
    if _rule.inputs[:1] == ("self",) and _rule.name in ELEMENTWISE_NAMES.values():
        for _name in _names_of(_rule):
            if _name.isidentifier() and not hasattr(Scalar, _name):
                setattr(Scalar, _name, _row_method(_rule.name, _name))


def _as_scalar(x: Operand) -> Scalar:
    """Return ``x`` if it is a Scalar, else lift a real number to a new leaf."""
    if isinstance(x, Scalar):
        return x
    o = _num(x)
    if o is None:
        raise TypeError(f"expected a Scalar or a real number, got {type(x).__name__}")
    return Scalar(o)


def maximum(a: Operand, b: Operand) -> Any:
    """Max of two scalars (numbers act as constants): the table's ``maximum`` row (ties split
    the gradient 0.5/0.5)."""
    return _row(_row_of_ufunc(np.maximum))(a, b)


def minimum(a: Operand, b: Operand) -> Any:
    """Min of two scalars (numbers act as constants): the table's ``minimum`` row (ties split
    the gradient 0.5/0.5)."""
    return _row(_row_of_ufunc(np.minimum))(a, b)


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
    with quiet():
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
    with quiet():
        for x in items[1:]:
            acc = acc + x
    return acc


def mean(arr: ObjectArray | Iterable[Operand]) -> Scalar:
    """Mean of all elements: :func:`sum` followed by one division node."""
    a = np.asarray(arr, dtype=object)
    if a.size == 0:
        raise ValueError("mean of an empty array")
    return sum(a) / a.size


def _on_arrays(op: _RowOnScalars, operands: list[Any], attrs: Mapping[str, Any]) -> ObjectArray:
    """``op`` on object arrays and numbers, element by element (NumPy broadcasting)."""
    if op.n_inputs == 1:  # documented: plain numbers in unary inputs are lifted to new leaves

        def kernel(x: Any) -> Any:
            return op.node((_as_scalar(x),), attrs)

    else:

        def kernel(*xs: Any) -> Any:
            return op.node(xs, attrs)

    with quiet():
        result = np.frompyfunc(kernel, op.n_inputs, 1)(*operands)
    return np.asarray(result, dtype=object)


def apply_elementwise(
    name: str | np.ufunc, arr: ObjectArray | npt.ArrayLike, *others: ObjectArray | npt.ArrayLike
) -> ObjectArray:
    """Apply an elementwise op of the table by name (or ufunc, e.g. ``np.exp``) to object
    arrays, broadcast NumPy-style.

    A name is a row's name, one of its function or method names, or the name of the NumPy ufunc
    that is its forward (``exp``, ``negative``, ``subtract``, ``divide``, ``power``,
    ``absolute``, ``arcsin``, ``maximum``, ...: :data:`ELEMENTWISE_NAMES`). Plain numbers in
    unary inputs are lifted to new leaves. Names in :data:`NO_ELEMENTWISE_FORM` (inv, det,
    svd, ...) raise :class:`UnsupportedScalarOp`.
    """
    key = name.__name__ if isinstance(name, np.ufunc) else str(name)
    key = key.removeprefix("numpy.").removeprefix("np.").removeprefix("linalg.")
    row = ELEMENTWISE_NAMES.get(key)
    if row is None:
        ufunc = getattr(np, key, None)  # NumPy's aliases: true_divide is divide
        if isinstance(ufunc, np.ufunc):
            row = ELEMENTWISE_NAMES.get(ufunc.__name__)
    if row is None:
        if key in NO_ELEMENTWISE_FORM:
            unsupported(key)
        known = ", ".join(sorted(ELEMENTWISE_NAMES))
        raise ValueError(f"unknown elementwise op {key!r}; supported: {known}")
    op = _row(row)
    if 1 + len(others) != op.n_inputs:
        raise TypeError(f"{key!r} takes {op.n_inputs} array(s), got {1 + len(others)}")
    return _on_arrays(op, [arr, *others], {})


# ---------------------------------------------------------------------------------------------
# the per-element backend of the explain evaluator


class NotModelled(Stop):
    """The per-element engine has no expansion of this (allowed) operation."""

    def __init__(self, op: str) -> None:
        super().__init__(op)
        self.op = op


class TooBig(Stop):
    """The per-element expansion would be too large to build."""


def _norm_axes(dim: Any, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted({int(d) % max(ndim, 1) for d in dims}))


def _shape_args(args: list[Any]) -> tuple[int, ...]:
    return tuple(args[0] if len(args) == 1 and isinstance(args[0], tuple | list) else args)


class ScalarBackend(Backend):
    """Evaluates on NumPy object arrays of :class:`Scalar`: one graph node per scalar
    operation.

    What it does with a call is read from the table: the row behind the called name (its
    ``variants:``) and the row's ``kind:``. An ``elementwise`` row becomes one scalar node per
    element (value and partials from the row itself); a ``linalg`` row has no element-wise
    form (:class:`UnsupportedScalarOp`); sums, means, matrix products and moves of elements
    (reshapes, transposes, ...) are expanded here. A composite (no row) has no element-wise
    form if the tensor-level run recorded a ``linalg`` row for that very call
    (``rows_by_call``: ``id(ast call) -> row names``); a few are expanded here (einsum, trace,
    inner, ...); anything else raises :class:`NotModelled`."""

    def __init__(self, rows_by_call: Mapping[int, Iterable[str]] | None = None) -> None:
        self.estimate = 0
        self.rows_by_call = rows_by_call or {}

    def spend(self, nodes: int) -> None:
        self.estimate += int(nodes)
        if self.estimate > SCALAR_NODE_LIMIT:
            raise TooBig(
                f"the per-element expansion would need more than {SCALAR_NODE_LIMIT} scalar nodes"
            )

    def is_array(self, v: Any) -> bool:
        return isinstance(v, np.ndarray)

    @staticmethod
    def wrap(v: Any) -> np.ndarray:
        if isinstance(v, np.ndarray):
            return v
        out = np.empty((), dtype=object)
        out[()] = v
        return out

    def elementwise(self, row: str, operands: list[Any], attrs: Mapping[str, Any]) -> Any:
        shape = np.broadcast_shapes(*(np.shape(x) for x in operands))
        self.spend(numel(shape))
        return self.wrap(_on_arrays(_row(row), operands, attrs))

    def neg(self, a: Any) -> Any:
        return self.elementwise(NEG_ROW, [a], {})

    def binop(self, sym: str, a: Any, b: Any) -> Any:
        if sym == "@":
            return self.matmul(a, b)
        return self.elementwise(OPERATOR_ROWS[sym], [a, b], {})

    def compare(self, fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
        va = values(a) if isinstance(a, np.ndarray) and a.dtype == object else a
        vb = values(b) if isinstance(b, np.ndarray) and b.dtype == object else b
        return np.asarray(fn(va, vb))

    def attribute(self, obj: Any, name: str) -> Any:
        if name == "T":
            return obj.T
        return np.swapaxes(obj, -1, -2)  # mT

    def subscript(self, obj: Any, index: Any) -> Any:
        return self.wrap(obj[index])

    def matmul(self, a: Any, b: Any) -> Any:
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim == 1 and b.ndim == 1:
            self.spend(2 * a.size)
            return self.wrap(sum(self.elementwise(OPERATOR_ROWS["*"], [a, b], {})))
        if a.ndim == 1:
            return self.matmul(a[None, :], b)[0]
        if b.ndim == 1:
            return self.matmul(a, b[:, None])[:, 0]
        if a.ndim == 2 and b.ndim == 2:
            m, k = a.shape
            n = b.shape[1]
            self.spend(m * n * (2 * k - 1))
            return matmul(a, b)
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = np.broadcast_to(a, batch + a.shape[-2:])
        b = np.broadcast_to(b, batch + b.shape[-2:])
        out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=object)
        for idx in np.ndindex(*batch):
            out[idx] = self.matmul(a[idx], b[idx])
        return out

    def reduce(self, arr: Any, dim: Any, keepdim: bool, mean_: bool) -> Any:
        arr = np.asarray(arr, dtype=object)
        axes = _norm_axes(dim, arr.ndim)
        if arr.ndim == 0:
            return arr
        rest = [ax for ax in range(arr.ndim) if ax not in axes]
        moved = np.transpose(arr, rest + list(axes))
        k = numel([arr.shape[ax] for ax in axes])
        rows = moved.reshape(-1, k)
        self.spend(rows.shape[0] * k)
        red = [mean(r) if mean_ else sum(r) for r in rows]
        out = np.empty(len(red), dtype=object)
        for i, v in enumerate(red):
            out[i] = v
        out = out.reshape([arr.shape[ax] for ax in rest])
        if keepdim:
            out = out.reshape([1 if ax in axes else arr.shape[ax] for ax in range(arr.ndim)])
        return out

    def einsum(self, spec: str, *ops: Any) -> Any:
        spec = spec.replace(" ", "")
        if "." in spec:
            raise NotModelled("einsum with ...")
        lhs, _, rhs = spec.partition("->")
        terms = lhs.split(",")
        if "->" not in spec:
            rhs = "".join(sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1))
        ops = tuple(np.asarray(o, dtype=object) for o in ops)
        sizes: dict[str, int] = {}
        for term, op in zip(terms, ops, strict=True):
            for c, s in zip(term, op.shape, strict=True):
                sizes[c] = s
        summed = sorted(set(lhs.replace(",", "")) - set(rhs))
        out_shape = tuple(sizes[c] for c in rhs)
        n_sum = numel([sizes[c] for c in summed])
        self.spend(numel(out_shape) * n_sum * len(ops))
        out = np.empty(out_shape, dtype=object)
        with quiet():
            for oidx in np.ndindex(*out_shape):
                env = dict(zip(rhs, oidx, strict=True))
                acc: Any = None
                for sidx in np.ndindex(*[sizes[c] for c in summed]):
                    env.update(zip(summed, sidx, strict=True))
                    prod: Any = None
                    for term, op in zip(terms, ops, strict=True):
                        x = op[tuple(env[c] for c in term)]
                        prod = x if prod is None else prod * x
                    acc = prod if acc is None else acc + prod
                out[oidx] = acc if acc is not None else 0.0
        return out

    # -- calls -----------------------------------------------------------------------------------
    def call(self, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.AST) -> Any:
        variant, public = split_call(name)
        return self.apply(variant, public, list(args), dict(kwargs), name, node)

    def method(
        self, obj: Any, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.AST
    ) -> Any:
        return self.apply("method", name, [obj, *args], dict(kwargs), f".{name}()", node)

    def apply(
        self,
        variant: str,
        public: str,
        args: list[Any],
        kwargs: dict[str, Any],
        label: str,
        node: ast.AST,
    ) -> Any:
        rule = row_of(variant, public)
        if rule is None:
            recorded = self.rows_by_call.get(id(node), ())
            if any(RULES[r].kind == "linalg" for r in recorded if r in RULES):
                unsupported(public)  # a composite written in linalg rows (logdet, norm, ...)
            expand = _COMPOSITES.get(public)
            if expand is None or not args:
                raise NotModelled(label)
            return expand(self, args, kwargs, label)
        if rule.kind == "linalg":  # named as matgrad.linalg names it (`A.inverse()`: inv)
            unsupported(rule.variants.get("linalg", (public,))[0])
        if rule.kind == "elementwise":
            return self.row(rule.name, args, kwargs, label)
        expand = _ROW_EXPANSIONS.get(rule.name)
        if expand is None or not args or not isinstance(args[0], np.ndarray):
            raise NotModelled(label)
        return expand(self, args, kwargs, label)

    def row(self, row: str, args: list[Any], kwargs: dict[str, Any], label: str) -> Any:
        op = _row(row)
        try:
            operands, attrs = op.bind(tuple(args), kwargs)
        except TypeError:
            raise NotModelled(label) from None  # a public signature beyond the row's
        if any(isinstance(v, np.ndarray | tuple | list) for v in attrs.values()):
            raise NotModelled(label)  # e.g. clamp with tensor bounds
        if any(isinstance(v, tuple | list) for v in operands):
            raise NotModelled(label)
        return self.elementwise(row, operands, attrs)


# Expansions of the rows that are not elementwise: by row name (the row behind the public name
# called, so aliases such as `view` and `swapaxes` come from the table). Each takes the call's
# arguments (the tensor first); arguments it does not model raise NotModelled.
_Expansion = Callable[[ScalarBackend, list[Any], dict[str, Any], str], Any]


def _reduction(mean_: bool) -> _Expansion:
    def expand(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
        obj, rest = args[0], args[1:]
        dim = rest[0] if rest else kw.pop("dim", None)
        keepdim = bool(rest[1]) if len(rest) > 1 else bool(kw.pop("keepdim", False))
        if kw or len(rest) > 2:
            raise NotModelled(label)
        return b.reduce(obj, dim, keepdim, mean_)

    return expand


def _product(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 2 or kw:
        raise NotModelled(label)
    return b.matmul(args[0], args[1])


def _outer(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 2 or kw:
        raise NotModelled(label)
    return b.binop("*", args[0][:, None], np.asarray(args[1])[None, :])


def _reshape(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if kw:
        raise NotModelled(label)
    return args[0].reshape(_shape_args(args[1:]))


def _permute(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if kw:
        raise NotModelled(label)
    return np.transpose(args[0], _shape_args(args[1:]))


def _transpose(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 3 or kw:
        raise NotModelled(label)
    return np.swapaxes(args[0], args[1], args[2])


def _squeeze(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if kw or len(args) > 2:
        raise NotModelled(label)
    return args[0].squeeze() if len(args) == 1 else np.squeeze(args[0], args[1])


def _unsqueeze(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 2 or kw:
        raise NotModelled(label)
    return np.expand_dims(args[0], args[1])


def _diagonal(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 1 or kw:
        raise NotModelled(label)
    return np.diagonal(args[0]).copy()


def _triangle(lower: bool) -> _Expansion:
    def expand(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
        obj = args[0]
        k = args[1] if len(args) > 1 else kw.pop("diagonal", 0)
        if kw or len(args) > 2:
            raise NotModelled(label)
        mask = (np.tril if lower else np.triu)(np.ones(obj.shape[-2:], bool), k)
        return np.where(mask, obj, 0.0)

    return expand


def _flip(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    dims = args[1] if len(args) > 1 else kw.pop("dims", None)
    if kw or len(args) > 2:
        raise NotModelled(label)
    return np.flip(args[0], dims)


_ROW_EXPANSIONS: dict[str, _Expansion] = {
    "sum": _reduction(False),
    "mean": _reduction(True),
    "mm": _product,
    "bmm": _product,
    "matmul": _product,
    "mv": _product,
    "dot": _product,
    "outer": _outer,
    "reshape": _reshape,
    "permute": _permute,
    "transpose": _transpose,
    "squeeze": _squeeze,
    "unsqueeze": _unsqueeze,
    "diagonal": _diagonal,
    "tril": _triangle(True),
    "triu": _triangle(False),
    "flip": _flip,
}


# Expansions of composites (public functions and Tensor methods with no row of their own), by
# the public name: the function and the method take the same arguments (the tensor first).
def _einsum(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if kw or not isinstance(args[0], str):
        raise NotModelled(label)
    return b.einsum(args[0], *args[1:])


def _inner(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 2 or kw:
        raise NotModelled(label)
    return b.reduce(b.binop("*", args[0], args[1]), -1, False, False)


def _trace(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 1 or kw or np.ndim(args[0]) != 2:
        raise NotModelled(label)
    return b.reduce(np.diagonal(args[0]).copy(), None, False, False)


def _t(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 1 or kw:
        raise NotModelled(label)
    return np.asarray(args[0]).T


def _flatten(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 1 or kw:
        raise NotModelled(label)
    return np.asarray(args[0]).reshape(-1)


def _reshape_as(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 2 or kw:
        raise NotModelled(label)
    return np.asarray(args[0]).reshape(np.shape(args[1]))


def _same(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 1 or kw:
        raise NotModelled(label)
    return args[0]  # float64 throughout: a dtype conversion is no operation here


def _detach(b: ScalarBackend, args: list, kw: dict, label: str) -> Any:
    if len(args) != 1 or kw:
        raise NotModelled(label)
    return values(args[0]).astype(object)  # plain floats: constants, not graph nodes


_COMPOSITES: dict[str, _Expansion] = {
    "einsum": _einsum,
    "inner": _inner,
    "trace": _trace,
    "t": _t,
    "flatten": _flatten,
    "view": _reshape,  # the Tensor method (the function `view` is the reshape row's alias)
    "reshape_as": _reshape_as,
    "view_as": _reshape_as,
    "float": _same,
    "double": _same,
    "detach": _detach,
}
