"""The rule table, loaded once: each row's forward, its :class:`~matgrad.core.apply.Op`, its
generated entry point, and the raw-array formula namespace.

A row's ``forward:`` is either an expression on the array namespace ``xp`` (NumPy's API, which
hands Dask and CuPy arrays to their own implementations) and ``special`` (SciPy's special
functions), written in the row's parameters::

    forward: xp.tanh(self)
    forward: xp.cumsum(self, axis=dim)

or the name of a function of :mod:`matgrad.backend.forward` or :mod:`matgrad.backend.lapack`
(for longer forwards). Without ``forward:``, the function named like the row is used.
"""

from __future__ import annotations

import ast
import os
import types
from importlib import resources
from typing import Any

import numpy as np
import scipy.special

from .. import formulas
from ..backend import forward as _forward
from ..backend import lapack as _lapack
from ..core.apply import Op
from ..core.fastpath import entry_point
from ..core.table import Rule, RuleTableError, load_rules

# What formulas call besides the rows and formulas.py: every formula namespace (raw arrays in
# matgrad.backend, tensors in matgrad.ops) defines these under the same names.
NAMESPACE_HELPERS = (
    "mT",
    "zeros_like",
    "ones_like",
    "eye_like",
    "full_like_shape",
    "floor_divide",
    "has_zero",
    "spectral_tolerance",
    "inverse_gaps",
    "gap_quotient",
    "with_diagonal",
    "warn_if_basis_dependent",
    "warn_if_split_dependent",
    "raise_if_phase_dependent",
    "linalg_det_vjp",
    "linalg_slogdet_vjp",
    "linalg_lu_solve",
)

TABLE_FILE = "derivatives.yaml"
TABLE_TEXT = resources.files("matgrad").joinpath(TABLE_FILE).read_text()
RULES: dict[str, Rule] = load_rules(TABLE_TEXT, formulas, frozenset(NAMESPACE_HELPERS))

# the names a `forward:` expression may use
FORWARD_NAMES = {"xp": np, "special": scipy.special}
_FORWARD_MODULES = (_forward, _lapack)


def _module_function(rule: Rule, name: str) -> Any:
    for module in _FORWARD_MODULES:
        fn = getattr(module, name, None)
        if fn is not None and not name.startswith("_"):
            return fn
    raise RuleTableError(
        f"{TABLE_FILE}, line {rule.line}, row {rule.name!r}: no forward: neither a 'forward:' "
        f"expression nor a function '{name}' in matgrad.backend.forward or .lapack"
    )


def resolve_forward(rule: Rule) -> Any:
    """The callable that computes ``rule``'s outputs from raw arrays: ``fn(*inputs, **attrs)``."""
    text = rule.forward or rule.name
    if text.isidentifier():
        return _module_function(rule, text)
    expr = ast.parse(text, mode="eval").body
    # `xp.f(a, b)` in the row's own input order, no attributes: the library function itself
    # (no extra Python call per op)
    if (
        not rule.attrs
        and isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and isinstance(expr.func.value, ast.Name)
        and expr.func.value.id in FORWARD_NAMES
        and not expr.keywords
        and [a.id if isinstance(a, ast.Name) else None for a in expr.args] == list(rule.inputs)
    ):
        return getattr(FORWARD_NAMES[expr.func.value.id], expr.func.attr)
    params = ", ".join(
        [*rule.inputs]
        + [f"{a}={rule.attr_defaults[a]!r}" if a in rule.attr_defaults else a for a in rule.attrs]
    )
    source = "\n" * (rule.line - 1) + f"def forward_{rule.name}({params}):\n    return {text}\n"
    namespace = dict(FORWARD_NAMES)
    exec(compile(source, TABLE_FILE, "exec"), namespace)  # noqa: S102 - our own table
    return namespace[f"forward_{rule.name}"]


FORWARDS: dict[str, Any] = {name: resolve_forward(rule) for name, rule in RULES.items()}
OP_OBJECTS: dict[str, Op] = {name: Op(rule, FORWARDS[name]) for name, rule in RULES.items()}
# MATGRAD_REFERENCE_PATH=1 (read at import) makes every op take the plain Op.reference path
# instead of its generated entry point: for stepping through an op in a debugger, and for the
# test that proves both paths give identical values, gradients and graphs
REFERENCE_PATH = os.environ.get("MATGRAD_REFERENCE_PATH", "") == "1"


def reference_entry_point(op: Op) -> Any:
    """``op.reference`` as a plain function (so that, as a Tensor method, it binds ``self``)."""

    def reference(*inputs: Any, **attrs: Any) -> Any:
        return op.reference(*inputs, **attrs)

    reference.__name__ = reference.__qualname__ = f"reference_{op.name}"
    reference.op = op  # type: ignore[attr-defined]
    return reference


# what callers use: each op's entry point, ``OPS["mm"](A, B)``
# (a row with a list input has no generated code: it takes the reference path)
OPS: dict[str, Any] = {
    name: reference_entry_point(op) if REFERENCE_PATH or op.has_list else entry_point(op)
    for name, op in OP_OBJECTS.items()
}


#: the table's entry points as a namespace: ``PRIMITIVES.exp(x)`` records ExpBackward0
PRIMITIVES = types.SimpleNamespace(**OPS)
for _name, _fn in OPS.items():  # where pickle (and a reader) finds each one again
    _fn.__module__, _fn.__qualname__ = __name__, f"PRIMITIVES.{_name}"


def formula_namespace(kind: str, ops: dict[str, Any], modules: tuple[Any, ...]) -> Any:
    """A namespace with a function per row (``ops``) and the helpers formulas call (found in
    ``modules``); raises naming any helper that is missing."""
    names: dict[str, Any] = dict(ops)
    for helper in NAMESPACE_HELPERS:
        for module in modules:
            if hasattr(module, helper):
                names[helper] = getattr(module, helper)
                break
        else:
            raise RuleTableError(f"the {kind} formula namespace has no helper '{helper}'")
    return types.SimpleNamespace(**names)


# formulas on raw arrays (the backward pass without a graph)
RAW = formula_namespace("raw-array", FORWARDS, _FORWARD_MODULES)
