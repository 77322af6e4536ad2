"""One declaration per op: an op of the rule table is spelled in derivatives.yaml and in at most
two source files besides (its forward when longer than a line, a public function written over
the row). Read with ``ast``: a declaration is a ``def``, an assignment target, or a string in
a literal list, tuple, set or dict (allow-lists, name maps)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "matgrad"


def declarations(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
                    elif isinstance(leaf, ast.Attribute):
                        names.add(leaf.attr)
        elif isinstance(node, ast.List | ast.Tuple | ast.Set):
            names |= {e.value for e in node.elts if isinstance(e, ast.Constant)}
        elif isinstance(node, ast.Dict):
            names |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
    return {n for n in names if isinstance(n, str)}


def files_declaring(names: set[str]) -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        if declarations(ast.parse(path.read_text())) & names:
            out.append(str(path.relative_to(SRC)))
    return out


@pytest.mark.parametrize(
    "op", ["tanh", "exp", "sigmoid", "cumsum", "mm", "cholesky", "det", "slogdet"]
)
def test_an_op_is_declared_in_at_most_two_files_besides_the_table(op):
    found = files_declaring({op, f"linalg_{op}"})
    assert len(found) <= 2, f"{op} is declared in {len(found)} files: {found}"


def test_the_counter_sees_each_kind_of_declaration():
    source = (
        "def tanh(x): pass\n"
        "class C:\n    exp = 1\n"
        "ALLOWED = ('sigmoid', 'x')\n"
        "MAP = {'cumsum': 1}\n"
        "obj.mm = f\n"
        "print('det')\n"  # a string in a call is a use, not a declaration
    )
    found = declarations(ast.parse(source))
    assert {"tanh", "exp", "sigmoid", "cumsum", "mm"} <= found
    assert "det" not in found
