"""Tests for ``matgrad explain``: the command run as a subprocess, and the Python API.

Every number the command reports (outputs, Jacobians, gradients) is compared with an
independent NumPy computation: closed forms in the row-major vec convention
(``vec(X) = X.ravel()``), e.g. J(A * B, A) = diag(vec(B)), J(A @ B, A) = kron(I_m, B^T),
d det(A)/dA = det(A) A^-T, or central finite differences of NumPy functions.

The subprocess runs are started together (a thread pool) the first time a test needs them,
since each one pays the interpreter's start-up.

Guards: the einsum case is skipped while ``matgrad.einsum`` does not exist; the inv, det, svd,
solve and logdet cases are skipped while ``matgrad.linalg`` cannot be imported.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import matgrad
from matgrad import viz

SRC = str(Path(__file__).resolve().parents[1] / "src")
RUN_DIR = Path(__file__).resolve().parent  # tests/ : nothing is written there by the command


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _has_linalg() -> bool:
    try:
        importlib.import_module("matgrad.linalg")
    except ImportError:
        return False
    return True


def need_linalg() -> None:
    if not _has_linalg():
        pytest.skip("matgrad.linalg is not available yet")


def need_einsum() -> None:
    if not callable(getattr(matgrad, "einsum", None)):
        pytest.skip("matgrad.einsum is not available yet")


# -- running the command ----------------------------------------------------------------------
MARKER_DIR = Path(os.environ.get("TMPDIR", "/tmp"))
MARKER = MARKER_DIR / f"matgrad_explain_pwned_{os.getpid()}"

VALID: dict[str, list[str]] = {
    "hadamard": ["C = A * B"],
    "matmul": ["C = A @ B"],
    "matmul_rect": ["C = A @ B", "--shape", "A=2x3", "--shape", "B=3x4"],
    "elementwise": ["C = exp(A) + sin(A) * B"],
    "quotient": ["C = A / B - A ** 2"],
    "sum": ["L = A.sum()"],
    "mean_dim": ["s = A.mean(dim=0)", "--shape", "A=3x4"],
    "broadcast_add": ["C = A + b", "--shape", "b=3"],
    "broadcast_mul": ["C = A * b", "--shape", "A=3x2", "--shape", "b=3x1"],
    "transpose": ["C = A.T", "--shape", "A=2x3"],
    "chain": ["T = A @ B; L = (T * T).sum()"],
    "matvec": ["y = A @ x", "--shape", "x=3"],
    "where": ["C = where(A > 0, A, 2 * B)"],
    "tanh_matmul": ["C = tanh(A @ B.T)", "--shape", "A=2x3", "--shape", "B=4x3"],
    "index": ["C = A[0, 1:] * 3"],
    "softmax": ["C = softmax(A, -1)"],
    "two_outputs": ["U, V = A * 2, B - A"],
    "float32": ["C = A * B", "--dtype", "float32", "--seed", "7"],
    "einsum": ["C = einsum('ij,jk->ik', A, B)"],
    "einsum_trace": ["L = einsum('ij,ji->', A, B)"],
    "inv": ["C = linalg.inv(A)"],
    "det": ["L = linalg.det(A)"],
    "det_rect": ["L = linalg.det(A @ B.T)", "--shape", "A=4x3", "--shape", "B=4x3"],
    "svd": ["U, S, Vh = linalg.svd(A, full_matrices=False)", "--shape", "A=3x2"],
    "solve": ["X = linalg.solve(A, B)"],
    "logdet": ["L = linalg.logdet(A @ A.T)"],
}

HOSTILE: dict[str, list[str]] = {
    "import_call": [f"__import__('os').system('touch {MARKER}')"],
    "import_lambda": [f"C = (lambda: __import__('os').system('touch {MARKER}'))()"],
    "import_statement": ["import os; C = A"],
    "from_import": ["from os import system"],
    "dunder_class": ["C = A.__class__"],
    "subclasses": ["C = A.__class__.__mro__[1].__subclasses__()"],
    "dunder_name": ["C = __builtins__"],
    "comprehension": ["C = [x for x in A]"],
    "lambda": ["C = lambda: 1"],
    "open": ["C = open('f')"],
    "eval": ["C = eval('1 + 1')"],
    "exec": ["C = exec('import os')"],
    "getattr": ["C = getattr(A, '__class__')"],
    "private_attr": ["C = A._data"],
    "method_not_listed": ["C = A.numpy()"],
    "dict": ["C = {'a': A}"],
    "fstring": ["C = f'{A}'"],
    "string": ["C = 'hello'"],
    "def": ["def f(): pass"],
    "for": ["for x in A: pass"],
    "with": ["with open('x') as f: pass"],
    "walrus": ["C = (D := A)"],
    "kwargs_unpack": ["C = exp(**{'a': A})"],
    "too_long": ["C = A" + " + A" * 600],
    "deep_parens": ["C = " + "(" * 60 + "A" + ")" * 60],
    "deep_unary": ["C = " + "-" * 60 + "A"],
    "deep_calls": ["C = " + "exp(" * 52 + "A" + ")" * 52],
    "unknown_function": ["C = foo(A)"],
    "unknown_linalg": ["C = linalg.foo(A)"],
    "syntax": ["C = A @"],
    "reassign_input": ["A = A + 1"],
    "no_inputs": ["C = 1 + 2"],
    "shape_mismatch": ["C = A @ B", "--shape", "A=3x4"],
    "bad_axis": ["C = A.sum(dim=7)"],
    "bad_reshape": ["C = A.reshape(4, 4)"],
    "tensor_index": ["C = A[B]"],
    "huge_power": ["C = A * 2 ** 10 ** 10"],
    "huge_input": ["C = A", "--shape", "A=100000x100000"],
    "huge_result": ["C = A * B", "--shape", "A=100000x1", "--shape", "B=1x100000"],
    "bad_shape": ["C = A", "--shape", "A=3xq"],
    "shape_of_non_input": ["C = A", "--shape", "Z=3"],
    "empty": [""],
}
#: Malformed --shape values: each is refused with one line that names the problem and the
#: limit (the words expected in it), never "internal error".
BAD_SHAPES: dict[str, tuple[str, list[str]]] = {
    "fullwidth": ("A=\uff13x\uff13", ["ASCII digits 0-9", "U+FF13"]),
    "arabic_indic": ("A=\u0663x3", ["ASCII digits 0-9", "U+0663"]),
    "superscript": ("A=3x\u00b2", ["ASCII digits 0-9"]),
    "5000_digits": ("A=" + "9" * 5000 + "x3", ["5000 digits", "at most 100000 elements"]),
    "negative": ("A=-3x3", ["at least 1"]),
    "zero": ("A=0x3", ["at least 1"]),
    "trailing_x": ("A=3x", ["no size"]),
    "leading_x": ("A=x3", ["no size"]),
    "too_many_axes": ("A=3x3x3x3x3x3x3x3", ["8 axes", "at most 6 axes"]),
    "too_many_elements": ("A=1000x1000", ["1000000 elements", "at most 100000"]),
    "not_a_number": ("A=3x3.5", ["expected sizes like 3x4"]),
}
HOSTILE.update({f"shape_{k}": ["C = A * 2", "--shape", v[0]] for k, v in BAD_SHAPES.items()})
STATIC_HOSTILE = [k for k in HOSTILE if not k.startswith("shape_") and k not in {
    "shape_mismatch", "bad_axis", "bad_reshape", "tensor_index", "huge_power", "huge_input",
    "huge_result", "bad_shape", "shape_of_non_input",
}]  # fmt: skip


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matgrad", "explain", *args],
        capture_output=True, text=True, timeout=180, cwd=RUN_DIR, env=env or _env(),
    )  # fmt: skip


# Runs many command lines through matgrad.cli.main in ONE interpreter (start-up is most of a
# run's time): each call's exit status, stdout and stderr, as JSON on stdout. PATH= in a job's
# environment hides Graphviz for that call.
_BATCH = """
import contextlib, io, json, os, sys
from matgrad.cli import main
results = []
for job in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    path = os.environ.get("PATH", "")
    if job.get("path") is not None:
        os.environ["PATH"] = job["path"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(job["argv"])
    os.environ["PATH"] = path
    results.append({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""


def _run_batch(jobs: list[dict]) -> list[subprocess.CompletedProcess]:
    proc = subprocess.run(
        [sys.executable, "-c", _BATCH],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=RUN_DIR,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    return [
        subprocess.CompletedProcess(j["argv"], r["rc"], r["stdout"], r["stderr"])
        for j, r in zip(jobs, json.loads(proc.stdout), strict=True)
    ]


#: Hostile expressions that are also run as their own `python -m matgrad explain` process.
HOSTILE_OWN_PROCESS = [
    "import_call",
    "import_lambda",
    "dunder_class",
    "comprehension",
    "too_long",
    "deep_parens",
    "unknown_function",
    "shape_mismatch",
    "shape_fullwidth",
    "shape_5000_digits",
]

#: Expressions whose evaluation raises NumPy's floating-point warnings or matgrad's gradient
#: warnings: run as their own processes, stderr must stay empty and the report must list them
#: (name: (argv, a warning category, words of its message)).
WARNS: dict[str, tuple[list[str], str, str]] = {
    "log_negative": (["y = log(A)", "--json"], "RuntimeWarning", "invalid value"),
    "divide_by_zero": (["y = A / (B - B)", "--json"], "RuntimeWarning", "divide by zero"),
    "sqrt_zero": (["y = sqrt(A - A)", "--json"], "RuntimeWarning", "divide by zero"),
    "exp_overflow": (["y = exp(A * 1000)", "--json"], "RuntimeWarning", "overflow"),
    "inv_near_singular": (["y = linalg.inv(A * 1e-300)", "--json"], "RuntimeWarning", "overflow"),
    "svd_degenerate": (
        ["S = linalg.svd(A - A)[1]", "--json"], "DegenerateGradientWarning", "repeated"),
    "text": (["y = A / (B - B)"], "RuntimeWarning", "divide by zero"),
}  # fmt: skip


@pytest.fixture(scope="session")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("explain")


@pytest.fixture(scope="session")
def runs(outdir: Path) -> dict[str, subprocess.CompletedProcess]:
    """Every command this module checks, run concurrently, by name: each VALID expression
    with --json and a few others as `python -m matgrad explain` processes, and every HOSTILE
    expression through matgrad.cli.main in one batch process (name "batch:<name>")."""
    MARKER.unlink(missing_ok=True)
    jobs = {name: [*args, "--json"] for name, args in VALID.items()}
    jobs.update({f"hostile:{name}": HOSTILE[name] for name in HOSTILE_OWN_PROCESS})
    jobs["text"] = ["C = A * B; D = A @ B"]
    jobs.update({f"warns:{name}": args for name, (args, _, _) in WARNS.items()})
    jobs["det_singular"] = ["L = linalg.det(A - A)", "--json"]
    jobs["pictures"] = [
        "C = exp(A @ B).sum()",
        "--json",
        "--no-compare",
        "--dot",
        str(outdir / "g.dot"),
        "--svg",
        str(outdir / "g.svg"),
    ]
    batch = [{"name": f"batch:{n}", "argv": ["explain", *a]} for n, a in HOSTILE.items()]
    batch += [
        {"name": "debug", "argv": ["explain", "C = A @ B", "--shape", "A=3x4", "--debug"]},
        {"name": "svg_no_graphviz", "path": str(outdir),
         "argv": ["explain", "C = A @ B", "--svg", str(outdir / "none.svg")]},
        {"name": "plot", "argv": ["explain", "C = A @ B", "--plot", str(outdir / "j.png"),
                                  "--no-compare"]},
        {"name": "help", "argv": ["--help"]},
        {"name": "no_expr", "argv": ["explain"]},
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=max(2, min(8, (os.cpu_count() or 2) * 2))) as pool:
        batch_future = pool.submit(_run_batch, batch)
        futures = {name: pool.submit(_run, args) for name, args in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
        results.update(zip([b["name"] for b in batch], batch_future.result(), strict=True))
    return results


def report(runs: dict[str, subprocess.CompletedProcess], name: str) -> dict:
    proc = runs[name]
    assert proc.returncode == 0, f"{name}: exit {proc.returncode}: {proc.stderr}"
    assert proc.stderr == ""
    return json.loads(proc.stdout)


def value(rep: dict, name: str) -> np.ndarray:
    for entry in rep["inputs"] + rep["outputs"]:
        if entry["name"] == name:
            return np.array(entry["value"], dtype=np.float64)
    raise KeyError(name)


def jac(rep: dict, out: str, inp: str) -> np.ndarray:
    for e in rep["jacobians"]:
        if e["output"] == out and e["input"] == inp:
            return np.array(e["matrix"], dtype=np.float64)
    raise KeyError((out, inp))


def formula(rep: dict, out: str, inp: str) -> str:
    e = next(e for e in rep["jacobians"] if e["output"] == out and e["input"] == inp)
    return e["structure"]["formula"]


def close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def numeric_jacobian(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a NumPy function, row-major vec."""
    cols = []
    for k in range(x.size):
        d = np.zeros(x.size)
        d[k] = eps
        d = d.reshape(x.shape)
        cols.append((np.ravel(f(x + d)) - np.ravel(f(x - d))) / (2 * eps))
    return np.stack(cols, axis=1)


def assert_scalar_engine_agrees(rep: dict) -> None:
    c = rep["comparison"]
    assert c["status"] == "ok", c
    assert c["scalar"]["nodes"] > c["tensor"]["nodes"]
    assert c["max_abs_diff"] < 1e-10


# -- valid expressions: compare with NumPy ------------------------------------------------------
def test_hadamard_is_diag_vec_B(runs):
    r = report(runs, "hadamard")
    A, B = value(r, "A"), value(r, "B")
    close(value(r, "C"), A * B)
    close(jac(r, "C", "A"), np.diag(B.ravel()))
    close(jac(r, "C", "B"), np.diag(A.ravel()))
    assert formula(r, "C", "A") == "diag(vec(B))"
    assert formula(r, "C", "B") == "diag(vec(A))"
    close(np.array(r["gradients"]["A"]), B)
    assert [n["name"] for n in r["graph"]["nodes"]] == [
        "MulBackward0", "AccumulateGrad", "AccumulateGrad"]  # fmt: skip
    assert r["graph"]["nodes"][0]["saved"] == {"self": "3x3", "other": "3x3"}
    assert r["graph"]["nodes"][0]["saved_refs"] == {"self": "A", "other": "B"}
    assert r["rules"][0]["vjp"] == {"self": "grad * conj(other)", "other": "grad * conj(self)"}
    assert r["rules"][0]["yaml"][0].startswith("- name: mul(")
    assert_scalar_engine_agrees(r)
    assert r["comparison"]["scalar"]["op_nodes"] == 9


def test_matmul_is_kron_I_Bt(runs):
    r = report(runs, "matmul")
    A, B = value(r, "A"), value(r, "B")
    close(value(r, "C"), A @ B)
    close(jac(r, "C", "A"), np.kron(np.eye(3), B.T))
    close(jac(r, "C", "B"), np.kron(A, np.eye(3)))
    assert formula(r, "C", "A") == "kron(I_3, B^T)"
    assert formula(r, "C", "B") == "kron(A, I_3)"
    node = r["graph"]["nodes"][0]
    assert node["name"] == "MmBackward0" and node["rule"] == "mm"
    assert [e["input"] for e in node["next"]] == ["self", "mat2"]
    assert all(e["method"] == "batched" for e in r["jacobians"])
    assert_scalar_engine_agrees(r)
    assert r["comparison"]["scalar"]["op_nodes"] == 45  # 9 entries x (3 mul + 2 add)


def test_matmul_rectangular(runs):
    r = report(runs, "matmul_rect")
    A, B = value(r, "A"), value(r, "B")
    assert A.shape == (2, 3) and B.shape == (3, 4)
    close(jac(r, "C", "A"), np.kron(np.eye(2), B.T))
    close(jac(r, "C", "B"), np.kron(A, np.eye(4)))
    assert formula(r, "C", "A") == "kron(I_2, B^T)"
    assert formula(r, "C", "B") == "kron(A, I_4)"


def test_elementwise_functions(runs):
    r = report(runs, "elementwise")
    A, B = value(r, "A"), value(r, "B")
    close(value(r, "C"), np.exp(A) + np.sin(A) * B)
    close(jac(r, "C", "A"), np.diag((np.exp(A) + np.cos(A) * B).ravel()))
    close(jac(r, "C", "B"), np.diag(np.sin(A).ravel()))
    assert_scalar_engine_agrees(r)


def test_quotient_and_power(runs):
    r = report(runs, "quotient")
    A, B = value(r, "A"), value(r, "B")
    close(jac(r, "C", "A"), np.diag((1 / B - 2 * A).ravel()))
    close(jac(r, "C", "B"), np.diag((-A / B**2).ravel()))
    assert_scalar_engine_agrees(r)


def test_sum_reduction(runs):
    r = report(runs, "sum")
    close(value(r, "L"), value(r, "A").sum())
    close(jac(r, "L", "A"), np.ones((1, 9)))
    assert formula(r, "L", "A") == "ones(1,9)"
    assert_scalar_engine_agrees(r)


def test_mean_over_dim(runs):
    r = report(runs, "mean_dim")
    A = value(r, "A")
    close(value(r, "s"), A.mean(axis=0))
    J = np.zeros((4, 12))
    for i in range(3):
        for j in range(4):
            J[j, i * 4 + j] = 1 / 3
    close(jac(r, "s", "A"), J)
    assert_scalar_engine_agrees(r)


def test_broadcast_add(runs):
    r = report(runs, "broadcast_add")
    A, b = value(r, "A"), value(r, "b")
    close(value(r, "C"), A + b)
    close(jac(r, "C", "A"), np.eye(9))
    close(jac(r, "C", "b"), np.tile(np.eye(3), (3, 1)))  # C[i, j] = A[i, j] + b[j]
    close(np.array(r["gradients"]["b"]), np.full(3, 3.0))
    assert_scalar_engine_agrees(r)


def test_broadcast_mul(runs):
    r = report(runs, "broadcast_mul")
    A, b = value(r, "A"), value(r, "b")
    close(value(r, "C"), A * b)
    Jb = np.zeros((6, 3))
    for i in range(3):
        for j in range(2):
            Jb[i * 2 + j, i] = A[i, j]
    close(jac(r, "C", "b"), Jb)
    close(jac(r, "C", "A"), np.diag(np.repeat(b.ravel(), 2)))
    assert_scalar_engine_agrees(r)


def test_transpose_is_commutation_matrix(runs):
    r = report(runs, "transpose")
    J = np.eye(6)[np.arange(6).reshape(2, 3).T.ravel()]
    close(jac(r, "C", "A"), J)
    assert formula(r, "C", "A") == "K_(2,3)"
    assert r["graph"]["nodes"][0]["name"] == "PermuteBackward0"


def test_chain_of_statements(runs):
    r = report(runs, "chain")
    A, B = value(r, "A"), value(r, "B")
    T = A @ B
    assert [o["name"] for o in r["outputs"]] == ["L"]
    assert [m["name"] for m in r["intermediates"]] == ["T"]
    close(value(r, "L"), (T * T).sum())
    close(jac(r, "L", "A"), (2 * T @ B.T).reshape(1, -1))
    close(jac(r, "L", "B"), (2 * A.T @ T).reshape(1, -1))
    assert_scalar_engine_agrees(r)


def test_matrix_vector(runs):
    r = report(runs, "matvec")
    A, x = value(r, "A"), value(r, "x")
    close(value(r, "y"), A @ x)
    close(jac(r, "y", "x"), A)
    close(jac(r, "y", "A"), np.kron(np.eye(3), x[None, :]))
    assert formula(r, "y", "x") == "A"
    assert formula(r, "y", "A") == "kron(I_3, x^T)"
    assert r["graph"]["nodes"][0]["name"] == "MvBackward0"
    assert_scalar_engine_agrees(r)


def test_where(runs):
    r = report(runs, "where")
    A, B = value(r, "A"), value(r, "B")
    mask = (A > 0).ravel()
    close(value(r, "C"), np.where(A > 0, A, 2 * B))
    close(jac(r, "C", "A"), np.diag(mask.astype(float)))
    close(jac(r, "C", "B"), np.diag(2.0 * ~mask))


def test_tanh_of_matmul(runs):
    r = report(runs, "tanh_matmul")
    A, B = value(r, "A"), value(r, "B")
    C = np.tanh(A @ B.T)
    close(value(r, "C"), C)
    close(jac(r, "C", "A"), np.diag((1 - C**2).ravel()) @ np.kron(np.eye(2), B))
    close(jac(r, "C", "B"), numeric_jacobian(lambda b: np.tanh(A @ b.T), B), rtol=1e-6,
          atol=1e-8)  # fmt: skip
    assert_scalar_engine_agrees(r)


def test_indexing(runs):
    r = report(runs, "index")
    A = value(r, "A")
    close(value(r, "C"), A[0, 1:] * 3)
    close(jac(r, "C", "A"), 3 * np.eye(9)[[1, 2]])
    assert_scalar_engine_agrees(r)


def test_softmax_composite_is_block_diagonal(runs):
    r = report(runs, "softmax")
    A = value(r, "A")
    e = np.exp(A - A.max(axis=1, keepdims=True))
    s = e / e.sum(axis=1, keepdims=True)
    close(value(r, "C"), s)
    blocks = [np.diag(row) - np.outer(row, row) for row in s]
    J = np.zeros((9, 9))
    for i, blk in enumerate(blocks):
        J[3 * i : 3 * i + 3, 3 * i : 3 * i + 3] = blk
    close(jac(r, "C", "A"), J)
    struct = next(e for e in r["jacobians"])["structure"]
    assert struct["is_block_diagonal"] and struct["block_sizes"] == [[3, 3]] * 3
    assert r["composites"] and r["composites"][0]["callee"] == "softmax"
    assert len(r["composites"][0]["core_ops"]) > 1
    assert r["comparison"]["status"] == "not_modelled"


def test_two_outputs(runs):
    r = report(runs, "two_outputs")
    assert [o["name"] for o in r["outputs"]] == ["U", "V"]
    close(jac(r, "U", "A"), 2 * np.eye(9))
    close(jac(r, "U", "B"), np.zeros((9, 9)))
    close(jac(r, "V", "A"), -np.eye(9))
    assert formula(r, "U", "B") == "0"
    close(np.array(r["gradients"]["A"]), np.full((3, 3), 1.0))  # d sum(2A + B - A)/dA


def test_float32(runs):
    r = report(runs, "float32")
    assert r["dtype"] == "float32"
    assert {i["dtype"] for i in r["inputs"]} == {"float32"}
    assert r["outputs"][0]["dtype"] == "float32"
    A, B = value(r, "A"), value(r, "B")
    close(jac(r, "C", "A"), np.diag(B.ravel()), rtol=1e-6)
    close(value(r, "C"), A * B, rtol=1e-6)
    assert formula(r, "C", "A") == "diag(vec(B))"


def test_einsum_shows_core_ops(runs):
    need_einsum()
    r = report(runs, "einsum")
    A, B = value(r, "A"), value(r, "B")
    close(value(r, "C"), np.einsum("ij,jk->ik", A, B))
    close(jac(r, "C", "A"), np.kron(np.eye(3), B.T))
    close(jac(r, "C", "B"), np.kron(A, np.eye(3)))
    names = {n["name"] for n in r["graph"]["nodes"]}
    assert "EinsumBackward0" not in names  # einsum has no rule: the core ops are the nodes
    (comp,) = [c for c in r["composites"] if c["callee"] == "einsum"]
    assert set(comp["core_ops"]) & {"mm", "bmm", "matmul"}
    assert_scalar_engine_agrees(r)


def test_einsum_trace_is_written_in_permute_reshape_and_a_product(runs):
    need_einsum()
    r = report(runs, "einsum_trace")
    A, B = value(r, "A"), value(r, "B")
    close(value(r, "L"), np.trace(A @ B))
    close(jac(r, "L", "A"), B.T.reshape(1, -1))  # d tr(AB)/dA = B^T
    close(jac(r, "L", "B"), A.T.reshape(1, -1))
    assert formula(r, "L", "A") == "vec(B^T)^T"
    (comp,) = [c for c in r["composites"] if c["callee"] == "einsum"]
    assert comp["kind"] == "composite" and len(comp["core_ops"]) > 1
    assert set(comp["core_ops"]) & {"mm", "bmm", "matmul", "mul"}
    assert_scalar_engine_agrees(r)


def test_inv(runs):
    need_linalg()
    r = report(runs, "inv")
    A = value(r, "A")
    Ai = np.linalg.inv(A)
    close(value(r, "C"), Ai)
    close(jac(r, "C", "A"), -np.kron(Ai, Ai.T), rtol=1e-8)  # d A^-1 = -A^-1 dA A^-1
    assert formula(r, "C", "A") == "-kron(C, C^T)"
    c = r["comparison"]
    assert c["status"] == "no_elementwise_form" and c["op"] == "inv"
    assert "no element-wise" in c["why"]


def test_det(runs):
    need_linalg()
    r = report(runs, "det")
    A = value(r, "A")
    d = np.linalg.det(A)
    close(value(r, "L"), d)
    close(jac(r, "L", "A"), (d * np.linalg.inv(A).T).reshape(1, -1), rtol=1e-8)
    assert formula(r, "L", "A") == "L * vec(A^-T)^T"
    assert r["comparison"]["status"] == "no_elementwise_form"
    assert r["comparison"]["op"] == "det"


def test_det_of_rectangular_product(runs):
    need_linalg()
    r = report(runs, "det_rect")
    A, B = value(r, "A"), value(r, "B")
    close(value(r, "L"), np.linalg.det(A @ B.T), atol=1e-10)
    ja = numeric_jacobian(lambda a: np.linalg.det(a @ B.T), A)
    jb = numeric_jacobian(lambda b: np.linalg.det(A @ b.T), B)
    close(jac(r, "L", "A"), ja, rtol=1e-5, atol=1e-7)
    close(jac(r, "L", "B"), jb, rtol=1e-5, atol=1e-7)


def test_svd(runs):
    need_linalg()
    r = report(runs, "svd")
    A = value(r, "A")
    U, S, Vh = value(r, "U"), value(r, "S"), value(r, "Vh")
    close(S, np.linalg.svd(A, compute_uv=False))
    close(U @ np.diag(S) @ Vh, A)
    # dS_i/dA = u_i v_i^T (distinct singular values)
    JS = np.stack([np.outer(U[:, i], Vh[i]).ravel() for i in range(2)])
    close(jac(r, "S", "A"), JS, rtol=1e-8)
    assert r["comparison"]["status"] == "no_elementwise_form"
    assert r["comparison"]["op"] == "svd"


def test_solve(runs):
    need_linalg()
    r = report(runs, "solve")
    A, B = value(r, "A"), value(r, "B")
    Ai = np.linalg.inv(A)
    X = Ai @ B
    close(value(r, "X"), X, rtol=1e-8)
    close(jac(r, "X", "B"), np.kron(Ai, np.eye(3)), rtol=1e-8)  # dX = A^-1 dB
    close(jac(r, "X", "A"), -np.kron(Ai, X.T), rtol=1e-8)  # dX = -A^-1 dA X


def test_logdet(runs):
    need_linalg()
    r = report(runs, "logdet")
    A = value(r, "A")
    M = A @ A.T
    close(value(r, "L"), np.linalg.slogdet(M)[1], rtol=1e-8)
    close(jac(r, "L", "A"), (2 * np.linalg.inv(M) @ A).reshape(1, -1), rtol=1e-7)


# -- the text report --------------------------------------------------------------------------
def test_text_report_has_five_sections_and_structure(runs):
    proc = runs["text"]  # C = A * B; D = A @ B
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for head in ("1. Inputs and outputs", "2. Graph", "3. Rules", "4. Jacobians",
                 "5. Per-element versus tensor-level"):  # fmt: skip
        assert head in out
    assert "dC/dA: 9x9  =  diag(vec(B))" in out
    assert "dD/dA: 9x9  =  kron(I_3, B^T)" in out
    assert "MulBackward0" in out and "MmBackward0" in out and "AccumulateGrad" in out
    assert "_saved_self: 3x3" in out and "_saved_mat2: 3x3" in out
    assert "derivatives.yaml line" in out and "self: grad * conj(other)" in out
    assert "row-major" in out


def test_python_api_report():
    rep = matgrad.explain("C = A @ B", shapes={"A": (2, 3), "B": "3x4"}, seed=3)
    assert rep.inputs == ["A", "B"] and rep.outputs == ["C"]
    d = rep.to_dict()
    A = np.array(d["inputs"][0]["value"])
    B = np.array(d["inputs"][1]["value"])
    close(rep.jacobian("C", "A"), np.kron(np.eye(2), B.T))
    close(rep.jacobian("C", "B"), np.kron(A, np.eye(4)))
    assert json.loads(rep.to_json())["expression"] == "C = A @ B"
    assert "<pre>" in rep._repr_html_()
    dot = rep.to_dot()
    assert dot.startswith("digraph") and dot.count("shape=box") == len(d["graph"]["nodes"])
    assert "4. Jacobians" in str(rep)


def test_python_api_values_and_errors():
    A = np.arange(4.0).reshape(2, 2) + 1
    rep = matgrad.explain("C = A * B", values={"A": A}, shapes={"B": (2, 2)}, compare=False)
    B = np.array(rep.to_dict()["inputs"][1]["value"])
    close(rep.jacobian("C", "B"), np.diag(A.ravel()))
    close(rep.jacobian("C", "A"), np.diag(B.ravel()))
    assert rep.to_dict()["comparison"] is None
    from matgrad.explain import ExplainError

    with pytest.raises(ExplainError, match="column 5"):
        matgrad.explain("C = A.__class__")
    with pytest.raises(ExplainError, match="float32 or float64"):
        matgrad.explain("C = A", dtype="int64")


# -- hostile and malformed expressions ---------------------------------------------------------
def _assert_refused(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2, (proc.stdout[-500:], proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, no traceback
    assert lines[0].startswith("matgrad explain: error:")
    assert not MARKER.exists(), "a refused expression ran code"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_expression_is_refused_cleanly(runs, name):
    _assert_refused(runs[f"batch:{name}"])


@pytest.mark.parametrize("name", HOSTILE_OWN_PROCESS)
def test_hostile_expression_is_refused_by_the_command(runs, name):
    _assert_refused(runs[f"hostile:{name}"])


@pytest.mark.parametrize("name", STATIC_HOSTILE)
def test_hostile_expression_is_refused_before_evaluation(name):
    """parse_expression only parses and checks: refusing here means nothing was evaluated."""
    from matgrad.explain import ExplainError, parse_expression

    with pytest.raises(ExplainError) as info:
        parse_expression(HOSTILE[name][0])
    assert "\n" not in str(info.value)


def test_refusals_point_at_the_offending_part(runs):
    err = runs["hostile:dunder_class"].stderr
    assert "column 5" in err and "`A.__class__`" in err and "dunder" in err
    assert "column 1" in runs["hostile:import_call"].stderr
    assert "`__import__`" in runs["hostile:import_call"].stderr
    assert "unknown or disallowed function `foo`" in runs["hostile:unknown_function"].stderr
    assert "comprehensions" in runs["hostile:comprehension"].stderr
    assert "lambda" in runs["batch:lambda"].stderr
    assert "too long" in runs["hostile:too_long"].stderr
    assert "nested too deeply" in runs["hostile:deep_parens"].stderr
    assert "nested too deeply" in runs["batch:deep_unary"].stderr
    mismatch = runs["hostile:shape_mismatch"].stderr
    assert "column 5" in mismatch and "cannot be multiplied" in mismatch
    assert "at most 2000000" in runs["batch:huge_result"].stderr


def test_debug_shows_the_traceback(runs):
    proc = runs["debug"]
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("matgrad explain: error:")


# -- pictures ------------------------------------------------------------------------------------
def test_dot_file_has_one_box_per_node(runs, outdir):
    proc = runs["pictures"]
    assert proc.returncode == 0, proc.stderr
    n_nodes = len(json.loads(proc.stdout)["graph"]["nodes"])
    text = (outdir / "g.dot").read_text()
    assert text.startswith("digraph") and text.count("shape=box") == n_nodes == 5
    assert "MmBackward0" in text and "_saved_self: 3x3" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")
def test_svg_renders_one_box_per_node(runs, outdir):
    proc = runs["pictures"]
    assert proc.returncode == 0, proc.stderr
    nodes = json.loads(proc.stdout)["graph"]["nodes"]
    text = (outdir / "g.svg").read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    groups = text.split('class="node"')[1:]
    boxes = [g for g in groups if "<polygon" in g.split("</g>")[0]]
    ovals = [g for g in groups if "<ellipse" in g.split("</g>")[0]]
    assert len(boxes) == len(nodes) and len(ovals) == 1  # one box per node, one output
    for node in nodes:
        assert node["name"] in text


def test_svg_without_graphviz_names_the_package(runs, outdir):
    proc = runs["svg_no_graphviz"]
    assert proc.returncode == 2
    assert "apt-get install graphviz" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (outdir / "none.svg").exists()


def test_plot(runs, outdir):
    proc = runs["plot"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert proc.returncode == 2
        assert "matplotlib" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    else:
        assert proc.returncode == 0, proc.stderr
        assert (outdir / "j.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_viz_on_any_tensor(tmp_path, monkeypatch):
    A = matgrad.randn(2, 2, requires_grad=True)
    B = matgrad.randn(2, 2, requires_grad=True)
    C = (A * B).sum()
    dot = viz.to_dot(C, names={"A": A, "B": B})
    assert dot.count("shape=box") == 4  # SumBackward0, MulBackward0, 2 x AccumulateGrad
    assert "AccumulateGrad\\lA: 2x2" in dot
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(viz.GraphvizNotFoundError, match="apt-get install graphviz"):
        viz.draw(C, tmp_path / "c.svg")
    assert viz.draw(C, tmp_path / "c.dot", format="dot").read_text() == viz.to_dot(C)


def test_help_and_usage_errors(runs):
    assert runs["help"].returncode == 0 and "explain" in runs["help"].stdout
    usage = runs["no_expr"]
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1


def test_jacobian_falls_back_to_a_loop_when_batching_is_unsupported(monkeypatch):
    explain_mod = importlib.import_module("matgrad.explain.sections")
    batched = matgrad.explain("C = A @ B", compare=False)

    def refuse(*args, **kwargs):
        raise matgrad.autograd.BatchingUnsupported("mm")

    monkeypatch.setattr(explain_mod, "_jacobian_rows", refuse)
    looped = matgrad.explain("C = A @ B", compare=False)
    close(looped.jacobian("C", "A"), batched.jacobian("C", "A"))
    close(looped.jacobian("C", "B"), batched.jacobian("C", "B"))
    assert looped.to_dict()["jacobians"][0]["method"].startswith("loop")


# -- the allow-lists and size checks come from the table ----------------------------------------
def test_allow_lists_are_the_tables_variants():
    from matgrad.explain import language
    from matgrad.ops.bindings import INPLACE
    from matgrad.ops.registry import RULES

    for rule in RULES.values():
        for name in rule.variants.get("function", ()):
            assert name in language.FUNCTIONS, (rule.name, name)
        for name in rule.variants.get("method", ()):
            assert name in language.METHODS, (rule.name, name)
        for name in rule.variants.get("linalg", ()):
            assert name in language.LINALG_FUNCTIONS, (rule.name, name)
    assert not set(INPLACE) & set(language.METHODS)  # in-place methods would modify inputs
    assert {"softmax", "einsum", "logsumexp", "trace"} <= set(language.FUNCTIONS)
    assert {"det", "inv", "svd", "logdet", "norm"} <= set(language.LINALG_FUNCTIONS)


def test_size_checks_and_expansions_name_rows_of_the_table():
    from matgrad.explain import evaluate, per_element
    from matgrad.ops.registry import RULES

    assert set(evaluate._ROW_SIZE) <= set(RULES)
    assert set(per_element._ROW_EXPANSIONS) <= set(RULES)
    assert not set(evaluate._COMPOSITE_SIZE) & set(RULES)  # composites have no row
    assert not set(per_element._COMPOSITES) & set(RULES)


# -- malformed --shape values --------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BAD_SHAPES))
def test_bad_shape_is_one_line_naming_the_problem_and_the_limit(runs, name):
    proc = runs[f"batch:shape_{name}"]
    _assert_refused(proc)
    assert "internal error" not in proc.stderr
    assert "--shape" in proc.stderr
    for words in BAD_SHAPES[name][1]:
        assert words in proc.stderr, proc.stderr
    assert len(proc.stderr) < 400  # a 5000-digit size is not echoed back whole


def test_bad_shape_in_its_own_process(runs):
    for name in ("shape_fullwidth", "shape_5000_digits"):
        _assert_refused(runs[f"hostile:{name}"])
    assert "U+FF13" in runs["hostile:shape_fullwidth"].stderr
    assert "at most 100000" in runs["hostile:shape_5000_digits"].stderr


def test_parse_shape_checks_sizes_as_text():
    from matgrad.explain import ExplainError, parse_shape

    assert parse_shape("3x4") == (3, 4) and parse_shape("2,3,4") == (2, 3, 4)
    assert parse_shape("") == () and parse_shape("scalar") == ()
    assert parse_shape("0003x2") == (3, 2) and parse_shape((np.int64(2), 3)) == (2, 3)
    for bad in ("\uff13x3", "3x" + "1" * 4400, "3x", (3, 0), (3.5, 2), (1,) * 7, "-1"):
        with pytest.raises(ExplainError) as info:
            parse_shape(bad)
        assert "\n" not in str(info.value) and len(str(info.value)) < 300


# -- warnings are caught and reported, not printed ------------------------------------------------
@pytest.mark.parametrize("name", [n for n in WARNS if n != "text"])
def test_numerical_warnings_are_reported_not_printed(runs, name):
    _, category, words = WARNS[name]
    proc = runs[f"warns:{name}"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # no raw "RuntimeWarning: ..." lines
    found = json.loads(proc.stdout)["warnings"]
    assert any(w["category"] == category and words in w["message"] for w in found), found
    keys = [(w["category"], w["message"], w["where"]) for w in found]
    assert len(keys) == len(set(keys))  # deduplicated
    for w in found:
        assert "\n" not in w["message"] and w["count"] >= 1 and w["where"]


def test_warnings_name_where_they_were_raised(runs):
    found = json.loads(runs["warns:divide_by_zero"].stdout)["warnings"]
    wheres = [w["where"] for w in found]
    assert "forward pass at `A / (B - B)`" in wheres
    assert any("rule `div`" in w and "derivatives.yaml line" in w for w in wheres)
    assert any("Jacobians" in w["during"] for w in found)
    proc = runs["warns:text"]
    assert proc.returncode == 0 and proc.stderr == ""
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("warning:")]
    assert lines and any("divide by zero" in line for line in lines)
    assert "Warnings (" in proc.stdout.split("1. Inputs and outputs")[0]
    det = report(runs, "det_singular")  # det of a singular matrix: no warnings, no stderr
    assert isinstance(det["warnings"], list)


def test_python_api_does_not_warn():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = matgrad.explain("y = log(A) / (B - B)", compare=True)
    assert caught == []
    found = rep.to_dict()["warnings"]
    assert {"invalid value encountered in log", "divide by zero encountered in divide"} <= {
        w["message"] for w in found
    }
    assert "warning: RuntimeWarning in the forward pass at `log(A)`" in str(rep)


# -- the report stays bounded ---------------------------------------------------------------------
_STRESS = """
import json, sys, time, tracemalloc
import matgrad
tracemalloc.start()
start = time.perf_counter()
rep = matgrad.explain(sys.argv[1], shapes=["x=2000"], compare=False)
text, js = str(rep), rep.to_json()
seconds = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"peak": peak, "seconds": seconds, "text": text, "data": json.loads(js)}))
"""
CHAIN = "; ".join(["v0 = x * 2"] + [f"v{i} = v{i - 1} * 2" for i in range(1, 20)])
FAN = "; ".join(f"v{i} = x * {i + 2}" for i in range(20))  # 20 outputs: 20 Jacobians 2000x2000


@pytest.mark.parametrize("expr", [CHAIN, FAN], ids=["chain", "fan"])
def test_twenty_statements_over_2000_vectors_stay_bounded(expr):
    from matgrad.explain import language

    proc = subprocess.run(
        [sys.executable, "-c", _STRESS, expr],
        capture_output=True, text=True, timeout=120, cwd=RUN_DIR, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    out = json.loads(proc.stdout)
    # before the budget the fan case held 20 Jacobians of 32 MB (a 673 MB tracemalloc peak)
    assert out["peak"] < 200 * 2**20, out["peak"] / 2**20
    assert out["seconds"] < 60
    d = out["data"]
    budget = language.MAX_REPORT_JACOBIAN_ENTRIES
    assert d["jacobian_budget"]["entries"] == budget
    assert d["jacobian_budget"]["used"] <= budget
    if expr == CHAIN:  # one output: its Jacobian is computed, 2 * I scaled 2^20 times
        (entry,) = d["jacobians"]
        assert entry["skipped"] is None and entry["structure"]["nnz"] == 2000
        return
    computed = [e for e in d["jacobians"] if e["skipped"] is None]
    skipped = [e for e in d["jacobians"] if e["skipped"] == "budget"]
    assert len(computed) == budget // 2000**2 and len(skipped) == 20 - len(computed)
    assert d["jacobian_budget"]["skipped"] == len(skipped)
    line = (
        f"Jacobian of {skipped[0]['output']} w.r.t. x skipped: the report's Jacobian budget "
        f"of {budget} entries is spent"
    )
    assert skipped[0]["note"].startswith(line)
    assert line in out["text"]
    assert any("Jacobian budget" in n for n in d["notes"])


def test_jacobian_budget_skips_later_pairs_and_keeps_smaller_ones(monkeypatch):
    sections = importlib.import_module("matgrad.explain.sections")
    monkeypatch.setattr(sections, "MAX_REPORT_JACOBIAN_ENTRIES", 100)
    # C: 9x9 = 81 entries fits; D: 9x9 does not (19 left); s: 1x9 still fits
    rep = matgrad.explain("C = A * 2; D = A * 3; s = A.sum()", compare=False)
    d = rep.to_dict()
    by_out = {e["output"]: e for e in d["jacobians"]}
    assert by_out["C"]["skipped"] is None and by_out["s"]["skipped"] is None
    assert by_out["D"]["skipped"] == "budget"
    assert by_out["D"]["note"] == (
        "Jacobian of D w.r.t. A skipped: the report's Jacobian budget of 100 entries is spent "
        "(81 needed, 19 left)"
    )
    work = sections.MAX_REPORT_BACKWARD_WORK
    assert d["jacobian_budget"] == {
        "entries": 100, "used": 90, "skipped": 1, "backward_work": work, "skipped_for_work": 0,
    }  # fmt: skip
    with pytest.raises(KeyError):
        rep.jacobian("D", "A")
    close(rep.jacobian("C", "A"), 2 * np.eye(9))
    assert "dD/dA: 9x9: Jacobian of D w.r.t. A skipped" in str(rep)


def test_backward_work_is_bounded():
    # a scalar times a 100000-vector: a 100000 x 1 Jacobian, but 100000 cotangent rows through
    # 100000-element tensors (500 passes, a minute) -- and the identity would be 80 GB
    rep = matgrad.explain("C = x * B", shapes={"x": (), "B": (100000,)}, compare=False)
    entries = {e["input"]: e for e in rep.to_dict()["jacobians"]}
    assert entries["x"]["skipped"] == "work" and "backward budget" in entries["x"]["note"]
    assert entries["B"]["skipped"] == "too_large"


def test_jacobian_in_several_passes_matches_one_pass(monkeypatch):
    sections = importlib.import_module("matgrad.explain.sections")
    one = matgrad.explain("C = A @ B", compare=False)
    monkeypatch.setattr(sections, "BATCH_ELEMENTS", 20)  # 2 rows of cotangents a pass
    several = matgrad.explain("C = A @ B", compare=False)
    assert several.to_dict()["jacobians"][0]["method"] == "batched, 5 passes"
    close(several.jacobian("C", "A"), one.jacobian("C", "A"))
    close(several.jacobian("C", "B"), one.jacobian("C", "B"))


def test_json_arrays_share_one_budget(monkeypatch):
    sections = importlib.import_module("matgrad.explain.sections")
    monkeypatch.setattr(sections, "MAX_REPORT_JSON_ENTRIES", 200)
    d = matgrad.explain("C = A * B", compare=False).to_dict()
    # inputs 9 + 9, output 9, gradients 9 + 9, then dC/dA (81): 126; dC/dB (81) is past 200
    assert all(i["value"] is not None for i in d["inputs"])
    assert all(g is not None for g in d["gradients"].values())
    assert d["jacobians"][0]["matrix"] is not None and d["jacobians"][1]["matrix"] is None
    assert "JSON budget of 200 entries is spent" in d["jacobians"][1]["matrix_note"]
    assert any("JSON budget" in n for n in d["notes"])
    text = str(matgrad.explain("C = A * B", compare=False))
    assert "(matrix not in the JSON" in text
