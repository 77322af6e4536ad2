"""Loads ``derivatives.yaml`` once and compiles each row into a :class:`Rule` and a node class.

A row reads::

    - name: mul(Tensor self, Tensor other)
      self: grad * other
      other: grad * self
      result: self_t * other + self * other_t

Formula names are resolved as follows: ``grad`` (``grad_<out>`` for several outputs), a tensor
input (saved by the node), ``result`` or a named output (saved), ``<input>_shape`` /
``<input>_ndim`` / ``<input>_dtype`` / ``<list>_shapes`` and ``result_shape`` / ``result_ndim``
(metadata: only the value is saved), a non-tensor argument of the op, ``<input>_t`` (a tangent,
in forward formulas), and called names: a primitive op (looked up on the namespace ``F`` the
formula runs with: raw arrays or tensors) or a helper of :mod:`matgrad.formulas`.

``result: auto_linear`` makes the forward formula the op itself applied to the tangents;
``result: auto_element_wise`` reuses the single input's backward formula with ``grad`` replaced
by the tangent (valid where the Jacobian is diagonal); ``result: auto_bilinear`` is
``op(a_t, b) + op(a, b_t)`` for an op bilinear in its two inputs (JAX's ``defbilinear``). A
row may say ``batched: false`` when its formulas cannot take cotangents with extra leading batch
axes, and ``broadcasts: true`` when its inputs broadcast against each other (batched tangents
of lower-rank inputs then get size-1 axes).
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .nodes import RuleNode

RESERVED_KEYS = {
    "name", "result", "batched", "broadcasts", "doc", "forward", "variants", "kind", "view"
}  # fmt: skip
# what a row may say an op is (explain and the per-element engine read it): elementwise (a
# diagonal Jacobian), a reduction over axes, a scan along one (cumsum), a rearrangement of
# elements (shape), a gather or scatter (index), a matrix product, or a linear-algebra function
# with no element-wise form (linalg)
KINDS = ("elementwise", "reduction", "scan", "shape", "index", "product", "linalg")
# Typed attributes, normalised by the op itself against its first input's ndim (so formulas,
# public functions and tensor-mode backward passes all hand the forward the same thing):
#   Dim dim    one axis -> a negative int (IndexError if out of range)
#   Dims dim   None (every axis), an int or a sequence -> a sorted tuple of negative axes
ATTR_TYPES = ("Dim", "Dims")
# where an op appears besides the formula namespaces (PyTorch's `variants:`): a top-level
# function, a Tensor method, an in-place Tensor method, matgrad.linalg, the Array API namespace
VARIANTS = ("function", "method", "inplace", "linalg", "array_api")
META_SUFFIXES = ("_shape", "_ndim", "_dtype", "_shapes")
RESULT_META = ("result_shape", "result_ndim")


class RuleTableError(ValueError):
    """A row of derivatives.yaml is malformed; the message names the row."""


@dataclass
class Rule:
    name: str
    inputs: tuple[str, ...]  # tensor parameters, in order
    input_is_list: tuple[bool, ...]
    attrs: tuple[str, ...]  # non-tensor parameters, in order
    attr_defaults: dict[str, Any]
    attr_types: dict[str, str]  # typed attributes (ATTR_TYPES) -> their type
    outputs: tuple[str, ...]  # ("result",) or the named outputs
    vjp_formulas: dict[str, str]  # input -> formula text
    jvp_formula: str
    vjp_args: tuple[str, ...]  # names the VJP function takes after (F, needs, *grads)
    saved_inputs: tuple[str, ...]
    saved_outputs: tuple[str, ...]
    batched: bool
    line: int
    node_class: type = field(default=RuleNode, repr=False)
    vjp: Any = field(default=None, repr=False)
    jvp: Any = field(default=None, repr=False)
    jvp_args: tuple[str, ...] = ()
    doc: str = ""
    broadcasts: bool = False  # the inputs broadcast against each other (NumPy's rules)
    forward: str = ""  # the row's `forward:`: an expression on `xp`, or a function's name
    kind: str = ""  # one of KINDS
    # PyTorch makes this op's output a view of its first input (shared memory and version
    # counter) whenever the forward returns one (basic indexing, reshape without a copy, ...)
    view: bool = False
    # variant -> public names (`variants: [function, method]` uses the op's own name; a
    # mapping names them: `{linalg: det, method: [clamp, clip]}`)
    variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # per VJP argument: the indices of the inputs whose formulas read it (a node saves an
    # argument only when one of those inputs needs a gradient)
    arg_users: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)

    @property
    def grad_names(self) -> tuple[str, ...]:
        return (
            ("grad",) if self.outputs == ("result",) else tuple(f"grad_{o}" for o in self.outputs)
        )


def node_class_name(op_name: str) -> str:
    """``mm`` -> ``MmBackward0``, ``linalg_inv`` -> ``LinalgInvBackward0`` (PyTorch's style)."""
    return "".join(part[:1].upper() + part[1:] for part in op_name.split("_")) + "Backward0"


def _fail(row: dict, line: int, message: str) -> RuleTableError:
    return RuleTableError(f"derivatives.yaml, line {line}, row {row.get('name')!r}: {message}")


def _op_name(row: dict, line: int) -> str:
    """The op name of a row's signature (the whole signature is parsed when the row is)."""
    match = re.match(r"\s*(\w+)\s*\(", str(row.get("name", "")))
    if match is None:
        return _parse_signature(row, line)[0]  # raises naming the row
    return match.group(1)


def _parse_signature(row: dict, line: int) -> tuple:
    text = row.get("name")
    if not isinstance(text, str):
        raise _fail(row, line, "every row needs a 'name: op(args)' signature")
    head, arrow, ret = text.partition("->")
    # PyTorch's notation `Tensor self`, `Tensor[] tensors` -> Python annotations
    head = re.sub(r"Tensor\[\]\s+(\w+)", r"\1: list[Tensor]", head)
    head = re.sub(r"Tensor\s+(\w+)", r"\1: Tensor", head)
    # typed attributes the op normalises (see ATTR_TYPES)
    head = re.sub(r"\b(Dims|Dim)\s+(\w+)", r"\2: \1", head)
    try:
        fn = ast.parse(f"def {head.strip()}: pass").body[0]
        ret_node = ast.parse(ret.strip(), mode="eval").body if arrow else None
    except SyntaxError as exc:
        raise _fail(row, line, f"signature does not parse: {exc.msg}") from None
    assert isinstance(fn, ast.FunctionDef)
    args = fn.args.args
    defaults = [None] * (len(args) - len(fn.args.defaults)) + list(fn.args.defaults)
    inputs, is_list, attrs, attr_defaults, attr_types = [], [], [], {}, {}
    for arg, default in zip(args, defaults, strict=True):
        ann = ast.unparse(arg.annotation) if arg.annotation is not None else ""
        if ann in ATTR_TYPES:
            attr_types[arg.arg] = ann
        elif ann and ann not in ("Tensor", "list[Tensor]"):
            raise _fail(
                row,
                line,
                f"unknown parameter type {ann!r} (known: Tensor, Tensor[], "
                f"{', '.join(ATTR_TYPES)})",
            )
        if ann in ("Tensor", "list[Tensor]"):
            if attrs:
                raise _fail(row, line, "tensor parameters must come before other parameters")
            inputs.append(arg.arg)
            is_list.append(ann == "list[Tensor]")
        else:
            attrs.append(arg.arg)
            if default is not None:
                attr_defaults[arg.arg] = ast.literal_eval(default)
    if ret_node is None:
        outputs: tuple[str, ...] = ("result",)
    else:
        elts = ret_node.elts if isinstance(ret_node, ast.Tuple) else [ret_node]
        outputs = tuple(ast.unparse(e) for e in elts)
    return fn.name, tuple(inputs), tuple(is_list), tuple(attrs), attr_defaults, outputs, attr_types


def _parse_formula(row: dict, line: int, key: str, text: Any) -> ast.expr:
    if not isinstance(text, str):
        raise _fail(row, line, f"formula for '{key}' must be a string, got {text!r}")
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise _fail(
            row, line, f"formula for '{key}' does not parse: {text!r} ({exc.msg})"
        ) from None


class _Resolver(ast.NodeTransformer):
    """Classifies the names of a formula and rewrites calls to go through ``F`` or a helper."""

    def __init__(self, ctx: _Context, row: dict, line: int, known: set[str], key: str) -> None:
        self.ctx, self.row, self.line, self.known, self.key = ctx, row, line, known, key
        self.used: set[str] = set()

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node.args = [self.visit(a) for a in node.args]
        node.keywords = [self.visit(k) for k in node.keywords]
        if isinstance(node.func, ast.Name):
            fname = node.func.id
            if hasattr(self.ctx.helpers, fname) and not fname.startswith("_"):
                node.func = ast.Attribute(ast.Name("_H", ast.Load()), fname, ast.Load())
                node.args.insert(0, ast.Name("F", ast.Load()))
            elif fname in self.ctx.callable_names:
                node.func = ast.Attribute(ast.Name("F", ast.Load()), fname, ast.Load())
            elif fname in ("tuple", "len", "list", "range", "int", "float"):
                pass
            else:
                raise _fail(
                    self.row,
                    self.line,
                    f"formula for '{self.key}' calls unknown "
                    f"function '{fname}' (neither an op nor a helper in formulas.py)",
                )
        else:
            node.func = self.visit(node.func)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        node.value = self.visit(node.value)
        if node.attr == "mT":  # not every array library has .mT: go through F
            return ast.Call(
                ast.Attribute(ast.Name("F", ast.Load()), "mT", ast.Load()), [node.value], []
            )
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id not in self.known and node.id not in ("None", "True", "False"):
            raise _fail(
                self.row, self.line, f"formula for '{self.key}' uses unknown name '{node.id}'"
            )
        self.used.add(node.id)
        return node


def _known_names(inputs, is_list, attrs, outputs, for_jvp: bool) -> set[str]:
    known = set(inputs) | set(attrs) | set(outputs) | set(RESULT_META)
    for name, lst in zip(inputs, is_list, strict=True):
        known |= {f"{name}_shapes"} if lst else {f"{name}_shape", f"{name}_ndim", f"{name}_dtype"}
    if for_jvp:
        known |= {f"{n}_t" for n in inputs}
    else:
        known |= {"grad"} if outputs == ("result",) else {f"grad_{o}" for o in outputs}
    return known


@dataclass
class _Context:
    """What formulas may call: ``helpers`` (a module of functions taking the namespace ``F``
    first, e.g. :mod:`matgrad.formulas`) and ``callable_names`` (the rows and the names every
    formula namespace provides)."""

    helpers: Any
    callable_names: frozenset[str]
    filename: str


def _compile_function(
    ctx: _Context, name: str, params: list[str], body: list[ast.stmt], line: int
) -> Any:
    fn = ast.FunctionDef(
        name=name,
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg(p) for p in params],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
            vararg=None,
            kwarg=None,
        ),
        body=body,
        decorator_list=[],
        returns=None,
        type_params=[],
    )
    module = ast.Module(body=[fn], type_ignores=[])
    ast.fix_missing_locations(module)
    ast.increment_lineno(module, line - 1)
    namespace: dict[str, Any] = {"_H": ctx.helpers}
    exec(compile(module, ctx.filename, "exec"), namespace)  # noqa: S102 - our own table
    return namespace[name]


