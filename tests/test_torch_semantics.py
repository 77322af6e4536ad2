"""PyTorch's semantics where code relies on them (issue #10).

Every expected value is a closed form or PyTorch's documented/observed number, written out
here (matgrad never imports torch, and neither do its tests).
"""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest

import matgrad as mg
from matgrad.autograd import forward_ad as fwAD


def leaf(values, **kwargs) -> mg.Tensor:
    return mg.tensor(values, requires_grad=True, **kwargs)


def grad_of(fn, values) -> list:
    x = leaf(values)
    fn(x).backward()
    return x.grad.tolist()


# -- 1. max/min with dim: the gradient goes to the returned index ------------------------------
def test_max_min_with_dim_send_the_gradient_to_the_returned_index():
    # PyTorch: values gathered at the index it returns (the first extremum)
    assert grad_of(lambda x: x.max(0).values, [1.0, 3.0, 3.0]) == [0.0, 1.0, 0.0]
    assert grad_of(lambda x: mg.max(x, 0)[0], [1.0, 3.0, 3.0]) == [0.0, 1.0, 0.0]
    assert grad_of(lambda x: mg.max(x, dim=0).values, [1.0, 3.0, 3.0]) == [0.0, 1.0, 0.0]
    assert grad_of(lambda x: x.min(0).values, [3.0, 1.0, 1.0]) == [0.0, 1.0, 0.0]
    assert mg.max(mg.tensor([1.0, 3.0, 3.0]), 0).indices.item() == 1
    x = leaf([[1.0, 5.0, 5.0], [2.0, 2.0, 1.0]])
    values, indices = x.max(dim=-1, keepdim=True)
    assert values.tolist() == [[5.0], [2.0]] and indices.tolist() == [[1], [0]]
    values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    values, indices = mg.min(mg.tensor([[1.0, 5.0, 5.0], [2.0, 2.0, 1.0]]), 0)
    assert values.tolist() == [1.0, 2.0, 1.0] and indices.tolist() == [0, 1, 1]


def test_amax_amin_and_max_without_dim_split_ties_evenly():
    assert grad_of(lambda x: x.amax(), [1.0, 3.0, 3.0]) == [0.0, 0.5, 0.5]
    assert grad_of(lambda x: mg.amin(x, 0), [3.0, 1.0, 1.0]) == [0.0, 0.5, 0.5]
    assert grad_of(lambda x: x.max(), [3.0, 3.0, 1.0]) == [0.5, 0.5, 0.0]
    assert grad_of(lambda x: mg.amax(x, ()), [[1.0, 2.0], [2.0, 0.0]]) == [[0, 0.5], [0.5, 0]]


