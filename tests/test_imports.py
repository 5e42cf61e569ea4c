"""No import circle in the package: every module of ``pku_aigi`` is read with ``ast``.

Every ``import`` and ``from ... import`` statement counts, wherever it is (module level,
inside a function or method, under ``if TYPE_CHECKING``): an import deferred into a
function hides a circle from Python but not from the design. ``from pkg import name``
where ``name`` is a submodule is an edge to that submodule (and not to ``pkg``); an
explicit import of a package is an edge to its ``__init__``. The parent packages Python
imports on the way to a submodule are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "pku_aigi"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module under ``root`` (packages too)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([package, *parts])] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package modules that module ``name`` (file ``path``) imports anywhere."""
    here = name if _is_package(path) else name.rpartition(".")[0]  # its package
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                # `from pkg import submodule` imports the submodule; `from module import
                # name` (or `from pkg import name` of its __init__) imports the module.
                found.add(submodule if submodule in modules else target)
    edges = set()
    for target in found:
        # `import a.b.c` names a.b.c; the closest module that exists is the dependency.
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    files = module_files(root, package)
    names = set(files)
    return {name: imported_modules(name, path, names) for name, path in files.items()}


def cyclic_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components that hold a circle (more than one module, or
    one importing itself), each sorted: every module of one reaches every other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def strongconnect(start: str) -> None:  # Tarjan's algorithm, iteratively
        nonlocal counter
        work = [(start, iter(sorted(graph.get(start, ()))))]
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
                    if len(component) > 1 or node in graph.get(node, ()):
                        components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return sorted(components)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per cyclic component (the shortest through its first module), sorted."""
    return sorted(_circle(component, graph) for component in cyclic_components(graph))


def _circle(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest path inside the component from its first module back to itself."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    return [*paths[node], start]
                if child in members and child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    return component  # pragma: no cover - a component always has a circle


def test_no_import_circle_in_the_package():
    graph = import_graph()
    assert len(graph) > 50, "the package's modules were not found"
    components = cyclic_components(graph)
    assert not components, f"{len(components)} import circle(s):\n" + "\n".join(
        " -> ".join(_circle(component, graph)) + f"  (circles join: {', '.join(component)})"
        for component in components
    )


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for child in graph.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        # The loaders and the model code never reach the zoo: it registers a source
        # resolver with the folder loader instead (pku_aigi.models does it).
        ("pku_aigi.models.base", "pku_aigi.models.zoo"),
        ("pku_aigi.models.hub", "pku_aigi.models.zoo"),
        ("pku_aigi.models.architectures", "pku_aigi.models.zoo"),
        # The coding engine knows no architecture, folder or model class.
        ("pku_aigi.models.coding", "pku_aigi.models.architectures"),
        ("pku_aigi.models.coding", "pku_aigi.models.hub"),
        ("pku_aigi.models.coding", "pku_aigi.models.base"),
        # The folder format knows no model class (only the registry of architectures).
        ("pku_aigi.models.hub", "pku_aigi.models.base"),
        # A learned codec does not know how the zoo is grouped into families.
        ("pku_aigi.codecs.learned", "pku_aigi.codecs.families"),
    ],
)
def test_lower_layers_never_reach_upper_ones(lower, upper):
    graph = import_graph()
    below = [name for name in graph if name == lower or name.startswith(lower + ".")]
    assert below, lower
    for name in below:
        reached = _reachable(graph, name)
        wrong = sorted(m for m in reached if m == upper or m.startswith(upper + "."))
        assert not wrong, f"{name} imports (through others) {', '.join(wrong)}"


def test_cycle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"d"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    # Two circles through one module are one component, reported once.
    assert find_cycles({"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]
    assert cyclic_components({"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "c"]]


def test_graph_counts_every_kind_of_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import thing\n")
    (package / "a.py").write_text("def f():\n    from .sub import b\n")  # in a function
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("from ..c import name\nimport pkg.sub\n")
    (package / "c.py").write_text("import os\nfrom pkg.sub.b import x\n")
    (package / "d.py").write_text("from . import a, c\nimport pkg\n")
    graph = import_graph(package, "pkg")
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b"},  # not pkg.sub: importing a submodule is no edge to it
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.c", "pkg.sub"},  # an explicit import of the package is one
        "pkg.c": {"pkg.sub.b"},
        "pkg.d": {"pkg.a", "pkg.c", "pkg"},
    }
    assert find_cycles(graph) == [["pkg.c", "pkg.sub.b", "pkg.c"]]


@pytest.mark.parametrize("source", ["from . import b\n", "def f():\n    import pkg.b\n"])
def test_a_new_circle_fails(tmp_path, source):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(source)
    (package / "b.py").write_text("from .a import f\n")
    assert find_cycles(import_graph(package, "pkg")) == [["pkg.a", "pkg.b", "pkg.a"]]
