"""The op layer: the table's ops (:mod:`.registry`), the public functions made from it and
written over it (:mod:`.composite`, :mod:`.linalg`, :mod:`.einsum`), and the tensor formula
namespace a ``create_graph`` backward pass runs its formulas with.
"""

from __future__ import annotations

from ..core.nodes import set_formula_namespaces
from . import composite, linalg
from .registry import OPS, RAW, formula_namespace


def _tensor_functions() -> dict[str, object]:
    # a row's tensor function: its public normaliser where composite or linalg has one
    # (same name and parameters as the row), else its entry point
    return {
        name: getattr(composite, name, None) or getattr(linalg, name, None) or fn
        for name, fn in OPS.items()
    }


TENSOR = formula_namespace("tensor", _tensor_functions(), (composite, linalg))
set_formula_namespaces(RAW, TENSOR)
