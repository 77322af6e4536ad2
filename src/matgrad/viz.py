"""Draw the graph a forward pass recorded: one box per node, as PyTorch would show it.

:func:`to_dot` writes Graphviz DOT text for the graph behind one or more tensors: every node
(``MmBackward0``, ``AccumulateGrad``, ...) is a box listing the values it saved for its rule
(``_saved_self: 3x3``), edges follow ``next_functions`` from each output down to the leaves,
and the output tensors are ovals on top. :func:`draw` renders it with Graphviz's ``dot``
program, which must be installed (Debian/Ubuntu: ``apt-get install graphviz``).

>>> import matgrad
>>> A = matgrad.randn(3, 3, requires_grad=True)
>>> B = matgrad.randn(3, 3, requires_grad=True)
>>> print(matgrad.viz.to_dot(A @ B).splitlines()[0])
digraph matgrad {
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .core.graph import AccumulateGrad, Node, walk
from .tensor import Tensor

__all__ = [
    "GraphvizNotFoundError",
    "draw",
    "edge_labels",
    "graph_nodes",
    "render",
    "saved_values",
    "shape_text",
    "to_dot",
]

#: Output formats :func:`draw` and :func:`render` accept (passed to ``dot -T``).
FORMATS = ("svg", "png", "pdf", "dot")

INSTALL_HINT = (
    "install the Graphviz package, which provides it (Debian/Ubuntu: `apt-get install "
    "graphviz`; Fedora: `dnf install graphviz`; macOS: `brew install graphviz`; conda: "
    "`conda install graphviz`)"
)


class GraphvizNotFoundError(RuntimeError):
    """Graphviz's ``dot`` program is not on PATH; the message says which package to install."""

    def __init__(self) -> None:
        super().__init__(f"Graphviz's `dot` program was not found on PATH: {INSTALL_HINT}")


# -- graph introspection (shared with matgrad.explain) ------------------------------------------
def shape_text(shape: Sequence[int]) -> str:
    """``(3, 3)`` -> ``3x3``; a 0-d shape -> ``scalar``."""
    return "x".join(str(int(s)) for s in shape) if len(shape) else "scalar"


def root_node(t: Tensor) -> Node | None:
    """The node a gradient of ``t`` enters the graph at: its ``grad_fn``, or the
    ``AccumulateGrad`` of a leaf that requires grad; None if ``t`` does not require grad."""
    if t.grad_fn is not None:
        return t.grad_fn
    if t.requires_grad:
        return t._accumulator()
    return None


def graph_nodes(roots: Iterable[Node | None]) -> list[Node]:
    """Every node reachable from ``roots``, each once, in depth-first pre-order (inputs in
    order): the numbering used by ``explain`` and :func:`to_dot` (the engine's walk)."""
    return walk(roots)[0]


def edge_labels(node: Node) -> list[str]:
    """A name per entry of ``node.next_functions``: the rule's input names (``self``,
    ``mat2``), with ``tensors[i]`` for the entries of a list input."""
    n = len(node.next_functions)
    rule = getattr(node, "rule", None)
    if rule is None:
        return [str(i) for i in range(n)]
    names = list(rule.inputs)
    is_list = list(getattr(rule, "input_is_list", [False] * len(names)))
    if len(names) == n and not any(is_list):
        return names
    if is_list.count(True) == 1:
        k = n - (len(names) - 1)
        out: list[str] = []
        for name, lst in zip(names, is_list, strict=True):
            if lst:
                out.extend(f"{name}[{i}]" for i in range(k))
            else:
                out.append(name)
        if len(out) == n:
            return out
    return [str(i) for i in range(n)]


def saved_values(node: Node) -> list[tuple[str, Any]]:
    """``[(name, value), ...]`` of what a rule node saved for its formulas (PyTorch's
    ``_saved_<name>``); empty for ``AccumulateGrad`` and for nodes whose values were freed."""
    rule = getattr(node, "rule", None)
    if rule is None:
        return []
    out = []
    order = {n: k for k, n in enumerate(rule.inputs)}
    for name in sorted(rule.vjp_args, key=lambda n: order.get(n, len(order))):
        try:
            out.append((name, getattr(node, f"_saved_{name}")))
        except (AttributeError, RuntimeError):
            continue
    return out


def value_text(value: Any) -> str:
    """A saved value for display: ``3x3`` for a tensor or array, the repr otherwise."""
    if isinstance(value, Tensor) or hasattr(value, "shape") and hasattr(value, "dtype"):
        return shape_text(tuple(value.shape))
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- DOT ---------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\l") + '\\l"'