# -- 2. std/var of a constant input ------------------------------------------------------------
def test_std_and_var_of_a_constant_input_have_gradient_zero():
    """PyTorch 2.x: ``torch.ones(3, requires_grad=True).std().backward()`` gives the gradient
    [0., 0., 0.] (its std_backward masks the division by std where std == 0), not NaN; so
    does var, and so do std/var along a dim of constant rows."""
    assert grad_of(lambda x: x.std(), [1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]
    assert grad_of(lambda x: x.var(), [1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]
    assert grad_of(lambda x: mg.std(x, 0).sum(), np.ones((2, 3))) == [[0.0] * 3] * 2
    # one constant row, one not: d std / dx = (x - mean) / ((n - 1) std) = [-1, 0, 1] / 2
    assert grad_of(lambda x: x.std(1).sum(), [[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]) == [
        [0.0, 0.0, 0.0],
        [-0.5, 0.0, 0.5],
    ]


# -- 3. atan2 at the origin --------------------------------------------------------------------
def test_atan2_at_the_origin_has_gradient_zero():
    y, x = leaf(0.0), leaf(0.0)
    mg.atan2(y, x).backward()
    assert (y.grad.item(), x.grad.item()) == (0.0, 0.0)  # PyTorch: (0., -0.)
    y, x = leaf(1.0), leaf(2.0)  # elsewhere: (x, -y) / (x^2 + y^2)
    mg.atan2(y, x).backward()
    assert y.grad.item() == pytest.approx(0.4) and x.grad.item() == pytest.approx(-0.2)
    with fwAD.dual_level():
        out = mg.atan2(fwAD.make_dual(mg.tensor(0.0), mg.tensor(1.0)), mg.tensor(0.0))
        assert fwAD.unpack_dual(out).tangent.item() == 0.0


# -- 4. Tensor.norm / matgrad.norm: p-norms of the elements -------------------------------------
A = [[1.0, 2.0], [3.0, 4.0]]
NORM_CASES = [  # (args, kwargs, expected): closed forms for A
    ((), {}, math.sqrt(30)),
    ((2,), {}, math.sqrt(30)),  # the 2-norm of the elements, not the spectral norm
    ((3,), {}, 100 ** (1 / 3)),
    (("fro",), {}, math.sqrt(30)),
    ((math.inf,), {}, 4.0),
    ((-math.inf,), {}, 1.0),
    ((1,), {}, 10.0),
    ((0,), {}, 4.0),
    ((2, 0), {}, [math.sqrt(10), math.sqrt(20)]),
    ((), {"dim": 1, "keepdim": True}, [[math.sqrt(5)], [5.0]]),
    (("fro", (0, 1)), {}, math.sqrt(30)),
    (("nuc",), {}, math.sqrt(34)),  # (s1 + s2)^2 = ||A||_F^2 + 2 |det A|
    ((1,), {"dim": 1}, [3.0, 7.0]),
]


@pytest.mark.parametrize(("args", "kwargs", "expected"), NORM_CASES)
def test_tensor_norm_is_the_p_norm_of_the_elements(args, kwargs, expected):
    out = mg.linalg.tensor_norm(mg.tensor(A), *args, **kwargs)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)


def test_tensor_norm_gradient_and_dims():
    x = leaf(A)
    mg.linalg.tensor_norm(x, 2).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.array(A) / math.sqrt(30), rtol=1e-12)
    ones = mg.ones(2, 3, 4)
    np.testing.assert_allclose(mg.linalg.tensor_norm(ones, 3, (0, 2)).numpy(), [2.0] * 3)
    np.testing.assert_allclose(mg.linalg.tensor_norm(ones, "fro").item(), math.sqrt(24))
    with pytest.raises(RuntimeError, match="2 axes"):
        mg.linalg.tensor_norm(ones, "fro", (0, 1, 2))


def test_tensor_norm_method_and_top_level_function():
    x = mg.tensor(A)
    assert x.norm(2).item() == pytest.approx(math.sqrt(30))
    assert x.norm(3).item() == pytest.approx(100 ** (1 / 3))
    assert mg.norm(x, float("inf")).item() == 4.0


# -- 5. std/var signatures ---------------------------------------------------------------------
X = [[1.0, 2.0, 4.0], [3.0, 5.0, 9.0]]  # squared deviations from the mean 4: sum 40
STD_CASES = [
    (lambda x: mg.std(x, True), math.sqrt(8)),  # positional `unbiased`
    (lambda x: mg.std(x, False), math.sqrt(40 / 6)),
    (lambda x: mg.std(x, unbiased=False), math.sqrt(40 / 6)),
    (lambda x: mg.std(x, correction=0), math.sqrt(40 / 6)),
    (lambda x: mg.std(x, 0), [math.sqrt(2), math.sqrt(4.5), math.sqrt(12.5)]),  # dim second
    (lambda x: mg.std(x, 1, False), [math.sqrt(14) / 3, math.sqrt(56) / 3]),
    (lambda x: mg.std(x, 1, True, True), [[math.sqrt(7 / 3)], [math.sqrt(28 / 3)]]),
    (lambda x: mg.std(x, dim=(0, 1)), math.sqrt(8)),
    (lambda x: mg.var(x, False), 40 / 6),
    (lambda x: mg.var(x, 0, unbiased=False), [1.0, 2.25, 6.25]),
    (lambda x: mg.var(x, dim=1, correction=2), [14 / 3, 56 / 3]),
    (lambda x: mg.var(x, dim=1, keepdim=True), [[7 / 3], [28 / 3]]),
    (lambda x: mg.var(x, None, True), 8.0),
    (lambda x: x.std(0), [math.sqrt(2), math.sqrt(4.5), math.sqrt(12.5)]),
    (lambda x: x.var(1, keepdim=True), [[7 / 3], [28 / 3]]),
]


@pytest.mark.parametrize(("fn", "expected"), STD_CASES)
def test_std_var_take_pytorchs_overloads(fn, expected):
    np.testing.assert_allclose(fn(mg.tensor(X)).numpy(), expected, rtol=1e-12)


def test_std_var_methods_take_pytorchs_overloads():
    x = mg.tensor(X)
    assert x.std(True).item() == pytest.approx(math.sqrt(8))
    assert x.var(unbiased=False).item() == pytest.approx(40 / 6)
    expected = [[math.sqrt(7 / 3)], [math.sqrt(28 / 3)]]
    np.testing.assert_allclose(x.std(1, True, True).numpy(), expected)


def test_std_var_reject_conflicting_arguments():
    x = mg.tensor(X)
    with pytest.raises(TypeError):
        mg.var(x, True, correction=0)
    with pytest.raises(TypeError):
        mg.var(x, 0, True, correction=0)


# -- 6. reflected operators record the tensor first ---------------------------------------------
def _first_input(out: mg.Tensor):
    return out.grad_fn.next_functions[0][0]


REFLECTED = {  # PyTorch's grad_fn and which entry of next_functions is b's node
    "radd": (lambda b: 2 + b, "AddBackward0"),  # add(b, 2): [b, None]
    "rmul": (lambda b: 2 * b, "MulBackward0"),  # mul(b, 2): [b, None]
    "rsub": (lambda b: 2 - b, None),  # RsubBackward1 in PyTorch: [b]
    "rpow": (lambda b: 2**b, None),  # PowBackward2 in PyTorch: [b]
}


@pytest.mark.parametrize("name", list(REFLECTED))
def test_reflected_operators_record_the_tensor_first(name):
    fn, node_name = REFLECTED[name]
    b = leaf([1.0, 2.0])
    out = fn(b)
    assert _first_input(out).variable is b
    if node_name is not None:
        assert out.grad_fn.name() == node_name


def test_reflected_division_is_reciprocal_times_the_scalar():
    b = leaf([1.0, 2.0])
    out = 2 / b  # PyTorch: MulBackward0 of (ReciprocalBackward0 of b, None)
    assert out.grad_fn.name() == "MulBackward0"
    assert _first_input(out).name() == "ReciprocalBackward0"
    assert _first_input(out).next_functions[0][0].variable is b


def test_reflected_matmul_records_the_other_operand_first():
    b = leaf(np.eye(2))
    out = b.__rmatmul__(mg.ones(2, 2))  # PyTorch: matmul(other, b): [None, b]
    assert out.grad_fn.next_functions[0][0] is None
    assert out.grad_fn.next_functions[1][0].variable is b


# -- 7. custom Functions -----------------------------------------------------------------------
class _TwoOutputs(mg.autograd.Function):
    seen: tuple = ()

    @staticmethod
    def forward(ctx, x, materialize=True):
        ctx.set_materialize_grads(materialize)
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, g1, g2):
        _TwoOutputs.seen = (g1, g2)
        out = g1 * 2 if g2 is None else g1 * 2 + g2 * 3
        return out, None


