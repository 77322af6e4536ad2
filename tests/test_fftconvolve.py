"""SciPy's ``signal.fftconvolve`` on matgrad tensors that require grad (issue #13): with
``SCIPY_ARRAY_API=1`` SciPy finds ``matgrad.array_api`` through ``x.__array_namespace__()``
and calls its ``fft`` extension (``rfftn``/``irfftn``, ``fftn``/``ifftn`` for complex input),
so the convolution records a graph of the fft rows, and its gradient must match central
finite differences of SciPy's own fftconvolve on NumPy arrays. SciPy reads the variable when it
is first imported, so the checks run in a subprocess (one for all cases).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("scipy")
pytest.importorskip("array_api_compat")  # SciPy's dispatch finds namespaces through it

SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import scipy.signal as ss
    import matgrad as mg
    from matgrad.autograd import gradcheck
    from matgrad.viz import graph_nodes

    rng = np.random.default_rng(13)
    CASES = {  # name: (in1, in2, keyword arguments)
        "full": (rng.standard_normal(7), rng.standard_normal(4), {"mode": "full"}),
        "same": (rng.standard_normal(6), rng.standard_normal(3), {"mode": "same"}),
        "valid": (rng.standard_normal(8), rng.standard_normal(3), {"mode": "valid"}),
        "2d": (rng.standard_normal((4, 5)), rng.standard_normal((2, 3)), {}),
        "axes": (rng.standard_normal((3, 6)), rng.standard_normal((1, 4)), {"axes": 1}),
        "complex": (
            rng.standard_normal(5) + 1j * rng.standard_normal(5),
            rng.standard_normal(3),
            {},
        ),
    }
    report = {}
    for name, (A, B, kw) in CASES.items():
        a, b = mg.tensor(A, requires_grad=True), mg.tensor(B, requires_grad=True)
        out = ss.fftconvolve(a, b, **kw)
        ref = ss.fftconvolve(A, B, **kw)  # SciPy on NumPy arrays (pocketfft)
        W = rng.standard_normal(ref.shape)  # a fixed cotangent: a weighted sum of outputs
        if np.iscomplexobj(ref):
            W = W + 1j * rng.standard_normal(ref.shape)

        def loss(X, Y):  # Re <W, out>, the real loss whose gradient is W's VJP
            return float(np.real(np.sum(np.conj(W) * ss.fftconvolve(X, Y, **kw))))

        ga, gb = mg.autograd.grad(out, [a, b], mg.tensor(W))
        fds = []
        for k, base in enumerate((A, B)):
            fd = np.zeros(base.shape, dtype=base.dtype)
            for i in np.ndindex(base.shape):
                for unit in (1.0, 1j) if np.iscomplexobj(base) else (1.0,):
                    h = np.zeros(base.shape, dtype=base.dtype)
                    h[i] = 1e-6 * unit
                    args = [A, B]
                    args[k] = base + h
                    up = loss(*args)
                    args[k] = base - h
                    fd[i] += unit * (up - loss(*args)) / 2e-6
            fds.append(fd)
        report[name] = {
            "type": type(out).__name__,
            "nodes": sorted({type(n).__name__ for n in graph_nodes([out.grad_fn])}),
            "value_err": float(np.max(np.abs(out.detach().numpy() - ref))),
            "grad_err": [
                float(np.max(np.abs(g.numpy() - fd))) for g, fd in zip((ga, gb), fds)
            ],
            "grad_scale": [float(np.max(np.abs(fd))) for fd in fds],
            "grad_dtypes": [str(ga.dtype), str(gb.dtype)],
        }
    # matgrad's own gradcheck through SciPy's dispatch: reverse and forward mode, and second
    # order (the fft rows' VJPs are made of fft rows)
    a = mg.tensor(rng.standard_normal(6), requires_grad=True)
    b = mg.tensor(rng.standard_normal(3), requires_grad=True)
    f = lambda x, y: ss.fftconvolve(x, y, mode="same")
    report["gradcheck"] = bool(gradcheck(f, [a, b], check_forward_ad=True))
    report["gradgradcheck"] = bool(mg.autograd.gradgradcheck(f, [a, b]))
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def report():
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["full", "same", "valid", "2d", "axes", "complex"])
def test_fftconvolve_records_the_fft_rows_and_its_gradient_matches(report, case):
    r = report[case]
    assert r["type"] == "Tensor"
    rows = {"FftR2cBackward0", "FftC2rBackward0"}
    if case == "complex":  # complex input: fftn/ifftn (the real in2 through the two-sided r2c)
        rows = {"FftC2cBackward0"}
    assert rows <= set(r["nodes"]), r["nodes"]
    assert r["value_err"] < 1e-12
    for err, scale in zip(r["grad_err"], r["grad_scale"], strict=True):
        assert err <= 1e-6 * max(1.0, scale), (err, scale)
    expected = ["complex128", "float64"] if case == "complex" else ["float64", "float64"]
    assert r["grad_dtypes"] == expected


def test_gradcheck_through_scipy(report):
    assert report["gradcheck"] and report["gradgradcheck"]
