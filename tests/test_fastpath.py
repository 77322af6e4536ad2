"""The generated entry points (matgrad.core.fastpath) equal the plain path (``Op.reference``).

Every sample of every row in ``op_specs`` runs in this process (generated entry points) and in
one subprocess started with ``MATGRAD_REFERENCE_PATH=1`` (every op takes ``Op.reference``).
Both record, as plain NumPy/Python data, per sample:

- the output values, dtypes and shapes, which outputs require grad, their ``grad_fn`` classes;
- the graph: each node (depth-first from the outputs' ``grad_fn``) with its class, its
  ``next_functions`` (class and position of the next node, output index), its saved values
  (name, and for tensors shape, dtype, values and which input/output they are) and the saved
  tensors' positions, versions and whether they are held weakly;
- the gradients of every input for a fixed, seeded cotangent (derived from the op name and
  the sample index), with ``create_graph=True`` too (values and the gradients' graph), and
  second derivatives where the sample has them;
- the same with only the first input requiring grad (the generated code's ``need`` logic),
  and with no input requiring grad / under ``no_grad``;
- the forward-mode tangents for one fixed tangent per input;
- which ops ran, and through which path (a profiler sees the calls).

An exception is recorded as its type and message, so both paths must raise alike. The tests
assert the records are identical (arrays: same dtype and shape, ``np.array_equal`` with NaNs
in the same places). The samples are drawn from op_specs' seeded rng at import; a digest of
every sample's inputs is compared first, so different samples are reported as such.

Run as a script (``python tests/test_fastpath.py OUT``), this module writes its records to
``OUT`` (the fixture does this in the subprocess).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import pickle
import subprocess
import sys
import traceback
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from op_specs import SPECS

import matgrad as mg
from matgrad.autograd import forward_ad as fwAD
from matgrad.core import apply, fastpath
from matgrad.ops import registry
from matgrad.viz import graph_nodes, root_node, saved_values

HERE = Path(__file__).resolve().parent
ENV_FLAG = "MATGRAD_REFERENCE_PATH"
GENERATED_PREFIX = "<matgrad.core.fastpath"
SUBPROCESS_TIMEOUT = 300


# -- what one process records --------------------------------------------------------------------
def _rng(op: str, i: int, purpose: int) -> np.random.Generator:
    """The same random numbers in both processes (independent of anything run before)."""
    return np.random.default_rng([zlib.crc32(op.encode()), i, purpose])


def _random_like(rng: np.random.Generator, t: mg.Tensor) -> mg.Tensor:
    return mg.tensor(rng.standard_normal(tuple(t.shape)).astype(t.dtype))


def sample_digest(sample: Any) -> str:
    h = hashlib.sha256()
    for x in sample.inputs:
        x = np.ascontiguousarray(x)
        h.update(f"{x.dtype}{x.shape}".encode())
        h.update(x.tobytes())
    for x in sample.nondiff:
        h.update(repr(x).encode())
    return h.hexdigest()


def _array(t: Any) -> np.ndarray:
    return np.array(t.detach().numpy() if isinstance(t, mg.Tensor) else t, copy=True)


def _plain(value: Any, names: dict[int, str] | None = None) -> Any:
    """A value as plain data: tensors and arrays as (kind, dtype, shape, values, identity)."""
    if isinstance(value, mg.Tensor):
        grad_fn = value.grad_fn
        return (
            "tensor",
            (names or {}).get(id(value), "other"),
            str(value.dtype),
            tuple(value.shape),
            _array(value),
            bool(value.requires_grad),
            None if grad_fn is None else type(grad_fn).__name__,
        )
    if isinstance(value, np.ndarray | np.generic):
        return ("array", str(value.dtype), tuple(np.shape(value)), np.array(value, copy=True))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_plain(v, names) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((repr(k), _plain(v, names)) for k, v in value.items()))
    if value is None or isinstance(value, bool | int | float | complex | str):
        return value
    return ("repr", type(value).__name__, repr(value))


def _attempt(fn: Any) -> Any:
    """``fn()``, or the exception it raised (type and message)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - recorded, and compared across the paths
        return ("raised", type(exc).__name__, str(exc))


