"""The safe evaluator of ``matgrad explain``: walks a validated :class:`~.language.Program` and
hands each allowed operation to a backend, which does the arithmetic: :class:`TensorBackend`
(matgrad tensors, recording the graph) here, the per-element backend in :mod:`.per_element`.

User text never reaches ``eval``, ``exec`` or ``compile``: only the AST node types the validator
accepted are walked, and only the callables of :data:`~.language.CALLABLES` and the allowed
Tensor methods are called. Sizes are checked before an operation runs where its result could
be much larger than its operands, and after every operation.
"""

from __future__ import annotations

import ast
import inspect
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..core.graph import AccumulateGrad, Node, walk
from ..core.table import Rule
from ..ops.registry import RULES
from ..tensor import Tensor
from .language import (
    BINOP_BY_SYMBOL,
    BINOPS,
    COMPARE,
    MAX_LINALG_SIDE,
    MAX_RESULT_ELEMENTS,
    ExplainError,
    Program,
    Validator,
)

# -- the table's public names --------------------------------------------------------------------
#: ``(variant, public name) -> row name``, from the rows' ``variants:`` (``("method", "inverse")
#: -> "linalg_inv"``, ``("function", "clip") -> "clamp"``).
ROW_OF: dict[tuple[str, str], str] = {
    (variant, public): rule.name
    for rule in RULES.values()
    for variant, names in rule.variants.items()
    for public in names
}


def row_of(variant: str, name: str) -> Rule | None:
    """The table row behind the public ``name`` of ``variant`` (function, method, linalg), or
    None for a composite (a function written over rows, with no row of its own)."""
    op = ROW_OF.get((variant, name))
    return None if op is None else RULES[op]


def split_call(name: str) -> tuple[str, str]:
    """``"linalg.inv"`` -> ``("linalg", "inv")``; ``"exp"`` -> ``("function", "exp")``."""
    if name.startswith("linalg."):
        return "linalg", name[len("linalg.") :]
    return "function", name


