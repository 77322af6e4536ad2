"""The :class:`Report` that ``explain`` returns: the five sections as text (``str``), JSON
(``to_dict``, ``to_json``), HTML for notebooks (``_repr_html_``), the graph as DOT or SVG
(``to_dot``, ``to_svg``) and Jacobian heatmaps (``plot``)."""

from __future__ import annotations

import copy
import html
import json
import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import viz
from .language import TEXT_MATRIX_SIDE, ExplainError

__all__ = ["Report"]


class Report:
    """What :func:`explain` found. ``str(report)`` is the five-section text; ``to_dict()`` and
    ``to_json()`` give the same content as data (Jacobians as nested lists, row-major vec);
    ``to_dot()`` the graph as Graphviz DOT, ``to_svg()`` rendered (needs Graphviz);
    ``_repr_html_`` shows it in a notebook; ``jacobian(out, inp)`` one Jacobian as an array."""

    def __init__(
        self, data: dict[str, Any], dot: str, jacobians: Mapping[tuple[str, str], np.ndarray]
    ) -> None:
        self._data = data
        self._dot = dot
        self._jacobians = dict(jacobians)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (a deep copy)."""
        return copy.deepcopy(self._data)

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text (strict: NaN and infinities are written as null)."""
        return json.dumps(self._data, indent=indent, allow_nan=False)

    def to_dot(self) -> str:
        """The graph as Graphviz DOT text: one box per node, saved tensors with shapes."""
        return self._dot

    def to_svg(self) -> str:
        """The graph rendered as SVG text; needs Graphviz's ``dot`` program."""
        return viz.render(self._dot, "svg").decode()

    def jacobian(self, output: str, input: str) -> np.ndarray:  # noqa: A002
        """The Jacobian ``d vec(output) / d vec(input)`` (row-major vec) as an array."""
        try:
            return self._jacobians[(output, input)].copy()
        except KeyError:
            raise KeyError(f"no Jacobian of {output!r} with respect to {input!r}") from None

    @property
    def inputs(self) -> list[str]:
        """Names of the inputs."""
        return [i["name"] for i in self._data["inputs"]]

    @property
    def outputs(self) -> list[str]:
        """Names of the outputs."""
        return [o["name"] for o in self._data["outputs"]]

    def __str__(self) -> str:
        return _render_text(self._data)

    def __repr__(self) -> str:
        return f"<matgrad.explain Report for {self._data['expression']!r}>"

    def _repr_html_(self) -> str:
        svg = ""
        try:
            svg = self.to_svg()
            svg = svg[svg.find("<svg") :]
        except Exception:  # noqa: BLE001 - the picture is optional (Graphviz may be missing)
            svg = ""
        return f"<div class='matgrad-explain'>{svg}<pre>{html.escape(str(self))}</pre></div>"

    def plot(self, path: str) -> str:
        """Save a grid of Jacobian heatmaps (outputs x inputs) to ``path`` (PNG, SVG, PDF...);
        needs matplotlib (``pip install 'matgrad[plot]'``)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ExplainError(
                "plotting needs matplotlib, which is not installed: pip install "
                "'matgrad[plot]' (or pip install matplotlib)"
            ) from None
        outs, ins = self.outputs, self.inputs
        fig, axes = plt.subplots(
            len(outs), len(ins), squeeze=False, figsize=(3.2 * len(ins) + 1, 3.0 * len(outs) + 0.6)
        )
        for r, o in enumerate(outs):
            for c, i in enumerate(ins):
                ax = axes[r][c]
                J = self._jacobians.get((o, i))
                if J is None:
                    ax.set_axis_off()
                    ax.set_title(f"d{o}/d{i}: not computed", fontsize=9)
                    continue
                lim = float(np.nanmax(np.abs(J))) if J.size else 1.0
                im = ax.imshow(
                    J, cmap="RdBu_r", vmin=-lim or -1, vmax=lim or 1, interpolation="nearest"
                )
                entry = next(
                    e for e in self._data["jacobians"] if e["output"] == o and e["input"] == i
                )
                formula = (entry.get("structure") or {}).get("formula") or ""
                ax.set_title(f"d vec({o}) / d vec({i})\n{formula}", fontsize=9)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.suptitle(f"Jacobians of {self._data['expression']} (row-major vec)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return path


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def _render_text(d: dict[str, Any]) -> str:
    out: list[str] = []
    w = out.append
    w(f"matgrad explain: {d['expression']}")
    w(f"(random standard-normal inputs, seed {d['seed']}, {d['dtype']})")
    w("")
    found = d.get("warnings") or []
    if found:
        w(f"Warnings ({len(found)}), caught while building this report instead of printed:")
        for x in found:
            during = f", computing the {' and the '.join(x['during'])}" if x.get("during") else ""
            times = f", {x['count']} times" if x.get("count", 1) > 1 else ""
            w(f"   warning: {x['category']} in the {x['where']}{during}{times}: {x['message']}")
        w("")
    # 1
    w("1. Inputs and outputs")
    rows = [
        (i["name"], "input", viz.shape_text(i["shape"]), i["dtype"], "requires_grad=True")
        for i in d["inputs"]
    ]
    rows += [
        (m["name"], "intermediate", viz.shape_text(m["shape"]), m["dtype"], m["source"])
        for m in d["intermediates"]
    ]
    rows += [
        (o["name"], "output", viz.shape_text(o["shape"]), o["dtype"], o["source"])
        for o in d["outputs"]
    ]
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    for r in rows:
        w("   " + "  ".join(r[k].ljust(widths[k]) for k in range(4)) + "  " + r[4])
    for note in d["notes"]:
        w(f"   note: {note}")
    w("")
    # 2
    nodes = {n["id"]: n for n in d["graph"]["nodes"]}
    w("2. Graph: from each output's grad_fn down to the leaves along next_functions")
    first = d["graph"]["roots"][0]["output"] if d["graph"]["roots"] else "C"
    w(
        f"   (as PyTorch shows {first}.grad_fn, {first}.grad_fn.next_functions, "
        f"{first}.grad_fn._saved_self)"
    )
    shown: set[int] = set()
    budget = [400]
    for root in d["graph"]["roots"]:
        out_meta = next(o for o in d["outputs"] if o["name"] == root["output"])
        w(f"   {root['output']} ({viz.shape_text(out_meta['shape'])} {out_meta['dtype']})")
        if root["node"] is None:
            w("   `- grad_fn = None: it does not require grad")
            continue
        _render_tree(nodes, root["node"], "grad_fn", out, shown, budget)
    w("")
    # 3
    w("3. Rules: what each node applies, quoted from derivatives.yaml")
    w(
        "   (a vector-Jacobian product per input: `grad` is the gradient arriving at the node's "
        "output)"
    )
    for c in d["composites"]:
        ops = ", ".join(f"#{i} {nodes[i]['name']}" for i in c["nodes"])
        if c["kind"] == "alias":
            _wrap(
                out,
                f"`{c['call']}` has no rule of its own: it records the core op "
                f"`{c['core_ops'][0]}` ({ops}).",
                "   ",
            )
        else:
            _wrap(
                out,
                f"`{c['call']}` is a composite with no rule of its own: it is written in "
                f"core ops, and they are what the graph holds ({len(c['nodes'])} nodes, in "
                f"the order they ran): {ops}.",
                "   ",
            )
    quoted: set[str] = set()
    for r in d["rules"]:
        node = nodes[r["node"]]
        src = f"  recorded by `{node['created_by']}`" if node["created_by"] else ""
        w(
            f"   #{r['node']} {r['name']}: rule `{r['rule']}`, derivatives.yaml line {r['line']}"
            f"{src}"
        )
        if r["rule"] in quoted:
            w("        (row quoted above)")
        else:
            quoted.add(r["rule"])
            for line in r["yaml"]:
                w(f"        | {line}")
        refs = node["saved_refs"]
        for inp in r["inputs"]:
            formula = r["vjp"].get(inp)
            bound = f"   [{inp} = {refs[inp]}]" if inp in refs and refs[inp] != inp else ""
            if formula is None:
                w(f"        grad of {inp}: none (not differentiable)")
            else:
                w(f"        grad of {inp} = {formula}{bound}")
        for helper, doc in r.get("helpers", {}).items():
            if doc:
                _wrap(out, f"{helper} (formulas.py): {doc}", "        ")
    leaves = [n for n in d["graph"]["nodes"] if n["leaf"] is not None]
    for n in leaves:
        w(
            f"   #{n['id']} AccumulateGrad: no formula; adds the gradient it receives into "
            f"{n['leaf']}.grad"
        )
    w("")
    # 4
    w("4. Jacobians (row-major vec: vec(X) = X.ravel(); J[i, j] = d vec(Y)[i] / d vec(X)[j])")
    for e in d["jacobians"]:
        p, q = e["shape"]
        head = f"   d{e['output']}/d{e['input']}: {p}x{q}"
        s = e.get("structure")
        if s is None:
            w(f"{head}: {e['note'] or 'not computed'}")
            continue
        w(
            f"{head}"
            + (f"  =  {s['formula']}" if s["formula"] else "")
            + (f"   ({e['method']} backward pass)" if e["method"] else "")
        )
        _wrap(out, s["words"], "      ")
        if e.get("matrix_note") and p <= TEXT_MATRIX_SIDE and q <= TEXT_MATRIX_SIDE:
            w(f"      (matrix {e['matrix_note']}; {s['nnz']} nonzeros)")
        elif e["matrix"] is not None and p <= TEXT_MATRIX_SIDE and q <= TEXT_MATRIX_SIDE:
            J = np.array([[np.nan if v is None else v for v in row] for row in e["matrix"]])
            J = J + 0.0  # no negative zeros in print
            text = np.array2string(J, precision=3, suppress_small=True, max_line_width=160)
            for line in text.splitlines():
                w(f"      {line}")
        elif s.get("pattern"):
            w("      zero pattern (# nonzero, . zero):")
            for line in s["pattern"]:
                w(f"        {line}")
        else:
            w(f"      ({s['nnz']} nonzeros; matrix too large to print)")
    w("")
    # 5
    w("5. Per-element versus tensor-level")
    c = d.get("comparison")
    if c is None:
        w("   (skipped)")
        return "\n".join(out) + "\n"
    t = c["tensor"]
    _wrap(
        out,
        f"tensor-level (matgrad): {t['nodes']} graph node{'s' if t['nodes'] != 1 else ''} "
        f"({t['op_nodes']} op "
        f"node{'s' if t['op_nodes'] != 1 else ''} + {t['leaf_nodes']} AccumulateGrad), "
        f"forward + backward {_fmt_seconds(t['seconds'])}",
        "   ",
    )
    if c["status"] == "ok":
        s = c["scalar"]
        _wrap(
            out,
            f"per-element (matgrad.explain.per_element): {s['nodes']} scalar nodes "
            f"({s['op_nodes']} operations + {s['leaf_nodes']} input elements), forward + backward "
            f"{_fmt_seconds(s['seconds'])}",
            "   ",
        )
        diff = c["max_abs_diff"]
        w(
            f"   largest |difference| between the two gradients of sum(outputs): "
            f"{'-' if diff is None else f'{diff:.3g}'}"
        )
        ratio = s["op_nodes"] / max(t["op_nodes"], 1)
        example = ""
        for r in sorted(d["rules"], key=lambda r: -len(r["vjp"])):
            if r["vjp"]:
                inp, formula = next(iter(r["vjp"].items()))
                example = (
                    f" (here `{r['rule']}`'s rule `{inp}: {formula}` is one tensor expression)"
                )
                break
        if s["op_nodes"] == 0:
            text = (
                "No arithmetic here: per element, moving entries (transposes, reshapes, "
                "indexing) records no operations at all; the tensor-level graph records the "
                "move once, and its rule moves the gradient back."
            )
        else:
            text = (
                f"Same gradients, {ratio:.0f}x the operation nodes: per element, every "
                "multiply and add is its own node with a scalar derivative, and the result is "
                "a sea of scalars that is hard to 'reroll' into matrix operations. A "
                f"tensor-level rule handles the whole matrix at once{example}, which is what "
                "runs fast on vectorised hardware."
            )
        _wrap(out, text, "   ")
    elif c["status"] == "no_elementwise_form":
        w(f"   per-element: not possible: `{c['op']}` has no element-wise form.")
        _wrap(out, f"Why: {c['why']}", "   ")
        related = [
            r
            for r in d["rules"]
            if c["op"] in r["rule"] or r["rule"].removeprefix("linalg_") in c["op"]
        ]
        for r in related[:1]:
            w(
                f"   matgrad's tensor-level rule instead: `{r['rule']}` (derivatives.yaml line "
                f"{r['line']}):"
            )
            for inp, formula in r["vjp"].items():
                _wrap(out, f"grad of {inp} = {formula}", "     ")
            for helper, doc in r.get("helpers", {}).items():
                _wrap(out, f"{helper}: {doc}", "     ")
        _wrap(
            out,
            "This is the point: derivatives of inv, det and svd have simple matrix "
            "forms (d det(A) = det(A) tr(A^-1 dA), d A^-1 = -A^-1 dA A^-1, dS = diag(U^T dA "
            "V)), which per-element differentiation cannot easily recover.",
            "   ",
        )
    else:
        _wrap(out, f"per-element: skipped: {c['why']}", "   ")
    return "\n".join(out) + "\n"


def _wrap(out: list[str], text: str, indent: str, width: int = 100) -> None:
    out.extend(
        textwrap.wrap(
            text,
            width,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_on_hyphens=False,
            break_long_words=False,
        )
    )


def _render_tree(
    nodes: Mapping[int, dict[str, Any]],
    root: int,
    label: str,
    out: list[str],
    shown: set[int],
    budget: list[int],
) -> None:
    """ASCII tree under one output; a node reached twice is shown once."""
    stack: list[tuple[int | None, str, str, bool]] = [(root, label, "   ", True)]
    while stack:
        nid, lab, prefix, last = stack.pop()
        branch = "`- " if last else "|- "
        child_prefix = prefix + ("   " if last else "|  ")
        if nid is None:
            out.append(f"{prefix}{branch}{lab}: None (a constant: no gradient flows)")
            continue
        n = nodes[nid]
        if budget[0] <= 0:
            out.append(f"{prefix}{branch}... (more nodes; see --json or --dot)")
            stack.clear()
            break
        budget[0] -= 1
        head = f"{prefix}{branch}{lab}: #{nid} {n['name']}"
        if n["leaf"] is not None:
            shape = viz.shape_text(n.get("leaf_shape", []))
            out.append(f"{head}  (leaf {n['leaf']}: {shape}, accumulates into .grad)")
            continue
        if nid in shown:
            out.append(f"{head}  (shown above)")
            continue
        shown.add(nid)
        out.append(head + (f"   <- `{n['created_by']}`" if n["created_by"] else ""))
        for sname, text in n["saved"].items():
            ref = n["saved_refs"].get(sname)
            out.append(f"{child_prefix}|  _saved_{sname}: {text}" + (f"  ({ref})" if ref else ""))
        nxt = n["next"]
        for k in range(len(nxt) - 1, -1, -1):
            e = nxt[k]
            stack.append((e["node"], e["input"], child_prefix, k == len(nxt) - 1))