def _call(sample: Any, inputs: list) -> tuple:
    out = sample.fn(*inputs, *sample.nondiff)
    return out if isinstance(out, tuple) else (out,)


def _names(inputs: list, outputs: tuple) -> dict[int, str]:
    names = {id(x): f"input {k}" for k, x in enumerate(inputs)}
    names.update({id(o): f"output {k}" for k, o in enumerate(outputs)})
    return names


def _graph(roots: list, names: dict[int, str], leaves: list) -> list:
    nodes = graph_nodes(roots)
    index = {id(n): k for k, n in enumerate(nodes)}
    leaf_names = {id(x): k for k, x in enumerate(leaves)}
    out = []
    for node in nodes:
        entry: dict[str, Any] = {
            "class": type(node).__name__,
            "next": tuple(
                (None, nr) if nxt is None else ((type(nxt).__name__, index[id(nxt)]), nr)
                for nxt, nr in node.next_functions
            ),
            "saved": tuple((name, _plain(value, names)) for name, value in saved_values(node)),
        }
        variable = getattr(node, "variable", None)
        if variable is not None:  # AccumulateGrad: whose
            entry["leaf"] = leaf_names.get(id(variable), "other")
        saved = getattr(node, "_saved", None)
        if isinstance(saved, tuple):  # the saved tensors: (position, held weakly?, version)
            entry["saved_tensors"] = tuple(
                (saved[k], type(saved[k + 1]).__name__ == "ReferenceType", saved[k + 2])
                for k in range(0, len(saved), 3)
            )
        entry["list_lens"] = _plain(getattr(node, "_list_lens", None))
        out.append(entry)
    return out


def _outputs_record(outs: tuple, names: dict[int, str]) -> list:
    return [
        (_plain(o, names), getattr(o, "_output_nr", None)) if isinstance(o, mg.Tensor) else o
        for o in outs
    ]


def _gradients(op: str, i: int, sample: Any, inputs: list, outs: tuple, purpose: int) -> dict:
    rng = _rng(op, i, purpose)
    diff = [o for o in outs if isinstance(o, mg.Tensor) and o.requires_grad]
    if not diff:
        return {"none": "no output requires grad"}
    cots = [_random_like(rng, o) for o in diff]
    wrt = [x for x in inputs if x.requires_grad]
    rec: dict[str, Any] = {}
    rec["grad"] = _attempt(
        lambda: _plain(mg.autograd.grad(diff, wrt, cots, retain_graph=True, allow_unused=True))
    )

    def create_graph() -> Any:
        grads = mg.autograd.grad(diff, wrt, cots, create_graph=True, allow_unused=True)
        got = [g for g in grads if g is not None and g.requires_grad]
        record = {
            "values": _plain(grads),
            "graph": _graph([root_node(g) for g in got], _names(wrt, tuple(got)), wrt),
        }
        if sample.gradgrad and got:
            cots2 = [_random_like(rng, g) for g in got]
            record["second"] = _attempt(
                lambda: _plain(mg.autograd.grad(got, wrt, cots2, allow_unused=True))
            )
        return record

    rec["create_graph"] = _attempt(create_graph)
    return rec


def _variant(op: str, i: int, sample: Any, requires: list[bool], purpose: int) -> dict:
    inputs = [mg.tensor(x, requires_grad=r) for x, r in zip(sample.inputs, requires, strict=True)]
    outs = _call(sample, inputs)
    names = _names(inputs, outs)
    rec: dict[str, Any] = {"outputs": _outputs_record(outs, names)}
    roots = [root_node(o) for o in outs if isinstance(o, mg.Tensor)]
    rec["graph"] = _graph(roots, names, inputs)  # before backward frees the saved values
    rec["grads"] = _gradients(op, i, sample, inputs, outs, purpose)
    rec["graph_after_backward"] = _graph(roots, names, inputs)  # freed, alike
    return rec