def _split_terms(expr: ast.expr) -> list[tuple[int, ast.expr]] | None:
    """Split ``a + b - c`` into signed terms; None if the top level is not a sum."""
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add | ast.Sub):
        left = _split_terms(expr.left) or [(1, expr.left)]
        right = _split_terms(expr.right) or [(1, expr.right)]
        sign = 1 if isinstance(expr.op, ast.Add) else -1
        return left + [(s * sign, t) for s, t in right]
    return None


def _names_in(expr: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}


def _build_jvp(ctx, row, line, op_name, inputs, is_list, attrs, outputs, vjp_trees) -> tuple:
    text = row.get("result")
    if text is None:
        raise _fail(row, line, "missing the forward-mode formula 'result:'")
    if text == "auto_linear":
        call = f"{op_name}(" + ", ".join([f"{n}_t" for n in inputs] + list(attrs)) + ")"
        tree = ast.parse(call, mode="eval").body
    elif text == "auto_bilinear":
        if len(inputs) != 2 or any(is_list):
            raise _fail(row, line, "auto_bilinear needs exactly two tensor inputs")
        a, b = inputs
        rest = "".join(f", {x}" for x in attrs)
        call = f"{op_name}({a}_t, {b}{rest}) + {op_name}({a}, {b}_t{rest})"
        tree = ast.parse(call, mode="eval").body
    elif text == "auto_element_wise":
        if len(inputs) != 1:
            raise _fail(row, line, "auto_element_wise needs exactly one tensor input")
        tree = copy.deepcopy(vjp_trees[inputs[0]][1])
        # PyTorch's rule for complex inputs: jvp(t) = conj(vjp(conj(t))), which turns
        # grad * conj(f'(z)) into t * f'(z) (the helper `conj` is the identity on real values)
        wrap = hasattr(ctx.helpers, "conj")
        t_name = f"{inputs[0]}_t"

        class _Tangent(ast.NodeTransformer):
            def visit_Name(self, node: ast.Name) -> ast.AST:
                if node.id != "grad":
                    return node
                t = ast.Name(t_name, ast.Load())
                return ast.Call(ast.Name("conj", ast.Load()), [t], []) if wrap else t

        tree = _Tangent().visit(tree)
        if wrap:
            tree = ast.Call(ast.Name("conj", ast.Load()), [tree], [])
    else:
        tree = _parse_formula(row, line, "result", text)
    resolver = _Resolver(
        ctx, row, line, _known_names(inputs, is_list, attrs, outputs, True), "result"
    )
    tree = resolver.visit(tree)
    tangents = [f"{n}_t" for n in inputs]
    params = ["F", *tangents]
    primal_args = [n for n in sorted(resolver.used) if n not in tangents]
    params += primal_args
    terms = _split_terms(tree)
    body: list[ast.stmt]
    if terms is not None and all(len(_names_in(t) & set(tangents)) == 1 for _, t in terms):
        # a sum of terms, each linear in one tangent: skip the terms whose tangent is absent
        src = ["_acc = None"]
        for k, (sign, term) in enumerate(terms):
            (tangent,) = _names_in(term) & set(tangents)
            src.append(f"if {tangent} is not None:")
            src.append(f"    _t{k} = {'-' if sign < 0 else ''}(__TERM{k}__)")
            src.append(f"    _acc = _t{k} if _acc is None else _acc + _t{k}")
        src.append("return _acc")
        body = ast.parse("\n".join(src)).body
        for node in ast.walk(ast.Module(body=body, type_ignores=[])):
            for fld, value in ast.iter_fields(node):
                if isinstance(value, ast.Name) and value.id.startswith("__TERM"):
                    k = int(value.id[len("__TERM") : -2])
                    setattr(node, fld, terms[k][1])
    else:
        # general formula: absent tangents are zeros of the primal's shape
        fill = []
        for n, lst in zip(inputs, is_list, strict=True):
            if f"{n}_t" in resolver.used:
                zeros = f"[_H.zeros_of(F, x) for x in {n}]" if lst else f"_H.zeros_of(F, {n})"
                fill.append(f"if {n}_t is None:\n    {n}_t = {zeros}")
                if n not in params:
                    params.append(n)
        body = ast.parse("\n".join(fill)).body + [ast.Return(tree)]
    fn = _compile_function(ctx, f"jvp_{op_name}", params, body, line)
    return fn, tuple(p for p in params[1 + len(tangents) :])