def test_function_backward_gets_zeros_for_outputs_without_gradient():
    x = leaf([1.0, 2.0])
    a, _ = _TwoOutputs.apply(x)
    a.sum().backward()
    g1, g2 = _TwoOutputs.seen
    assert g1.tolist() == [1.0, 1.0] and g2.tolist() == [0.0, 0.0]
    assert x.grad.tolist() == [2.0, 2.0]


def test_function_without_materialized_grads_gets_none():
    x = leaf([1.0, 2.0])
    a, _ = _TwoOutputs.apply(x, False)
    a.sum().backward()
    assert _TwoOutputs.seen[1] is None and x.grad.tolist() == [2.0, 2.0]


def _scale_function(backward_result):
    class Scale(mg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return backward_result(g)

    return Scale


def test_function_backward_may_return_extra_trailing_nones():
    x = leaf([1.0, 2.0])
    _scale_function(lambda g: (g * 2, None, None, None)).apply(x, 2.0).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    "result", [lambda g: (g * 2,), lambda g: (g * 2, None, 5.0)], ids=["too few", "extra value"]
)
def test_function_backward_with_the_wrong_number_of_gradients_raises(result):
    # PyTorch: "function ScaleBackward returned an incorrect number of gradients (expected 2,
    # got 1)" (and got 3 for a non-None extra)
    out = _scale_function(result).apply(leaf([1.0, 2.0]), 2.0).sum()
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        out.backward()