def _dot(
    outputs: Sequence[tuple[str, Tensor]],
    tensor_names: Mapping[int, str] | None = None,
    created_by: Mapping[int, str] | None = None,
) -> str:
    names = dict(tensor_names or {})
    for name, t in outputs:
        names.setdefault(id(t), name)
    roots = [root_node(t) for _, t in outputs]
    nodes = graph_nodes(roots)
    ids = {id(n): i + 1 for i, n in enumerate(nodes)}
    lines = [
        "digraph matgrad {",
        '  graph [rankdir=TB, fontname="Helvetica", label="matgrad graph (backward: top to '
        'bottom)", labelloc=t];',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for k, (name, t) in enumerate(outputs):
        label = f"{name}\n{shape_text(tuple(t.shape))} {t.dtype}"
        lines.append(
            f'  out{k} [shape=ellipse, style=filled, fillcolor="#d5f5d5", label={_quote(label)}];'
        )
        root = roots[k]
        if root is not None:
            lines.append(f'  out{k} -> n{ids[id(root)]} [label="grad_fn"];')
    for node in nodes:
        i = ids[id(node)]
        if isinstance(node, AccumulateGrad):
            var = node.variable
            who = names.get(id(var), "leaf")
            label = f"#{i} AccumulateGrad\n{who}: {shape_text(tuple(var.shape))} {var.dtype}"
            lines.append(
                f'  n{i} [shape=box, style=filled, fillcolor="#dde8ff", label={_quote(label)}];'
            )
        else:
            parts = [f"#{i} {node.name()}"]
            rule = getattr(node, "rule", None)
            if rule is not None:
                parts.append(f"rule {rule.name} (derivatives.yaml:{rule.line})")
            if created_by and id(node) in created_by:
                parts.append(f"from: {created_by[id(node)]}")
            for sname, value in saved_values(node):
                shown = value_text(value)
                ref = names.get(id(value)) if isinstance(value, Tensor) else None
                parts.append(f"_saved_{sname}: {shown}" + (f" ({ref})" if ref else ""))
            lines.append(
                f'  n{i} [shape=box, style=filled, fillcolor="#fff3d6", '
                f"label={_quote(chr(10).join(parts))}];"
            )
        for (nxt, _), label in zip(node.next_functions, edge_labels(node), strict=False):
            if nxt is not None:
                lines.append(f'  n{i} -> n{ids[id(nxt)]} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _outputs(
    tensors: Tensor | Sequence[Tensor] | Mapping[str, Tensor],
) -> list[tuple[str, Tensor]]:
    if isinstance(tensors, Tensor):
        return [("output", tensors)]
    if isinstance(tensors, Mapping):
        items = list(tensors.items())
    else:
        items = [(f"output {k}", t) for k, t in enumerate(tensors)]
    for name, t in items:
        if not isinstance(t, Tensor):
            raise TypeError(f"to_dot: {name} is a {type(t).__name__}, not a matgrad tensor")
    return [(str(n), t) for n, t in items]


def to_dot(
    tensors: Tensor | Sequence[Tensor] | Mapping[str, Tensor],
    names: Mapping[str, Tensor] | None = None,
    created_by: Mapping[int, str] | None = None,
) -> str:
    """Graphviz DOT text for the graph recorded behind ``tensors``.

    ``tensors`` is a tensor, a sequence of them, or a ``{name: tensor}`` mapping (the names
    label the outputs). Every graph node becomes one box (``shape=box``): its number, its
    name (``MmBackward0``) and its saved values (``_saved_self: 3x3``); an ``AccumulateGrad``
    box names its leaf. Edges follow ``next_functions`` and carry the rule's input names.
    ``names`` maps names to other tensors (inputs, intermediates) so that leaves and saved
    tensors are labelled with them; ``created_by`` maps ``id(node)`` to the source text of the
    operation that recorded it (shown in its box)."""
    tensor_names: dict[int, str] = {}
    for n, t in (names or {}).items():
        tensor_names.setdefault(id(t), n)
    return _dot(_outputs(tensors), tensor_names, created_by)


def render(dot_text: str, format: str = "svg") -> bytes:  # noqa: A002 - Graphviz's term
    """Run Graphviz's ``dot`` on DOT text and return the rendered bytes.

    Raises :class:`GraphvizNotFoundError` when ``dot`` is not installed."""
    if format not in FORMATS:
        raise ValueError(f"render: format must be one of {', '.join(FORMATS)}, got {format!r}")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFoundError()
    proc = subprocess.run(  # noqa: S603 - fixed program, DOT text on stdin
        [exe, f"-T{format}"],
        input=dot_text.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"Graphviz's dot failed: {err[-1] if err else 'no message'}")
    return proc.stdout


def draw(
    tensors: Tensor | Sequence[Tensor] | Mapping[str, Tensor],
    path: str | Path,
    format: str = "svg",  # noqa: A002 - Graphviz's term
    names: Mapping[str, Tensor] | None = None,
) -> Path:
    """Render the graph behind ``tensors`` (see :func:`to_dot`) to the file ``path`` with
    Graphviz (``format``: svg, png, pdf or dot) and return the path.

    Raises :class:`GraphvizNotFoundError`, naming the package to install, when Graphviz's
    ``dot`` program is missing (``format='dot'`` writes the DOT text and needs no Graphviz)."""
    path = Path(path)
    text = to_dot(tensors, names)
    if format == "dot":
        path.write_text(text)
    else:
        path.write_bytes(render(text, format))
    return path
