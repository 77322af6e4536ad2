"""The expression language of ``matgrad explain``: its limits, its allow-lists, and parsing and
validation with :mod:`ast`. Nothing here evaluates anything.

An expression is one or more assignments separated by ``;`` or newlines (``C = A @ B``,
``U, S, Vh = linalg.svd(A)``), made of names, numbers, ``+ - * / ** @``, single comparisons,
subscripts with integers and slices, calls of matgrad functions and tensor methods, and the
attributes ``.T`` and ``.mT``. Everything else is refused with a one-line :class:`ExplainError`
that names the column.

The allow-lists are made from the op layer, not kept here: the functions are the table's
``variants: [function]`` (:data:`matgrad.ops.bindings.FUNCTIONS`) and the public composites of
:mod:`matgrad.ops.composite` and :mod:`matgrad.ops.einsum`; ``linalg.<name>`` are the table's
``linalg`` variants and the public functions of :mod:`matgrad.ops.linalg`; the methods are the
table's ``method`` variants, the Tensor methods named like an allowed function, and the short
list :data:`NON_OP_METHODS`.
"""

from __future__ import annotations

import ast
import inspect
import math
import operator
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..ops import bindings, composite
from ..ops import einsum as _einsum_module
from ..ops import linalg as _linalg_module
from ..ops.registry import NAMESPACE_HELPERS, RULES
from ..tensor import Tensor

__all__ = [
    "ATTRIBUTES",
    "CALLABLES",
    "FUNCTIONS",
    "LINALG_FUNCTIONS",
    "METHODS",
    "NON_OP_METHODS",
    "ExplainError",
    "Program",
    "Statement",
    "available_functions",
    "parse_expression",
    "parse_shape",
]

# -- limits ------------------------------------------------------------------------------------
MAX_CHARS = 2000  #: longest expression accepted
MAX_DEPTH = 50  #: deepest nesting of sub-expressions accepted
MAX_INPUT_ELEMENTS = 100_000  #: largest input tensor
MAX_NDIM = 6  #: most axes of an input
MAX_RESULT_ELEMENTS = 2_000_000  #: largest tensor an operation may produce
MAX_LINALG_SIDE = 1000  #: largest matrix side a linalg function may get
MAX_JACOBIAN_ENTRIES = 4_000_000  #: largest Jacobian computed
#: most Jacobian entries one report computes and holds, all output x input pairs together
#: (64 MB of float64: two Jacobians of the largest size); later pairs are skipped with a note
MAX_REPORT_JACOBIAN_ENTRIES = 8_000_000
#: most backward work one report's Jacobians may take, as cotangent rows x the largest tensor
#: of the graph summed over the outputs (20 full batched passes of BATCH_ELEMENTS: a few
#: seconds); an output past it gets no Jacobians, with a note
MAX_REPORT_BACKWARD_WORK = 400_000_000
BATCH_ELEMENTS = 20_000_000  #: cotangent rows x largest tensor, per batched backward pass
TEXT_MATRIX_SIDE = 12  #: Jacobians up to 12 x 12 are printed in full
JSON_VALUE_LIMIT = 250_000  #: arrays up to this many entries are included in the JSON
#: most array entries one report writes as JSON lists, all values, gradients and Jacobians
#: together (about 20 MB of JSON text); arrays past it are written as null with a note
MAX_REPORT_JSON_ENTRIES = 1_000_000
SCALAR_NODE_LIMIT = 200_000  #: most scalar nodes the per-element comparison may build
DEFAULT_SHAPE = (3, 3)
DTYPES = ("float32", "float64")


