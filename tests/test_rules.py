"""One generic test over the whole rule table (derivatives.yaml).

For every row and every sample in op_specs: reverse mode and forward mode agree with
central finite differences, second derivatives too (gradgradcheck), batched cotangents give
the same Jacobian as one backward pass per row, and float32 agrees with float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from op_specs import SPECS

import matgrad as mg
from matgrad.autograd import BatchingUnsupported, gradcheck, gradgradcheck
from matgrad.autograd.gradcheck import analytical_jacobian
from matgrad.ops.registry import RULES
from matgrad.viz import graph_nodes

CASES = [
    pytest.param(op, i, sample, id=f"{op}-{i}")
    for op, samples in sorted(SPECS.items())
    for i, sample in enumerate(samples)
]


def test_every_row_has_samples_and_every_sample_a_row():
    assert sorted(set(RULES) - set(SPECS)) == [], "rows of derivatives.yaml without samples"
    assert sorted(set(SPECS) - set(RULES)) == [], "samples for ops that have no row"
    assert all(SPECS[op] for op in SPECS)


def _inputs(sample, dtype=np.float64):
    return [mg.tensor(x.astype(dtype), requires_grad=True) for x in sample.inputs]


def _graph_ops(outputs):
    nodes = graph_nodes(o.grad_fn for o in outputs)
    return {node.rule.name for node in nodes if hasattr(node, "rule")}


def _call(sample, inputs):
    out = sample.fn(*inputs, *sample.nondiff)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("op,i,sample", CASES)
def test_sample_records_its_row(op, i, sample):
    outs = _call(sample, _inputs(sample))
    assert op in _graph_ops(outs), f"sample {i} of {op} does not record a {op} node"


@pytest.mark.parametrize("op,i,sample", CASES)
def test_first_derivatives_match_finite_differences(op, i, sample):
    inputs = _inputs(sample)
    assert gradcheck(
        lambda *xs: sample.fn(*xs, *sample.nondiff),
        inputs,
        eps=sample.eps,
        atol=sample.atol,
        rtol=sample.rtol,
        check_forward_ad=True,
    )


@pytest.mark.parametrize("op,i,sample", CASES)
def test_second_derivatives_match_finite_differences(op, i, sample):
    if not sample.gradgrad:
        pytest.skip(f"{op}: second derivative not defined for this sample ({sample.note})")
    inputs = _inputs(sample)
    assert gradgradcheck(
        lambda *xs: sample.fn(*xs, *sample.nondiff),
        inputs,
        eps=sample.eps,
        atol=sample.atol,
        rtol=sample.rtol,
    )


@pytest.mark.parametrize("op,i,sample", CASES)
def test_batched_cotangents_match_one_pass_per_row(op, i, sample):
    inputs = _inputs(sample)
    outs = _call(sample, inputs)
    out = outs[0]
    reference = analytical_jacobian(lambda *xs: _call(sample, xs)[0], inputs)
    eye = mg.tensor(np.eye(out.numel()).reshape((out.numel(),) + tuple(out.shape)))
    try:
        grads = mg.autograd.grad(out, inputs, eye, is_grads_batched=True, allow_unused=True)
    except BatchingUnsupported:
        assert not RULES[op].batched
        return
    for k, g in enumerate(grads):
        expected = reference[k][0]
        got = np.zeros_like(expected) if g is None else g.numpy().reshape(expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op,i,sample", CASES)
def test_float32_agrees_with_float64(op, i, sample):
    outs64 = _call(sample, _inputs(sample))
    inputs32 = _inputs(sample, np.float32)
    outs32 = _call(sample, inputs32)
    for o32, o64 in zip(outs32, outs64, strict=True):
        if o64.dtype.kind != "f":
            continue
        assert o32.dtype == np.float32 or op == "to_dtype"
        np.testing.assert_allclose(o32.detach().numpy(), o64.detach().numpy(), rtol=2e-4, atol=2e-5)
        total = o32.sum() if o32.requires_grad else None
    if total is not None:
        total.backward()
        for x in inputs32:
            assert x.grad is None or x.grad.dtype == np.float32
