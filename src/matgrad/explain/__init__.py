"""``matgrad.explain``: show how autodiff works for a matrix expression.

``explain("C = A * B")`` evaluates the expression on random inputs and reports, in five
sections, what a person asking "does autodiff expand C = A .* B into C_ij = A_ij B_ij, or keep
a rule for the whole matrix?" wants to see:

1. the inputs (the free names) and outputs, with shapes and dtypes;
2. the graph the forward pass recorded, from each output down to the leaves, as PyTorch shows
   it: ``MmBackward0``, ``AccumulateGrad``, ``next_functions``, ``_saved_self: 3x3``;
3. for each node, the tensor-level rule it applies, quoted from ``derivatives.yaml`` (a
   composite such as ``einsum`` has no rule of its own: the core ops it is written in are
   listed, and they are the nodes);
4. the Jacobian of each output with respect to each input (all rows in one batched backward
   pass), with its structure in words and as a formula: ``diag(vec(B))``, ``kron(I_3, B^T)``;
5. the same expression run through :mod:`matgrad.scalar`, a per-element engine with one node
   per scalar operation: both node counts, both times, and the largest difference between the
   two gradients. Ops with no element-wise form (inv, det, svd, ...) are named, with the reason.

Jacobians use the **row-major** vec convention (NumPy's ``ravel``): ``vec(X) = X.ravel()`` and
``J[i, j] = d vec(Y)[i] / d vec(X)[j]``; see :mod:`matgrad.structure`.

Safety: the expression is parsed with :mod:`ast` and walked by this module's own evaluator,
which accepts only an allow-list (assignments separated by ``;``, names, numbers, arithmetic
including ``@`` and ``**``, comparisons, subscripts with integers and slices, calls of listed
matgrad functions such as ``exp``, ``sum``, ``einsum``, ``linalg.det``, and listed tensor
methods such as ``.sum()``, ``.T``). Everything else is refused before anything runs, with a
message that points at the offending column. User text never reaches ``eval``, ``exec`` or
``compile``.
"""

from __future__ import annotations

import ast
import copy
import html
import importlib
import json
import math
import operator
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from . import scalar as sc
from . import viz
from .core.graph import AccumulateGrad, BatchingUnsupported, Node
from .structure import describe_jacobian
from .tensor import Tensor

__all__ = ["ExplainError", "Program", "Report", "explain", "parse_expression", "parse_shape"]

# -- limits ------------------------------------------------------------------------------------
MAX_CHARS = 2000  #: longest expression accepted
MAX_DEPTH = 50  #: deepest nesting of sub-expressions accepted
MAX_INPUT_ELEMENTS = 100_000  #: largest input tensor
MAX_NDIM = 6  #: most axes of an input
MAX_RESULT_ELEMENTS = 2_000_000  #: largest tensor an operation may produce
MAX_LINALG_SIDE = 1000  #: largest matrix side a linalg function may get
MAX_JACOBIAN_ENTRIES = 4_000_000  #: largest Jacobian computed
BATCH_ELEMENTS = 20_000_000  #: cotangent rows x largest tensor, per batched backward pass
TEXT_MATRIX_SIDE = 12  #: Jacobians up to 12 x 12 are printed in full
JSON_VALUE_LIMIT = 250_000  #: arrays up to this many entries are included in the JSON
SCALAR_NODE_LIMIT = 200_000  #: most scalar nodes the per-element comparison may build
DEFAULT_SHAPE = (3, 3)
DTYPES = ("float32", "float64")

# -- the allow-lists ---------------------------------------------------------------------------
#: Top-level matgrad functions an expression may call (those that exist in this matgrad).
FUNCTIONS: tuple[str, ...] = (
    "abs", "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "sigmoid",
    "relu", "sign", "neg", "square", "add", "sub", "mul", "div", "pow", "maximum", "minimum",
    "clamp", "clip", "where",
    "sum", "mean", "prod", "amax", "amin", "max", "min", "var", "std", "logsumexp", "softmax",
    "log_softmax", "cumsum", "trace",
    "reshape", "permute", "transpose", "t", "flatten", "unflatten", "squeeze", "unsqueeze",
    "diag", "diagonal", "diag_embed", "tril", "triu", "flip", "roll", "stack", "cat",
    "concatenate", "clone",
    "matmul", "mm", "bmm", "mv", "dot", "outer", "inner", "einsum", "kron",
    "det", "inverse", "logdet", "slogdet", "svd", "pinverse", "cholesky", "matrix_exp",
)  # fmt: skip
#: Functions of ``matgrad.linalg`` an expression may call as ``linalg.<name>``.
LINALG_FUNCTIONS: tuple[str, ...] = (
    "inv", "det", "slogdet", "logdet", "svd", "svdvals", "solve", "eigh", "eigvalsh", "eig",
    "eigvals", "cholesky", "qr", "norm", "matrix_norm", "vector_norm", "pinv", "lstsq",
    "matrix_power", "matrix_exp", "cross", "vecdot", "matmul", "diagonal",
    "cond", "matrix_rank", "tensorinv", "tensorsolve", "householder_product", "lu", "lu_factor",
    "lu_solve", "solve_triangular", "inv_ex", "cholesky_ex", "expm", "sqrtm", "logm",
)  # fmt: skip
#: Tensor methods an expression may call (``A.sum()``).
METHODS: tuple[str, ...] = (
    "exp", "log", "log1p", "expm1", "sqrt", "abs", "sign", "sin", "cos", "tan", "tanh",
    "sigmoid", "relu", "neg", "pow", "square", "add", "sub", "mul", "div", "maximum", "minimum",
    "clamp", "clip", "sum", "mean", "prod", "amax", "amin", "max", "min", "var", "std",
    "logsumexp", "softmax", "log_softmax", "cumsum", "reshape", "view", "permute", "transpose",
    "t", "squeeze", "unsqueeze", "flatten", "unflatten", "diagonal", "diag", "diag_embed",
    "trace", "tril", "triu", "flip", "roll", "matmul", "mm", "bmm", "mv", "dot", "outer",
    "det", "inverse", "norm", "clone", "detach", "double", "float", "reshape_as", "view_as",
)  # fmt: skip
#: Tensor attributes an expression may read (``A.T``).
ATTRIBUTES: tuple[str, ...] = ("T", "mT")

_BINOPS: dict[type, tuple[str, str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", "add", operator.add),
    ast.Sub: ("-", "sub", operator.sub),
    ast.Mult: ("*", "mul", operator.mul),
    ast.Div: ("/", "div", operator.truediv),
    ast.Pow: ("**", "pow", operator.pow),
    ast.MatMult: ("@", "matmul", operator.matmul),
}
_REFUSED_BINOPS = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|",
    ast.BitXor: "^", ast.BitAnd: "&",
}  # fmt: skip
_COMPARE: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
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


# -- the available callables, resolved lazily (linalg/einsum may land after this module) --------
def _matgrad() -> Any:
    return importlib.import_module("matgrad")


def _linalg_module() -> Any:
    mod = getattr(_matgrad(), "linalg", None)
    if mod is None:
        try:
            mod = importlib.import_module("matgrad.linalg")
        except Exception:  # noqa: BLE001 - not written yet, or mid-edit
            return None
    return mod


def available_functions() -> dict[str, Callable[..., Any]]:
    """``{name: function}`` of every allow-listed function present in this matgrad:
    top-level names (``exp``) and ``linalg.<name>``."""
    mg = _matgrad()
    out: dict[str, Callable[..., Any]] = {}
    for name in FUNCTIONS:
        fn = getattr(mg, name, None)
        if callable(fn):
            out[name] = fn
    linalg = _linalg_module()
    if linalg is not None:
        for name in LINALG_FUNCTIONS:
            fn = getattr(linalg, name, None)
            if callable(fn):
                out[f"linalg.{name}"] = fn
    return out


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