def _no_grad(sample: Any) -> dict:
    plain = [mg.tensor(x) for x in sample.inputs]
    outs = _call(sample, plain)
    rec = {"no_input_requires_grad": _outputs_record(outs, _names(plain, outs))}
    inputs = [mg.tensor(x, requires_grad=True) for x in sample.inputs]
    with mg.no_grad():
        outs = _call(sample, inputs)
    rec["under_no_grad"] = _outputs_record(outs, _names(inputs, outs))
    return rec


def _forward_mode(op: str, i: int, sample: Any, purpose: int) -> Any:
    rng = _rng(op, i, purpose)
    tangents = [mg.tensor(rng.standard_normal(np.shape(x)).astype(x.dtype)) for x in sample.inputs]
    with fwAD.dual_level():
        duals = [
            fwAD.make_dual(mg.tensor(x), t) for x, t in zip(sample.inputs, tangents, strict=True)
        ]
        outs = _call(sample, duals)
        return [
            (_plain(fwAD.unpack_dual(o).primal), _plain(fwAD.unpack_dual(o).tangent))
            if isinstance(o, mg.Tensor)
            else _plain(o)
            for o in outs
        ]


class _CallLog:
    """Which ops run, and how: ``Op.reference`` (``reference:<op>``) or a generated entry point
    (``generated:<function>``), seen by a profiler."""

    reference_code = apply.Op.reference.__code__

    def __init__(self) -> None:
        self.ran: set[str] = set()

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        if code is self.reference_code:
            self.ran.add(f"reference:{frame.f_locals['self'].name}")
        elif code.co_filename.startswith(GENERATED_PREFIX):
            self.ran.add(f"generated:{code.co_filename}")

    def __enter__(self) -> _CallLog:
        sys.setprofile(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.setprofile(None)


def _calls(sample: Any) -> list[str]:
    with _CallLog() as log:
        inputs = [mg.tensor(x, requires_grad=True) for x in sample.inputs]
        outs = [o for o in _call(sample, inputs) if isinstance(o, mg.Tensor) and o.requires_grad]
        if outs:
            mg.autograd.grad(outs, inputs, [mg.ones_like(o) for o in outs], allow_unused=True)
    return sorted(log.ran)


def record_sample(op: str, i: int, sample: Any) -> dict:
    n = len(sample.inputs)
    rec: dict[str, Any] = {"digest": sample_digest(sample)}
    rec["all_require_grad"] = _attempt(lambda: _variant(op, i, sample, [True] * n, 1))
    if n > 1:
        first = [True] + [False] * (n - 1)
        rec["first_requires_grad"] = _attempt(lambda: _variant(op, i, sample, first, 2))
    rec["no_grad"] = _attempt(lambda: _no_grad(sample))
    rec["forward_mode"] = _attempt(lambda: _forward_mode(op, i, sample, 3))
    rec["calls"] = _attempt(lambda: _calls(sample))
    return rec


def is_reference(name: str, fn: Any) -> bool:
    """Is ``fn`` (``OPS[name]``) the plain path of its row: ``Op.reference`` bound to the row's
    :class:`Op`, or a thin function wrapping it (marked ``fn.op``; a plain function binds
    ``self`` as a Tensor method), not generated code."""
    op = registry.OP_OBJECTS[name]
    if inspect.ismethod(fn):
        return fn.__func__ is apply.Op.reference and fn.__self__ is op
    code = getattr(fn, "__code__", None)
    return (
        getattr(fn, "op", None) is op
        and code is not None
        and not code.co_filename.startswith(GENERATED_PREFIX)
    )


def process_facts() -> dict:
    """How this process runs its ops."""
    ops = registry.OPS
    mm = ops["mm"]
    return {
        "env": os.environ.get(ENV_FLAG),
        "REFERENCE_PATH": registry.REFERENCE_PATH,
        "mm_is_reference": is_reference("mm", mm),
        "mm": f"{mm!r} from {getattr(getattr(mm, '__code__', None), 'co_filename', None)}",
        "reference_ops": sorted(name for name, fn in ops.items() if is_reference(name, fn)),
        "n_sources": len(fastpath.SOURCES),
    }


def record_all() -> dict:
    return {
        "facts": process_facts(),
        "ops": {
            op: [record_sample(op, i, s) for i, s in enumerate(samples)]
            for op, samples in sorted(SPECS.items())
        },
    }


# -- comparing the records -----------------------------------------------------------------------
def _differences(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            out.append(f"{where}: {type(a).__name__} (fast) vs {type(b).__name__} (reference)")
        elif a.dtype != b.dtype or a.shape != b.shape:
            out.append(f"{where}: {a.dtype}{a.shape} (fast) vs {b.dtype}{b.shape} (reference)")
        elif not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
            detail = ""
            if a.dtype.kind in "fc":
                if not np.array_equal(np.isnan(a), np.isnan(b)):
                    detail += ", NaNs in different places"
                finite = np.isfinite(a) & np.isfinite(b)
                if finite.any() and (a[finite] != b[finite]).any():
                    detail += f", max abs difference {np.abs(a[finite] - b[finite]).max():.3g}"
            out.append(f"{where}: values differ{detail}")
        return
    if type(a) is not type(b):
        out.append(f"{where}: {a!r:.200} (fast) vs {b!r:.200} (reference)")
    elif isinstance(a, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                out.append(f"{where}: {key!r} only in {'fast' if key in a else 'reference'}")
            else:
                _differences(a[key], b[key], f"{where} {key}", out)
    elif isinstance(a, list | tuple):
        if len(a) != len(b):
            out.append(
                f"{where}: {len(a)} entries (fast) vs {len(b)} (reference): "
                f"{a!r:.300} vs {b!r:.300}"
            )
        else:
            for k, (x, y) in enumerate(zip(a, b, strict=True)):
                _differences(x, y, f"{where}[{k}]", out)
    elif isinstance(a, float) and np.isnan(a) and np.isnan(b):
        return
    elif a != b:
        out.append(f"{where}: {a!r:.200} (fast) vs {b!r:.200} (reference)")


def _same_ops(calls: Any) -> Any:
    """The op names in a call log, whichever path ran them."""
    if not isinstance(calls, list):
        return calls
    names = set()
    for entry in calls:
        kind, _, what = entry.partition(":")
        names.add(what if kind == "reference" else what.rsplit(" for ", 1)[-1].rstrip(">"))
    return sorted(names)


def _path_problems(op: str, i: int, calls_f: Any, calls_r: Any) -> list[str]:
    """The same ops ran in both processes; this one ran the op's generated entry point (a row
    with a list input takes ``Op.reference`` in both), the reference process no generated code."""
    where = f"{op} sample {i}: calls"
    if not (isinstance(calls_f, list) and isinstance(calls_r, list)):
        return [f"{where}: {calls_f!r:.300} (fast) vs {calls_r!r:.300} (reference)"]
    problems = []
    if _same_ops(calls_f) != _same_ops(calls_r):
        problems.append(
            f"{where}: different ops ran: {_same_ops(calls_f)} (fast) vs "
            f"{_same_ops(calls_r)} (reference)"
        )
    if any(c.startswith("generated:") for c in calls_r):
        problems.append(f"{where}: generated code ran in the reference process: {calls_r}")
    if f"reference:{op}" not in calls_r:
        problems.append(f"{where}: Op.reference of {op} did not run in the reference process")
    has_list = registry.OP_OBJECTS[op].has_list if op in registry.OP_OBJECTS else True
    if not has_list and f"generated:{GENERATED_PREFIX}: call_{op} for {op}>" not in calls_f:
        problems.append(f"{where}: the generated entry point of {op} did not run: {calls_f}")
    return problems


# -- the fixture: this process and the reference subprocess --------------------------------------
@pytest.fixture(scope="module")
def records(tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("fastpath") / "reference.pkl"
    env = dict(os.environ)
    env[ENV_FLAG] = "1"
    proc = subprocess.Popen(  # noqa: S603 - this file, with this interpreter
        [sys.executable, str(Path(__file__).resolve()), str(out)],
        env=env,
        cwd=str(HERE.parent),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        fast = record_all()  # meanwhile, in this process
        stdout, stderr = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (
        f"the {ENV_FLAG}=1 subprocess failed (exit {proc.returncode}):\n{stdout}\n{stderr}"
    )
    with out.open("rb") as f:
        reference = pickle.load(f)  # noqa: S301 - written by this file
    return fast, reference


def test_samples_are_identical_in_both_processes(records):
    fast, reference = records
    assert sorted(fast["ops"]) == sorted(reference["ops"])
    differ = [
        f"{op} sample {i}"
        for op in sorted(fast["ops"])
        for i, (f, r) in enumerate(zip(fast["ops"][op], reference["ops"][op], strict=False))
        if f["digest"] != r["digest"]
    ]
    counts = {op: (len(fast["ops"][op]), len(reference["ops"][op])) for op in fast["ops"]}
    assert all(a == b for a, b in counts.values()), f"sample counts differ: {counts}"
    assert not differ, (
        "op_specs drew different sample inputs in the two processes (something consumed its "
        "rng first, or a test changed a sample's arrays in place): " + ", ".join(differ)
    )


@pytest.mark.parametrize("op", sorted(SPECS))
def test_generated_entry_points_equal_the_reference_path(op, records):
    fast, reference = records
    fast_samples, ref_samples = fast["ops"][op], reference["ops"][op]
    assert len(fast_samples) == len(ref_samples), f"{op}: different numbers of samples"
    problems: list[str] = []
    for i, (f, r) in enumerate(zip(fast_samples, ref_samples, strict=True)):
        if f["digest"] != r["digest"]:
            problems.append(f"{op} sample {i}: the sample inputs differ between the processes")
            continue
        for quantity in sorted(set(f) | set(r)):
            if quantity in ("digest", "calls"):
                continue
            _differences(f.get(quantity), r.get(quantity), f"{op} sample {i}: {quantity}", problems)
        problems += _path_problems(op, i, f["calls"], r["calls"])
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])


def test_reference_mode_is_really_on(records):
    fast, reference = records
    ref = reference["facts"]
    assert ref["env"] == "1"
    assert ref["REFERENCE_PATH"] is True, "the subprocess did not read MATGRAD_REFERENCE_PATH=1"
    assert ref["mm_is_reference"], f"OPS['mm'] in the subprocess: {ref['mm']}"
    missing = sorted(set(registry.OPS) - set(ref["reference_ops"]))
    assert not missing, f"ops not on the reference path in the subprocess: {missing}"
    assert ref["n_sources"] == 0, "the subprocess generated entry points"
    # this process: the generated entry points
    facts = fast["facts"]
    assert facts["REFERENCE_PATH"] is False, f"{ENV_FLAG} is set for the test run itself"
    mm = registry.OPS["mm"]
    assert not inspect.ismethod(mm)
    assert mm.__code__.co_filename.startswith(GENERATED_PREFIX), mm.__code__.co_filename
    lists = sorted(name for name, op in registry.OP_OBJECTS.items() if op.has_list)
    assert facts["reference_ops"] == lists, "only rows with list inputs take Op.reference"
    # the profiler saw only Op.reference run in the subprocess (per sample: see the op tests)
    ran = {
        c
        for samples in reference["ops"].values()
        for s in samples
        if isinstance(s["calls"], list)
        for c in s["calls"]
    }
    assert ran and all(c.startswith("reference:") for c in ran), sorted(ran)


def test_generated_source_is_readable():
    mm = registry.OPS["mm"]
    source = inspect.getsource(mm)
    assert "def call_mm" in source
    assert source == fastpath.SOURCES[("mm", "call_mm")]
    a, b = mg.randn(3, 4, requires_grad=True), mg.randn(5, 2)
    with pytest.raises(ValueError) as info:
        mm(a, b)
    text = "".join(traceback.format_exception(info.value))
    assert "mm: " in str(info.value) and "(3, 4)" in str(info.value)
    filename = f"{GENERATED_PREFIX}: call_mm for mm>"
    assert filename in text, text
    shown = [line.strip() for line in source.splitlines()[1:] if line.strip()]
    assert any(line in text for line in shown), f"no line of the generated source in:\n{text}"
    # the frame of the generated function shows its own line of the generated source
    frames = [
        fr for fr in traceback.extract_tb(info.value.__traceback__) if fr.filename == filename
    ]
    assert frames, f"no frame of {filename} in:\n{text}"
    assert frames[-1].line == source.splitlines()[frames[-1].lineno - 1].strip()
    assert "raise op_error('mm'" in frames[-1].line
    missing = sorted(
        name
        for name, rule in registry.RULES.items()
        if not any(rule.input_is_list) and (name, f"call_{name}") not in fastpath.SOURCES
    )
    assert not missing, f"rows without generated source: {missing}"
    multi = [name for name, op in registry.OP_OBJECTS.items() if op.multi and not op.has_list]
    assert all((name, "record") in fastpath.SOURCES for name in multi)


def test_the_comparison_reports_each_kind_of_difference():
    """The comparison cannot pass silently: every kind of difference is reported, by place."""
    base = {
        "grad": ("tensor", "input 0", "float64", (2,), np.array([1.0, np.nan]), True, None),
        "graph": [{"class": "MulBackward0", "next": ((("AccumulateGrad", 1), 0),)}],
        "n": 3,
    }
    assert_same = []
    _differences(base, pickle.loads(pickle.dumps(base)), "x", assert_same)
    assert assert_same == [], "NaNs in the same places are equal"
    changes = {
        "values differ, max abs difference 0.5": ("grad", 4, np.array([1.5, np.nan])),
        "values differ, NaNs in different places": ("grad", 4, np.array([np.nan, 1.0])),
        "float64(2,) (fast) vs float32(2,)": ("grad", 4, np.array([1.0, np.nan], np.float32)),
        "float64(2,) (fast) vs float64(1, 2)": ("grad", 4, np.array([[1.0, np.nan]])),
        "x graph[0] class: 'MulBackward0' (fast) vs 'AddBackward0'": ("graph", None, None),
        "x n: 3 (fast) vs 4": ("n", None, 4),
    }
    for expected, (key, pos, value) in changes.items():
        other = pickle.loads(pickle.dumps(base))
        if key == "graph":
            other["graph"][0]["class"] = "AddBackward0"
        elif pos is None:
            other[key] = value
        else:
            other[key] = other[key][:pos] + (value,) + other[key][pos + 1 :]
        found: list[str] = []
        _differences(base, other, "x", found)
        assert any(expected in line for line in found), (expected, found)
    found = []
    _differences({"a": 1}, {"b": 1}, "x", found)
    assert found == ["x: 'a' only in fast", "x: 'b' only in reference"]
    assert _path_problems("mm", 0, ["reference:mm"], ["reference:mm"]) == [
        "mm sample 0: calls: the generated entry point of mm did not run: ['reference:mm']"
    ]


if __name__ == "__main__":
    # the reference process: record everything, write it to the file named by argv[1]
    records_ = record_all()
    with open(sys.argv[1], "wb") as f_:
        pickle.dump(records_, f_, protocol=pickle.HIGHEST_PROTOCOL)