# -- 8. leaving a dual level clears tangents ---------------------------------------------------
def test_leaving_a_dual_level_clears_the_tangents():
    x = mg.tensor([1.0, 2.0])
    with fwAD.dual_level():
        d = fwAD.make_dual(x, mg.ones(2))
        y = (d * 2).sin()
        assert fwAD.unpack_dual(y).tangent is not None
    assert fwAD.unpack_dual(d).tangent is None and d._fw_grad is None
    assert fwAD.unpack_dual(y).tangent is None


def test_tensors_made_in_a_dual_level_lose_their_tangent_when_it_ends():
    with fwAD.dual_level():
        y = fwAD.make_dual(mg.tensor([1.0, 2.0]), mg.ones(2)) * 2
    assert y._fw_grad is None
    with fwAD.dual_level():  # a later level does not see the old tangent again
        assert fwAD.unpack_dual(y * 3).tangent is None


# -- 9. tensor() of one-element tensors --------------------------------------------------------
def test_tensor_of_zero_d_tensors():
    t = mg.tensor([mg.tensor(1.0), mg.tensor(2.0)])
    assert t.shape == (2,) and t.tolist() == [1.0, 2.0]
    assert mg.tensor([[mg.tensor(1.0), mg.tensor(2.0)]]).shape == (1, 2)


def test_tensor_of_one_element_tensors():
    # PyTorch: torch.tensor([torch.tensor([1.]), torch.tensor([2.])]).shape == (2,)
    assert mg.tensor([mg.tensor([1.0]), mg.tensor([2.0])]).shape == (2,)


# -- 10. dim=0 / dim=-1 on 0-d tensors ---------------------------------------------------------
ZERO_D = {  # op -> (value at x = 2, derivative at x = 2)
    "sum": (lambda x, d: x.sum(d), 2.0, 1.0),
    "sum keepdim": (lambda x, d: mg.sum(x, d, keepdim=True), 2.0, 1.0),
    "sum tuple": (lambda x, d: mg.sum(x, (d,)), 2.0, 1.0),
    "mean": (lambda x, d: x.mean(d), 2.0, 1.0),
    "prod": (lambda x, d: x.prod(d), 2.0, 1.0),
    "amax": (lambda x, d: x.amax(d), 2.0, 1.0),
    "amin": (lambda x, d: mg.amin(x, d, keepdim=True), 2.0, 1.0),
    "max": (lambda x, d: x.max(d).values, 2.0, 1.0),
    "min": (lambda x, d: mg.min(x, d, keepdim=True)[0], 2.0, 1.0),
    "softmax": (lambda x, d: x.softmax(d), 1.0, 0.0),
    "log_softmax": (lambda x, d: mg.log_softmax(x, d), 0.0, 0.0),
    "logsumexp": (lambda x, d: x.logsumexp(d), 2.0, 1.0),
    "flip": (lambda x, d: x.flip(d), 2.0, 1.0),
    "cumsum": (lambda x, d: x.cumsum(d), 2.0, 1.0),
    "cumprod": (lambda x, d: mg.cumprod(x, d), 2.0, 1.0),
    "squeeze": (lambda x, d: x.squeeze(d), 2.0, 1.0),
    "std": (lambda x, d: mg.std(x, d, correction=0), 0.0, 0.0),
}


