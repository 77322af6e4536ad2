"""The five sections of an ``explain`` report, built as JSON-ready data.

1. the inputs (the free names), intermediates and outputs, with shapes, dtypes and values;
2. the graph the forward pass recorded, from each output down to the leaves, as PyTorch shows
   it (``MmBackward0``, ``AccumulateGrad``, ``next_functions``, ``_saved_self: 3x3``);
3. for each node, the row of ``derivatives.yaml`` it applies, quoted with its line (and the
   composites, such as ``einsum``, that have no row of their own: the core ops they recorded);
4. the Jacobian of each output with respect to each input (all rows in one batched backward
   pass) and its structure, by :func:`matgrad.structure.describe_jacobian`;
5. the same expression run through the per-element engine (:mod:`.per_element`): both node
   counts, both times and the largest difference between the two gradients.
"""

from __future__ import annotations

import ast
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from .. import autograd, formulas, viz
from ..core.graph import AccumulateGrad, BatchingUnsupported, Node
from ..structure import describe_jacobian
from ..tensor import Tensor
from . import per_element as sc
from .evaluate import (
    Evaluator,
    Failure,
    TensorBackend,
    WarningLog,
    evaluate,
    failure_error,
    kind_of,
    one_line,
)
from .language import (
    BATCH_ELEMENTS,
    CALLABLES,
    DEFAULT_SHAPE,
    JSON_VALUE_LIMIT,
    MAX_JACOBIAN_ENTRIES,
    MAX_REPORT_BACKWARD_WORK,
    MAX_REPORT_JACOBIAN_ENTRIES,
    MAX_REPORT_JSON_ENTRIES,
    ExplainError,
    Program,
    parse_shape,
)


def _yaml_rows() -> list[str]:
    return resources.files("matgrad").joinpath("derivatives.yaml").read_text().splitlines()


def _quote_row(lines: list[str], line: int) -> list[str]:
    """The YAML text of the row starting at (1-based) ``line``."""
    if not 1 <= line <= len(lines):
        return []
    out = [lines[line - 1]]
    for text in lines[line:]:
        if not text.strip() or not text.startswith(" "):
            break
        out.append(text)
    return out


def _helpers(texts: Iterable[str]) -> dict[str, str]:
    """``{name: first paragraph of its docstring}`` for the helpers of ``matgrad.formulas``
    that rule formulas (our own table's text) call."""
    helpers_mod = formulas
    out: dict[str, str] = {}
    for text in texts:
        try:
            tree = ast.parse(str(text), mode="eval")
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                fn = getattr(helpers_mod, node.func.id, None)
                if fn is not None and not node.func.id.startswith("_") and callable(fn):
                    doc = (fn.__doc__ or "").strip().split("\n\n")[0]
                    out[node.func.id] = " ".join(doc.split())
    return out


def _to_list(arr: np.ndarray) -> Any:
    """A nested list with non-finite entries as None (strict JSON)."""
    a = np.asarray(arr, dtype=np.float64)
    if np.all(np.isfinite(a)):
        return a.tolist()
    obj = a.astype(object)
    obj[~np.isfinite(a)] = None
    return obj.tolist()


