"""The package's imports, read from the source with ``ast`` (nothing is imported): no import cycles, no module
importing another module's private names, and data flowing one way between the stages that docs/code-map.md lists.

Every ``import`` and ``from ... import`` counts, at module level or inside a function (a function-level import is
a cycle put off until the function runs, not a cycle removed); only imports under ``if TYPE_CHECKING:`` are left
out, since they never run. Names a package ``__init__`` loads lazily (strings in its ``_EXPORTS``) and the
subcommand modules ``cli.py`` loads by name are not imports here.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pyterrier_hybrid"

# The top-level modules are no stage of the data flow. The shared utilities serve every stage and import from none;
# the command line drives every stage; the package's __init__ (its version and lazy names, and the LAReQA
# registration on import) is the front door, left out of the stage rule.
SHARED_UTILITIES = {"errors", "provenance", "precision", "_lazy", "cli_args"}
COMMAND_LINE = {"cli"}


@dataclass(frozen=True)
class Import:
    """``importer`` imports ``names`` (empty for a plain ``import``) from the package module ``module``."""

    importer: str
    module: str
    names: tuple[str, ...]
    line: int


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package at ``root`` (a package's own name for its
    ``__init__.py``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class ImportCollector(ast.NodeVisitor):
    """The imports of one module of the package named ``package``, resolved to absolute module names."""

    def __init__(self, module: str, is_package: bool, package: str, modules: set[str]):
        self.module, self.is_package, self.package, self.modules = module, is_package, package, modules
        self.found: list[Import] = []

    def visit_If(self, node: ast.If) -> None:
        if is_type_checking(node.test):  # never runs: only its else branch counts
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self.in_package(alias.name):
                self.found.append(Import(self.module, self.known(alias.name), (), node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = self.resolve(node.level, node.module)
        if not self.in_package(source):
            return
        plain_names = []
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in self.modules:  # ``from . import runs``: the submodule itself
                self.found.append(Import(self.module, submodule, (), node.lineno))
            else:
                plain_names.append(alias.name)
        if plain_names:
            self.found.append(Import(self.module, self.known(source), tuple(plain_names), node.lineno))

    def resolve(self, level: int, module: str | None) -> str:
        if level == 0:
            return module or ""
        base = self.module.split(".")
        if not self.is_package:
            base = base[:-1]
        base = base[:len(base) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    def in_package(self, name: str) -> bool:
        return name == self.package or name.startswith(self.package + ".")

    def known(self, name: str) -> str:
        if name not in self.modules:
            raise AssertionError(f"{self.module} imports {name}, which is no module of {self.package}")
        return name


def package_imports(root: Path) -> list[Import]:
    """Every import of a package module by a package module, for the package whose folder is ``root``."""
    files = module_files(root)
    found = []
    for module, path in files.items():
        collector = ImportCollector(module, path.name == "__init__.py", root.name, set(files))
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found += collector.found
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in module_files(root)}
    for found in package_imports(root):
        if found.module != found.importer:
            graph[found.importer].add(found.module)
    return graph


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative, so no recursion limit): every component, each in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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


def shortest_cycle_through(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path ``start -> ... -> start`` inside ``within`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & within):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1] + [start]
                if successor not in previous:
                    previous[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{start} is on no cycle inside {sorted(within)}")


def import_cycles(root: Path) -> list[str]:
    """Each import cycle of the package as ``a -> b -> a`` (names relative to the package): for every strongly
    connected component of more than one module, the shortest cycle through each of its modules, once each."""
    graph = import_graph(root)
    cycles: list[str] = []
    prefix = root.name + "."
    for component in strongly_connected_components(graph):
        if len(component) < 2:
            continue
        seen = set()
        for module in component:
            cycle = shortest_cycle_through(graph, module, set(component))
            smallest = cycle.index(min(cycle[:-1]))  # one rotation per cycle, however it was reached
            rotated = cycle[smallest:-1] + cycle[:smallest] + [cycle[smallest]]
            if tuple(rotated) not in seen:
                seen.add(tuple(rotated))
                cycles.append(" -> ".join(name.removeprefix(prefix) for name in rotated))
    return sorted(cycles)


def private_name_imports(root: Path) -> list[str]:
    """``importer:line imports _name from module`` for every import of another module's private name."""
    return [f"{found.importer}:{found.line} imports {name} from {found.module}"
            for found in package_imports(root) if found.module != found.importer
            for name in found.names if name.startswith("_") and not name.startswith("__")]