def _build_rule(ctx: _Context, row: dict, line: int) -> Rule:
    op_name, inputs, is_list, attrs, defaults, outputs, attr_types = _parse_signature(row, line)
    for key in row:
        if key not in RESERVED_KEYS and key not in inputs:
            raise _fail(row, line, f"'{key}' is not an input of {op_name} (inputs: {inputs})")
    known = _known_names(inputs, is_list, attrs, outputs, False)
    vjp_trees: dict[str, tuple[ast.expr, ast.expr]] = {}
    used: set[str] = set()
    users_of: dict[str, set[str]] = {}
    for name in inputs:
        if name not in row:
            continue
        raw_tree = _parse_formula(row, line, name, row[name])
        resolver = _Resolver(ctx, row, line, known, name)
        tree = resolver.visit(copy.deepcopy(raw_tree))
        used |= resolver.used
        users_of[name] = resolver.used
        vjp_trees[name] = (tree, raw_tree)
    grad_names = ("grad",) if outputs == ("result",) else tuple(f"grad_{o}" for o in outputs)
    vjp_args = tuple(sorted(used - set(grad_names)))
    returns = []
    for i, name in enumerate(inputs):
        if name in vjp_trees:
            returns.append(
                ast.IfExp(
                    # `_needs[i]` is the input's edge: (node or None, ...); None: no gradient
                    test=ast.Compare(
                        ast.Subscript(
                            ast.Subscript(
                                ast.Name("_needs", ast.Load()), ast.Constant(i), ast.Load()
                            ),
                            ast.Constant(0),
                            ast.Load(),
                        ),
                        [ast.IsNot()],
                        [ast.Constant(None)],
                    ),
                    body=vjp_trees[name][0],
                    orelse=ast.Constant(None),
                )
            )
        else:
            returns.append(ast.Constant(None))
    body = [ast.Return(ast.Tuple(returns, ast.Load()))]
    vjp = _compile_function(
        ctx, f"vjp_{op_name}", ["F", "_needs", *grad_names, *vjp_args], body, line
    )
    jvp, jvp_args = _build_jvp(ctx, row, line, op_name, inputs, is_list, attrs, outputs, vjp_trees)
    rule = Rule(
        name=op_name,
        inputs=inputs,
        input_is_list=is_list,
        attrs=attrs,
        attr_defaults=defaults,
        attr_types=attr_types,
        outputs=outputs,
        vjp_formulas={k: str(row[k]).strip() for k in inputs if k in row},
        jvp_formula=str(row["result"]).strip(),
        vjp_args=vjp_args,
        saved_inputs=tuple(n for n in vjp_args if n in inputs),
        saved_outputs=tuple(n for n in vjp_args if n in outputs),
        batched=bool(row.get("batched", True)),
        line=line,
        vjp=vjp,
        jvp=jvp,
        jvp_args=jvp_args,
        doc=str(row.get("doc", "")).strip(),
        broadcasts=bool(row.get("broadcasts", False)),
        forward=str(row.get("forward", "")).strip(),
        kind=_kind(row, line),
        view=bool(row.get("view", False)),
        variants=_variants(row, line, op_name),
        arg_users={
            arg: tuple(i for i, n in enumerate(inputs) if arg in users_of.get(n, ()))
            for arg in vjp_args
        },
    )
    rule.node_class = type(
        node_class_name(op_name),
        (RuleNode,),
        {"__slots__": (), "rule": rule, "n_outputs": len(outputs), "_vjp": staticmethod(vjp)},
    )
    return rule