class _Validator:
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
            if type(node.op) not in _BINOPS:
                op = _REFUSED_BINOPS.get(type(node.op), "?")
                raise self.fail(node, f"the operator `{op}` is not allowed (allowed: + - * / ** @)")
            self.expr(node.left, d)
            self.expr(node.right, d)
        elif isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
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
                if name in FUNCTIONS:
                    raise self.fail(func, f"`{name}` is not available in this version of matgrad")
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
                    if _linalg_module() is None:
                        raise self.fail(
                            func,
                            f"`{name}` is not available: matgrad.linalg is "
                            "not installed in this version of matgrad",
                        )
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
    depth = paren = 0
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
        tree = ast.parse(text, mode="exec")
    except SyntaxError as exc:
        col = exc.offset if exc.lineno in (None, 1) or "\n" not in text else exc.offset
        raise ExplainError(f"syntax error: {exc.msg}", column=col, line=exc.lineno) from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise ExplainError(f"the expression cannot be parsed: {exc}") from None
    depth, where = _depth(tree)
    validator = _Validator(text, available_functions())
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


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"3x4"`` (or ``"3,4"``, ``(3, 4)``) -> ``(3, 4)``; ``"scalar"`` or ``""`` -> ``()``.
    Sizes must be >= 1, at most 6 axes and 100000 elements."""
    if isinstance(text, str):
        s = text.strip().lower()
        if s in ("", "scalar", "()"):
            dims: tuple[int, ...] = ()
        else:
            parts = s.replace(",", "x").replace("*", "x").split("x")
            if not all(p.strip().isdigit() for p in parts):
                raise ExplainError(f"bad shape {text!r}: expected sizes like 3x4 or 2x3x4")
            dims = tuple(int(p) for p in parts)
    else:
        try:
            dims = tuple(int(d) for d in text)
        except (TypeError, ValueError):
            raise ExplainError(f"bad shape {text!r}: expected a tuple of sizes") from None
    if any(d < 1 for d in dims):
        raise ExplainError(f"bad shape {text!r}: sizes must be at least 1")
    if len(dims) > MAX_NDIM:
        raise ExplainError(f"bad shape {text!r}: at most {MAX_NDIM} axes")
    if math.prod(dims) > MAX_INPUT_ELEMENTS:
        raise ExplainError(
            f"shape {text!r} is too large ({math.prod(dims)} elements; at most "
            f"{MAX_INPUT_ELEMENTS})"
        )
    return dims


def _parse_shapes(shapes: Any) -> dict[str, tuple[int, ...]]:
    if shapes is None:
        return {}
    items: Iterable[tuple[str, Any]]
    if isinstance(shapes, Mapping):
        items = shapes.items()
    elif isinstance(shapes, str):
        raise ExplainError("shapes must be a mapping like {'A': (3, 4)} or a list like ['A=3x4']")
    else:
        pairs = []
        for item in shapes:
            if not isinstance(item, str) or "=" not in item:
                raise ExplainError(f"bad --shape {item!r}: expected NAME=RxC, e.g. A=3x4")
            name, _, shape = item.partition("=")
            pairs.append((name.strip(), shape))
        items = pairs
    return {str(name): parse_shape(shape) for name, shape in items}


# -- evaluation ----------------------------------------------------------------------------------
class _Failure(Exception):
    """An error raised inside an allowed operation, with the AST node it happened at."""

    def __init__(self, node: ast.AST, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.node = node
        self.exc = exc


class _NotModelled(Exception):
    """The per-element engine has no expansion of this (allowed) operation."""

    def __init__(self, op: str) -> None:
        super().__init__(op)
        self.op = op


class _TooBig(Exception):
    """The per-element expansion would be too large to build."""


def _is_number(v: Any) -> bool:
    return isinstance(v, bool | int | float | np.integer | np.floating)


def _number_binop(sym: str, a: Any, b: Any) -> Any:
    """Arithmetic on two plain numbers, guarded against huge integer powers."""
    if sym == "**":
        if isinstance(a, int) and isinstance(b, int) and not 0 <= b <= 64:
            a, b = float(a), float(b)
        if isinstance(a, int) and isinstance(b, int) and abs(a).bit_length() * b > 4096:
            a, b = float(a), float(b)
    try:
        return _BINOP_BY_SYMBOL[sym](a, b)
    except OverflowError:
        raise ValueError(f"the number {a} {sym} {b} overflows") from None


_BINOP_BY_SYMBOL = {sym: fn for sym, _, fn in _BINOPS.values()}


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def _matmul_numel(sa: Sequence[int], sb: Sequence[int]) -> int:
    """Elements of ``a @ b`` for operand shapes ``sa``, ``sb`` (0 when they do not fit)."""
    if len(sa) < 2 or len(sb) < 2:
        return max(_numel(sa), _numel(sb))
    batch = _broadcast_numel([sa[:-2], sb[:-2]]) if len(sa) > 2 or len(sb) > 2 else 1
    return batch * int(sa[-2]) * int(sb[-1])


def _broadcast_numel(shapes: Sequence[Sequence[int]]) -> int:
    """Elements of the broadcast of ``shapes``; 0 when they do not broadcast (the operation
    itself then reports the mismatch)."""
    try:
        return _numel(np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        return 0


class _Evaluator:
    """Walks a validated program; the backend does the arithmetic on its values."""

    def __init__(self, program: Program, backend: _Backend) -> None:
        self.program = program
        self.backend = backend

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
                    raise _Failure(
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
            value = self._expr(node, env)
            if not isinstance(node, ast.Name | ast.Constant | ast.Tuple | ast.List):
                self.backend.record(node, value)
        except (_Failure, _NotModelled, _TooBig, sc.UnsupportedScalarOp):
            raise
        except Exception as exc:  # noqa: BLE001 - reported as a one-line error at this node
            raise _Failure(node, exc) from exc
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
            if _is_number(v):
                return -v
            return b.neg(self.operand(v, "-"))
        if isinstance(node, ast.BinOp):
            sym, name, _ = _BINOPS[type(node.op)]
            left, right = self.expr(node.left, env), self.expr(node.right, env)
            if _is_number(left) and _is_number(right):
                return _number_binop(sym, left, right)
            return b.binop(name, self.operand(left, sym), self.operand(right, sym))
        if isinstance(node, ast.Compare):
            sym, fn = _COMPARE[type(node.ops[0])]
            left, right = self.expr(node.left, env), self.expr(node.comparators[0], env)
            if _is_number(left) and _is_number(right):
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
                return b.call(func.id, args, kwargs)
            assert isinstance(func, ast.Attribute)
            if isinstance(func.value, ast.Name) and func.value.id == "linalg":
                return b.call(f"linalg.{func.attr}", args, kwargs)
            obj = self.expr(func.value, env)
            return b.method(self.receiver(obj, f".{func.attr}()"), func.attr, args, kwargs)
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
        if _is_number(v) or self.backend.is_array(v):
            return v
        raise TypeError(f"`{sym}` needs tensors or numbers, got {_kind(v)}")

    def receiver(self, v: Any, what: str) -> Any:
        if self.backend.is_array(v):
            return v
        raise TypeError(f"`{what}` needs a tensor, got {_kind(v)}")


def _kind(v: Any) -> str:
    if isinstance(v, tuple | list):
        return f"a {type(v).__name__} of {len(v)} values (index it, e.g. R[0])"
    if _is_number(v):
        return f"the number {v!r}"
    return type(v).__name__


class _Backend:
    """The arithmetic of one evaluator: matgrad tensors or per-element Scalars."""

    def is_array(self, v: Any) -> bool:
        raise NotImplementedError

    def record(self, node: ast.AST, value: Any) -> None:
        """Called after each operation with its result."""

    def neg(self, a: Any) -> Any:
        raise NotImplementedError

    def binop(self, name: str, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def compare(self, fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
        raise NotImplementedError

    def attribute(self, obj: Any, name: str) -> Any:
        raise NotImplementedError

    def subscript(self, obj: Any, index: Any) -> Any:
        raise NotImplementedError

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def method(self, obj: Any, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError


def _tensors_in(values: Iterable[Any]) -> list[Tensor]:
    out: list[Tensor] = []
    for v in values:
        if isinstance(v, Tensor):
            out.append(v)
        elif isinstance(v, tuple | list):
            out.extend(_tensors_in(v))
    return out


def _einsum_output_size(spec: str, operands: Sequence[Tensor]) -> int:
    spec = spec.replace(" ", "")
    lhs, _, rhs = spec.partition("->")
    sizes: dict[str, int] = {}
    for term, t in zip(lhs.split(","), operands, strict=False):
        letters = [c for c in term if c.isalpha()]
        batch = t.shape[: max(len(t.shape) - len(letters), 0)] if "..." in term else ()
        for c, s in zip(letters, t.shape[len(batch) :], strict=False):
            sizes[c] = max(sizes.get(c, 1), int(s))
        sizes["."] = max(sizes.get(".", 1), _numel(batch))
    if "->" not in spec:
        counts = {c: lhs.count(c) for c in set(lhs) if c.isalpha()}
        rhs = "".join(sorted(c for c, k in counts.items() if k == 1))
    size = sizes.get(".", 1) if "..." in spec else 1
    for c in rhs:
        if c.isalpha():
            size *= sizes.get(c, 1)
    return size


class _TensorBackend(_Backend):
    """Evaluates on matgrad tensors and notes which graph nodes each operation recorded."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]], track: bool = True) -> None:
        self.functions = functions
        self.track = track
        self.created_by: dict[int, str] = {}  # id(node) -> source of the operation
        self.composites: list[tuple[str, str, list[Node]]] = []  # (source, callee, nodes)
        self.largest = 0
        self._seen: set[int] = set()
        self._keep: list[Node] = []  # keeps attributed nodes alive, so ids stay unique
        self.text = ""

    def is_array(self, v: Any) -> bool:
        return isinstance(v, Tensor)

    def check_size(self, numel: int, what: str) -> None:
        if numel > MAX_RESULT_ELEMENTS:
            raise ValueError(f"{what} would have {numel} elements (at most {MAX_RESULT_ELEMENTS})")

    def record(self, node: ast.AST, value: Any) -> None:
        tensors = _tensors_in([value])
        for t in tensors:
            self.largest = max(self.largest, t.numel())
            self.check_size(t.numel(), "the result")
        if not self.track:
            return
        new: list[Node] = []
        stack = [t.grad_fn for t in tensors if t.grad_fn is not None]
        while stack:
            n = stack.pop()
            if id(n) in self._seen or isinstance(n, AccumulateGrad):
                continue
            self._seen.add(id(n))
            self._keep.append(n)
            new.append(n)
            stack.extend(nxt for nxt, _ in n.next_functions if nxt is not None)
        if not new:
            return
        source = " ".join((ast.get_source_segment(self.text, node) or "").split())
        if len(source) > 60:
            source = source[:57] + "..."
        for n in new:
            self.created_by[id(n)] = source
        callee = _callee(node)
        if callee is not None:
            self.composites.append((source, callee, new[::-1]))

    def neg(self, a: Any) -> Any:
        return -a

    def binop(self, name: str, a: Any, b: Any) -> Any:
        sa = tuple(a.shape) if isinstance(a, Tensor) else ()
        sb = tuple(b.shape) if isinstance(b, Tensor) else ()
        if name == "matmul":
            self.check_size(_matmul_numel(sa, sb), "the matrix product")
        else:
            self.check_size(_broadcast_numel([sa, sb]), "the result")
        return _BINOP_BY_SYMBOL[
            {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@"}[name]
        ](a, b)

    def compare(self, fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
        shapes = [tuple(x.shape) if isinstance(x, Tensor) else () for x in (a, b)]
        self.check_size(_broadcast_numel(shapes), "the comparison")
        return fn(a, b)

    def attribute(self, obj: Any, name: str) -> Any:
        return getattr(obj, name)

    def subscript(self, obj: Any, index: Any) -> Any:
        return obj[index]

    def precheck(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        tensors = _tensors_in(list(args) + list(kwargs.values()))
        if not tensors:
            return
        base = name.rsplit(".", 1)[-1]
        if base in ("outer", "ger", "kron"):
            self.check_size(math.prod(t.numel() for t in tensors), f"{base}'s result")
        elif base == "einsum" and args and isinstance(args[0], str):
            self.check_size(_einsum_output_size(args[0], tensors), "einsum's result")
        elif base in ("stack", "cat", "concatenate"):
            self.check_size(sum(t.numel() for t in tensors), f"{base}'s result")
        elif base in ("matmul", "mm", "bmm"):
            if len(tensors) == 2:
                self.check_size(
                    _matmul_numel(tensors[0].shape, tensors[1].shape), "the matrix product"
                )
        elif base in ("diag", "diag_embed"):
            t = tensors[0]
            self.check_size(t.numel() * (t.shape[-1] if t.ndim else 1), f"{base}'s result")
        else:
            shapes = [tuple(t.shape) for t in tensors]
            self.check_size(_broadcast_numel(shapes), f"{base}'s result")
        if name.startswith("linalg.") or base in (
            "det",
            "inverse",
            "logdet",
            "slogdet",
            "svd",
            "pinverse",
            "cholesky",
            "matrix_exp",
        ):
            for t in tensors:
                if t.ndim >= 2 and max(t.shape[-2:]) > MAX_LINALG_SIDE:
                    raise ValueError(
                        f"{name}: matrices larger than {MAX_LINALG_SIDE} on a side "
                        "are not explained"
                    )

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        self.precheck(name, args, kwargs)
        return self.functions[name](*args, **kwargs)

    def method(self, obj: Any, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        self.precheck(name, [obj, *args], kwargs)
        fn = getattr(obj, name, None)
        if fn is None:
            raise AttributeError(f"tensors have no method `.{name}()` in this version of matgrad")
        return fn(*args, **kwargs)


def _callee(node: ast.AST) -> str | None:
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


# -- the per-element evaluator -------------------------------------------------------------------
_SCALAR_UNARY = {
    "exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "sqrt": "sqrt",
    "abs": "abs", "sign": "sign", "sin": "sin", "cos": "cos", "tan": "tan", "tanh": "tanh",
    "sigmoid": "sigmoid", "relu": "relu", "neg": "negative", "square": "square",
}  # fmt: skip
_SCALAR_BINARY = {
    "add": "add", "sub": "subtract", "mul": "multiply", "div": "divide", "pow": "power",
    "maximum": "maximum", "minimum": "minimum",
}  # fmt: skip
_SCALAR_ALIASES = {"inverse": "inv", "pinverse": "pinv", "matrix_exp": "expm"}


def _norm_axes(dim: Any, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted({int(d) % max(ndim, 1) for d in dims}))


class _ScalarBackend(_Backend):
    """Evaluates on NumPy object arrays of :class:`matgrad.scalar.Scalar`: one graph node per
    scalar operation. Ops without an element-wise form raise ``UnsupportedScalarOp``."""

    def __init__(self) -> None:
        self.estimate = 0

    def spend(self, nodes: int) -> None:
        self.estimate += int(nodes)
        if self.estimate > SCALAR_NODE_LIMIT:
            raise _TooBig(
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

    def neg(self, a: Any) -> Any:
        self.spend(np.size(a))
        return self.wrap(sc.apply_elementwise("negative", a))

    def binop(self, name: str, a: Any, b: Any) -> Any:
        if name == "matmul":
            return self.matmul(a, b)
        shape = np.broadcast_shapes(np.shape(a), np.shape(b))
        self.spend(_numel(shape))
        return self.wrap(sc.apply_elementwise(_SCALAR_BINARY[name], a, b))

    def compare(self, fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
        va = sc.values(a) if isinstance(a, np.ndarray) and a.dtype == object else a
        vb = sc.values(b) if isinstance(b, np.ndarray) and b.dtype == object else b
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
            return self.wrap(sc.sum(sc.apply_elementwise("multiply", a, b)))
        if a.ndim == 1:
            return self.matmul(a[None, :], b)[0]
        if b.ndim == 1:
            return self.matmul(a, b[:, None])[:, 0]
        if a.ndim == 2 and b.ndim == 2:
            m, k = a.shape
            n = b.shape[1]
            self.spend(m * n * (2 * k - 1))
            return sc.matmul(a, b)
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = np.broadcast_to(a, batch + a.shape[-2:])
        b = np.broadcast_to(b, batch + b.shape[-2:])
        out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=object)
        for idx in np.ndindex(*batch):
            out[idx] = self.matmul(a[idx], b[idx])
        return out

    def reduce(self, arr: Any, dim: Any, keepdim: bool, mean: bool) -> Any:
        arr = np.asarray(arr, dtype=object)
        axes = _norm_axes(dim, arr.ndim)
        if arr.ndim == 0:
            return arr
        rest = [ax for ax in range(arr.ndim) if ax not in axes]
        moved = np.transpose(arr, rest + list(axes))
        k = _numel([arr.shape[ax] for ax in axes])
        rows = moved.reshape(-1, k)
        self.spend(rows.shape[0] * k)
        red = [sc.mean(r) if mean else sc.sum(r) for r in rows]
        out = np.empty(len(red), dtype=object)
        for i, v in enumerate(red):
            out[i] = v
        shape = [arr.shape[ax] for ax in rest]
        out = out.reshape(shape)
        if keepdim:
            out = out.reshape([1 if ax in axes else arr.shape[ax] for ax in range(arr.ndim)])
        return out

    def einsum(self, spec: str, *ops: Any) -> Any:
        spec = spec.replace(" ", "")
        if "." in spec:
            raise _NotModelled("einsum with ...")
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
        n_sum = _numel([sizes[c] for c in summed])
        self.spend(_numel(out_shape) * n_sum * len(ops))
        out = np.empty(out_shape, dtype=object)
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

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        base = name.removeprefix("linalg.")
        base = _SCALAR_ALIASES.get(base, base)
        if base in sc.NO_ELEMENTWISE_FORM:
            sc.unsupported(base)
        if base == "einsum" and args and isinstance(args[0], str):
            return self.einsum(args[0], *args[1:])
        if not args:
            raise _NotModelled(name)
        return self.method(args[0], base, list(args[1:]), kwargs, label=name)

    def method(
        self, obj: Any, name: str, args: list[Any], kwargs: dict[str, Any], label: str | None = None
    ) -> Any:
        label = label or f".{name}()"
        name = _SCALAR_ALIASES.get(name, name)
        if name in sc.NO_ELEMENTWISE_FORM:
            sc.unsupported(name)
        if not isinstance(obj, np.ndarray):
            raise _NotModelled(label)
        kw = dict(kwargs)
        if name in _SCALAR_UNARY and not args and not kw:
            self.spend(obj.size)
            return self.wrap(sc.apply_elementwise(_SCALAR_UNARY[name], obj))
        if name in _SCALAR_BINARY and len(args) == 1 and not kw:
            return (
                self.binop(name, obj, args[0])
                if name in ("add", "sub", "mul", "div", "pow")
                else self.wrap(sc.apply_elementwise(_SCALAR_BINARY[name], obj, args[0]))
            )
        if name in ("sum", "mean"):
            dim = args[0] if args else kw.pop("dim", None)
            keepdim = bool(args[1]) if len(args) > 1 else bool(kw.pop("keepdim", False))
            if kw:
                raise _NotModelled(label)
            return self.reduce(obj, dim, keepdim, name == "mean")
        if name in ("matmul", "mm", "mv", "dot") and len(args) == 1:
            return self.matmul(obj, args[0])
        if name == "outer" and len(args) == 1:
            return self.binop("mul", obj[:, None], np.asarray(args[0])[None, :])
        if name == "inner" and len(args) == 1:
            return self.reduce(self.binop("mul", obj, args[0]), -1, False, False)
        if name in ("reshape", "view"):
            shape = args[0] if len(args) == 1 and isinstance(args[0], tuple | list) else args
            return obj.reshape(tuple(shape))
        if name in ("reshape_as", "view_as") and len(args) == 1:
            return obj.reshape(np.shape(args[0]))
        if name == "permute":
            dims = args[0] if len(args) == 1 and isinstance(args[0], tuple | list) else args
            return np.transpose(obj, tuple(dims))
        if name == "transpose" and len(args) == 2:
            return np.swapaxes(obj, args[0], args[1])
        if name == "t":
            return obj.T
        if name == "flatten" and not args and not kw:
            return obj.reshape(-1)
        if name == "squeeze":
            return obj.squeeze() if not args else np.squeeze(obj, args[0])
        if name == "unsqueeze" and len(args) == 1:
            return np.expand_dims(obj, args[0])
        if name in ("clone", "float", "double"):
            return obj
        if name == "detach":  # plain floats: constants, not graph nodes
            return sc.values(obj).astype(object)
        if name == "diagonal" and not args and not kw:
            return np.diagonal(obj).copy()
        if name == "trace" and obj.ndim == 2:
            return self.reduce(np.diagonal(obj).copy(), None, False, False)
        if name in ("tril", "triu"):
            k = args[0] if args else kw.pop("diagonal", 0)
            mask = (np.tril if name == "tril" else np.triu)(np.ones(obj.shape[-2:], bool), k)
            return np.where(mask, obj, 0.0)
        if name == "flip":
            return np.flip(obj, args[0] if args else kw.get("dims"))
        if name == "where" and len(args) == 2:  # where(cond, a, b): obj is cond
            return self.wrap(np.where(np.asarray(obj, dtype=bool), args[0], args[1]))
        raise _NotModelled(label)


# -- building the report -------------------------------------------------------------------------
def _yaml_rows() -> list[str]:
    return resources.files("matgrad").joinpath("derivatives.yaml").read_text().splitlines()


def _quote_row(lines: list[str], line: int) -> list[str]:
    """The YAML text of the row starting at (1-based) ``line``."""
    if not 1 <= line <= len(lines):
        return []
    out = [lines[line - 1]]
    for text in lines[line:]:
        if not text.strip() or not text.startswith(" "):
            break
        out.append(text)
    return out


def _helpers(formulas: Iterable[str]) -> dict[str, str]:
    """``{name: first paragraph of its docstring}`` for the helpers of ``matgrad.formulas``
    that rule formulas (our own table's text) call."""
    helpers_mod = importlib.import_module("matgrad.formulas")
    out: dict[str, str] = {}
    for text in formulas:
        try:
            tree = ast.parse(str(text), mode="eval")
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                fn = getattr(helpers_mod, node.func.id, None)
                if fn is not None and not node.func.id.startswith("_") and callable(fn):
                    doc = (fn.__doc__ or "").strip().split("\n\n")[0]
                    out[node.func.id] = " ".join(doc.split())
    return out


def _to_list(arr: np.ndarray) -> Any:
    """A nested list with non-finite entries as None (strict JSON)."""
    a = np.asarray(arr, dtype=np.float64)
    if np.all(np.isfinite(a)):
        return a.tolist()
    obj = a.astype(object)
    obj[~np.isfinite(a)] = None
    return obj.tolist()


def _value_json(arr: np.ndarray) -> Any:
    return _to_list(arr) if np.size(arr) <= JSON_VALUE_LIMIT else None


def _dtype_name(t: Tensor) -> str:
    return str(np.dtype(t.dtype))


def _array(t: Tensor) -> np.ndarray:
    return np.array(t.detach().numpy(), copy=True)


def _flatten_named(name: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, tuple | list):
        out: list[tuple[str, Any]] = []
        for k, v in enumerate(value):
            out.extend(_flatten_named(f"{name}[{k}]", v))
        return out
    return [(name, value)]


def _make_inputs(
    program: Program,
    shapes: Mapping[str, tuple[int, ...]],
    seed: int,
    dtype: str,
    values: Mapping[str, Any] | None,
) -> dict[str, np.ndarray]:
    unknown = sorted(set(shapes) - set(program.inputs))
    if unknown:
        raise ExplainError(
            f"--shape names {', '.join(unknown)}, which "
            f"{'is not an input' if len(unknown) == 1 else 'are not inputs'} of "
            f"the expression (inputs: {', '.join(program.inputs)})"
        )
    rng = np.random.default_rng(seed)
    out = {}
    for name in program.inputs:
        shape = shapes.get(name, DEFAULT_SHAPE)
        if values is not None and name in values:
            arr = np.asarray(getattr(values[name], "_data", values[name]), dtype=dtype)
            parse_shape(arr.shape)
        else:
            arr = rng.standard_normal(shape).astype(dtype)
        out[name] = arr
    return out


def _leaf_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
    return {n: Tensor(a.copy(), requires_grad=True) for n, a in arrays.items()}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _failure_error(program: Program, failure: _Failure) -> ExplainError:
    validator = _Validator(program.text, {})
    line, col = validator.position(failure.node)
    exc = failure.exc
    kind = (
        ""
        if isinstance(exc, ValueError | RuntimeError | TypeError | IndexError)
        else f"{type(exc).__name__}: "
    )
    err = ExplainError(kind + _one_line(exc), col, validator.segment(failure.node), line)
    err.__cause__ = exc
    return err


def _evaluate(program: Program, leaves: Mapping[str, Any], backend: _Backend) -> dict[str, Any]:
    with np.errstate(all="ignore"):
        return _Evaluator(program, backend).run(leaves)


def _jacobian_rows(y: Tensor, xs: list[Tensor], rows: np.ndarray, autograd: Any) -> list[Any]:
    """One batched backward pass: gradients of the rows' cotangents for every input."""
    cot = Tensor(rows.reshape((rows.shape[0],) + tuple(y.shape)))
    return list(
        autograd.grad(
            [y], xs, grad_outputs=[cot], retain_graph=True, allow_unused=True, is_grads_batched=True
        )
    )


def _compute_jacobians(
    outputs: list[tuple[str, Tensor]], inputs: dict[str, Tensor], largest: int
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], np.ndarray]]:
    autograd = _matgrad().autograd
    entries: list[dict[str, Any]] = []
    arrays: dict[tuple[str, str], np.ndarray] = {}
    for oname, y in outputs:
        p = y.numel()
        differentiable = y.requires_grad and np.dtype(y.dtype).kind == "f"
        todo = []
        for iname, x in inputs.items():
            q = x.numel()
            entry: dict[str, Any] = {
                "output": oname,
                "input": iname,
                "shape": [p, q],
                "method": None,
                "note": None,
            }
            entries.append(entry)
            if not differentiable:
                entry["note"] = (
                    f"{oname} is not differentiable (dtype {y.dtype})"
                    if np.dtype(y.dtype).kind != "f"
                    else f"{oname} does not depend on the inputs"
                )
                if np.dtype(y.dtype).kind == "f":
                    arrays[(oname, iname)] = np.zeros((p, q), dtype=y.dtype)
                    entry["method"] = None
            elif p * q > MAX_JACOBIAN_ENTRIES:
                entry["note"] = (
                    f"too large to compute ({p}x{q}; at most {MAX_JACOBIAN_ENTRIES} entries)"
                )
            else:
                todo.append((iname, x, entry))
        if not todo:
            continue
        xs = [x for _, x, _ in todo]
        eye = np.eye(p, dtype=y.dtype)
        chunk = max(1, min(p, BATCH_ELEMENTS // max(largest, 1)))
        blocks: list[list[np.ndarray]] = [[] for _ in todo]
        method = "batched" if chunk >= p else f"batched, {math.ceil(p / chunk)} passes"
        with np.errstate(all="ignore"):
            try:
                for start in range(0, p, chunk):
                    grads = _jacobian_rows(y, xs, eye[start : start + chunk], autograd)
                    for k, g in enumerate(grads):
                        rows = min(chunk, p - start)
                        blocks[k].append(
                            np.zeros((rows, xs[k].numel()), dtype=y.dtype)
                            if g is None
                            else g.numpy().reshape(rows, -1)
                        )
            except BatchingUnsupported:
                method = "loop (a rule does not take batched cotangents)"
                blocks = [[] for _ in todo]
                for i in range(p):
                    cot = Tensor(eye[i].reshape(tuple(y.shape)))
                    grads = autograd.grad(
                        [y], xs, grad_outputs=[cot], retain_graph=True, allow_unused=True
                    )
                    for k, g in enumerate(grads):
                        blocks[k].append(
                            np.zeros((1, xs[k].numel()), dtype=y.dtype)
                            if g is None
                            else g.numpy().reshape(1, -1)
                        )
        for k, (iname, _, entry) in enumerate(todo):
            arrays[(oname, iname)] = np.concatenate(blocks[k], axis=0)
            entry["method"] = method
    return entries, arrays


def _time_call(fn: Callable[[], Any], budget: float = 0.25, repeats: int = 5) -> float:
    best = math.inf
    spent = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best = min(best, took)
        spent += took
        if spent > budget:
            break
    return best


def _float_outputs(named: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [
        (n, v)
        for n, v in named
        if isinstance(v, Tensor) and v.requires_grad and np.dtype(v.dtype).kind == "f"
    ]


def _compare(
    program: Program,
    arrays: Mapping[str, np.ndarray],
    functions: Mapping[str, Any],
    tensor_grads: Mapping[str, np.ndarray],
    graph_counts: tuple[int, int],
    differentiable: bool = True,
) -> dict[str, Any]:
    """Section 5: the same program on per-element Scalars."""
    autograd = _matgrad().autograd
    result: dict[str, Any] = {
        "tensor": {
            "nodes": graph_counts[0] + graph_counts[1],
            "op_nodes": graph_counts[0],
            "leaf_nodes": graph_counts[1],
            "seconds": None,
        },
        "scalar": None,
        "max_abs_diff": None,
        "status": "ok",
        "op": None,
        "why": None,
    }

    def tensor_run() -> None:
        leaves = _leaf_tensors(arrays)
        env = _evaluate(program, leaves, _TensorBackend(functions, track=False))
        outs = _float_outputs([p for n in program.outputs for p in _flatten_named(n, env[n])])
        if outs:
            autograd.grad(
                [t for _, t in outs],
                list(leaves.values()),
                grad_outputs=[np.ones(t.shape, dtype=t.dtype) for _, t in outs],
                allow_unused=True,
            )

    result["tensor"]["seconds"] = _time_call(tensor_run)
    if not differentiable:
        result.update(status="skipped", why="no output depends differentiably on the inputs")
        return result

    state: dict[str, Any] = {}

    def scalar_run() -> None:
        lifted = {n: sc.lift(a.astype(np.float64)) for n, a in arrays.items()}
        with np.errstate(all="ignore"):
            env = _Evaluator(program, _ScalarBackend()).run(lifted)
        outs = []
        for n in program.outputs:
            for name, v in _flatten_named(n, env[n]):
                if isinstance(v, np.ndarray) and v.dtype == object:
                    outs.append((name, v))
        state["roots"] = [x for _, v in outs for x in v.ravel().tolist()]
        state["leaves"] = [x for a in lifted.values() for x in a.ravel().tolist()]
        loss = sc.sum([sc.sum(v) for _, v in outs]) if outs else sc.Scalar(0.0)
        sc.backward(loss)
        state["grads"] = {n: sc.grads(a) for n, a in lifted.items()}

    try:
        seconds = _time_call(scalar_run, budget=1.0, repeats=3)
    except sc.UnsupportedScalarOp as exc:
        result.update(status="no_elementwise_form", op=exc.op_name, why=" ".join(str(exc).split()))
        return result
    except _NotModelled as exc:
        result.update(
            status="not_modelled",
            op=exc.op,
            why=f"the per-element engine has no expansion of `{exc.op}` (it models "
            "elementwise ops, +, -, *, /, **, @, sum, mean, transposes, reshapes, "
            "indexing and einsum)",
        )
        return result
    except _TooBig as exc:
        result.update(status="too_large", why=str(exc))
        return result
    except _Failure as exc:
        if isinstance(exc.exc, sc.UnsupportedScalarOp):
            result.update(
                status="no_elementwise_form", op=exc.exc.op_name, why=" ".join(str(exc.exc).split())
            )
        else:
            result.update(status="failed", why=_one_line(exc.exc))
        return result
    # node counts of the graph before the loss sum(outputs) was added (of the last run)
    nodes = sc.count_nodes(state["roots"])
    unreached = sc.count_nodes(state["roots"] + state["leaves"]) - nodes
    leaf_nodes = len(state["leaves"]) - unreached
    state["nodes"] = nodes
    result["scalar"] = {
        "nodes": state["nodes"],
        "op_nodes": state["nodes"] - leaf_nodes,
        "leaf_nodes": leaf_nodes,
        "seconds": seconds,
    }
    diffs = [
        float(np.max(np.abs(state["grads"][n] - tensor_grads[n].astype(np.float64))))
        for n in arrays
        if n in tensor_grads and tensor_grads[n].size
    ]
    finite = [d for d in diffs if math.isfinite(d)]
    result["max_abs_diff"] = max(finite) if finite else None
    return result


def explain(
    expr: str,
    shapes: Mapping[str, Sequence[int] | str] | Iterable[str] | None = None,
    seed: int = 0,
    dtype: str = "float64",
    *,
    values: Mapping[str, Any] | None = None,
    compare: bool = True,
) -> Report:
    """Explain how autodiff differentiates ``expr``; returns a :class:`Report`.

    ``expr`` is one or more statements separated by ``;`` or newlines, such as
    ``"C = A * B"``, ``"L = linalg.det(A @ B.T)"`` or ``"T = A @ B; L = T.sum()"``. Its free
    names are the inputs: each gets a random standard-normal tensor (``seed``, ``dtype``
    ``"float32"`` or ``"float64"``) with ``requires_grad=True``, of shape ``shapes[name]``
    (a tuple or a string like ``"3x4"``; also a list like ``["A=3x4"]``), default 3x3;
    ``values`` may give some inputs' values instead. Outputs are the names assigned and not
    used later (a bare expression is named ``out``). ``compare=False`` skips section 5.

    Only an allow-list is evaluated (see :func:`parse_expression`); anything else raises
    :class:`ExplainError` before any evaluation, as do shape mismatches and other errors of the
    operations (one line, naming the column).

    Example::

        report = explain("C = A * B")
        print(report)                   # the five sections, as text
        report.jacobian("C", "A")       # a NumPy array, 9 x 9, equal to diag(vec(B))
        report.to_json()                # the same report as JSON
    """
    program = parse_expression(expr)
    dtype = str(np.dtype(dtype)) if dtype is not None else "float64"
    if dtype not in DTYPES:
        raise ExplainError(f"dtype must be float32 or float64, got {dtype}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ExplainError(f"seed must be a non-negative integer, got {seed!r}")
    arrays = _make_inputs(program, _parse_shapes(shapes), int(seed), dtype, values)
    run = _forward(program, arrays)
    data: dict[str, Any] = {
        "expression": program.text,
        "seed": int(seed),
        "dtype": dtype,
        "vec_convention": "row-major: vec(X) = X.ravel(); J[i, j] = d vec(Y)[i] / d vec(X)[j]",
        "notes": [],
    }
    _section_inputs_outputs(run, data)
    nodes, ids = _section_graph(run, data)
    _section_rules(run, nodes, ids, data)
    jacobians = _section_jacobians(run, data)
    grads = _gradients_of_sum(run)
    data["gradients"] = {n: _value_json(g) for n, g in grads.items()}
    n_leaf = sum(isinstance(n, AccumulateGrad) for n in nodes)
    data["comparison"] = (
        _compare(
            program,
            arrays,
            run.backend.functions,
            grads,
            (len(nodes) - n_leaf, n_leaf),
            bool(_float_outputs(run.outputs)),
        )
        if compare
        else None
    )
    dot_text = viz.to_dot(
        dict(run.outputs),
        names={n: v for n, v in run.named if isinstance(v, Tensor)},
        created_by=run.backend.created_by,
    )
    return Report(data, dot_text, jacobians)


@dataclass
class _Run:
    """The forward pass of a program on its inputs: what every section reads."""

    program: Program
    arrays: dict[str, np.ndarray]  # input values
    leaves: dict[str, Tensor]  # the input tensors (requires_grad=True)
    named: list[tuple[str, Any]]  # inputs, then assigned names (tuples flattened: R[0], ...)
    outputs: list[tuple[str, Tensor]]
    tensor_names: dict[int, str]  # id(tensor) -> its name
    backend: _TensorBackend


def _forward(program: Program, arrays: dict[str, np.ndarray]) -> _Run:
    """Evaluate ``program`` on tensors made from ``arrays``, noting which graph nodes each
    operation recorded; errors of the operations become one-line ExplainErrors."""
    leaves = _leaf_tensors(arrays)
    backend = _TensorBackend(available_functions())
    backend.text = program.text
    try:
        env = _evaluate(program, leaves, backend)
    except _Failure as failure:
        raise _failure_error(program, failure) from failure.exc
    named: list[tuple[str, Any]] = list(leaves.items())
    for name in program.assigned:
        if name in env:
            named.extend(_flatten_named(name, env[name]))
    outputs: list[tuple[str, Tensor]] = []
    for name in program.outputs:
        for n, v in _flatten_named(name, env[name]):
            if not isinstance(v, Tensor):
                raise ExplainError(
                    f"output `{n}` is {_kind(v)}, not a tensor: outputs must be "
                    "tensors computed from the inputs"
                )
            outputs.append((n, v))
    tensor_names: dict[int, str] = {}
    for name, v in named:
        if isinstance(v, Tensor):
            tensor_names.setdefault(id(v), name)
    return _Run(program, arrays, leaves, named, outputs, tensor_names, backend)


def _section_inputs_outputs(run: _Run, data: dict[str, Any]) -> None:
    """Section 1: inputs, intermediates and outputs with shapes, dtypes and values."""
    sources = {t: st.source for st in run.program.statements for t in (st.targets or [])}
    bare = [st.source for st in run.program.statements if st.targets is None]
    for k, src in enumerate(bare):
        sources["out" if k == 0 else f"out{k + 1}"] = src
    output_names = {n for n, _ in run.outputs}
    data["inputs"] = [
        {"name": n, "shape": list(a.shape), "dtype": str(a.dtype), "value": _value_json(a)}
        for n, a in run.arrays.items()
    ]
    data["outputs"] = [
        {
            "name": n,
            "shape": list(t.shape),
            "dtype": _dtype_name(t),
            "requires_grad": bool(t.requires_grad),
            "value": _value_json(_array(t)),
            "source": sources.get(n.split("[")[0], ""),
        }
        for n, t in run.outputs
    ]
    data["intermediates"] = [
        {
            "name": n,
            "shape": list(v.shape),
            "dtype": _dtype_name(v),
            "source": sources.get(n.split("[")[0], ""),
        }
        for n, v in run.named
        if isinstance(v, Tensor) and n not in run.arrays and n not in output_names
    ]
    if any(not np.all(np.isfinite(_array(t))) for _, t in run.outputs):
        data["notes"].append(
            "some output values are NaN or infinite: the inputs are standard "
            "normal, so log/sqrt of negative numbers give NaN (try exp(A) or "
            "abs(A) as the argument)"
        )


def _section_graph(run: _Run, data: dict[str, Any]) -> tuple[list[Node], dict[int, int]]:
    """Section 2: every node from the outputs down to the leaves, numbered depth-first."""
    roots = [viz.root_node(t) for _, t in run.outputs]
    nodes = viz.graph_nodes(roots)
    ids = {id(n): k + 1 for k, n in enumerate(nodes)}
    entries = []
    for node in nodes:
        entry: dict[str, Any] = {
            "id": ids[id(node)],
            "name": node.name(),
            "rule": None,
            "line": None,
            "created_by": run.backend.created_by.get(id(node)),
            "saved": {},
            "saved_refs": {},
            "next": [],
            "leaf": None,
        }
        if isinstance(node, AccumulateGrad):
            var = node.variable
            entry["leaf"] = run.tensor_names.get(id(var), "leaf")
            entry["leaf_shape"] = list(var.shape)
        else:
            rule = getattr(node, "rule", None)
            if rule is not None:
                entry["rule"], entry["line"] = rule.name, rule.line
            for sname, value in viz.saved_values(node):
                entry["saved"][sname] = viz.value_text(value)
                if isinstance(value, Tensor) and id(value) in run.tensor_names:
                    entry["saved_refs"][sname] = run.tensor_names[id(value)]
        for (nxt, nr), label in zip(node.next_functions, viz.edge_labels(node), strict=False):
            entry["next"].append(
                {"input": label, "node": None if nxt is None else ids[id(nxt)], "output_nr": nr}
            )
        entries.append(entry)
    data["graph"] = {
        "roots": [
            {"output": n, "node": None if r is None else ids[id(r)]}
            for (n, _), r in zip(run.outputs, roots, strict=True)
        ],
        "nodes": entries,
    }
    return nodes, ids


def _section_rules(run: _Run, nodes: list[Node], ids: dict[int, int], data: dict) -> None:
    """Section 3: each rule node's row of derivatives.yaml, and the calls that have no rule of
    their own (composites such as einsum, and aliases such as ``A.det()``)."""
    yaml_lines = _yaml_rows()
    rules = []
    for node in nodes:
        rule = getattr(node, "rule", None)
        if rule is None:
            continue
        rules.append(
            {
                "node": ids[id(node)],
                "name": node.name(),
                "rule": rule.name,
                "line": rule.line,
                "yaml": _quote_row(yaml_lines, rule.line),
                "vjp": dict(rule.vjp_formulas),
                "jvp": rule.jvp_formula,
                "inputs": list(rule.inputs),
                "helpers": _helpers(rule.vjp_formulas.values()),
            }
        )
    data["rules"] = rules
    composites = []
    for source, callee, made in run.backend.composites:
        in_graph = sorted((n for n in made if id(n) in ids), key=lambda n: -ids[id(n)])
        core = [r.name for r in (getattr(n, "rule", None) for n in in_graph) if r is not None]
        base = callee.strip(".()").removeprefix("linalg.")
        if len(in_graph) == 1 and core and core[0] in (base, f"linalg_{base}"):
            continue  # the call is the core op itself
        if in_graph:
            composites.append(
                {
                    "call": source,
                    "callee": callee,
                    "kind": "composite" if len(in_graph) > 1 else "alias",
                    "nodes": [ids[id(n)] for n in in_graph],
                    "core_ops": core,
                }
            )
    data["composites"] = composites


def _section_jacobians(run: _Run, data: dict[str, Any]) -> dict[tuple[str, str], np.ndarray]:
    """Section 4: the Jacobians (one batched backward pass per output) and their structure,
    named against the inputs, intermediates, outputs and the inverses of square ones."""
    entries, arrays = _compute_jacobians(run.outputs, run.leaves, run.backend.largest)
    candidates: dict[str, np.ndarray] = dict(run.arrays)
    for name, v in run.named:
        if isinstance(v, Tensor) and name not in candidates:
            candidates[name] = _array(v)
    for name, a in list(candidates.items()):  # inverses name the rules of inv, det, solve
        if a.ndim == 2 and a.shape[0] == a.shape[1] > 1 and np.all(np.isfinite(a)):
            with np.errstate(all="ignore"):
                if np.linalg.cond(a) < 1e8:
                    candidates[f"{name}^-1"] = np.linalg.inv(a)
    shapes = {n: t.shape for n, t in run.outputs}
    for entry in entries:
        J = arrays.get((entry["output"], entry["input"]))
        entry["matrix"] = None if J is None else _value_json(J)
        entry["structure"] = (
            None
            if J is None
            else describe_jacobian(
                J, shapes[entry["output"]], run.arrays[entry["input"]].shape, candidates
            ).to_dict()
        )
    data["jacobians"] = entries
    return arrays


def _gradients_of_sum(run: _Run) -> dict[str, np.ndarray]:
    """The gradient of the sum of all (float) outputs with respect to each input."""
    float_outs = _float_outputs(run.outputs)
    grads = {n: np.zeros(a.shape, dtype=a.dtype) for n, a in run.arrays.items()}
    if not float_outs:
        return grads
    with np.errstate(all="ignore"):
        gs = _matgrad().autograd.grad(
            [t for _, t in float_outs],
            list(run.leaves.values()),
            grad_outputs=[np.ones(t.shape, dtype=t.dtype) for _, t in float_outs],
            retain_graph=True,
            allow_unused=True,
        )
    for name, g in zip(run.leaves, gs, strict=True):
        if g is not None:
            grads[name] = _array(g)
    return grads


# -- the report ------------------------------------------------------------------------------------
class Report:
    """What :func:`explain` found. ``str(report)`` is the five-section text; ``to_dict()`` and
    ``to_json()`` give the same content as data (Jacobians as nested lists, row-major vec);
    ``to_dot()`` the graph as Graphviz DOT, ``to_svg()`` rendered (needs Graphviz);
    ``_repr_html_`` shows it in a notebook; ``jacobian(out, inp)`` one Jacobian as an array."""

    def __init__(
        self, data: dict[str, Any], dot: str, jacobians: Mapping[tuple[str, str], np.ndarray]
    ) -> None:
        self._data = data
        self._dot = dot
        self._jacobians = dict(jacobians)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (a deep copy)."""
        return copy.deepcopy(self._data)

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text (strict: NaN and infinities are written as null)."""
        return json.dumps(self._data, indent=indent, allow_nan=False)

    def to_dot(self) -> str:
        """The graph as Graphviz DOT text: one box per node, saved tensors with shapes."""
        return self._dot

    def to_svg(self) -> str:
        """The graph rendered as SVG text; needs Graphviz's ``dot`` program."""
        return viz.render(self._dot, "svg").decode()

    def jacobian(self, output: str, input: str) -> np.ndarray:  # noqa: A002
        """The Jacobian ``d vec(output) / d vec(input)`` (row-major vec) as an array."""
        try:
            return self._jacobians[(output, input)].copy()
        except KeyError:
            raise KeyError(f"no Jacobian of {output!r} with respect to {input!r}") from None

    @property
    def inputs(self) -> list[str]:
        """Names of the inputs."""
        return [i["name"] for i in self._data["inputs"]]

    @property
    def outputs(self) -> list[str]:
        """Names of the outputs."""
        return [o["name"] for o in self._data["outputs"]]

    def __str__(self) -> str:
        return _render_text(self._data)

    def __repr__(self) -> str:
        return f"<matgrad.explain Report for {self._data['expression']!r}>"

    def _repr_html_(self) -> str:
        svg = ""
        try:
            svg = self.to_svg()
            svg = svg[svg.find("<svg") :]
        except Exception:  # noqa: BLE001 - the picture is optional (Graphviz may be missing)
            svg = ""
        return f"<div class='matgrad-explain'>{svg}<pre>{html.escape(str(self))}</pre></div>"

    def plot(self, path: str) -> str:
        """Save a grid of Jacobian heatmaps (outputs x inputs) to ``path`` (PNG, SVG, PDF...);
        needs matplotlib (``pip install 'matgrad[plot]'``)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ExplainError(
                "plotting needs matplotlib, which is not installed: pip install "
                "'matgrad[plot]' (or pip install matplotlib)"
            ) from None
        outs, ins = self.outputs, self.inputs
        fig, axes = plt.subplots(
            len(outs), len(ins), squeeze=False, figsize=(3.2 * len(ins) + 1, 3.0 * len(outs) + 0.6)
        )
        for r, o in enumerate(outs):
            for c, i in enumerate(ins):
                ax = axes[r][c]
                J = self._jacobians.get((o, i))
                if J is None:
                    ax.set_axis_off()
                    ax.set_title(f"d{o}/d{i}: not computed", fontsize=9)
                    continue
                lim = float(np.nanmax(np.abs(J))) if J.size else 1.0
                im = ax.imshow(
                    J, cmap="RdBu_r", vmin=-lim or -1, vmax=lim or 1, interpolation="nearest"
                )
                entry = next(
                    e for e in self._data["jacobians"] if e["output"] == o and e["input"] == i
                )
                formula = (entry.get("structure") or {}).get("formula") or ""
                ax.set_title(f"d vec({o}) / d vec({i})\n{formula}", fontsize=9)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.suptitle(f"Jacobians of {self._data['expression']} (row-major vec)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return path


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def _render_text(d: dict[str, Any]) -> str:
    out: list[str] = []
    w = out.append
    w(f"matgrad explain: {d['expression']}")
    w(f"(random standard-normal inputs, seed {d['seed']}, {d['dtype']})")
    w("")
    # 1
    w("1. Inputs and outputs")
    rows = [
        (i["name"], "input", viz.shape_text(i["shape"]), i["dtype"], "requires_grad=True")
        for i in d["inputs"]
    ]
    rows += [
        (m["name"], "intermediate", viz.shape_text(m["shape"]), m["dtype"], m["source"])
        for m in d["intermediates"]
    ]
    rows += [
        (o["name"], "output", viz.shape_text(o["shape"]), o["dtype"], o["source"])
        for o in d["outputs"]
    ]
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    for r in rows:
        w("   " + "  ".join(r[k].ljust(widths[k]) for k in range(4)) + "  " + r[4])
    for note in d["notes"]:
        w(f"   note: {note}")
    w("")
    # 2
    nodes = {n["id"]: n for n in d["graph"]["nodes"]}
    w("2. Graph: from each output's grad_fn down to the leaves along next_functions")
    first = d["graph"]["roots"][0]["output"] if d["graph"]["roots"] else "C"
    w(
        f"   (as PyTorch shows {first}.grad_fn, {first}.grad_fn.next_functions, "
        f"{first}.grad_fn._saved_self)"
    )
    shown: set[int] = set()
    budget = [400]
    for root in d["graph"]["roots"]:
        out_meta = next(o for o in d["outputs"] if o["name"] == root["output"])
        w(f"   {root['output']} ({viz.shape_text(out_meta['shape'])} {out_meta['dtype']})")
        if root["node"] is None:
            w("   `- grad_fn = None: it does not require grad")
            continue
        _render_tree(nodes, root["node"], "grad_fn", out, shown, budget)
    w("")
    # 3
    w("3. Rules: what each node applies, quoted from derivatives.yaml")
    w(
        "   (a vector-Jacobian product per input: `grad` is the gradient arriving at the node's "
        "output)"
    )
    for c in d["composites"]:
        ops = ", ".join(f"#{i} {nodes[i]['name']}" for i in c["nodes"])
        if c["kind"] == "alias":
            _wrap(
                out,
                f"`{c['call']}` has no rule of its own: it records the core op "
                f"`{c['core_ops'][0]}` ({ops}).",
                "   ",
            )
        else:
            _wrap(
                out,
                f"`{c['call']}` is a composite with no rule of its own: it is written in "
                f"core ops, and they are what the graph holds ({len(c['nodes'])} nodes, in "
                f"the order they ran): {ops}.",
                "   ",
            )
    quoted: set[str] = set()
    for r in d["rules"]:
        node = nodes[r["node"]]
        src = f"  recorded by `{node['created_by']}`" if node["created_by"] else ""
        w(
            f"   #{r['node']} {r['name']}: rule `{r['rule']}`, derivatives.yaml line {r['line']}"
            f"{src}"
        )
        if r["rule"] in quoted:
            w("        (row quoted above)")
        else:
            quoted.add(r["rule"])
            for line in r["yaml"]:
                w(f"        | {line}")
        refs = node["saved_refs"]
        for inp in r["inputs"]:
            formula = r["vjp"].get(inp)
            bound = f"   [{inp} = {refs[inp]}]" if inp in refs and refs[inp] != inp else ""
            if formula is None:
                w(f"        grad of {inp}: none (not differentiable)")
            else:
                w(f"        grad of {inp} = {formula}{bound}")
        for helper, doc in r.get("helpers", {}).items():
            if doc:
                _wrap(out, f"{helper} (formulas.py): {doc}", "        ")
    leaves = [n for n in d["graph"]["nodes"] if n["leaf"] is not None]
    for n in leaves:
        w(
            f"   #{n['id']} AccumulateGrad: no formula; adds the gradient it receives into "
            f"{n['leaf']}.grad"
        )
    w("")
    # 4
    w("4. Jacobians (row-major vec: vec(X) = X.ravel(); J[i, j] = d vec(Y)[i] / d vec(X)[j])")
    for e in d["jacobians"]:
        p, q = e["shape"]
        head = f"   d{e['output']}/d{e['input']}: {p}x{q}"
        s = e.get("structure")
        if s is None:
            w(f"{head}: {e['note'] or 'not computed'}")
            continue
        w(
            f"{head}"
            + (f"  =  {s['formula']}" if s["formula"] else "")
            + (f"   ({e['method']} backward pass)" if e["method"] else "")
        )
        _wrap(out, s["words"], "      ")
        if e["matrix"] is not None and p <= TEXT_MATRIX_SIDE and q <= TEXT_MATRIX_SIDE:
            J = np.array([[np.nan if v is None else v for v in row] for row in e["matrix"]])
            J = J + 0.0  # no negative zeros in print
            text = np.array2string(J, precision=3, suppress_small=True, max_line_width=160)
            for line in text.splitlines():
                w(f"      {line}")
        elif s.get("pattern"):
            w("      zero pattern (# nonzero, . zero):")
            for line in s["pattern"]:
                w(f"        {line}")
        else:
            w(f"      ({s['nnz']} nonzeros; matrix too large to print)")
    w("")
    # 5
    w("5. Per-element versus tensor-level")
    c = d.get("comparison")
    if c is None:
        w("   (skipped)")
        return "\n".join(out) + "\n"
    t = c["tensor"]
    _wrap(
        out,
        f"tensor-level (matgrad): {t['nodes']} graph node{'s' if t['nodes'] != 1 else ''} "
        f"({t['op_nodes']} op "
        f"node{'s' if t['op_nodes'] != 1 else ''} + {t['leaf_nodes']} AccumulateGrad), "
        f"forward + backward {_fmt_seconds(t['seconds'])}",
        "   ",
    )
    if c["status"] == "ok":
        s = c["scalar"]
        _wrap(
            out,
            f"per-element (matgrad.scalar): {s['nodes']} scalar nodes ({s['op_nodes']} "
            f"operations + {s['leaf_nodes']} input elements), forward + backward "
            f"{_fmt_seconds(s['seconds'])}",
            "   ",
        )
        diff = c["max_abs_diff"]
        w(
            f"   largest |difference| between the two gradients of sum(outputs): "
            f"{'-' if diff is None else f'{diff:.3g}'}"
        )
        ratio = s["op_nodes"] / max(t["op_nodes"], 1)
        example = ""
        for r in sorted(d["rules"], key=lambda r: -len(r["vjp"])):
            if r["vjp"]:
                inp, formula = next(iter(r["vjp"].items()))
                example = (
                    f" (here `{r['rule']}`'s rule `{inp}: {formula}` is one tensor expression)"
                )
                break
        if s["op_nodes"] == 0:
            text = (
                "No arithmetic here: per element, moving entries (transposes, reshapes, "
                "indexing) records no operations at all; the tensor-level graph records the "
                "move once, and its rule moves the gradient back."
            )
        else:
            text = (
                f"Same gradients, {ratio:.0f}x the operation nodes: per element, every "
                "multiply and add is its own node with a scalar derivative, and the result is "
                "a sea of scalars that is hard to 'reroll' into matrix operations. A "
                f"tensor-level rule handles the whole matrix at once{example}, which is what "
                "runs fast on vectorised hardware."
            )
        _wrap(out, text, "   ")
    elif c["status"] == "no_elementwise_form":
        w(f"   per-element: not possible: `{c['op']}` has no element-wise form.")
        _wrap(out, f"Why: {c['why']}", "   ")
        related = [
            r
            for r in d["rules"]
            if c["op"] in r["rule"] or r["rule"].removeprefix("linalg_") in c["op"]
        ]
        for r in related[:1]:
            w(
                f"   matgrad's tensor-level rule instead: `{r['rule']}` (derivatives.yaml line "
                f"{r['line']}):"
            )
            for inp, formula in r["vjp"].items():
                _wrap(out, f"grad of {inp} = {formula}", "     ")
            for helper, doc in r.get("helpers", {}).items():
                _wrap(out, f"{helper}: {doc}", "     ")
        _wrap(
            out,
            "This is the point: derivatives of inv, det and svd have simple matrix "
            "forms (d det(A) = det(A) tr(A^-1 dA), d A^-1 = -A^-1 dA A^-1, dS = diag(U^T dA "
            "V)), which per-element differentiation cannot easily recover.",
            "   ",
        )
    else:
        _wrap(out, f"per-element: skipped: {c['why']}", "   ")
    return "\n".join(out) + "\n"


def _wrap(out: list[str], text: str, indent: str, width: int = 100) -> None:
    out.extend(
        textwrap.wrap(
            text,
            width,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_on_hyphens=False,
            break_long_words=False,
        )
    )


def _render_tree(
    nodes: Mapping[int, dict[str, Any]],
    root: int,
    label: str,
    out: list[str],
    shown: set[int],
    budget: list[int],
) -> None:
    """ASCII tree under one output; a node reached twice is shown once."""
    stack: list[tuple[int | None, str, str, bool]] = [(root, label, "   ", True)]
    while stack:
        nid, lab, prefix, last = stack.pop()
        branch = "`- " if last else "|- "
        child_prefix = prefix + ("   " if last else "|  ")
        if nid is None:
            out.append(f"{prefix}{branch}{lab}: None (a constant: no gradient flows)")
            continue
        n = nodes[nid]
        if budget[0] <= 0:
            out.append(f"{prefix}{branch}... (more nodes; see --json or --dot)")
            stack.clear()
            break
        budget[0] -= 1
        head = f"{prefix}{branch}{lab}: #{nid} {n['name']}"
        if n["leaf"] is not None:
            shape = viz.shape_text(n.get("leaf_shape", []))
            out.append(f"{head}  (leaf {n['leaf']}: {shape}, accumulates into .grad)")
            continue
        if nid in shown:
            out.append(f"{head}  (shown above)")
            continue
        shown.add(nid)
        out.append(head + (f"   <- `{n['created_by']}`" if n["created_by"] else ""))
        for sname, text in n["saved"].items():
            ref = n["saved_refs"].get(sname)
            out.append(f"{child_prefix}|  _saved_{sname}: {text}" + (f"  ({ref})" if ref else ""))
        nxt = n["next"]
        for k in range(len(nxt) - 1, -1, -1):
            e = nxt[k]
            stack.append((e["node"], e["input"], child_prefix, k == len(nxt) - 1))