class _JsonBudget:
    """What one report writes as JSON lists: each array up to ``JSON_VALUE_LIMIT`` entries,
    and all of them together up to ``MAX_REPORT_JSON_ENTRIES`` (a nested list costs about
    32 bytes an entry, its JSON text about 20): arrays past either are written as null."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MAX_REPORT_JSON_ENTRIES if limit is None else limit
        self.left = self.limit
        self.omitted = 0  # arrays left out because the budget was spent

    def take(self, arr: np.ndarray) -> Any:
        size = int(np.size(arr))
        if size > JSON_VALUE_LIMIT:
            return None
        if size > self.left:
            self.omitted += 1
            return None
        self.left -= size
        return _to_list(arr)

    def spent_note(self) -> str:
        return f"not in the JSON: the report's JSON budget of {self.limit} entries is spent"


def _dtype_name(t: Tensor) -> str:
    return str(np.dtype(t.dtype))


def _array(t: Tensor) -> np.ndarray:
    return np.array(t.detach().numpy(), copy=True)


def _flatten_named(name: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, tuple | list):
        out: list[tuple[str, Any]] = []
        for k, v in enumerate(value):
            out.extend(_flatten_named(f"{name}[{k}]", v))
        return out
    return [(name, value)]


def _make_inputs(
    program: Program,
    shapes: Mapping[str, tuple[int, ...]],
    seed: int,
    dtype: str,
    values: Mapping[str, Any] | None,
) -> dict[str, np.ndarray]:
    unknown = sorted(set(shapes) - set(program.inputs))
    if unknown:
        raise ExplainError(
            f"--shape names {', '.join(unknown)}, which "
            f"{'is not an input' if len(unknown) == 1 else 'are not inputs'} of "
            f"the expression (inputs: {', '.join(program.inputs)})"
        )
    rng = np.random.default_rng(seed)
    out = {}
    for name in program.inputs:
        shape = shapes.get(name, DEFAULT_SHAPE)
        if values is not None and name in values:
            arr = np.asarray(getattr(values[name], "_data", values[name]), dtype=dtype)
            parse_shape(arr.shape)
        else:
            arr = rng.standard_normal(shape).astype(dtype)
        out[name] = arr
    return out


def _leaf_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
    return {n: Tensor(a.copy(), requires_grad=True) for n, a in arrays.items()}


def _jacobian_rows(y: Tensor, xs: list[Tensor], rows: np.ndarray, autograd: Any) -> list[Any]:
    """One batched backward pass: gradients of the rows' cotangents for every input."""
    cot = Tensor(rows.reshape((rows.shape[0],) + tuple(y.shape)))
    return list(
        autograd.grad(
            [y], xs, grad_outputs=[cot], retain_graph=True, allow_unused=True, is_grads_batched=True
        )
    )


def _backward_pass(log: WarningLog | None, step: str) -> Any:
    """The context of a backward pass: its warnings go to ``log`` (dropped without one)."""
    return log.phase("backward pass", step) if log is not None else WarningLog.quiet()


def _unit_rows(start: int, count: int, p: int, dtype: Any) -> np.ndarray:
    """Rows ``start .. start + count`` of the p x p identity, made alone (the whole identity
    of a 100000-element output would be 80 GB)."""
    rows = np.zeros((count, p), dtype=dtype)
    rows[np.arange(count), np.arange(start, start + count)] = 1
    return rows


def _budget_note(oname: str, iname: str, need: int, left: int, budget: int) -> str:
    return (
        f"Jacobian of {oname} w.r.t. {iname} skipped: the report's Jacobian budget of {budget} "
        f"entries is spent ({need} needed, {left} left)"
    )


def _work_note(oname: str, iname: str, p: int, largest: int, left: int, work: int) -> str:
    return (
        f"Jacobian of {oname} w.r.t. {iname} skipped: its backward passes would carry {p} "
        f"cotangent rows through tensors of up to {largest} elements ({p * largest} "
        f"element-rows; {left} left of the report's backward budget of {work})"
    )