# libyaml's parser where PyYAML has it (about 10x faster at import), else the pure-Python one
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):
    """A YAML loader that records each mapping's line (for messages that point at a row)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _kind(row: dict, line: int) -> str:
    kind = row.get("kind", "")
    if kind and kind not in KINDS:
        raise _fail(row, line, f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def _variants(row: dict, line: int, op_name: str) -> dict[str, tuple[str, ...]]:
    """``variants: [function, method]`` or ``variants: {linalg: det, method: [det, ...]}`` ->
    a dict from variant to public names (the first is the op's name there, the rest
    aliases)."""
    raw = row.get("variants", [])
    if isinstance(raw, dict):
        items = ((k, v) for k, v in raw.items() if k != "__line__")
    else:
        items = ((v, op_name) for v in raw)
    out = {}
    for variant, public in items:
        if variant not in VARIANTS:
            raise _fail(row, line, f"variant {variant!r} is not one of {', '.join(VARIANTS)}")
        names = public if isinstance(public, list) else [public]
        out[variant] = tuple(str(n) for n in names)
    return out


def load_rules(
    text: str,
    helpers: Any,
    namespace_names: frozenset[str] | set[str] = frozenset(),
    filename: str = "derivatives.yaml",
) -> dict[str, Rule]:
    """Compile a rule table given as YAML text; raises RuleTableError naming a bad row.

    Formulas may call the table's own ops, the functions of ``helpers`` (which take the
    formula namespace ``F`` first) and ``namespace_names``, the other functions every formula
    namespace provides (see :func:`matgrad.core.graph.set_formula_namespaces`)."""
    rows = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(rows, list):
        raise RuleTableError(f"{filename} must be a list of rows")
    lines = []
    for row in rows:
        line = row.pop("__line__", 0) if isinstance(row, dict) else 0
        if not isinstance(row, dict):
            raise RuleTableError(f"{filename}: row {row!r} is not a mapping")
        lines.append(line)
    # every row's op name first: a formula may call an op whose row comes later
    op_names = {_op_name(row, line) for row, line in zip(rows, lines, strict=True)}
    ctx = _Context(helpers, frozenset(op_names | set(namespace_names)), filename)
    rules: dict[str, Rule] = {}
    for row, line in zip(rows, lines, strict=True):
        rule = _build_rule(ctx, row, line)
        if rule.name in rules:
            raise _fail(row, line, f"op '{rule.name}' has two rows")
        rules[rule.name] = rule
    return rules