@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("op", sorted(ZERO_D))
def test_zero_d_tensors_accept_dim_0_and_minus_1(op, dim):
    fn, value, derivative = ZERO_D[op]
    x = leaf(2.0)
    out = fn(x, dim)
    assert out.shape == () and out.item() == pytest.approx(value)
    out.backward()
    assert x.grad.item() == pytest.approx(derivative)


def test_zero_d_argmax_and_out_of_range_dims():
    x = mg.tensor(2.0)
    assert mg.argmax(x, 0).item() == 0 and x.argmin(-1).item() == 0
    assert x.max(0).indices.item() == 0
    for fn in (lambda: x.sum(1), lambda: x.cumsum(1), lambda: x.softmax(-2), lambda: x.max(1)):
        with pytest.raises(IndexError):
            fn()


# -- 11. zero-size inputs ----------------------------------------------------------------------
def test_softmax_and_logsumexp_over_an_empty_axis():
    x = mg.zeros(3, 0, requires_grad=True)
    for fn in (lambda x: mg.softmax(x, -1), lambda x: mg.log_softmax(x, 1)):
        out = fn(x)
        assert out.shape == (3, 0)
        out.sum().backward()
        assert x.grad.shape == (3, 0)
    lse = mg.logsumexp(x, -1)
    assert lse.tolist() == [-math.inf] * 3  # the log of an empty sum
    assert mg.softmax(mg.zeros(0, 3), 0).shape == (0, 3)


@pytest.mark.parametrize(
    ("equation", "shapes", "out_shape"),
    [
        ("ij,jk->ik", [(2, 0), (0, 3)], (2, 3)),  # an empty contraction: zeros
        ("ij,jk->ik", [(0, 2), (2, 3)], (0, 3)),
        ("ij,ij->j", [(0, 2), (0, 2)], (2,)),
        ("i,j->ij", [(0,), (3,)], (0, 3)),
        ("ij,ij->ij", [(1, 3), (0, 3)], (0, 3)),  # a size-1 axis broadcasts to 0
        ("bij,bjk->bik", [(0, 2, 3), (0, 3, 4)], (0, 2, 4)),
        ("ij,jk,kl->il", [(2, 0), (0, 3), (3, 4)], (2, 4)),
    ],
)
def test_einsum_with_a_zero_dimension(equation, shapes, out_shape):
    xs = [mg.ones(*s, requires_grad=True) for s in shapes]
    out = mg.einsum(equation, *xs)
    assert out.shape == out_shape and not out.detach().numpy().any()
    out.sum().backward()
    for x in xs:
        assert x.grad.shape == x.shape


@pytest.mark.parametrize(
    ("name", "fn", "value"),
    [
        ("det", lambda A: mg.linalg.det(A), 1.0),  # the empty product
        ("slogdet", lambda A: mg.linalg.slogdet(A).logabsdet, 0.0),
        ("solve", lambda A: mg.linalg.solve(A, mg.zeros(0, 2)).sum(), 0.0),
        ("cholesky", lambda A: mg.linalg.cholesky(A).sum(), 0.0),
        ("qr", lambda A: mg.linalg.qr(A).Q.sum() + mg.linalg.qr(A).R.sum(), 0.0),
        ("inv", lambda A: mg.linalg.inv(A).sum(), 0.0),
    ],
)
def test_backward_of_zero_by_zero_matrices(name, fn, value, capfd):
    A = mg.zeros(0, 0, requires_grad=True)
    out = fn(A)
    assert out.item() == value
    out.backward()
    assert A.grad.shape == (0, 0)
    batch = mg.zeros(2, 0, 0, requires_grad=True)
    mg.linalg.det(batch).sum().backward()
    assert batch.grad.shape == (2, 0, 0)
    assert capfd.readouterr().out == ""  # LAPACK says nothing about lda = 0