def _compute_jacobians(
    outputs: list[tuple[str, Tensor]],
    inputs: dict[str, Tensor],
    largest: int,
    log: WarningLog | None = None,
    budget: int | None = None,
    work: int | None = None,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], np.ndarray]]:
    """The Jacobian of every output with respect to every input, in order, while they fit:
    each at most ``MAX_JACOBIAN_ENTRIES`` entries, all together at most ``budget`` entries
    (a pair that does not fit in what is left is skipped, with a note; later smaller ones may
    still fit), and all the backward passes together at most ``work`` cotangent rows x the
    largest tensor (defaults: ``MAX_REPORT_JACOBIAN_ENTRIES``, ``MAX_REPORT_BACKWARD_WORK``).
    Warnings of the backward passes go to ``log``."""
    entries: list[dict[str, Any]] = []
    arrays: dict[tuple[str, str], np.ndarray] = {}
    budget = MAX_REPORT_JACOBIAN_ENTRIES if budget is None else budget
    work = MAX_REPORT_BACKWARD_WORK if work is None else work
    left = budget
    work_left = work
    largest = max(int(largest), 1)
    for oname, y in outputs:
        p = y.numel()
        floating = np.dtype(y.dtype).kind == "f"
        differentiable = y.requires_grad and floating
        todo = []
        for iname, x in inputs.items():
            q = x.numel()
            entry: dict[str, Any] = {
                "output": oname,
                "input": iname,
                "shape": [p, q],
                "method": None,
                "note": None,
                "skipped": None,
            }
            entries.append(entry)
            if not floating:
                entry["note"] = f"{oname} is not differentiable (dtype {y.dtype})"
            elif p * q > MAX_JACOBIAN_ENTRIES:
                entry["skipped"] = "too_large"
                entry["note"] = (
                    f"too large to compute ({p}x{q}; at most {MAX_JACOBIAN_ENTRIES} entries)"
                )
            elif p * q > left:
                entry["skipped"] = "budget"
                entry["note"] = _budget_note(oname, iname, p * q, left, budget)
            elif not differentiable:
                left -= p * q
                entry["note"] = f"{oname} does not depend on the inputs"
                arrays[(oname, iname)] = np.zeros((p, q), dtype=y.dtype)
            else:
                left -= p * q
                todo.append((iname, x, entry))
        if not todo:
            continue
        if p * largest > work_left:  # one output's rows cost the same for all its inputs
            for iname, x, entry in todo:
                left += p * x.numel()
                entry["skipped"] = "work"
                entry["note"] = _work_note(oname, iname, p, largest, work_left, work)
            continue
        work_left -= p * largest
        xs = [x for _, x, _ in todo]
        chunk = max(1, min(p, BATCH_ELEMENTS // largest))
        blocks: list[list[np.ndarray]] = [[] for _ in todo]
        method = "batched" if chunk >= p else f"batched, {math.ceil(p / chunk)} passes"
        with _backward_pass(log, "Jacobians"):
            try:
                for start in range(0, p, chunk):
                    rows = min(chunk, p - start)
                    grads = _jacobian_rows(y, xs, _unit_rows(start, rows, p, y.dtype), autograd)
                    for k, g in enumerate(grads):
                        blocks[k].append(
                            np.zeros((rows, xs[k].numel()), dtype=y.dtype)
                            if g is None
                            else g.numpy().reshape(rows, -1)
                        )
            except BatchingUnsupported:
                method = "loop (a rule does not take batched cotangents)"
                blocks = [[] for _ in todo]
                for i in range(p):
                    cot = Tensor(_unit_rows(i, 1, p, y.dtype).reshape(tuple(y.shape)))
                    grads = autograd.grad(
                        [y], xs, grad_outputs=[cot], retain_graph=True, allow_unused=True
                    )
                    for k, g in enumerate(grads):
                        blocks[k].append(
                            np.zeros((1, xs[k].numel()), dtype=y.dtype)
                            if g is None
                            else g.numpy().reshape(1, -1)
                        )
        for k, (iname, _, entry) in enumerate(todo):
            parts = blocks[k]
            arrays[(oname, iname)] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            blocks[k] = []  # each block is held once, in the result
            entry["method"] = method
    return entries, arrays


def _time_call(fn: Callable[[], Any], budget: float = 0.25, repeats: int = 5) -> float:
    best = math.inf
    spent = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best = min(best, took)
        spent += took
        if spent > budget:
            break
    return best


def _float_outputs(named: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [
        (n, v)
        for n, v in named
        if isinstance(v, Tensor) and v.requires_grad and np.dtype(v.dtype).kind == "f"
    ]


def _compare(
    program: Program,
    arrays: Mapping[str, np.ndarray],
    functions: Mapping[str, Any],
    tensor_grads: Mapping[str, np.ndarray],
    graph_counts: tuple[int, int],
    differentiable: bool = True,
    rows_by_call: Mapping[int, Any] | None = None,
) -> dict[str, Any]:
    """Section 5: the same program on per-element Scalars (``rows_by_call``: the rows the
    tensor-level run recorded per call, which tell the per-element engine where a composite
    is written in linalg rows)."""
    result: dict[str, Any] = {
        "tensor": {
            "nodes": graph_counts[0] + graph_counts[1],
            "op_nodes": graph_counts[0],
            "leaf_nodes": graph_counts[1],
            "seconds": None,
        },
        "scalar": None,
        "max_abs_diff": None,
        "status": "ok",
        "op": None,
        "why": None,
    }

    def tensor_run() -> None:
        leaves = _leaf_tensors(arrays)
        env = evaluate(program, leaves, TensorBackend(functions, track=False))
        outs = _float_outputs([p for n in program.outputs for p in _flatten_named(n, env[n])])
        if outs:
            autograd.grad(
                [t for _, t in outs],
                list(leaves.values()),
                grad_outputs=[np.ones(t.shape, dtype=t.dtype) for _, t in outs],
                allow_unused=True,
            )

    with WarningLog.quiet():  # repeats the forward and backward passes already recorded
        result["tensor"]["seconds"] = _time_call(tensor_run)
    if not differentiable:
        result.update(status="skipped", why="no output depends differentiably on the inputs")
        return result

    state: dict[str, Any] = {}

    def scalar_run() -> None:
        lifted = {n: sc.lift(a.astype(np.float64)) for n, a in arrays.items()}
        with sc.quiet():
            env = Evaluator(program, sc.ScalarBackend(rows_by_call)).run(lifted)
        outs = []
        for n in program.outputs:
            for name, v in _flatten_named(n, env[n]):
                if isinstance(v, np.ndarray) and v.dtype == object:
                    outs.append((name, v))
        state["roots"] = [x for _, v in outs for x in v.ravel().tolist()]
        state["leaves"] = [x for a in lifted.values() for x in a.ravel().tolist()]
        loss = sc.sum([sc.sum(v) for _, v in outs]) if outs else sc.Scalar(0.0)
        sc.backward(loss)
        state["grads"] = {n: sc.grads(a) for n, a in lifted.items()}

    try:
        with WarningLog.quiet():  # IEEE results on scalars; the tensor runs report warnings
            seconds = _time_call(scalar_run, budget=1.0, repeats=3)
    except sc.UnsupportedScalarOp as exc:
        result.update(status="no_elementwise_form", op=exc.op_name, why=" ".join(str(exc).split()))
        return result
    except sc.NotModelled as exc:
        result.update(
            status="not_modelled",
            op=exc.op,
            why=f"the per-element engine has no expansion of `{exc.op}` (it models "
            "elementwise ops, +, -, *, /, **, @, sum, mean, transposes, reshapes, "
            "indexing and einsum)",
        )
        return result
    except sc.TooBig as exc:
        result.update(status="too_large", why=str(exc))
        return result
    except Failure as exc:
        if isinstance(exc.exc, sc.UnsupportedScalarOp):
            result.update(
                status="no_elementwise_form", op=exc.exc.op_name, why=" ".join(str(exc.exc).split())
            )
        else:
            result.update(status="failed", why=one_line(exc.exc))
        return result
    # node counts of the graph before the loss sum(outputs) was added (of the last run)
    nodes = sc.count_nodes(state["roots"])
    unreached = sc.count_nodes(state["roots"] + state["leaves"]) - nodes
    leaf_nodes = len(state["leaves"]) - unreached
    state["nodes"] = nodes
    result["scalar"] = {
        "nodes": state["nodes"],
        "op_nodes": state["nodes"] - leaf_nodes,
        "leaf_nodes": leaf_nodes,
        "seconds": seconds,
    }
    with WarningLog.quiet():  # inf - inf: the difference is not finite, and is left out
        diffs = [
            float(np.max(np.abs(state["grads"][n] - tensor_grads[n].astype(np.float64))))
            for n in arrays
            if n in tensor_grads and tensor_grads[n].size
        ]
    finite = [d for d in diffs if math.isfinite(d)]
    result["max_abs_diff"] = max(finite) if finite else None
    return result


@dataclass
class _Run:
    """The forward pass of a program on its inputs: what every section reads."""

    program: Program
    arrays: dict[str, np.ndarray]  # input values
    leaves: dict[str, Tensor]  # the input tensors (requires_grad=True)
    named: list[tuple[str, Any]]  # inputs, then assigned names (tuples flattened: R[0], ...)
    outputs: list[tuple[str, Tensor]]
    tensor_names: dict[int, str]  # id(tensor) -> its name
    backend: TensorBackend


def _forward(
    program: Program, arrays: dict[str, np.ndarray], log: WarningLog | None = None
) -> _Run:
    """Evaluate ``program`` on tensors made from ``arrays``, noting which graph nodes each
    operation recorded (and in ``log``, the warnings each raised); errors of the operations
    become one-line ExplainErrors."""
    leaves = _leaf_tensors(arrays)
    backend = TensorBackend(CALLABLES)
    backend.text = program.text
    try:
        env = evaluate(program, leaves, backend, log)
    except Failure as failure:
        raise failure_error(program, failure) from failure.exc
    named: list[tuple[str, Any]] = list(leaves.items())
    for name in program.assigned:
        if name in env:
            named.extend(_flatten_named(name, env[name]))
    outputs: list[tuple[str, Tensor]] = []
    for name in program.outputs:
        for n, v in _flatten_named(name, env[name]):
            if not isinstance(v, Tensor):
                raise ExplainError(
                    f"output `{n}` is {kind_of(v)}, not a tensor: outputs must be "
                    "tensors computed from the inputs"
                )
            outputs.append((n, v))
    tensor_names: dict[int, str] = {}
    for name, v in named:
        if isinstance(v, Tensor):
            tensor_names.setdefault(id(v), name)
    return _Run(program, arrays, leaves, named, outputs, tensor_names, backend)


def _section_inputs_outputs(run: _Run, data: dict[str, Any], json: _JsonBudget) -> None:
    """Section 1: inputs, intermediates and outputs with shapes, dtypes and values."""
    sources = {t: st.source for st in run.program.statements for t in (st.targets or [])}
    bare = [st.source for st in run.program.statements if st.targets is None]
    for k, src in enumerate(bare):
        sources["out" if k == 0 else f"out{k + 1}"] = src
    output_names = {n for n, _ in run.outputs}
    data["inputs"] = [
        {"name": n, "shape": list(a.shape), "dtype": str(a.dtype), "value": json.take(a)}
        for n, a in run.arrays.items()
    ]
    data["outputs"] = [
        {
            "name": n,
            "shape": list(t.shape),
            "dtype": _dtype_name(t),
            "requires_grad": bool(t.requires_grad),
            "value": json.take(_array(t)),
            "source": sources.get(n.split("[")[0], ""),
        }
        for n, t in run.outputs
    ]
    data["intermediates"] = [
        {
            "name": n,
            "shape": list(v.shape),
            "dtype": _dtype_name(v),
            "source": sources.get(n.split("[")[0], ""),
        }
        for n, v in run.named
        if isinstance(v, Tensor) and n not in run.arrays and n not in output_names
    ]
    if any(not np.all(np.isfinite(_array(t))) for _, t in run.outputs):
        data["notes"].append(
            "some output values are NaN or infinite: the inputs are standard "
            "normal, so log/sqrt of negative numbers give NaN (try exp(A) or "
            "abs(A) as the argument)"
        )


def _section_graph(run: _Run, data: dict[str, Any]) -> tuple[list[Node], dict[int, int]]:
    """Section 2: every node from the outputs down to the leaves, numbered depth-first."""
    roots = [viz.root_node(t) for _, t in run.outputs]
    nodes = viz.graph_nodes(roots)
    ids = {id(n): k + 1 for k, n in enumerate(nodes)}
    entries = []
    for node in nodes:
        entry: dict[str, Any] = {
            "id": ids[id(node)],
            "name": node.name(),
            "rule": None,
            "line": None,
            "created_by": run.backend.created_by.get(id(node)),
            "saved": {},
            "saved_refs": {},
            "next": [],
            "leaf": None,
        }
        if isinstance(node, AccumulateGrad):
            var = node.variable
            entry["leaf"] = run.tensor_names.get(id(var), "leaf")
            entry["leaf_shape"] = list(var.shape)
        else:
            rule = getattr(node, "rule", None)
            if rule is not None:
                entry["rule"], entry["line"] = rule.name, rule.line
            for sname, value in viz.saved_values(node):
                entry["saved"][sname] = viz.value_text(value)
                if isinstance(value, Tensor) and id(value) in run.tensor_names:
                    entry["saved_refs"][sname] = run.tensor_names[id(value)]
        for (nxt, nr), label in zip(node.next_functions, viz.edge_labels(node), strict=False):
            entry["next"].append(
                {"input": label, "node": None if nxt is None else ids[id(nxt)], "output_nr": nr}
            )
        entries.append(entry)
    data["graph"] = {
        "roots": [
            {"output": n, "node": None if r is None else ids[id(r)]}
            for (n, _), r in zip(run.outputs, roots, strict=True)
        ],
        "nodes": entries,
    }
    return nodes, ids


def _section_rules(run: _Run, nodes: list[Node], ids: dict[int, int], data: dict) -> None:
    """Section 3: each rule node's row of derivatives.yaml, and the calls that have no rule of
    their own (composites such as einsum, and aliases such as ``A.det()``)."""
    yaml_lines = _yaml_rows()
    rules = []
    for node in nodes:
        rule = getattr(node, "rule", None)
        if rule is None:
            continue
        rules.append(
            {
                "node": ids[id(node)],
                "name": node.name(),
                "rule": rule.name,
                "line": rule.line,
                "yaml": _quote_row(yaml_lines, rule.line),
                "vjp": dict(rule.vjp_formulas),
                "jvp": rule.jvp_formula,
                "inputs": list(rule.inputs),
                "helpers": _helpers(rule.vjp_formulas.values()),
            }
        )
    data["rules"] = rules
    composites = []
    for source, callee, made in run.backend.composites:
        in_graph = sorted((n for n in made if id(n) in ids), key=lambda n: -ids[id(n)])
        core = [r.name for r in (getattr(n, "rule", None) for n in in_graph) if r is not None]
        base = callee.strip(".()").removeprefix("linalg.")
        if len(in_graph) == 1 and core and core[0] in (base, f"linalg_{base}"):
            continue  # the call is the core op itself
        if in_graph:
            composites.append(
                {
                    "call": source,
                    "callee": callee,
                    "kind": "composite" if len(in_graph) > 1 else "alias",
                    "nodes": [ids[id(n)] for n in in_graph],
                    "core_ops": core,
                }
            )
    data["composites"] = composites


def _section_jacobians(
    run: _Run, data: dict[str, Any], json: _JsonBudget, log: WarningLog | None = None
) -> dict[tuple[str, str], np.ndarray]:
    """Section 4: the Jacobians (one batched backward pass per output, within the report's
    Jacobian budget) and their structure, named against the inputs, intermediates, outputs
    and the inverses of square ones."""
    entries, arrays = _compute_jacobians(run.outputs, run.leaves, run.backend.largest, log)
    candidates: dict[str, np.ndarray] = dict(run.arrays)
    for name, v in run.named:
        if isinstance(v, Tensor) and name not in candidates:
            candidates[name] = _array(v)
    for name, a in list(candidates.items()):  # inverses name the rules of inv, det, solve
        if a.ndim == 2 and a.shape[0] == a.shape[1] > 1 and np.all(np.isfinite(a)):
            with WarningLog.quiet():
                if np.linalg.cond(a) < 1e8:
                    candidates[f"{name}^-1"] = np.linalg.inv(a)
    shapes = {n: t.shape for n, t in run.outputs}
    for entry in entries:
        J = arrays.get((entry["output"], entry["input"]))
        entry["matrix"] = None if J is None else json.take(J)
        if J is not None and entry["matrix"] is None and J.size <= JSON_VALUE_LIMIT:
            entry["matrix_note"] = json.spent_note()
        with WarningLog.quiet():  # the structure's own arithmetic (NaN entries compare quietly)
            entry["structure"] = (
                None
                if J is None
                else describe_jacobian(
                    J, shapes[entry["output"]], run.arrays[entry["input"]].shape, candidates
                ).to_dict()
            )
    data["jacobians"] = entries
    skipped = [e for e in entries if e["skipped"] == "budget"]
    slow = [e for e in entries if e["skipped"] == "work"]
    data["jacobian_budget"] = {
        "entries": MAX_REPORT_JACOBIAN_ENTRIES,
        "used": int(sum(J.size for J in arrays.values())),
        "skipped": len(skipped),
        "backward_work": MAX_REPORT_BACKWARD_WORK,
        "skipped_for_work": len(slow),
    }
    if skipped:
        data["notes"].append(
            f"{len(skipped)} Jacobian{'s' if len(skipped) != 1 else ''} skipped: the report's "
            f"Jacobian budget of {MAX_REPORT_JACOBIAN_ENTRIES} entries is spent (see section 4)"
        )
    if slow:
        data["notes"].append(
            f"{len(slow)} Jacobian{'s' if len(slow) != 1 else ''} skipped: the report's "
            f"backward budget of {MAX_REPORT_BACKWARD_WORK} element-rows is spent (see "
            "section 4)"
        )
    return arrays


def _gradients_of_sum(run: _Run, log: WarningLog | None = None) -> dict[str, np.ndarray]:
    """The gradient of the sum of all (float) outputs with respect to each input (warnings
    of its backward pass go to ``log``)."""
    float_outs = _float_outputs(run.outputs)
    grads = {n: np.zeros(a.shape, dtype=a.dtype) for n, a in run.arrays.items()}
    if not float_outs:
        return grads
    with _backward_pass(log, "gradient of the sum"):
        gs = autograd.grad(
            [t for _, t in float_outs],
            list(run.leaves.values()),
            grad_outputs=[np.ones(t.shape, dtype=t.dtype) for _, t in float_outs],
            retain_graph=True,
            allow_unused=True,
        )
    for name, g in zip(run.leaves, gs, strict=True):
        if g is not None:
            grads[name] = _array(g)
    return grads


def build(
    program: Program,
    shapes: Mapping[str, tuple[int, ...]],
    seed: int,
    dtype: str,
    values: Mapping[str, Any] | None,
    compare: bool,
) -> tuple[dict[str, Any], str, dict[tuple[str, str], np.ndarray]]:
    """Run ``program`` on its inputs and build every section: ``(data, dot, jacobians)``, the
    report's JSON-ready data, the graph as DOT text and the Jacobians as arrays.

    Warnings raised on the way (NumPy's division by zero, invalid values and overflow;
    matgrad's gradient warnings) are not printed: they are listed, once each, in
    ``data["warnings"]``. The JSON arrays share one budget (``MAX_REPORT_JSON_ENTRIES``):
    values and gradients first, then the Jacobians."""
    log = WarningLog()
    log.text = program.text
    with log.capture():
        data, dot_text, jacobians = _build(program, shapes, seed, dtype, values, compare, log)
    data["warnings"] = log.entries()
    return data, dot_text, jacobians


def _build(
    program: Program,
    shapes: Mapping[str, tuple[int, ...]],
    seed: int,
    dtype: str,
    values: Mapping[str, Any] | None,
    compare: bool,
    log: WarningLog,
) -> tuple[dict[str, Any], str, dict[tuple[str, str], np.ndarray]]:
    arrays = _make_inputs(program, shapes, seed, dtype, values)
    run = _forward(program, arrays, log)
    data: dict[str, Any] = {
        "expression": program.text,
        "seed": seed,
        "dtype": dtype,
        "vec_convention": "row-major: vec(X) = X.ravel(); J[i, j] = d vec(Y)[i] / d vec(X)[j]",
        "notes": [],
    }
    json = _JsonBudget()
    _section_inputs_outputs(run, data, json)
    nodes, ids = _section_graph(run, data)
    _section_rules(run, nodes, ids, data)
    grads = _gradients_of_sum(run, log)
    grads_json = {n: json.take(g) for n, g in grads.items()}  # before the Jacobians take theirs
    jacobians = _section_jacobians(run, data, json, log)
    data["gradients"] = grads_json
    if json.omitted:
        data["notes"].append(
            f"{json.omitted} array{'s are' if json.omitted != 1 else ' is'} written as null in "
            f"the JSON: the report's JSON budget of {json.limit} entries is spent"
        )
    n_leaf = sum(isinstance(n, AccumulateGrad) for n in nodes)
    data["comparison"] = (
        _compare(
            program,
            arrays,
            run.backend.functions,
            grads,
            (len(nodes) - n_leaf, n_leaf),
            bool(_float_outputs(run.outputs)),
            run.backend.rows_by_call,
        )
        if compare
        else None
    )
    dot_text = viz.to_dot(
        dict(run.outputs),
        names={n: v for n, v in run.named if isinstance(v, Tensor)},
        created_by=run.backend.created_by,
    )
    return data, dot_text, jacobians
