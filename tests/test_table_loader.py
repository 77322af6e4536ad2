"""derivatives.yaml is loaded and checked at import: malformed rows fail with the row named."""

from __future__ import annotations

import pytest

from matgrad import formulas
from matgrad.core.table import RuleTableError, load_rules, node_class_name
from matgrad.ops.registry import NAMESPACE_HELPERS, RULES, resolve_forward


def load(text: str) -> dict:
    """Load a table as matgrad loads its own: compile the rows, then find each forward."""
    rules = load_rules(text, formulas, frozenset(NAMESPACE_HELPERS))
    for rule in rules.values():
        resolve_forward(rule)
    return rules


def test_node_class_names_follow_pytorch():
    assert node_class_name("mm") == "MmBackward0"
    assert node_class_name("linalg_inv") == "LinalgInvBackward0"
    assert RULES["mul"].node_class.__name__ == "MulBackward0"


def test_saved_names_are_derived_from_formulas():
    assert set(RULES["mm"].saved_inputs) == {"self", "mat2"}
    assert RULES["exp"].saved_outputs == ("result",) and RULES["exp"].saved_inputs == ()
    assert RULES["add"].vjp_args == ()  # add saves nothing


@pytest.mark.parametrize(
    "text, message",
    [
        ("- name: exp(Tensor self)\n  x: grad\n  result: self_t\n", "'x' is not an input"),
        ("- name: exp(Tensor self)\n  self: grad *\n  result: self_t\n", "does not parse"),
        (
            "- name: exp(Tensor self)\n  self: grad * bogus\n  result: self_t\n",
            "unknown name 'bogus'",
        ),
        (
            "- name: exp(Tensor self)\n  self: frobnicate(grad)\n  result: self_t\n",
            "unknown function 'frobnicate'",
        ),
        ("- name: exp(Tensor self)\n  self: grad\n", "missing the forward-mode formula"),
        (
            "- name: nosuchop(Tensor self)\n  self: grad\n  result: self_t\n",
            "no forward",
        ),
        ("- name: exp(Tensor self\n  self: grad\n  result: self_t\n", "signature does not parse"),
    ],
)
def test_malformed_rows_name_the_row(text, message):
    with pytest.raises(RuleTableError, match=message) as info:
        load(text)
    assert "derivatives.yaml, line 1" in str(info.value)
