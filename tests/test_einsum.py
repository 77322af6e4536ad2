"""matgrad.einsum against numpy.einsum: values and gradients on random specifications
(hypothesis), the graph it records (core ops only), contraction order and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matgrad as mg
from matgrad.viz import graph_nodes

LETTERS = "abcdA"  # an upper-case label checks the implicit output's (ASCII) order
CORE_OPS = {"permute", "transpose", "reshape", "diagonal", "sum", "mul", "mm", "bmm", "expand"}


@st.composite
def einsum_specs(draw):
    """(equation, operand shapes, seed): 1-4 operands, repeated labels inside an operand,
    '...' with broadcast axes, size-1 axes that broadcast, implicit or explicit output."""
    sizes = {c: draw(st.integers(1, 3)) for c in LETTERS}
    n_ops = draw(st.integers(1, 4))
    ell = tuple(draw(st.lists(st.integers(1, 3), max_size=2))) if draw(st.booleans()) else None
    terms, shapes = [], []
    for _ in range(n_ops):
        labels = draw(st.lists(st.sampled_from(LETTERS), max_size=3))
        shape = []
        for c in labels:
            broadcast = labels.count(c) == 1 and draw(st.integers(0, 9)) == 0
            shape.append(1 if broadcast else sizes[c])
        term = "".join(labels)
        if ell is not None and draw(st.booleans()):
            e = draw(st.integers(0, len(ell)))
            eshape = [1 if draw(st.integers(0, 4)) == 0 else s for s in ell[len(ell) - e :]]
            pos = draw(st.integers(0, len(labels)))
            term = term[:pos] + "..." + term[pos:]
            shape = shape[:pos] + eshape + shape[pos:]
        terms.append(term)
        shapes.append(tuple(shape))
    has_ell = any("..." in t for t in terms)
    if draw(st.booleans()):
        present = sorted({c for t in terms for c in t if c.isalpha()})
        out = draw(st.permutations(present))
        out = "".join(out[: draw(st.integers(0, len(out)))])
        if has_ell:
            pos = draw(st.integers(0, len(out)))
            out = out[:pos] + "..." + out[pos:]
        equation = ",".join(terms) + "->" + out
    else:
        equation = ",".join(terms)
    return equation, shapes, draw(st.integers(0, 2**31 - 1))


def _explicit(equation: str) -> str:
    """NumPy's implicit output written out: '...' then the labels used once, sorted."""
    if "->" in equation:
        return equation
    letters = equation.replace("...", "").replace(",", "")
    once = sorted(c for c in set(letters) if letters.count(c) == 1)
    return equation + "->" + ("..." if "..." in equation else "") + "".join(once)


def _expected_grads(equation: str, arrays: list[np.ndarray], weight: np.ndarray) -> list:
    """d sum(weight * einsum(...)) / d operand k, exactly: einsum is linear in each operand,
    so contracting a stack of unit tensors (new label 'z') in operand k's slot gives it."""
    lhs, rhs = _explicit(equation).split("->")
    terms = lhs.split(",")
    grads = []
    for k, x in enumerate(arrays):
        units = np.eye(x.size).reshape((x.size,) + x.shape)
        ops = [units if j == k else a for j, a in enumerate(arrays)]
        eq = ",".join("z" + t if j == k else t for j, t in enumerate(terms))
        if "..." in equation:  # NumPy sums "..." axes only when the output names them
            g = np.einsum(f"{eq},{rhs}->z...", *ops, weight)
            g = g.reshape(x.size, -1).sum(-1)
        else:
            g = np.einsum(f"{eq},{rhs}->z", *ops, weight)
        grads.append(g.reshape(x.shape))
    return grads


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(einsum_specs())
def test_values_and_gradients_match_numpy(spec):
    equation, shapes, seed = spec
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    expected = np.einsum(equation, *arrays)
    xs = [mg.tensor(a, requires_grad=True) for a in arrays]
    out = mg.einsum(equation, *xs)
    assert out.shape == expected.shape, equation
    np.testing.assert_allclose(
        out.detach().numpy(), expected, rtol=1e-10, atol=1e-10, err_msg=equation
    )
    weight = rng.standard_normal(expected.shape)
    if not out.requires_grad:  # e.g. 'a->' of a 0-d operand: returned as is
        return
    (out * mg.tensor(weight)).sum().backward()
    for k, (x, g) in enumerate(zip(xs, _expected_grads(equation, arrays, weight), strict=True)):
        got = np.zeros_like(g) if x.grad is None else x.grad.numpy()
        np.testing.assert_allclose(
            got, g, rtol=1e-10, atol=1e-10, err_msg=f"{equation}: gradient of operand {k}"
        )


def _ops_in_graph(t):
    return {node.rule.name for node in graph_nodes([t.grad_fn]) if hasattr(node, "rule")}


@pytest.mark.parametrize(
    "equation,shapes",
    [
        ("ij,jk->ik", [(3, 4), (4, 2)]),
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
        ("ii->i", [(3, 3)]),
        ("iij->j", [(2, 2, 3)]),
        ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
        ("ij,jk,kl,lm->im", [(2, 3), (3, 4), (4, 5), (5, 2)]),
        ("i,j,k->ijk", [(2,), (3,), (2,)]),
    ],
)
def test_graph_shows_core_ops_only(equation, shapes):
    xs = [mg.randn(*s, requires_grad=True) for s in shapes]
    out = mg.einsum(equation, *xs)
    ops = _ops_in_graph(out)
    assert ops and ops <= CORE_OPS, ops
    if equation.count(",") >= 1 and "..." not in equation:
        assert ops & {"mm", "bmm"}


def test_matrix_product_is_one_mm_and_trace_a_diagonal():
    a = mg.randn(3, 4, requires_grad=True)
    b = mg.randn(4, 2, requires_grad=True)
    out = mg.einsum("ij,jk->ik", a, b)
    assert out.grad_fn.name() == "MmBackward0"
    t = mg.einsum("ii", mg.randn(3, 3, requires_grad=True))
    assert _ops_in_graph(t) == {"diagonal", "sum"}


def test_greedy_order_avoids_the_large_intermediate():
    """(a b) c with a 100x2, b 2x100, c 100x2 must not form the 100x100 product a b."""
    a, b, c = (mg.randn(*s, requires_grad=True) for s in ((100, 2), (2, 100), (100, 2)))
    out = mg.einsum("ij,jk,kl->il", a, b, c)
    shapes, seen, stack = [], set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node.name() == "MmBackward0":
            shapes.append(tuple(node._saved_self.shape) + tuple(node._saved_mat2.shape))
        stack.extend(n for n, _ in node.next_functions)
    assert (100, 2, 2, 100) not in shapes  # the first product is b @ c (2x2)
    np.testing.assert_allclose(
        out.detach().numpy(),
        np.einsum("ij,jk,kl->il", *(x.detach().numpy() for x in (a, b, c))),
        rtol=1e-10,
    )


def test_list_argument_and_errors():
    a, b = mg.randn(2, 3), mg.randn(3, 4)
    np.testing.assert_allclose(mg.einsum("ij,jk", [a, b]).numpy(), a.numpy() @ b.numpy())
    with pytest.raises(ValueError, match="operand"):
        mg.einsum("ij,jk->ik", a)
    with pytest.raises(ValueError, match="subscript"):
        mg.einsum("ijk->i", a)
    with pytest.raises(ValueError, match="broadcast"):
        mg.einsum("ij,ij->ij", a, mg.randn(2, 4))
    with pytest.raises(ValueError, match="does not appear"):
        mg.einsum("ij->z", a)