# -- 12. LAPACK never prints -------------------------------------------------------------------
def test_lapack_prints_nothing_on_singular_non_pd_or_non_finite_input(capfd):
    la = mg.linalg
    singular, not_pd = mg.ones(3, 3), -mg.eye(3)
    infinite = mg.tensor(np.eye(3) + np.diag([np.inf, 0.0, 0.0]))
    with pytest.raises(la.LinAlgError):
        la.inv(singular)
    with pytest.raises(la.LinAlgError):
        la.solve(singular, mg.ones(3, 1))
    with pytest.raises(la.LinAlgError):
        la.cholesky(not_pd)
    assert la.det(singular).item() == 0.0
    with pytest.raises(la.LinAlgError, match="non-finite"):
        la.svd(infinite)  # LAPACK's gesdd would print about DLASCL
    with pytest.raises(la.LinAlgError, match="non-finite"):
        la.svdvals(infinite)
    with pytest.raises(la.LinAlgError, match="non-finite"):
        la.pinv(infinite)
    A = mg.tensor(np.full((3, 3), np.inf), requires_grad=True)
    la.det(A).backward()  # the adjugate of a matrix with infinite entries: NaN, silently
    assert np.isnan(A.grad.numpy()).all()
    assert capfd.readouterr().out == ""


# -- 13. manual_seed of a negative seed --------------------------------------------------------
def test_manual_seed_takes_negative_seeds_modulo_2_64():
    mg.manual_seed(-1)
    a = mg.rand(3).tolist()
    mg.manual_seed(2**64 - 1)
    assert mg.rand(3).tolist() == a
    mg.manual_seed(-(2**63))  # PyTorch's range: [-2**63, 2**64)
    for seed in (-(2**63) - 1, 2**64):
        with pytest.raises(ValueError):
            mg.manual_seed(seed)


# -- 14. a removed hook is released ------------------------------------------------------------
def _hook_released(register) -> bool:
    def hook(*args):
        return None

    ref = weakref.ref(hook)
    handle = register(hook)
    handle.remove()
    del hook
    gc.collect()
    return ref() is None and handle is not None


@pytest.mark.parametrize("where", ["leaf", "non-leaf", "node", "node pre-hook"])
def test_a_removed_hook_is_released(where):
    x = leaf([1.0, 2.0])
    y = x * 2
    register = {
        "leaf": x.register_hook,
        "non-leaf": y.register_hook,
        "node": y.grad_fn.register_hook,
        "node pre-hook": y.grad_fn.register_prehook,
    }[where]
    assert _hook_released(register)


# -- 15. the nuclear norm's gradient at a rank-deficient matrix -------------------------------
def test_nuclear_norm_of_a_rank_deficient_matrix_has_the_minimum_norm_subgradient():
    u, v = np.array([1.0, 2.0, 2.0]), np.array([3.0, 0.0, 4.0])  # |u| = 3, |v| = 5
    A = leaf(np.outer(u, v))
    out = mg.linalg.matrix_norm(A, "nuc")
    assert out.item() == pytest.approx(15.0)
    out.backward()
    # U_r V_r^T = u v^T / (|u| |v|): the null-space singular vectors get no gradient
    np.testing.assert_allclose(A.grad.numpy(), np.outer(u, v) / 15.0, atol=1e-12)
    Z = mg.zeros(2, 3, 3, requires_grad=True)  # the zero matrix: subgradient 0
    mg.linalg.matrix_norm(Z, "nuc").sum().backward()
    assert not Z.grad.numpy().any()