# -- errors --------------------------------------------------------------------------------------
class Failure(Exception):
    """An error raised inside an allowed operation, with the AST node it happened at."""

    def __init__(self, node: ast.AST, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.node = node
        self.exc = exc


class Stop(Exception):
    """Raised by a backend to stop the evaluation (not an error of the expression): passed on
    as it is, not wrapped in a :class:`Failure`."""


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def failure_error(program: Program, failure: Failure) -> ExplainError:
    """The one-line ExplainError for an operation's error, naming its column."""
    validator = Validator(program.text, {})
    line, col = validator.position(failure.node)
    exc = failure.exc
    kind = (
        ""
        if isinstance(exc, ValueError | RuntimeError | TypeError | IndexError)
        else f"{type(exc).__name__}: "
    )
    err = ExplainError(kind + one_line(exc), col, validator.segment(failure.node), line)
    err.__cause__ = exc
    return err


# -- warnings ------------------------------------------------------------------------------------
class WarningLog:
    """The warnings raised while one report is built, kept for the report instead of printed.

    Inside :meth:`capture` every warning is recorded, not shown: NumPy's floating-point
    warnings (``np.errstate`` "warn" for division by zero, invalid values and overflow;
    underflow stays silent) and ``warnings.warn`` calls such as matgrad's
    ``DegenerateGradientWarning``. Each is noted with where it was raised: the pass set with
    :meth:`phase` (the forward pass, the backward pass), the operation of the forward pass
    being evaluated (:meth:`at`), and the row of derivatives.yaml when it comes from a
    compiled formula. The same warning from the same place is kept once, with a count and the
    steps of the report it came up in. :meth:`quiet` drops warnings instead (timing runs that
    repeat work already recorded, the report's own arithmetic). Like ``warnings.catch_warnings``
    it is not thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._phase = ("report's own computations", "")
        self._nodes: list[ast.AST] = []
        self.text = ""  # the expression, to quote the operation a warning came from

    @contextmanager
    def capture(self) -> Iterator[WarningLog]:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = self._show
            with np.errstate(divide="warn", invalid="warn", over="warn", under="ignore"):
                yield self

    @contextmanager
    def phase(self, label: str, step: str = "") -> Iterator[None]:
        """Warnings in this block come from ``label`` ("backward pass"), during ``step`` of
        the report ("Jacobians")."""
        previous, self._phase = self._phase, (label, step)
        try:
            yield
        finally:
            self._phase = previous

    @contextmanager
    def at(self, node: ast.AST) -> Iterator[None]:
        self._nodes.append(node)
        try:
            yield
        finally:
            self._nodes.pop()

    @staticmethod
    @contextmanager
    def quiet() -> Iterator[None]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                yield

    def _where(self, filename: str, lineno: int) -> str:
        where = self._phase[0]
        if self._nodes:
            source = " ".join((ast.get_source_segment(self.text, self._nodes[-1]) or "").split())
            if source:
                where = f"{where} at `{source if len(source) <= 60 else source[:57] + '...'}`"
        if os.path.basename(str(filename)) == "derivatives.yaml":
            rows = [r for r in RULES.values() if r.line <= lineno]
            rule = max(rows, key=lambda r: r.line, default=None)
            row = f"rule `{rule.name}`, " if rule is not None else ""
            where = f"{where} ({row}derivatives.yaml line {lineno})"
        return where

    def _show(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        text = " ".join(str(message).split()) or category.__name__
        if len(text) > 1000:
            text = text[:997] + "..."
        where = self._where(filename, lineno)
        key = (category.__name__, text, where)
        entry = self._entries.setdefault(
            key,
            {"category": category.__name__, "message": text, "where": where, "during": [],
             "count": 0},
        )  # fmt: skip
        entry["count"] += 1
        step = self._phase[1]
        if step and step not in entry["during"]:
            entry["during"].append(step)

    def entries(self) -> list[dict[str, Any]]:
        """The warnings, in the order first raised: ``category``, ``message`` (one line),
        ``where`` (the pass, the operation or rule), ``during`` (the steps of the report it
        came up in) and ``count``."""
        return [{**e, "during": list(e["during"])} for e in self._entries.values()]


# -- sizes ---------------------------------------------------------------------------------------
def is_number(v: Any) -> bool:
    return isinstance(v, bool | int | float | np.integer | np.floating)


def number_binop(sym: str, a: Any, b: Any) -> Any:
    """Arithmetic on two plain numbers, guarded against huge integer powers."""
    if sym == "**":
        if isinstance(a, int) and isinstance(b, int) and not 0 <= b <= 64:
            a, b = float(a), float(b)
        if isinstance(a, int) and isinstance(b, int) and abs(a).bit_length() * b > 4096:
            a, b = float(a), float(b)
    try:
        return BINOP_BY_SYMBOL[sym](a, b)
    except OverflowError:
        raise ValueError(f"the number {a} {sym} {b} overflows") from None


def numel(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def matmul_numel(sa: Sequence[int], sb: Sequence[int]) -> int:
    """Elements of ``a @ b`` for operand shapes ``sa``, ``sb`` (0 when they do not fit)."""
    if len(sa) < 2 or len(sb) < 2:
        return max(numel(sa), numel(sb))
    batch = broadcast_numel([sa[:-2], sb[:-2]]) if len(sa) > 2 or len(sb) > 2 else 1
    return batch * int(sa[-2]) * int(sb[-1])


def broadcast_numel(shapes: Sequence[Sequence[int]]) -> int:
    """Elements of the broadcast of ``shapes``; 0 when they do not broadcast (the operation
    itself then reports the mismatch)."""
    try:
        return numel(np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        return 0


def einsum_output_size(spec: str, operands: Sequence[Tensor]) -> int:
    spec = spec.replace(" ", "")
    lhs, _, rhs = spec.partition("->")
    sizes: dict[str, int] = {}
    for term, t in zip(lhs.split(","), operands, strict=False):
        letters = [c for c in term if c.isalpha()]
        batch = t.shape[: max(len(t.shape) - len(letters), 0)] if "..." in term else ()
        for c, s in zip(letters, t.shape[len(batch) :], strict=False):
            sizes[c] = max(sizes.get(c, 1), int(s))
        sizes["."] = max(sizes.get(".", 1), numel(batch))
    if "->" not in spec:
        counts = {c: lhs.count(c) for c in set(lhs) if c.isalpha()}
        rhs = "".join(sorted(c for c, k in counts.items() if k == 1))
    size = sizes.get(".", 1) if "..." in spec else 1
    for c in rhs:
        if c.isalpha():
            size *= sizes.get(c, 1)
    return size


def tensors_in(values: Iterable[Any]) -> list[Tensor]:
    out: list[Tensor] = []
    for v in values:
        if isinstance(v, Tensor):
            out.append(v)
        elif isinstance(v, tuple | list):
            out.extend(tensors_in(v))
    return out


def _bound_arguments(fn: Any, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(inspect.signature(fn).bind(*args, **kwargs).arguments)
    except (TypeError, ValueError):  # the call itself will report it
        return None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | np.integer) and not isinstance(v, bool) else None


def _pad_numel(t: Tensor, bound: Mapping[str, Any]) -> int:
    shape = list(t.shape)
    widths = bound.get("pad")
    if not isinstance(widths, tuple | list) or len(widths) > 2 * len(shape):
        return 0
    for k in range(len(widths) // 2):
        lo, hi = _int(widths[2 * k]), _int(widths[2 * k + 1])
        if lo is None or hi is None:
            return 0
        shape[-1 - k] = max(shape[-1 - k] + lo + hi, 0)
    return numel(shape)


def _diagonal_matrix_numel(t: Tensor, offset: Any) -> int:
    # a matrix per vector (the last axis) with the vector on diagonal `offset`
    n = t.shape[-1] if t.ndim else 1
    side = n + abs(_int(offset) or 0)
    return (t.numel() // max(n, 1)) * side * side


# What the operations whose result can be much larger than their operands allocate: an
# estimate, checked before they run (every other operation is bounded by the broadcast of its
# operands, or by the matrix-product estimate for the table's `product` rows, and every result
# is checked after it is made). These are shape functions, not allow-lists: table rows by row
# name, composites by their public name.
_ROW_SIZE: dict[str, Callable[[list[Tensor], Mapping[str, Any]], int]] = {
    "outer": lambda ts, b: math.prod(t.numel() for t in ts),
    "diag_embed": lambda ts, b: _diagonal_matrix_numel(ts[0], b.get("offset", 0)),
    "pad": lambda ts, b: _pad_numel(ts[0], b),
}
_COMPOSITE_SIZE: dict[str, Callable[[list[Tensor], Mapping[str, Any]], int]] = {
    "kron": lambda ts, b: math.prod(t.numel() for t in ts),
    "tensordot": lambda ts, b: math.prod(t.numel() for t in ts),  # at most the outer product
    "inner": lambda ts, b: math.prod(t.numel() // max(t.shape[-1] if t.ndim else 1, 1) for t in ts),
    "multi_dot": lambda ts, b: (
        max((t.shape[0] if t.ndim == 2 else 1) for t in ts)
        * max((t.shape[-1] if t.ndim == 2 else 1) for t in ts)
    ),
    "diag": lambda ts, b: (
        _diagonal_matrix_numel(ts[0], b.get("diagonal", 0)) if ts[0].ndim == 1 else ts[0].numel()
    ),
}


def result_size_bound(
    variant: str, name: str, fn: Any, args: list[Any], kwargs: dict[str, Any]
) -> int:
    """An estimate of the elements the call ``name(*args, **kwargs)`` allocates (0: unknown,
    the call reports its own errors); see ``_ROW_SIZE``."""
    tensors = tensors_in(list(args) + list(kwargs.values()))
    if not tensors:
        return 0
    rule = row_of(variant, name)
    shapes = [tuple(t.shape) for t in tensors]
    if name == "einsum" and args and isinstance(args[0], str):
        return einsum_output_size(args[0], tensors)
    sized = _ROW_SIZE.get(rule.name) if rule is not None else _COMPOSITE_SIZE.get(name)
    if sized is not None:
        bound = _bound_arguments(fn, args, kwargs) if fn is not None else None
        return sized(tensors, bound or {})
    if rule is not None and any(rule.input_is_list):  # a concatenation or a stack
        return sum(t.numel() for t in tensors)
    if rule is not None and rule.kind == "product" and len(tensors) == 2:
        return matmul_numel(shapes[0], shapes[1])
    return broadcast_numel(shapes)


# -- the evaluator -------------------------------------------------------------------------------
class Evaluator:
    """Walks a validated program; the backend does the arithmetic on its values."""

    def __init__(self, program: Program, backend: Backend, log: WarningLog | None = None) -> None:
        self.program = program
        self.backend = backend
        self.log = log  # notes which operation raised a warning

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        env: dict[str, Any] = dict(inputs)
        bare = 0
        for st in self.program.statements:
            value = self.expr(st.value, env)
            if st.targets is None:
                bare += 1
                env["out" if bare == 1 else f"out{bare}"] = value
            elif st.tuple_target:
                if not isinstance(value, tuple | list) or len(value) != len(st.targets):
                    n = len(value) if isinstance(value, tuple | list) else 1
                    raise Failure(
                        st.value,
                        ValueError(f"cannot unpack {n} value(s) into {len(st.targets)} names"),
                    )
                for name, v in zip(st.targets, value, strict=True):
                    env[name] = v
            else:
                env[st.targets[0]] = value
        return env

    def expr(self, node: ast.expr, env: Mapping[str, Any]) -> Any:
        try:
            if self.log is None:
                value = self._expr(node, env)
            else:
                with self.log.at(node):
                    value = self._expr(node, env)
            if not isinstance(node, ast.Name | ast.Constant | ast.Tuple | ast.List):
                self.backend.record(node, value)
        except (Failure, Stop):
            raise
        except Exception as exc:  # noqa: BLE001 - reported as a one-line error at this node
            raise Failure(node, exc) from exc
        return value

    def _expr(self, node: ast.expr, env: Mapping[str, Any]) -> Any:
        b = self.backend
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Tuple):
            return tuple(self.expr(e, env) for e in node.elts)
        if isinstance(node, ast.List):
            return [self.expr(e, env) for e in node.elts]
        if isinstance(node, ast.UnaryOp):
            v = self.expr(node.operand, env)
            if isinstance(node.op, ast.UAdd):
                return v
            if is_number(v):
                return -v
            return b.neg(self.operand(v, "-"))
        if isinstance(node, ast.BinOp):
            sym, _ = BINOPS[type(node.op)]
            left, right = self.expr(node.left, env), self.expr(node.right, env)
            if is_number(left) and is_number(right):
                return number_binop(sym, left, right)
            return b.binop(sym, self.operand(left, sym), self.operand(right, sym))
        if isinstance(node, ast.Compare):
            sym, fn = COMPARE[type(node.ops[0])]
            left, right = self.expr(node.left, env), self.expr(node.comparators[0], env)
            if is_number(left) and is_number(right):
                return fn(left, right)
            return b.compare(fn, self.operand(left, sym), self.operand(right, sym))
        if isinstance(node, ast.Attribute):
            obj = self.expr(node.value, env)
            return b.attribute(self.receiver(obj, f".{node.attr}"), node.attr)
        if isinstance(node, ast.Subscript):
            obj = self.expr(node.value, env)
            index = self.index(node.slice, env)
            if isinstance(obj, tuple | list):
                if not isinstance(index, int):
                    raise TypeError("a tuple of results can only be indexed by an integer")
                return obj[index]
            return b.subscript(self.receiver(obj, "[...]"), index)
        if isinstance(node, ast.Call):
            args = [self.expr(a, env) for a in node.args]
            kwargs = {kw.arg: self.expr(kw.value, env) for kw in node.keywords if kw.arg}
            func = node.func
            if isinstance(func, ast.Name):
                return b.call(func.id, args, kwargs, node)
            assert isinstance(func, ast.Attribute)
            if isinstance(func.value, ast.Name) and func.value.id == "linalg":
                return b.call(f"linalg.{func.attr}", args, kwargs, node)
            obj = self.expr(func.value, env)
            return b.method(self.receiver(obj, f".{func.attr}()"), func.attr, args, kwargs, node)
        raise TypeError(f"{type(node).__name__} is not supported")  # validated away

    def index(self, node: ast.expr, env: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.Slice):
            parts = [
                None if p is None else self.expr(p, env)
                for p in (node.lower, node.upper, node.step)
            ]
            for p in parts:
                if p is not None and not isinstance(p, int | np.integer):
                    raise TypeError("slice bounds must be integers")
            return slice(*parts)
        if isinstance(node, ast.Tuple):
            return tuple(self.index(e, env) for e in node.elts)
        if isinstance(node, ast.Constant) and node.value is Ellipsis:
            return Ellipsis
        v = self.expr(node, env)
        if v is None or isinstance(v, int | np.integer) and not isinstance(v, bool):
            return v
        raise TypeError(
            "indices must be integers, slices, None or ... (tensor indices are not supported)"
        )

    def operand(self, v: Any, sym: str) -> Any:
        if is_number(v) or self.backend.is_array(v):
            return v
        raise TypeError(f"`{sym}` needs tensors or numbers, got {kind_of(v)}")

    def receiver(self, v: Any, what: str) -> Any:
        if self.backend.is_array(v):
            return v
        raise TypeError(f"`{what}` needs a tensor, got {kind_of(v)}")


def kind_of(v: Any) -> str:
    if isinstance(v, tuple | list):
        return f"a {type(v).__name__} of {len(v)} values (index it, e.g. R[0])"
    if is_number(v):
        return f"the number {v!r}"
    return type(v).__name__


def evaluate(
    program: Program, leaves: Mapping[str, Any], backend: Backend, log: WarningLog | None = None
) -> dict[str, Any]:
    """Run ``program`` on ``leaves`` with ``backend`` (IEEE float semantics). Warnings go to
    ``log``, noted with the operation that raised them (its :meth:`WarningLog.capture` must be
    in force); without a log they are dropped."""
    if log is None:
        with WarningLog.quiet():
            return Evaluator(program, backend).run(leaves)
    with log.phase("forward pass"):
        return Evaluator(program, backend, log).run(leaves)


class Backend:
    """The arithmetic of one evaluator: matgrad tensors or per-element Scalars. ``node`` is
    the AST node of the call being evaluated."""

    def is_array(self, v: Any) -> bool:
        raise NotImplementedError

    def record(self, node: ast.AST, value: Any) -> None:
        """Called after each operation with its result."""

    def neg(self, a: Any) -> Any:
        raise NotImplementedError

    def binop(self, sym: str, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def compare(self, fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
        raise NotImplementedError

    def attribute(self, obj: Any, name: str) -> Any:
        raise NotImplementedError

    def subscript(self, obj: Any, index: Any) -> Any:
        raise NotImplementedError

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.AST) -> Any:
        raise NotImplementedError

    def method(
        self, obj: Any, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.AST
    ) -> Any:
        raise NotImplementedError


class TensorBackend(Backend):
    """Evaluates on matgrad tensors and notes which graph nodes each operation recorded."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]], track: bool = True) -> None:
        self.functions = functions
        self.track = track
        self.created_by: dict[int, str] = {}  # id(node) -> source of the operation
        self.composites: list[tuple[str, str, list[Node]]] = []  # (source, callee, nodes)
        self.rows_by_call: dict[int, tuple[str, ...]] = {}  # id(ast call) -> rows it recorded
        self.largest = 0
        self._seen: set[int] = set()
        self._keep: list[Node] = []  # keeps attributed nodes alive, so ids stay unique
        self.text = ""

    def is_array(self, v: Any) -> bool:
        return isinstance(v, Tensor)

    def check_size(self, count: int, what: str) -> None:
        if count > MAX_RESULT_ELEMENTS:
            raise ValueError(f"{what} would have {count} elements (at most {MAX_RESULT_ELEMENTS})")

    def record(self, node: ast.AST, value: Any) -> None:
        tensors = tensors_in([value])
        for t in tensors:
            self.largest = max(self.largest, t.numel())
            self.check_size(t.numel(), "the result")
        if not self.track:
            return
        # the nodes this statement recorded: those of the walk not seen before
        reachable, _ = walk(t.grad_fn for t in tensors)
        new: list[Node] = [
            n for n in reachable if id(n) not in self._seen and not isinstance(n, AccumulateGrad)
        ]
        self._seen.update(id(n) for n in new)
        self._keep.extend(new)
        if isinstance(node, ast.Call):
            rules = (getattr(n, "rule", None) for n in new)
            self.rows_by_call[id(node)] = tuple(r.name for r in rules if r is not None)
        if not new:
            return
        source = " ".join((ast.get_source_segment(self.text, node) or "").split())
        if len(source) > 60:
            source = source[:57] + "..."
        for n in new:
            self.created_by[id(n)] = source
        callee = callee_of(node)
        if callee is not None:
            self.composites.append((source, callee, new[::-1]))

    def neg(self, a: Any) -> Any:
        return -a

    def binop(self, sym: str, a: Any, b: Any) -> Any:
        sa = tuple(a.shape) if isinstance(a, Tensor) else ()
        sb = tuple(b.shape) if isinstance(b, Tensor) else ()
        if sym == "@":
            self.check_size(matmul_numel(sa, sb), "the matrix product")
        else:
            self.check_size(broadcast_numel([sa, sb]), "the result")
        return BINOP_BY_SYMBOL[sym](a, b)

    def compare(self, fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
        shapes = [tuple(x.shape) if isinstance(x, Tensor) else () for x in (a, b)]
        self.check_size(broadcast_numel(shapes), "the comparison")
        return fn(a, b)

    def attribute(self, obj: Any, name: str) -> Any:
        return getattr(obj, name)

    def subscript(self, obj: Any, index: Any) -> Any:
        return obj[index]

    def precheck(
        self, variant: str, name: str, fn: Any, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        rule = row_of(variant, name)
        product = rule is not None and rule.kind == "product" and rule.name not in _ROW_SIZE
        what = "the matrix product" if product else f"{name}'s result"
        self.check_size(result_size_bound(variant, name, fn, args, kwargs), what)
        if variant == "linalg" or (rule is not None and rule.kind == "linalg"):
            for t in tensors_in(list(args) + list(kwargs.values())):
                if t.ndim >= 2 and max(t.shape[-2:]) > MAX_LINALG_SIDE:
                    label = f"linalg.{name}" if variant == "linalg" else name
                    raise ValueError(
                        f"{label}: matrices larger than {MAX_LINALG_SIDE} on a side "
                        "are not explained"
                    )

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.AST) -> Any:
        fn = self.functions[name]
        variant, public = split_call(name)
        self.precheck(variant, public, fn, args, kwargs)
        return fn(*args, **kwargs)

    def method(
        self, obj: Any, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.AST
    ) -> Any:
        fn = getattr(obj, name, None)
        if fn is None:
            raise AttributeError(f"tensors have no method `.{name}()` in this version of matgrad")
        self.precheck("method", name, getattr(type(obj), name, None), [obj, *args], kwargs)
        return fn(*args, **kwargs)


def callee_of(node: ast.AST) -> str | None:
    """The name of the called function or method, for an ``ast.Call``."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id == "linalg":
            return f"linalg.{func.attr}"
        return f".{func.attr}()"
    return None
