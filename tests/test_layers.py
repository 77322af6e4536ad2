"""The package's import structure: layers, lowest first, and no import cycles.

Every ``.py`` file under ``src/matgrad`` is parsed with :mod:`ast` (nothing is imported to
find imports) and every runtime import between matgrad modules becomes an edge: ``import
matgrad.x``, ``from matgrad.x import y``, relative imports resolved against the file's
package, imports nested in functions, methods, ``if`` and ``try`` blocks, and
``importlib.import_module``/``import_module``/``__import__`` calls with literal strings.
``if TYPE_CHECKING:`` blocks are not runtime imports and are skipped (their ``else:`` is not).

For ``from P import name`` the target is the submodule ``P.name`` if there is such a file or
package, else ``P`` itself (a package means its ``__init__.py``). A name with no file of its
own (``matgrad.linalg``, an alias that ``matgrad/__init__.py`` puts in ``sys.modules``)
resolves to its closest ancestor that has one: that is the code its import runs. The implicit
import of parent packages is not an edge.

A module may import modules of its own layer or of lower layers only; ``matgrad`` (the
package's ``__init__``) and ``matgrad.__main__`` are the top and may import anything. Every
module must belong to exactly one layer, so a new file is placed deliberately.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "matgrad"
SRC = Path(__file__).resolve().parents[1] / "src"

# lowest first; a prefix covers the module itself and every module below it
LAYERS: list[tuple[str, list[str]]] = [
    # array libraries, forward functions on raw arrays, LAPACK; pytrees (func, functional)
    ("backend", ["matgrad.backend", "matgrad._pytree"]),
    ("core", ["matgrad.core"]),  # tensor record, grad mode, graph, nodes, table, apply, engine
    ("ops", ["matgrad.formulas", "matgrad.ops"]),  # the rule table's ops, bindings, composites
    ("array_api", ["matgrad.array_api"]),
    ("tensor", ["matgrad.tensor", "matgrad.creation", "matgrad.devices", "matgrad.serialization"]),
    ("autograd", ["matgrad.autograd"]),
    ("nn", ["matgrad.nn", "matgrad.optim", "matgrad.utils"]),  # layers, optim, data, checkpoint
    ("transforms", ["matgrad.func", "matgrad.structure", "matgrad.viz"]),
    ("explain", ["matgrad.explain"]),
    ("cli", ["matgrad.cli"]),
]
TOP = ("matgrad", "matgrad.__main__")  # may import anything; nothing may import them

# what matgrad.core may import besides matgrad.core.* and matgrad.backend.*
CORE_EXTERNAL = {"numpy", "scipy", "yaml"}


# -- the collector -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Import:
    """One runtime import in ``file`` (line ``line``) of ``importer``: ``target`` is the
    absolute module name it loads (for matgrad modules, resolved to a module that exists)."""

    file: str
    line: int
    importer: str
    target: str
    internal: bool  # a module of the package (else an external one: numpy, os, ...)
    written: str = ""  # the name as the source gives it, when it resolved to another

    def shown(self) -> str:
        return f"{self.written} (= {self.target})" if self.written else self.target


class Package:
    """The module files of one package tree: ``root`` holds the package's directory."""

    def __init__(self, root: Path, name: str = PACKAGE, shown_as: str = "") -> None:
        self.root = Path(root)
        self.name = name
        self.shown_as = shown_as  # prefix of the file names in messages ("src/")
        self.files: dict[str, Path] = {}  # module name -> file (a package: its __init__.py)
        self.packages: set[str] = set()  # packages, with or without __init__.py
        base = self.root / name
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(self.root).with_suffix("").parts)
            if any(not p.isidentifier() for p in parts):
                continue  # not importable (a stray file like "my-notes.py")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            self.files[".".join(parts)] = path
        for path in [base, *(p for p in base.rglob("*") if p.is_dir())]:
            parts = path.relative_to(self.root).parts
            if all(p.isidentifier() for p in parts) and "__pycache__" not in parts:
                self.packages.add(".".join(parts))

    def exists(self, module: str) -> bool:
        """A module file, a package with ``__init__.py`` or a namespace package directory."""
        return module in self.files or module in self.packages

    def resolve(self, module: str) -> str:
        """``module`` if it exists, else its closest existing ancestor (whose code defines it)."""
        parts = module.split(".")
        while len(parts) > 1 and not self.exists(".".join(parts)):
            parts.pop()
        return ".".join(parts)

    def internal(self, module: str) -> bool:
        return module == self.name or module.startswith(self.name + ".")

    def imports(self) -> list[Import]:
        out: list[Import] = []
        for module, path in self.files.items():
            out.extend(self.imports_of(module, path))
        return out

    def imports_of(self, module: str, path: Path) -> list[Import]:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        # the package relative imports start from: the module itself for an __init__.py
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        rel = self.shown_as + path.relative_to(self.root).as_posix()
        collector = _Collector(module, package, self.exists)
        collector.visit(tree)
        out = []
        for line, target in collector.found:
            internal = self.internal(target)
            resolved = self.resolve(target) if internal else target
            written = target if resolved != target else ""
            out.append(Import(rel, line, module, resolved, internal, written))
        return out


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _absolute(name: str | None, level: int, package: str) -> str | None:
    """The absolute name of ``from <'.' * level><name> import ...`` in ``package``."""
    if level == 0:
        return name
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None  # beyond the top-level package: an ImportError at runtime
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _literal(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class _Collector(ast.NodeVisitor):
    """Every runtime import of one module: the whole tree, except ``if TYPE_CHECKING:``."""

    def __init__(self, module: str, package: str, exists: Callable[[str], bool]) -> None:
        self.module = module
        self.package = package
        self.exists = exists  # is there such a module (for `from P import name`)
        self.found: list[tuple[int, str]] = []

    def visit_If(self, node: ast.If) -> None:  # noqa: N802 - ast.NodeVisitor's naming
        if _is_type_checking(node.test):
            for child in node.orelse:  # the else branch does run
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        for alias in node.names:
            self.found.append((node.lineno, alias.name))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        base = _absolute(node.module, node.level, self.package)
        if base is None:
            return
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            target = sub if alias.name != "*" and self.exists(sub) else base
            self.found.append((node.lineno, target))

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        func = node.func
        fname = (
            func.attr
            if isinstance(func, ast.Attribute)
            else func.id
            if isinstance(func, ast.Name)
            else None
        )
        if fname in ("import_module", "__import__"):
            kwargs = {k.arg: k.value for k in node.keywords if k.arg}
            name = _literal(node.args[0] if node.args else kwargs.get("name"))
            if name is not None:
                if fname == "import_module" and name.startswith("."):
                    anchor = node.args[1] if len(node.args) > 1 else kwargs.get("package")
                    package = self._package_arg(anchor)
                    level = len(name) - len(name.lstrip("."))
                    name = _absolute(name.lstrip(".") or None, level, package) if package else None
                if name:
                    self.found.append((node.lineno, name))
        self.generic_visit(node)

    def _package_arg(self, node: ast.expr | None) -> str | None:
        literal = _literal(node)
        if literal is not None:
            return literal
        if isinstance(node, ast.Name) and node.id == "__package__":
            return self.package
        if isinstance(node, ast.Name) and node.id == "__name__":
            return self.module
        if (  # __spec__.parent
            isinstance(node, ast.Attribute)
            and node.attr == "parent"
            and isinstance(node.value, ast.Name)
            and node.value.id == "__spec__"
        ):
            return self.package
        return None


def collect(root: Path, name: str = PACKAGE, shown_as: str = "") -> tuple[Package, list[Import]]:
    """The package under ``root`` and all its runtime imports."""
    pkg = Package(root, name, shown_as)
    return pkg, pkg.imports()


# -- layers and cycles ---------------------------------------------------------------------------
def layer_of(module: str, layers: list[tuple[str, list[str]]] = LAYERS) -> list[int]:
    """The indices of the layers that cover ``module`` (exactly one, for a placed module)."""
    return [
        k
        for k, (_, prefixes) in enumerate(layers)
        if any(module == p or module.startswith(p + ".") for p in prefixes)
    ]


def rank(module: str, layers: list[tuple[str, list[str]]] = LAYERS) -> int:
    if module in TOP:
        return len(layers)
    found = layer_of(module, layers)
    return found[0] if len(found) == 1 else -1


def layer_name(k: int, layers: list[tuple[str, list[str]]] = LAYERS) -> str:
    return layers[k][0] if 0 <= k < len(layers) else "top"


def upward_edges(imports: list[Import], layers: list[tuple[str, list[str]]] = LAYERS) -> list[str]:
    bad = []
    for imp in imports:
        if not imp.internal or imp.importer in TOP:
            continue
        a, b = rank(imp.importer, layers), rank(imp.target, layers)
        if a >= 0 and b > a:
            bad.append(
                f"{imp.file}:{imp.line}: {imp.importer} -> {imp.shown()} "
                f"(layer {layer_name(a, layers)} imports layer {layer_name(b, layers)})"
            )
    return bad


def unplaced(pkg: Package, layers: list[tuple[str, list[str]]] = LAYERS) -> list[str]:
    problems = []
    for module in sorted(pkg.files):
        if module in TOP:
            continue
        found = layer_of(module, layers)
        if len(found) != 1:
            where = ", ".join(layers[k][0] for k in found) or "no layer"
            problems.append(f"{pkg.files[module]}: {module} is in {where}")
    return problems


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the strongly connected components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def cycles(imports: list[Import]) -> list[str]:
    """Each import cycle between package modules: its modules and the edges that close it."""
    graph: dict[str, set[str]] = {}
    lines: dict[tuple[str, str], list[str]] = {}
    for imp in imports:
        if imp.internal:
            graph.setdefault(imp.importer, set()).add(imp.target)
            lines.setdefault((imp.importer, imp.target), []).append(f"{imp.file}:{imp.line}")
    out = []
    for component in strongly_connected(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph.get(component[0], set()):
            continue
        edges = [
            f"    {a} -> {b} ({', '.join(lines[(a, b)])})"
            for a in component
            for b in sorted(graph.get(a, set()) & members)
        ]
        out.append(f"cycle through {', '.join(component)}:\n" + "\n".join(edges))
    return out


# -- the package -----------------------------------------------------------------------------
def _source_root() -> Path:
    if (SRC / PACKAGE / "__init__.py").is_file():
        return SRC
    import importlib.util  # an installed copy: find its directory (nothing is imported)

    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations, f"cannot find {PACKAGE}'s source"
    return Path(next(iter(spec.submodule_search_locations))).parent


@pytest.fixture(scope="module")
def package() -> tuple[Package, list[Import]]:
    root = _source_root()
    return collect(root, shown_as="src/" if root == SRC else f"{root}/")


def test_every_module_is_in_exactly_one_layer(package):
    pkg, _ = package
    assert len(pkg.files) > 10, f"found only {sorted(pkg.files)} under {pkg.root}"
    problems = unplaced(pkg)
    assert not problems, (
        "modules not in exactly one layer (add them to LAYERS in tests/test_layers.py):\n"
        + "\n".join(problems)
    )


def test_no_module_imports_a_higher_layer(package):
    _, imports = package
    bad = upward_edges(imports)
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


def test_no_import_cycles_inside_the_package(package):
    _, imports = package
    found = cycles(imports)
    assert not found, "import cycles inside the package:\n" + "\n".join(found)


def test_core_imports_nothing_above_it(package):
    _, imports = package
    allowed_internal = ("matgrad.core", "matgrad.backend")
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    bad = []
    for imp in imports:
        if not (imp.importer == "matgrad.core" or imp.importer.startswith("matgrad.core.")):
            continue
        if imp.internal:
            ok = any(imp.target == p or imp.target.startswith(p + ".") for p in allowed_internal)
        else:
            top = imp.target.split(".")[0]
            ok = top in stdlib or top in CORE_EXTERNAL
        if not ok:
            bad.append(f"{imp.file}:{imp.line}: {imp.importer} -> {imp.shown()}")
    assert not bad, (
        "matgrad.core may import only matgrad.core.*, matgrad.backend.*, the standard library, "
        "numpy, scipy and yaml:\n" + "\n".join(bad)
    )


def test_the_collector_sees_every_module_level_import(package):
    """A cross-check against the text: every import of the package at column 0 (module level,
    so no TYPE_CHECKING block) is on a line where the collector found an edge."""
    pkg, imports = package
    found = {(i.file, i.line) for i in imports if i.internal}
    pattern = re.compile(rf"^(from \.|from {pkg.name}[. ]|import {pkg.name}\b)")
    missed = [
        f"{pkg.shown_as}{path.relative_to(pkg.root).as_posix()}:{n}: {line}"
        for path in pkg.files.values()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.match(line)
        and (f"{pkg.shown_as}{path.relative_to(pkg.root).as_posix()}", n) not in found
    ]
    assert not missed, "imports the collector did not see:\n" + "\n".join(missed)
    assert len(found) > 50, f"only {len(found)} imports between {pkg.name} modules found"


# -- self-tests of the checker ---------------------------------------------------------------
def _write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


SYNTHETIC = {
    "matgrad/__init__.py": "from . import cli\n",
    "matgrad/backend/arrays.py": "import numpy as np\n",
    "matgrad/core/__init__.py": "",
    "matgrad/core/graph.py": """\
        from __future__ import annotations
        from typing import TYPE_CHECKING
        import typing

        if TYPE_CHECKING:
            from ..tensor import Tensor
        else:
            from ..backend import arrays
        if typing.TYPE_CHECKING:
            import matgrad.cli

        class Node:
            def method(self):
                from . import apply  # a submodule, relative, inside a method
                return apply
        """,
    "matgrad/core/apply.py": """\
        import importlib
        from importlib import import_module

        def lazy():
            try:
                importlib.import_module("matgrad.formulas")
            except ImportError:
                pass
            return import_module(".engine", package="matgrad.core")

        def lazier():
            if True:
                return importlib.import_module(".graph", __package__)
        """,
    "matgrad/core/engine.py": "from ..core.graph import Node\n",
    "matgrad/formulas.py": "from .core.graph import Node\nfrom . import tensor\n",
    "matgrad/tensor.py": """\
        from matgrad.core import graph
        from matgrad import formulas
        """,
    "matgrad/cli.py": "import matgrad.tensor\nfrom .core import *\n",
    "matgrad/stray.py": "",
}


@pytest.fixture
def synthetic(tmp_path):
    return collect(_write_tree(tmp_path, SYNTHETIC))


def _edges(imports: list[Import]) -> set[tuple[str, str]]:
    return {(i.importer, i.target) for i in imports if i.internal}


def test_checker_finds_relative_imports_inside_functions(synthetic):
    _, imports = synthetic
    edges = _edges(imports)
    assert ("matgrad.core.graph", "matgrad.core.apply") in edges  # `from . import apply`
    assert ("matgrad.core.engine", "matgrad.core.graph") in edges  # `from ..core.graph import`
    assert ("matgrad.formulas", "matgrad.tensor") in edges  # `from . import tensor`
    assert ("matgrad.tensor", "matgrad.core.graph") in edges  # `from matgrad.core import graph`
    # `from matgrad import formulas` is the submodule, not the package
    assert ("matgrad.tensor", "matgrad.formulas") in edges
    assert ("matgrad.tensor", "matgrad") not in edges
    assert ("matgrad.cli", "matgrad.core") in edges  # `from .core import *`: the package
    line = next(i.line for i in imports if i.target == "matgrad.core.apply")
    assert line == 14


def test_checker_finds_import_module_calls(synthetic):
    _, imports = synthetic
    edges = _edges(imports)
    assert ("matgrad.core.apply", "matgrad.formulas") in edges  # inside a try block
    assert ("matgrad.core.apply", "matgrad.core.engine") in edges  # relative, package=
    assert ("matgrad.core.apply", "matgrad.core.graph") in edges  # relative, __package__
    assert not any(i.target == "importlib" and i.internal for i in imports)


def test_checker_ignores_type_checking_blocks(synthetic):
    _, imports = synthetic
    edges = _edges(imports)
    assert ("matgrad.core.graph", "matgrad.tensor") not in edges
    assert ("matgrad.core.graph", "matgrad.cli") not in edges
    assert ("matgrad.core.graph", "matgrad.backend.arrays") in edges  # the else branch runs


def test_checker_reports_upward_imports_and_unplaced_modules(synthetic):
    pkg, imports = synthetic
    bad = upward_edges(imports)
    assert any(
        "matgrad/core/apply.py:6: matgrad.core.apply -> matgrad.formulas "
        "(layer core imports layer ops)" in b
        for b in bad
    ), bad
    assert any(
        "matgrad.formulas -> matgrad.tensor (layer ops imports layer tensor)" in b for b in bad
    )
    assert not any(b.split(": ", 1)[1].startswith("matgrad ->") for b in bad)  # the top is free
    assert any("matgrad.stray is in no layer" in p for p in unplaced(pkg))


def test_checker_reports_a_planted_cycle(synthetic):
    _, imports = synthetic
    found = cycles(imports)
    # formulas <-> tensor, and core.graph -> core.apply -> core.graph (in-function imports)
    assert any("matgrad.formulas, matgrad.tensor" in c for c in found), found
    assert any("matgrad.core.apply" in c and "matgrad.core.graph" in c for c in found), found
    assert not any("matgrad.cli" in c.splitlines()[0] for c in found)  # the implicit parent


def test_checker_reports_a_self_import(tmp_path):
    _, imports = collect(
        _write_tree(tmp_path, {"matgrad/__init__.py": "", "matgrad/viz.py": "import matgrad.viz\n"})
    )
    assert cycles(imports) == [
        "cycle through matgrad.viz:\n    matgrad.viz -> matgrad.viz (matgrad/viz.py:1)"
    ]


def test_checker_resolves_aliases_to_the_module_that_defines_them(tmp_path):
    _, imports = collect(
        _write_tree(
            tmp_path,
            {
                "matgrad/__init__.py": "",
                "matgrad/explain.py": "import importlib\nimportlib.import_module('matgrad.linalg')",
            },
        )
    )
    assert _edges(imports) == {("matgrad.explain", "matgrad")}
    assert upward_edges(imports) == [
        "matgrad/explain.py:2: matgrad.explain -> matgrad.linalg (= matgrad) "
        "(layer explain imports layer top)"
    ]
