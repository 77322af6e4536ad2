"""Where each op of the table appears, made from the rows' ``variants:`` (as PyTorch's
``native_functions.yaml`` declares them): top-level functions, Tensor methods, in-place Tensor
methods, ``matgrad.linalg`` and the Array API namespace.

A variant's function is the one written over the row in :mod:`matgrad.ops.composite` (or
:mod:`matgrad.ops.linalg` for ``linalg`` variants) under the variant's name, where the public
signature needs argument handling (``dim`` normalised, outputs selected, shapes checked);
otherwise it is the row's entry point itself, with no wrapper between the caller and the op.
Methods and in-place methods are their row's function; an ``array_api`` variant is the entry
point (rows whose Array API signature differs are written in :mod:`matgrad.array_api`).
"""

from __future__ import annotations

from typing import Any

from ..core.table import Rule, RuleTableError
from . import composite, linalg, toplevel
from .registry import OPS, RULES


def _written(module: Any, name: str) -> Any:
    fn = vars(module).get(name)
    return fn if callable(fn) and not isinstance(fn, type) else None


def variant_function(rule: Rule, variant: str) -> Any:
    """The callable behind ``rule``'s ``variant`` (see the module docstring)."""
    name = rule.variants[variant][0]
    if variant == "linalg":
        fn = _written(linalg, name)
    elif variant in ("method", "inplace"):
        # a method is its row's public function (the linalg one for linalg rows)
        base = "linalg" if "linalg" in rule.variants else "function"
        return variant_function(rule, base) if base in rule.variants else OPS[rule.name]
    elif variant == "function" and "linalg" in rule.variants:
        return variant_function(rule, "linalg")  # torch.det is torch.linalg.det
    elif variant == "function":
        fn = _written(composite, name)
    elif name.startswith("linalg."):  # the Array API's linalg extension: matgrad.linalg's
        return variant_function(rule, "linalg")  # function (array_api adds the standard's checks)
    else:  # array_api: the standard's own signatures are written in matgrad.array_api
        fn = None
    if fn is not None:
        return fn
    if variant == "array_api" and rule.attrs:
        raise RuleTableError(
            f"derivatives.yaml, line {rule.line}, row {rule.name!r}: the array_api variant "
            f"'{name}' has attributes {rule.attrs}, which the standard's signature does not "
            "take positionally: write it in matgrad/array_api"
        )
    return OPS[rule.name]


def _variant_table(variant: str) -> dict[str, Any]:
    suffix = "_" if variant == "inplace" else ""
    table = {}
    for rule in RULES.values():
        if variant in rule.variants:
            fn = variant_function(rule, variant)
            for name in rule.variants[variant]:
                table[name + suffix] = fn
    return table


#: ``matgrad.<name>`` (with PyTorch's top-level names for linalg functions: ``torch.det``, ...)
FUNCTIONS: dict[str, Any] = _variant_table("function")
FUNCTIONS.update({n: f for n, f in toplevel.functions().items() if n not in FUNCTIONS})
#: ``Tensor.<name>``
METHODS: dict[str, Any] = _variant_table("method")
#: ``Tensor.<name>_``: the out-of-place function whose result the method writes in place
INPLACE: dict[str, Any] = _variant_table("inplace")
#: ``matgrad.linalg.<name>``
LINALG: dict[str, Any] = _variant_table("linalg")
#: ``matgrad.array_api.<name>`` (dotted names such as ``linalg.det`` go to its sub-namespace)
ARRAY_API: dict[str, Any] = _variant_table("array_api")
