"""The dependency rule (docs/architecture.md, "Dependency rule"), checked two ways:

- import-linter runs each contract of pyproject.toml's [tool.importlinter];
- a pure check over the imports ast finds in Clarion's packages: the package-level graph
  has no cycle.
"""

from __future__ import annotations

import ast
import itertools
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
PACKAGES = ("schemas", "logic", "tables", "streams", "agents", "sinks", "devenv")
# The streams modules that wire the agents and sinks into the app: the one part of `streams`
# above them, so a node of its own in the package-level graph. The operator views are wired
# like the sinks (same layer), and are a node of their own too.
ASSEMBLY = frozenset({"streams.app", "streams.cli", "streams.commands"})
VIEWS = frozenset({"streams.admin_views"})
# The app class and the stage context: above the tables (the context holds them), below the
# agents and sinks (they are given it).
CONTEXT = frozenset({"streams.clarion_app", "streams.context"})


# -- the import graph, from the source --------------------------------------------------------


@dataclass(frozen=True)
class Import:
    importer: str  # module
    imported: str  # module (or package)
    where: str  # path:line, relative to the root


def _modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of `from <level dots><target> import ...` inside `module`."""
    if level == 0:
        return target or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imports_of(root: Path, packages: Iterable[str]) -> list[Import]:
    """Every import (module level or inside functions, as import-linter counts them) from a
    module of `packages` to another module of `packages`."""
    modules = _modules(root, packages)
    found: list[Import] = []

    def known(name: str) -> str | None:
        # The module itself, or the nearest enclosing package that is one of ours.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = _resolve(module, is_package, node.level, node.module)
                # `from pkg import mod` imports the module pkg.mod when there is one.
                names = sorted(
                    {
                        f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                        for a in node.names
                    }
                )
            targets = {t for t in map(known, names) if t is not None and t != module}
            for target in sorted(targets):
                found.append(Import(module, target, f"{path.relative_to(root)}:{node.lineno}"))
    return found


def node_of(module: str) -> str:
    """A module's node in the package-level graph: its top-level package, except for the
    streams assembly, the operator views and the stage context."""
    if module in ASSEMBLY:
        return "streams[assembly]"
    if module in VIEWS:
        return "streams[views]"
    if module in CONTEXT:
        return "streams[context]"
    return module.split(".")[0]


# -- cycles ------------------------------------------------------------------------------------


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A shortest cycle of the directed graph as [a, b, ..., a], or None when it is acyclic."""
    graph = {node: sorted(set(targets) - {node}) for node, targets in edges.items()}
    best: list[str] | None = None
    for start in sorted(graph):
        # Breadth first from `start`: the first path back to it is its shortest cycle.
        parent: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in parent:
            following: list[str] = []
            for node in frontier:
                for nxt in graph.get(node, ()):
                    if nxt not in parent:
                        parent[nxt] = node
                        following.append(nxt)
            frontier = following
        if start in parent:
            cycle = [start]
            while len(cycle) == 1 or cycle[-1] != start:
                cycle.append(parent[cycle[-1]])
            cycle.reverse()
            if best is None or len(cycle) < len(best):
                best = cycle
    return best


def cycle_report(
    imports: Iterable[Import], node: Callable[[str], str] = node_of, shown: int = 4
) -> str | None:
    """None when the graph of `node(importer) -> node(imported)` is acyclic; otherwise the
    cycle, and for each of its edges the imports (modules, file and line) that make it."""
    edges: dict[str, set[str]] = {}
    why: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        a, b = node(imp.importer), node(imp.imported)
        edges.setdefault(a, set())
        edges.setdefault(b, set())
        if a != b:
            edges[a].add(b)
            why.setdefault((a, b), []).append(imp)
    cycle = find_cycle(edges)
    if cycle is None:
        return None
    lines = ["import cycle: " + " -> ".join(cycle)]
    for a, b in itertools.pairwise(cycle):
        made_by = sorted(why[(a, b)], key=lambda i: (i.importer, i.where))
        lines.append(f"  {a} -> {b}, {len(made_by)} import(s):")
        lines += [f"    {i.importer} imports {i.imported} ({i.where})" for i in made_by[:shown]]
        if len(made_by) > shown:
            lines.append(f"    ... and {len(made_by) - shown} more")
    return "\n".join(lines)


# -- the repository ------------------------------------------------------------------------


def test_package_graph_has_no_cycle() -> None:
    report = cycle_report(imports_of(ROOT, PACKAGES))
    assert report is None, report


def test_only_the_assembly_imports_the_assembly() -> None:
    """Nothing below reaches back for the app object (`from streams.app import app` made the
    29-file circle this rule replaced)."""
    back = [
        f"{i.importer} imports {i.imported} ({i.where})"
        for i in imports_of(ROOT, PACKAGES)
        if i.imported in ASSEMBLY and i.importer not in ASSEMBLY
    ]
    assert not back, "\n".join(back)


def _contracts() -> list[str]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return [contract["id"] for contract in config["contracts"]]


@pytest.mark.parametrize("contract", _contracts())
def test_import_linter_contract(contract: str, capsys: pytest.CaptureFixture[str]) -> None:
    from importlinter.cli import lint_imports

    status = lint_imports(str(PYPROJECT), limit_to_contracts=(contract,), no_cache=True)
    output = capsys.readouterr().out
    broken = output.partition("Broken contracts")[2].strip() or output
    assert status == 0, f"import-linter contract {contract!r} is broken:\n{broken}"


# -- the checker itself, on a made-up tree -----------------------------------------------------


def _tree(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_finds_a_two_module_cycle(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "alpha/__init__.py": "",
            "alpha/one.py": "from beta import two\n",
            "beta/__init__.py": "",
            "beta/two.py": "def later() -> None:\n    from alpha.one import x\n",
            "beta/three.py": "import alpha\n",
        },
    )
    imports = imports_of(tmp_path, ["alpha", "beta"])
    assert {(i.importer, i.imported) for i in imports} == {
        ("alpha.one", "beta.two"),
        ("beta.two", "alpha.one"),
        ("beta.three", "alpha"),
    }
    report = cycle_report(imports)
    assert report is not None
    assert report.splitlines()[0] == "import cycle: alpha -> beta -> alpha"
    assert "alpha.one imports beta.two (alpha/one.py:1)" in report
    assert "beta.two imports alpha.one (beta/two.py:2)" in report
    # Module by module, the same two modules make the cycle.
    assert cycle_report(imports, node=lambda m: m) == (
        "import cycle: alpha.one -> beta.two -> alpha.one\n"
        "  alpha.one -> beta.two, 1 import(s):\n"
        "    alpha.one imports beta.two (alpha/one.py:1)\n"
        "  beta.two -> alpha.one, 1 import(s):\n"
        "    beta.two imports alpha.one (beta/two.py:2)"
    )


def test_passes_an_acyclic_tree(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "alpha/__init__.py": "from . import one\n",
            "alpha/one.py": "import beta.two\nfrom .two import y\n",
            "alpha/two.py": "from beta import two\n",
            "beta/__init__.py": "",
            "beta/two.py": "import json\n",
        },
    )
    imports = imports_of(tmp_path, ["alpha", "beta"])
    assert {(i.importer, i.imported) for i in imports} == {
        ("alpha", "alpha.one"),
        ("alpha.one", "beta.two"),
        ("alpha.one", "alpha.two"),
        ("alpha.two", "beta.two"),
    }
    assert cycle_report(imports) is None
    assert cycle_report(imports, node=lambda m: m) is None
