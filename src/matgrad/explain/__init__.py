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
5. the same expression run through :mod:`matgrad.explain.per_element`, a per-element engine
   with one node per scalar operation: both node counts, both times, and the largest
   difference between the two gradients. Ops with no element-wise form (inv, det, svd, ...)
   are named, with the reason.

Jacobians use the **row-major** vec convention (NumPy's ``ravel``): ``vec(X) = X.ravel()`` and
``J[i, j] = d vec(Y)[i] / d vec(X)[j]``; see :mod:`matgrad.structure`.

Safety: the expression is parsed with :mod:`ast` and walked by this package's own evaluator,
which accepts only an allow-list (assignments separated by ``;``, names, numbers, arithmetic
including ``@`` and ``**``, comparisons, subscripts with integers and slices, calls of matgrad
functions such as ``exp``, ``sum``, ``einsum``, ``linalg.det``, and tensor methods such as
``.sum()``, ``.T``). Everything else is refused before anything runs, with a message that
points at the offending column. User text never reaches ``eval``, ``exec`` or ``compile``.

The package, by job:

* :mod:`.language`: limits, the allow-lists (made from the op table), parsing and validation;
* :mod:`.evaluate`: the safe evaluator and the tensor backend (with the size checks);
* :mod:`.per_element`: the per-element scalar engine, driven by the table's rows, and its
  backend;
* :mod:`.sections`: the five sections, as data;
* :mod:`.report`: :class:`Report` (text, JSON, HTML, DOT/SVG, plot).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from . import sections
from .language import (
    ATTRIBUTES,
    DTYPES,
    FUNCTIONS,
    LINALG_FUNCTIONS,
    METHODS,
    ExplainError,
    Program,
    available_functions,
    parse_expression,
    parse_shape,
    parse_shapes,
)
from .report import Report

__all__ = [
    "ATTRIBUTES",
    "FUNCTIONS",
    "LINALG_FUNCTIONS",
    "METHODS",
    "ExplainError",
    "Program",
    "Report",
    "available_functions",
    "explain",
    "parse_expression",
    "parse_shape",
]


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

    The report is bounded: Jacobians past the limits of :mod:`.language` (one Jacobian, all of
    a report's Jacobians together, their backward work) are skipped with a note on their line,
    and arrays past the JSON budget are written as null. Warnings raised on the way (NumPy's
    division by zero, invalid values and overflow; matgrad's gradient warnings) are not
    emitted: ``report.to_dict()["warnings"]`` lists them, once each, and the text shows them.

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
    data, dot_text, jacobians = sections.build(
        program, parse_shapes(shapes), int(seed), dtype, values, compare
    )
    return Report(data, dot_text, jacobians)


class _CallableModule(types.ModuleType):
    """The ``matgrad.explain`` package, callable as :func:`explain` (``matgrad.explain(...)``
    reads as a function, and the package is what ``import matgrad.explain`` binds)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Report:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
