"""The op layer: the table's ops (:mod:`.registry`), the public functions made from it and
written over it (:mod:`.composite`, :mod:`.linalg`, :mod:`.einsum`), and the tensor formula
namespace a ``create_graph`` backward pass runs its formulas with.
"""

from __future__ import annotations

from ..core.nodes import set_formula_namespaces
from . import composite, linalg
from .registry import OPS, RAW, formula_namespace

# formulas on tensors (a create_graph backward pass records its own graph): each row is its
# entry point itself, so formulas reach the ops without the public functions' argument
# handling; the helpers are the tensor twins in composite and linalg
TENSOR = formula_namespace("tensor", OPS, (composite, linalg))
set_formula_namespaces(RAW, TENSOR)