# -- the allow-lists, made from the op layer ----------------------------------------------------
def _public_functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The public tensor functions of an op module: the names in its ``__all__`` where it
    declares one; otherwise every public function defined in the module itself that takes
    tensors first (its first parameter is ``input`` or ``tensors``, PyTorch's names; or
    ``equation``, einsum's), except the helpers rule formulas call
    (``registry.NAMESPACE_HELPERS``: support for the formula namespaces) and the table's
    internal rows (rows with no ``variants:``, such as the adjoint ``zeros_scatter``). Classes
    (warnings, exceptions) are never functions."""
    names = getattr(module, "__all__", None)
    if names is None:
        internal = {name for name, rule in RULES.items() if not rule.variants}
        names = [
            name
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and inspect.isfunction(obj)
            and obj.__module__ == module.__name__
            and _takes_tensors_first(obj)
            and name not in NAMESPACE_HELPERS
            and name not in internal
        ]
    out = {}
    for name in names:
        obj = getattr(module, name, None)
        if callable(obj) and not isinstance(obj, type):
            out[name] = obj
    return out


def _takes_tensors_first(fn: Callable[..., Any]) -> bool:
    try:
        first = next(iter(inspect.signature(fn).parameters), None)
    except (TypeError, ValueError):
        return False
    return first in ("input", "tensors", "equation")


def _top_level_functions() -> dict[str, Callable[..., Any]]:
    # as matgrad's namespace is made: the composites, then the table's function variants
    out = _public_functions(composite)
    out.update(_public_functions(_einsum_module))
    out.update(bindings.FUNCTIONS)
    return out


def _linalg_functions() -> dict[str, Callable[..., Any]]:
    # matgrad.linalg is matgrad.ops.linalg: its public functions and the table's linalg variants
    out = _public_functions(_linalg_module)
    for name, fn in bindings.LINALG.items():
        out.setdefault(name, getattr(_linalg_module, name, fn))
    return out


_TOP_LEVEL = _top_level_functions()
_LINALG = _linalg_functions()

#: ``{name: function}`` of every function an expression may call: top-level names (``exp``)
#: and ``linalg.<name>``.
CALLABLES: dict[str, Callable[..., Any]] = {
    **_TOP_LEVEL,
    **{f"linalg.{name}": fn for name, fn in _LINALG.items()},
}
#: Top-level matgrad functions an expression may call.
FUNCTIONS: tuple[str, ...] = tuple(sorted(_TOP_LEVEL))
#: Functions of ``matgrad.linalg`` an expression may call as ``linalg.<name>``.
LINALG_FUNCTIONS: tuple[str, ...] = tuple(sorted(_LINALG))

#: Tensor attributes an expression may read (``A.T``): the transposes. They are properties of
#: Tensor written over the permute and transpose rows, not ops, so no row names them.
ATTRIBUTES: tuple[str, ...] = ("T", "mT")
#: Tensor methods that are neither an op of the table nor a public function, allowed for what
#: they do to a graph: ``detach`` makes a constant (no gradient flows back through it),
#: ``double``/``float`` convert the dtype (recorded as the to_dtype row), ``reshape_as`` and
#: ``view_as`` reshape to another tensor's shape (recorded as the reshape row).
NON_OP_METHODS: tuple[str, ...] = ("detach", "double", "float", "reshape_as", "view_as")


def _methods() -> tuple[str, ...]:
    # the table's method variants (in-place ones are not: they would modify the inputs), the
    # Tensor methods named like an allowed function (``A.softmax(-1)``, ``A.norm()``), and the
    # non-op methods above
    names = set(bindings.METHODS)
    names |= {n for n in (*_TOP_LEVEL, *_LINALG) if callable(getattr(Tensor, n, None))}
    names |= {n for n in NON_OP_METHODS if callable(getattr(Tensor, n, None))}
    return tuple(sorted(n for n in names if not n.startswith("_")))


#: Tensor methods an expression may call (``A.sum()``).
METHODS: tuple[str, ...] = _methods()


def available_functions() -> dict[str, Callable[..., Any]]:
    """``{name: function}`` of every allowed function: top-level names (``exp``) and
    ``linalg.<name>``."""
    return dict(CALLABLES)


# -- operators ---------------------------------------------------------------------------------
#: The binary operators an expression may use: AST type -> (symbol, Python operator).
BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.Pow: ("**", operator.pow),
    ast.MatMult: ("@", operator.matmul),
}
BINOP_BY_SYMBOL: dict[str, Callable[[Any, Any], Any]] = dict(BINOPS.values())
_REFUSED_BINOPS = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|",
    ast.BitXor: "^", ast.BitAnd: "&",
}  # fmt: skip
#: The comparisons an expression may use (for ``where``): AST type -> (symbol, operator).
COMPARE: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
}
_REFUSED_EXPRESSIONS: dict[type, str] = {
    ast.Lambda: "lambda expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.IfExp: "conditional expressions are not allowed (use where(cond, a, b))",
    ast.BoolOp: "`and`/`or` are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: "set literals are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.NamedExpr: "the walrus operator `:=` is not allowed",
    ast.Await: "`await` is not allowed",
    ast.Yield: "`yield` is not allowed",
    ast.YieldFrom: "`yield` is not allowed",
    ast.Starred: "`*` unpacking is not allowed",
    ast.Slice: "slices are only allowed inside [...]",
}
_REFUSED_STATEMENTS: dict[type, str] = {
    ast.Import: "import statements are not allowed",
    ast.ImportFrom: "import statements are not allowed",
    ast.FunctionDef: "function definitions are not allowed",
    ast.AsyncFunctionDef: "function definitions are not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.For: "loops are not allowed",
    ast.AsyncFor: "loops are not allowed",
    ast.While: "loops are not allowed",
    ast.If: "`if` statements are not allowed (use where(cond, a, b))",
    ast.With: "`with` statements are not allowed",
    ast.AsyncWith: "`with` statements are not allowed",
    ast.Try: "`try` statements are not allowed",
    ast.Delete: "`del` is not allowed",
    ast.Global: "`global` is not allowed",
    ast.Nonlocal: "`nonlocal` is not allowed",
    ast.Raise: "`raise` is not allowed",
    ast.Assert: "`assert` is not allowed",
    ast.Return: "`return` is not allowed",
    ast.AugAssign: "augmented assignment (`+=`) is not allowed: write `D = C + A`",
    ast.AnnAssign: "annotated assignments are not allowed",
}
_EINSUM_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,->. ")


class ExplainError(ValueError):
    """An expression that ``explain`` refuses or cannot evaluate. The message is one line and,
    where it can, names the column (1-based) and quotes the offending part."""

    def __init__(
        self,
        message: str,
        column: int | None = None,
        snippet: str | None = None,
        line: int | None = None,
    ) -> None:
        self.reason = " ".join(str(message).split())
        self.column = column
        self.line = line
        self.snippet = snippet
        where = ""
        if column is not None:
            where = f"line {line}, column {column}" if line and line > 1 else f"column {column}"
        parts = [p for p in (where, f"`{snippet}`" if snippet else "", self.reason) if p]
        super().__init__(": ".join(parts))


# -- parsing and validation (nothing is evaluated here) -----------------------------------------
@dataclass
class Statement:
    """One ``targets = value`` statement (``targets`` is None for a bare expression)."""

    targets: list[str] | None
    value: ast.expr
    source: str
    tuple_target: bool = False


@dataclass
class Program:
    """A validated expression: its statements, free names (inputs, in order of first use),
    assigned names and output names."""

    text: str
    statements: list[Statement]
    inputs: list[str]
    assigned: list[str]
    outputs: list[str]
    calls: list[str] = field(default_factory=list)


class Validator:
    """Checks a parsed expression against the allow-lists; its :meth:`fail` makes the one-line
    error that names the column and quotes the offending part."""

    def __init__(self, text: str, functions: Mapping[str, Any]) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.functions = functions
        self.inputs: list[str] = []
        self.defined: set[str] = set()
        self.calls: list[str] = []

    # error helpers
    def segment(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.text, node) or ""
        seg = " ".join(seg.split())
        return seg if len(seg) <= 60 else seg[:57] + "..."

    def position(self, node: ast.AST) -> tuple[int | None, int | None]:
        lineno = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", None)
        if lineno is None or col is None or lineno > len(self.lines):
            return None, None
        prefix = self.lines[lineno - 1].encode()[:col].decode(errors="ignore")
        return lineno, len(prefix) + 1

    def fail(self, node: ast.AST, message: str) -> ExplainError:
        line, col = self.position(node)
        return ExplainError(message, col, self.segment(node), line)

    # statements
    def statement(self, stmt: ast.stmt) -> Statement:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                raise self.fail(stmt, "chained assignment (`a = b = ...`) is not allowed")
            self.expr(stmt.value, 0)
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                names, is_tuple = [target], False
            elif isinstance(target, ast.Tuple | ast.List) and all(
                isinstance(e, ast.Name) for e in target.elts
            ):
                names, is_tuple = list(target.elts), True
            else:
                raise self.fail(
                    target, "only names can be assigned to (`C = ...` or `U, S, Vh = ...`)"
                )
            out = []
            for n in names:
                assert isinstance(n, ast.Name)
                self.check_name(n)
                if n.id in self.defined or n.id in self.inputs:
                    what = "an input" if n.id in self.inputs else "already assigned"
                    raise self.fail(n, f"`{n.id}` is {what}; assign to a new name")
                out.append(n.id)
            if len(set(out)) != len(out):
                raise self.fail(target, "a name appears twice on the left of `=`")
            self.defined.update(out)
            return Statement(out, stmt.value, self.segment(stmt), is_tuple)
        if isinstance(stmt, ast.Expr):
            self.expr(stmt.value, 0)
            return Statement(None, stmt.value, self.segment(stmt))
        message = _REFUSED_STATEMENTS.get(
            type(stmt), f"{type(stmt).__name__} statements are not allowed"
        )
        raise self.fail(stmt, message + "; write assignments like `C = A @ B`, separated by `;`")

    def check_name(self, node: ast.Name) -> None:
        name = node.id
        if name.startswith("_"):
            kind = "dunder names" if name.startswith("__") else "names starting with `_`"
            raise self.fail(node, f"{kind} are not allowed")
        if name == "linalg":
            raise self.fail(node, "`linalg` is only allowed as `linalg.<function>(...)`")
        if not name.isascii():
            raise self.fail(node, "names must be ASCII")

    # expressions
    def expr(self, node: ast.expr, depth: int, *, allow_str: bool = False) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(
                node, f"the expression is nested too deeply (more than {MAX_DEPTH} levels)"
            )
        d = depth + 1
        if isinstance(node, ast.Name):
            self.check_name(node)
            if node.id not in self.defined and node.id not in self.inputs:
                self.inputs.append(node.id)
        elif isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, str):
                if not allow_str:
                    raise self.fail(node, "strings are only allowed as einsum's first argument")
                if len(v) > 200 or not set(v) <= _EINSUM_CHARS:
                    raise self.fail(
                        node,
                        "an einsum subscript string may only hold letters, "
                        "`,`, `->`, `...` and spaces",
                    )
            elif v is Ellipsis:
                raise self.fail(node, "`...` is only allowed inside [...]")
            elif isinstance(v, complex):
                raise self.fail(node, "complex numbers are not supported")
            elif not (v is None or isinstance(v, bool | int | float)):
                raise self.fail(node, f"{type(v).__name__} constants are not allowed")
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub | ast.UAdd):
                op = {ast.Not: "not", ast.Invert: "~"}.get(type(node.op), "?")
                raise self.fail(node, f"the operator `{op}` is not allowed")
            self.expr(node.operand, d)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in BINOPS:
                op = _REFUSED_BINOPS.get(type(node.op), "?")
                raise self.fail(node, f"the operator `{op}` is not allowed (allowed: + - * / ** @)")
            self.expr(node.left, d)
            self.expr(node.right, d)
        elif isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in COMPARE:
                raise self.fail(node, "only single comparisons (<, <=, >, >=, ==, !=) are allowed")
            self.expr(node.left, d)
            self.expr(node.comparators[0], d)
        elif isinstance(node, ast.Call):
            self.call(node, d)
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "linalg":
                raise self.fail(
                    node, f"`linalg.{node.attr}` must be called: linalg.{node.attr}(...)"
                )
            self.expr(node.value, d)
            self.attribute_name(node, node.attr, ATTRIBUTES, "attribute")
        elif isinstance(node, ast.Subscript):
            self.expr(node.value, d)
            self.index(node.slice, d)
        elif isinstance(node, ast.Tuple | ast.List):
            for e in node.elts:
                self.expr(e, d)
        else:
            message = _REFUSED_EXPRESSIONS.get(
                type(node), f"{type(node).__name__} expressions are not allowed"
            )
            raise self.fail(node, message)

    def index(self, node: ast.expr, depth: int) -> None:
        if isinstance(node, ast.Slice):
            for part in (node.lower, node.upper, node.step):
                if part is not None:
                    self.expr(part, depth + 1)
        elif isinstance(node, ast.Tuple):
            for e in node.elts:
                self.index(e, depth + 1)
        elif isinstance(node, ast.Constant) and node.value is Ellipsis:
            pass
        else:
            self.expr(node, depth + 1)

    def attribute_name(self, node: ast.AST, name: str, allowed: Sequence[str], kind: str) -> None:
        if name.startswith("__"):
            raise self.fail(node, f"dunder attributes like `.{name}` are not allowed")
        if name.startswith("_"):
            raise self.fail(node, f"private attributes like `.{name}` are not allowed")
        if name not in allowed:
            shown = ", ".join(f".{a}" for a in allowed[:12])
            raise self.fail(
                node, f"the {kind} `.{name}` is not allowed (allowed include {shown}, ...)"
            )

    def call(self, node: ast.Call, depth: int) -> None:
        func = node.func
        label: str
        if isinstance(func, ast.Name):
            name = func.id
            if name.startswith("_"):
                raise self.fail(
                    func,
                    f"calling `{name}` is not allowed: only matgrad functions "
                    "and tensor methods can be called",
                )
            if name not in self.functions:
                shown = ", ".join(sorted(n for n in self.functions if "." not in n)[:20])
                raise self.fail(
                    func,
                    f"unknown or disallowed function `{name}` (allowed "
                    f"functions include {shown}, ... and linalg.*)",
                )
            label = name
        elif isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id == "linalg":
                name = f"linalg.{func.attr}"
                if func.attr.startswith("_"):
                    raise self.fail(func, f"`{name}` is not allowed")
                if name not in self.functions:
                    shown = ", ".join(n[7:] for n in sorted(self.functions) if "linalg." in n)
                    raise self.fail(
                        func,
                        f"unknown or disallowed function `{name}` (available: {shown or 'none'})",
                    )
                label = name
            else:
                self.expr(func.value, depth)
                self.attribute_name(func, func.attr, METHODS, "method")
                label = f".{func.attr}"
        else:
            raise self.fail(func, "only named functions and tensor methods can be called")
        self.calls.append(label)
        for k, arg in enumerate(node.args):
            if isinstance(arg, ast.Starred):
                raise self.fail(arg, "`*` unpacking is not allowed")
            self.expr(arg, depth, allow_str=(label == "einsum" and k == 0))
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail(kw.value, "`**` unpacking is not allowed")
            if kw.arg.startswith("_"):
                raise self.fail(kw.value, f"keyword `{kw.arg}` is not allowed")
            self.expr(kw.value, depth)


def _depth(tree: ast.AST) -> tuple[int, ast.AST | None]:
    """Deepest nesting of expression nodes (iterative) and the node where it is reached."""
    deepest, where = 0, None
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, ast.expr):
            d += 1
            if d > deepest:
                deepest, where = d, node
        stack.extend((child, d) for child in ast.iter_child_nodes(node))
    return deepest, where


def parse_expression(text: str) -> Program:
    """Parse and validate ``text`` without evaluating anything.

    Returns a :class:`Program`; raises :class:`ExplainError` (one line, with the column and the
    offending part) for anything outside the allow-list: statements other than assignments
    and expressions, imports, dunder or private names and attributes, attributes other than
    ``.T``/``.mT`` and listed methods, calls of anything but listed matgrad functions
    (``linalg.<name>`` included) and tensor methods, strings except as einsum's first
    argument, lambdas, comprehensions, input longer than 2000 characters or nested deeper
    than 50 levels."""
    if not isinstance(text, str):
        raise ExplainError(f"the expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ExplainError(
            f"the expression is too long ({len(text)} characters; at most {MAX_CHARS})"
        )
    if not text.strip():
        raise ExplainError('the expression is empty; try "C = A @ B"')
    paren = 0
    for k, ch in enumerate(text):  # cheap bracket-depth check before the parser sees it
        if ch in "([{":
            paren += 1
            if paren > MAX_DEPTH:
                raise ExplainError(
                    f"the expression is nested too deeply (more than {MAX_DEPTH} levels)",
                    column=k + 1,
                )
        elif ch in ")]}":
            paren = max(paren - 1, 0)
    try:
        with warnings.catch_warnings():  # a SyntaxWarning (a string's odd escape) stays quiet
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="exec")
    except SyntaxError as exc:
        raise ExplainError(f"syntax error: {exc.msg}", column=exc.offset, line=exc.lineno) from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise ExplainError(f"the expression cannot be parsed: {exc}") from None
    depth, where = _depth(tree)
    validator = Validator(text, CALLABLES)
    if depth > MAX_DEPTH:
        assert where is not None
        raise validator.fail(
            where, f"the expression is nested too deeply ({depth} levels; at most {MAX_DEPTH})"
        )
    statements = [validator.statement(s) for s in tree.body]
    if not statements:
        raise ExplainError('the expression has no statements; try "C = A @ B"')
    if not validator.inputs:
        raise ExplainError(
            'the expression has no inputs: use free names such as A and B (e.g. "C = A @ B")'
        )
    outputs = _outputs_of(statements)
    return Program(
        text,
        statements,
        list(validator.inputs),
        sorted(validator.defined),
        outputs,
        validator.calls,
    )


def _outputs_of(statements: list[Statement]) -> list[str]:
    """Assigned names never read by a later statement, and bare expressions, in order."""
    outputs: list[str] = []
    bare = 0
    for k, st in enumerate(statements):
        if st.targets is None:
            bare += 1
            outputs.append("out" if bare == 1 else f"out{bare}")
            continue
        later = {
            n.id for s in statements[k + 1 :] for n in ast.walk(s.value) if isinstance(n, ast.Name)
        }
        outputs.extend(t for t in st.targets if t not in later)
    return outputs


def _shown(text: str, limit: int = 40) -> str:
    """``repr(text)``, shortened to about ``limit`` characters (a 5000-digit size stays one
    readable line)."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 3] + "...")


def _size(part: str) -> int:
    """One size of a shape string, checked as text before ``int`` sees it: ``int`` would take
    non-ASCII digits (``"３"``, ``"٣"``) and raises deep inside for more than 4300 digits.
    Raises ValueError with the reason."""
    p = part.strip()
    if not p:
        raise ValueError("an axis has no size (expected sizes like 3x4 or 2x3x4, each at least 1)")
    if p[0] in "-+" and p[1:].strip().isascii() and p[1:].strip().isdigit():
        raise ValueError(f"sizes must be whole numbers of at least 1, got {_shown(p, 24)}")
    if not (p.isascii() and p.isdigit()):
        odd = next(c for c in p if not (c.isascii() and c.isdigit()))
        if odd.isnumeric():
            raise ValueError(
                f"sizes must be written with the ASCII digits 0-9, got {odd!r} (U+{ord(odd):04X})"
            )
        raise ValueError(f"expected sizes like 3x4 or 2x3x4, got {_shown(p, 24)}")
    digits = p.lstrip("0")
    if len(digits) > len(str(MAX_INPUT_ELEMENTS)):
        raise ValueError(
            f"the size {_shown(p, 24)} ({len(p)} digits) is too large: an input has at most "
            f"{MAX_INPUT_ELEMENTS} elements"
        )
    return int(digits or "0")


def _dims(text: str | Sequence[int]) -> tuple[int, ...]:
    """The sizes of a shape; ValueError with the reason when it is not one we accept."""
    if isinstance(text, str):
        s = text.strip().lower()
        if s in ("", "scalar", "()"):
            return ()
        parts = s.replace(",", "x").replace("*", "x").split("x")
        if len(parts) > MAX_NDIM:  # checked on the text, before any size is read
            raise ValueError(f"{len(parts)} axes; at most {MAX_NDIM} axes")
        dims = tuple(_size(p) for p in parts)
    else:
        try:
            dims = tuple(operator.index(d) for d in text)
        except TypeError:
            raise ValueError("expected a tuple of whole-number sizes") from None
        if len(dims) > MAX_NDIM:
            raise ValueError(f"{len(dims)} axes; at most {MAX_NDIM} axes")
    if any(d < 1 for d in dims):
        raise ValueError(f"sizes must be at least 1, got {min(dims)}")
    if math.prod(dims) > MAX_INPUT_ELEMENTS:
        raise ValueError(
            f"too large ({math.prod(dims)} elements; an input has at most {MAX_INPUT_ELEMENTS})"
        )
    return dims


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"3x4"`` (or ``"3,4"``, ``(3, 4)``) -> ``(3, 4)``; ``"scalar"`` or ``""`` -> ``()``.
    Sizes are written with the ASCII digits 0-9 and are at least 1; at most 6 axes and 100000
    elements. Anything else raises a one-line :class:`ExplainError` that names the problem and
    the limit."""
    try:
        return _dims(text)
    except ValueError as exc:
        shown = _shown(text) if isinstance(text, str) else _shown(repr(text))
        raise ExplainError(f"bad shape {shown}: {exc}") from None


def parse_shapes(shapes: Any) -> dict[str, tuple[int, ...]]:
    """``{"A": (3, 4)}``, ``{"A": "3x4"}`` or ``["A=3x4", ...]`` -> ``{"A": (3, 4)}``."""
    if shapes is None:
        return {}
    if isinstance(shapes, str):
        raise ExplainError("shapes must be a mapping like {'A': (3, 4)} or a list like ['A=3x4']")
    out: dict[str, tuple[int, ...]] = {}
    if isinstance(shapes, Mapping):
        for name, shape in shapes.items():
            try:
                out[str(name)] = _dims(shape)
            except ValueError as exc:
                shown = _shown(shape) if isinstance(shape, str) else _shown(repr(shape))
                raise ExplainError(
                    f"bad shape {shown} for {_shown(str(name), 20)}: {exc}"
                ) from None
        return out
    for item in shapes:
        if not isinstance(item, str) or "=" not in item:
            raise ExplainError(f"bad --shape {_shown(str(item))}: expected NAME=RxC, e.g. A=3x4")
        name, _, shape = item.partition("=")
        try:
            out[name.strip()] = _dims(shape)
        except ValueError as exc:
            raise ExplainError(f"bad --shape {_shown(item)}: {exc}") from None
    return out
