"""SciPy's Array API dispatch on matgrad tensors: with ``SCIPY_ARRAY_API=1``,
``scipy.special.<f>(x)`` on a tensor that requires grad finds ``matgrad.array_api.special.<f>``
through ``x.__array_namespace__()``, records the row's node, and its gradient matches central
finite differences of SciPy's own function on NumPy arrays. SciPy reads the variable when it is
first imported, so the checks run in a subprocess.

Also the Array API inspection that scikit-learn relies on: dicts keyed by
``__array_namespace_info__().dtypes()`` are looked up with ``x.dtype``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import matgrad as mg
import matgrad.array_api as xp

pytest.importorskip("scipy")
pytest.importorskip("array_api_compat")  # SciPy's dispatch finds namespaces through it

# (scipy.special function, the arguments as a Python expression over the tensors x, y and
# the number arrays X, Y, the node the call records, the differentiated arguments)
CASES = {
    "erf": ("x", "ErfBackward0"),
    "erfc": ("x", "ErfcBackward0"),
    "erfcx": ("x", "SpecialErfcxBackward0"),
    "erfinv": ("0.5 * x", "ErfinvBackward0"),
    "expit": ("x", "SigmoidBackward0"),
    "logit": ("0.25 * x + 0.5", "LogitBackward0"),
    "log_ndtr": ("x", "SpecialLogNdtrBackward0"),
    "ndtr": ("x", None),  # a composite: erfc(-x / sqrt 2) / 2
    "ndtri": ("0.25 * x + 0.5", "SpecialNdtriBackward0"),
    "gammaln": ("y", "LgammaBackward0"),
    "psi": ("y", "DigammaBackward0"),
    "digamma": ("y", "DigammaBackward0"),
    "polygamma": ("2, y", "PolygammaBackward0"),
    "multigammaln": ("y + 1.5, 3", "MvlgammaBackward0"),
    "i0": ("x", "I0Backward0"),
    "i0e": ("x", "SpecialI0eBackward0"),
    "i1": ("x", "SpecialI1Backward0"),
    "i1e": ("x", "SpecialI1eBackward0"),
    "j0": ("3 * x", "SpecialBesselJ0Backward0"),
    "j1": ("3 * x", "SpecialBesselJ1Backward0"),
    "xlogy": ("x, y", "XlogyBackward0"),
    "xlog1py": ("x, y", "SpecialXlog1pyBackward0"),
    "entr": ("y", "SpecialEntrBackward0"),
    "sinc": ("x", "SincBackward0"),
    "zeta": ("2.5, y", "SpecialZetaBackward0"),
    "gammainc": ("1.5, y", "IgammaBackward0"),
    "gammaincc": ("1.5, y", "IgammacBackward0"),
    "exp2": ("x", "Exp2Backward0"),
    # SciPy's own Array API code, run on matgrad's namespace (graphs of standard functions);
    # log_softmax writes into the max it took (xpx.at(x_max, ...).set(0), in place), which
    # the backward pass refuses, as PyTorch's does on torch tensors
    "logsumexp": ("x", None),
    "softmax": ("x", None),
    "log_softmax": ("x", None),
    "rel_entr": ("y, y + x * 0.5 + 1.0", None),
}

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import scipy.special as ss
    import matgrad as mg

    cases = json.loads(sys.argv[1])
    X = np.array([-1.3, -0.4, 0.3, 0.9, 1.6])
    Y = np.array([0.4, 0.9, 1.7, 2.6, 3.3])
    W = np.array([0.7, -1.1, 0.4, 1.9, -0.6])  # a fixed cotangent: a weighted sum of outputs
    report = {}
    for name, (args, _node) in cases.items():
        f = getattr(ss, name)
        x, y = mg.tensor(X, requires_grad=True), mg.tensor(Y, requires_grad=True)
        out = eval(f"f({args})")
        entry = {"type": type(out).__name__, "node": type(out.grad_fn).__name__}
        names = [v for v in "xy" if v in args]  # the tensors the call reads
        try:
            grads = mg.autograd.grad(
                (out * mg.tensor(W)).sum(), [{"x": x, "y": y}[v] for v in names]
            )
        except RuntimeError as e:
            report[name] = dict(entry, error=str(e))
            continue
        entry["grads"] = [g.numpy().tolist() for g in grads]
        # central differences of SciPy's function on NumPy arrays, one coordinate at a time
        fds = []
        for v in names:
            base = X if v == "x" else Y
            col = []
            for i in range(base.size):
                h = np.zeros_like(base)
                h[i] = 1e-6
                vals = []
                for sgn in (1, -1):
                    env = {"x": X, "y": Y, "f": f}
                    env[v] = base + sgn * h
                    vals.append(float(np.sum(np.asarray(eval(f"f({args})", env)) * W)))
                col.append((vals[0] - vals[1]) / 2e-6)
            fds.append(col)
        entry["fd"] = fds
        report[name] = entry
    # gradcheck (matgrad's finite differences, float64) through SciPy's dispatch
    from matgrad.autograd import gradcheck
    t = mg.tensor(Y, requires_grad=True)
    report["gradcheck"] = bool(
        gradcheck(lambda v: ss.i0e(v) * ss.polygamma(1, v) + ss.zeta(3.0, v), [t])
    )
    # no derivative in zeta's s (as PyTorch): the backward pass raises
    s = mg.tensor([2.5, 3.0], requires_grad=True)
    try:
        ss.zeta(s, mg.tensor([1.0, 2.0])).sum().backward()
        report["zeta_s"] = "no error"
    except NotImplementedError as e:
        report["zeta_s"] = str(e)
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def report() -> dict:
    env = dict(os.environ, SCIPY_ARRAY_API="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(CASES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(CASES))
def test_scipy_special_records_a_graph_and_its_gradient_matches_finite_differences(name, report):
    entry = report[name]
    assert entry["type"] == "Tensor"
    if name == "log_softmax":
        assert "modified by an inplace operation: AmaxBackward0 saved 'result'" in entry["error"]
        return
    assert "error" not in entry, entry["error"]
    node = CASES[name][1]
    if node is not None:
        assert entry["node"] == node
    else:
        assert entry["node"].endswith("Backward0")  # a composite: some graph was recorded
    assert len(entry["grads"]) == len(entry["fd"]) >= 1
    for got, fd in zip(entry["grads"], entry["fd"], strict=True):
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


def test_gradcheck_through_scipy_dispatch(report):
    assert report["gradcheck"] is True


def test_zeta_has_no_derivative_in_s_through_scipy_either(report):
    assert "derivative for 'special_zeta' with respect to 'self'" in report["zeta_s"]


def test_namespace_special_has_scipys_names():
    assert xp.special.__name__ == "matgrad.array_api.special" and "special" in xp.__all__
    for name in xp.special.__all__:
        assert callable(getattr(xp.special, name)), name
    assert xp.special.psi is xp.special.digamma is mg.special.digamma
    assert xp.special.j0 is mg.special.bessel_j0
    x = mg.tensor([2.0, 3.5])
    np.testing.assert_allclose(xp.special.zeta(x).numpy(), [np.pi**2 / 6, 1.1267338673170566])
    with pytest.raises(TypeError, match="polygamma: n must be an integer"):
        xp.special.polygamma(np.array([1, 2]), x)
    assert xp.special.polygamma(np.array(1), x).tolist() == mg.polygamma(1, x).tolist()


def test_info_dtypes_key_dicts_that_x_dtype_looks_up():
    """scikit-learn builds dicts from the namespace info (``supported_float_dtypes``,
    ``{dtype: ...}[X.dtype]`` in LogisticRegression): lookups with a tensor's dtype work."""
    info = xp.__array_namespace_info__()
    floats = info.dtypes(kind="real floating")
    supported = [floats[k] for k in ("float64", "float32") if k in floats]
    tol = {supported[0]: 1e-12, supported[1]: 1e-6}
    for dt, expected in ((mg.float64, 1e-12), (mg.float32, 1e-6)):
        X = xp.asarray(np.ones((3, 2)), dtype=dt)
        assert tol[X.dtype] == expected
        assert X.dtype in supported and hash(X.dtype) == hash(floats[X.dtype.name])
    assert {v: k for k, v in info.dtypes().items()}[xp.asarray([1]).dtype] == "int64"