def data_flow_stages() -> list[str]:
    """The stages in the order of the code map's data-flow sentence (``Data flows one way: `a` -> `b` ...;``)."""
    text = (ROOT / "docs" / "code-map.md").read_text(encoding="utf-8")
    sentence = re.search(r"Data flows one way:(.*?);", text, re.DOTALL)
    assert sentence, "docs/code-map.md has no sentence 'Data flows one way: `a` -> `b` ...;'"
    return re.findall(r"`([a-z_]+)`", sentence.group(1))


def stage_of(module: str) -> str | None:
    """The stage (subpackage) of a module; a top-level module's own name; ``None`` for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


# --- the package ---------------------------------------------------------------------------------------------


def test_the_package_has_no_import_cycles():
    cycles = import_cycles(ROOT / PACKAGE)
    assert not cycles, "import cycles (move what the modules share to where it belongs):\n" + "\n".join(cycles)


def test_no_module_imports_another_modules_private_names():
    private = private_name_imports(ROOT / PACKAGE)
    assert not private, "private names imported from another module (make them public or move them):\n" + \
        "\n".join(private)


def test_data_flows_one_way_between_the_stages_of_the_code_map():
    stages = data_flow_stages()
    subpackages = {path.parent.name for path in (ROOT / PACKAGE).glob("*/__init__.py")}
    top_level = {path.stem for path in (ROOT / PACKAGE).glob("*.py") if path.stem != "__init__"}
    assert len(stages) == len(set(stages)), f"a stage appears twice in the code map's data flow: {stages}"
    assert set(stages) == subpackages, (f"the code map's data flow {stages} must place every subpackage "
                                        f"({sorted(subpackages)}) once")
    assert top_level == SHARED_UTILITIES | COMMAND_LINE, (
        f"place every top-level module as a shared utility or the command line: {sorted(top_level)}")
    # A shared utility comes before every stage, the command line after them all.
    rank = {name: position for position, name in enumerate(stages)}
    rank |= {name: -1 for name in SHARED_UTILITIES} | {name: len(stages) for name in COMMAND_LINE}
    backwards = []
    for found in package_imports(ROOT / PACKAGE):
        importer, imported = stage_of(found.importer), stage_of(found.module)
        if importer is None or imported is None or importer == imported:
            continue
        if rank[imported] > rank[importer]:
            backwards.append(f"{found.importer}:{found.line} ({importer}) imports {found.module} ({imported})")
    assert not backwards, (f"imports from a later stage (the order is {' -> '.join(stages)}; shared utilities import "
                           "no stage):\n" + "\n".join(backwards))


# --- the scanner on a package of its own -----------------------------------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


@pytest.fixture
def planted(tmp_path) -> Path:
    """A tiny package with one cycle (a -> b -> a, b's side inside a function), an absolute import, a subpackage,
    and a back edge only under TYPE_CHECKING (c -> a -> c, which must not count)."""
    return write_package(tmp_path / "tiny", {
        "__init__.py": "",
        "a.py": "from . import b\nfrom .c import helper\n",
        "b.py": "def later():\n    from .a import thing\n    return thing\n",
        "c.py": ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .a import thing\nelse:\n"
                 "    import json\n\n\ndef helper():\n    return 1\n"),
        "sub/__init__.py": "from ..c import helper\n",
        "sub/d.py": "import tiny.sub\nfrom ..b import _private\nfrom . import e\n",
        "sub/e.py": "from .d import something\n",
    })


def test_the_scanner_reports_each_planted_cycle(planted):
    assert import_cycles(planted) == ["a -> b -> a", "sub.d -> sub.e -> sub.d"]


def test_the_scanner_follows_relative_absolute_and_function_level_imports(planted):
    graph = import_graph(planted)
    assert graph["tiny.a"] == {"tiny.b", "tiny.c"}
    assert graph["tiny.b"] == {"tiny.a"}  # inside a function
    assert graph["tiny.c"] == set()  # under TYPE_CHECKING only
    assert graph["tiny.sub"] == {"tiny.c"}
    assert graph["tiny.sub.d"] == {"tiny.sub", "tiny.b", "tiny.sub.e"}


def test_the_scanner_reports_a_private_name_imported_from_another_module(planted):
    assert private_name_imports(planted) == ["tiny.sub.d:2 imports _private from tiny.b"]


def test_the_scanner_finds_no_cycle_once_the_planted_ones_are_broken(planted):
    write_package(planted, {"b.py": "def later():\n    return 1\n", "sub/e.py": "import json\n"})
    assert import_cycles(planted) == []
