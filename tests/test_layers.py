"""The library's layers and their rule (docs/ARCHITECTURE.md): every import inside diffrep_lib, including imports
placed inside functions, goes downwards or stays inside its own package, and no modules import each other in a
circle. The zoo and its training loop never name a method."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "diffrep_lib"

# rank of each top-level package or module: an import may go to a lower rank, or stay inside its own package
LAYERS = {"errors": -1,
          "core": 0, "support": 0, "survey": 0,
          "models": 1, "data": 1,
          "readout": 2,
          "zoo": 3,
          "methods": 4,
          "experiments": 5,
          "plotting": 6,
          "cli": 7}


def module_name(path: Path, lib: Path = LIB) -> str:
    parts = list(path.relative_to(lib.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_imports(path: Path, lib: Path = LIB) -> list[tuple[int, str]]:
    """(line, imported module) for every import of the library in a file, at any depth of the syntax tree."""
    name = module_name(path, lib)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "diffrep_lib"]
        elif isinstance(node, ast.Call) and _dynamic_import(node):       # importlib.import_module("diffrep_lib..")
            out.append((node.lineno, node.args[0].value))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and str(node.slice.value).startswith("diffrep_lib") and "modules" in ast.unparse(node.value):
            out.append((node.lineno, node.slice.value))                   # sys.modules["diffrep_lib..."]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "diffrep_lib":
                continue
            for alias in node.names:                       # `from . import zoo` imports the module diffrep_lib.zoo
                sub = f"{target}.{alias.name}"
                where = lib.parent / Path(*sub.split("."))
                out.append((node.lineno, sub if where.with_suffix(".py").exists() or where.is_dir() else target))
    return out


def _dynamic_import(node: ast.Call) -> bool:
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    return name in ("import_module", "__import__") and bool(node.args) and isinstance(node.args[0], ast.Constant) \
        and str(node.args[0].value).startswith("diffrep_lib")


def absolute_imports(path: Path) -> list[int]:
    """Lines of `import diffrep_lib...` inside the library: such an import binds the package root, through which
    any module is reachable as an attribute, so the library imports itself only relatively."""
    tree = ast.parse(path.read_text())
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Import)
            and any(a.name.split(".")[0] == "diffrep_lib" for a in n.names)]


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None            # None: the package's own __init__ (the public face)


FILES = sorted(p for p in LIB.rglob("*.py"))
EDGES = {module_name(p): library_imports(p) for p in FILES}


def test_every_package_and_module_has_a_layer():
    tops = {p.relative_to(LIB).parts[0].removesuffix(".py") for p in FILES} - {"__init__"}
    assert tops == set(LAYERS), f"give these a layer in LAYERS and docs/ARCHITECTURE.md: {tops ^ set(LAYERS)}"


def upward_imports(edges) -> list[str]:
    upward = []
    for src, imports in edges.items():
        here = layer(src)
        if here is None:
            continue                                       # diffrep_lib/__init__.py gathers the public names
        for line, dst in imports:
            there = layer(dst)
            if there is None:
                upward.append(f"{src}:{line} imports the package root {dst} (import the module itself)")
            elif there != here and LAYERS[there] >= LAYERS[here]:
                upward.append(f"{src}:{line} imports {dst} ({here}, rank {LAYERS[here]} -> {there}, "
                              f"rank {LAYERS[there]})")
    return upward


def test_imports_go_down_or_stay_in_their_package():
    upward = upward_imports(EDGES)
    assert not upward, "imports that break the layer rule:\n" + "\n".join(upward)


def test_the_library_imports_itself_only_relatively():
    found = [f"{p.relative_to(LIB.parent)}:{line}" for p in FILES for line in absolute_imports(p)]
    assert not found, f"use a relative import (from ..zoo import api) instead of `import diffrep_lib...`: {found}"


def _module_graph() -> dict[str, set[str]]:
    known = set(EDGES)
    graph = {}
    for src, imports in EDGES.items():
        deps = set()
        for _, dst in imports:
            while dst not in known and "." in dst:         # `from .x import name` of a module x: the module
                dst = dst.rsplit(".", 1)[0]
            if dst != src and dst in known:
                deps.add(dst)
        graph[src] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, as the list of modules around it, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_circles():
    graph = {k: {d for d in v if d != "diffrep_lib"} for k, v in _module_graph().items() if k != "diffrep_lib"}
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_layer_rule_catches_upward_imports_also_inside_functions(tmp_path):
    lib = tmp_path / "diffrep_lib"
    for folder in ("core", "zoo", "methods"):
        (lib / folder).mkdir(parents=True)
        (lib / folder / "__init__.py").write_text("")
    (lib / "zoo" / "api.py").write_text("")
    (lib / "methods" / "repa.py").write_text("")
    (lib / "core" / "schedules.py").write_text("")
    (lib / "core" / "samplers.py").write_text("from . import schedules\nfrom ..zoo import api\n\n\n"
                                               "def f():\n    from ..methods import repa\n")
    edges = {"diffrep_lib.core.samplers": library_imports(lib / "core" / "samplers.py", lib)}
    assert [dst for _, dst in edges["diffrep_lib.core.samplers"]] == \
        ["diffrep_lib.core.schedules", "diffrep_lib.zoo.api", "diffrep_lib.methods.repa"]
    found = upward_imports(edges)
    assert len(found) == 2 and "zoo.api" in found[0] and ":6 imports diffrep_lib.methods.repa" in found[1]
    # the dynamic forms are edges too, and an absolute import of the package is refused on its own
    (lib / "core" / "guidance.py").write_text(
        "import importlib\nimport sys\nimport diffrep_lib.core.schedules\n\n\ndef f():\n"
        "    importlib.import_module('diffrep_lib.zoo.api')\n    __import__('diffrep_lib.methods')\n"
        "    return sys.modules['diffrep_lib.experiments']\n")
    edges = {"diffrep_lib.core.guidance": library_imports(lib / "core" / "guidance.py", lib)}
    assert len(upward_imports(edges)) == 3 and absolute_imports(lib / "core" / "guidance.py") == [3]


METHOD_WORDS = ("repa", "align", "online", "kmeans", "cluster", "simclr", "contrastive", "teacher", "classif",
                "assignments", "encoders", "selfsup")


@pytest.mark.parametrize("path", sorted(str(p.relative_to(LIB)) for p in (LIB / "zoo").glob("*.py")
                                         if p.name != "recipes.py"))     # recipes.py: the table of the zoo's data
def test_the_zoo_logic_names_no_method(path):
    """The recipes are the zoo's data and may name methods; its logic may not (a method plugs in through the
    registry). Comments and docstrings are not code."""
    tree = ast.parse((LIB / path).read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.append(node.id)
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and not _is_docstring(tree, node):
            names.append(node.value)
    hits = sorted({n for n in names
                   if any(tok.startswith(METHOD_WORDS) for tok in re.split(r"[^a-z0-9]+", n.lower()))})
    assert not hits, f"{path} names methods: {hits} (register them in diffrep_lib/methods instead)"


def _is_docstring(tree, node) -> bool:
    for parent in ast.walk(tree):
        body = getattr(parent, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and body[0].value is node:
            return True
    return False
