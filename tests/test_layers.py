"""The library/CLI boundary and the package graph, checked on the sources (lazy imports count too).

Click lives only in the CLI layer (cra/cli.py, cra/cli_options.py, `*/commands.py`, `*_commands.py`);
library code raises cra.errors and reports progress through a callback, so a script, a notebook or
`cra serve` never gets a CLI exception. No two of cra's packages import each other, directly or
around a loop.
"""

import ast
from pathlib import Path

from conftest import REPO

CLI_LAYER = {"cra.cli", "cra.cli_options", "cra.__main__"}


def is_cli_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name in CLI_LAYER or last == "commands" or last.endswith("_commands")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import statement in the file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
            for alias in node.names:
                candidate = f"{origin}.{alias.name}"
                found.append((candidate if _is_module(candidate) else origin, node.lineno))
    return found


def sources(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py"))


def test_click_is_imported_only_by_the_cli_layer():
    offenders = []
    for path in sources("cra", "claude_hooks"):
        if is_cli_module(module_name(path)):
            continue
        for imported, line in imports_of(path):
            if imported.split(".")[0] == "click" or is_cli_module(imported):
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {imported}")
    assert offenders == [], (
        "library code must not import click or a CLI module: raise cra.errors, take an `echo` callback "
        "(cra.progress), and import shared options from cra.cli_options in commands only:\n" + "\n".join(offenders)
    )


def test_the_cli_layer_is_where_click_is():
    # The check above would pass vacuously if it recognised no CLI module or found no click import.
    cli_modules = [p for p in sources("cra") if is_cli_module(module_name(p))]
    assert {"cra.cli", "cra.cli_options", "cra.train.commands", "cra.train.rl_commands"} <= {
        module_name(p) for p in cli_modules
    }
    assert all(any(i.split(".")[0] == "click" for i, _ in imports_of(p)) for p in cli_modules if p.stem != "__main__")
    assert not is_cli_module("cra.train.sft") and not is_cli_module("cra.commandsmith")


def package_graph() -> dict[str, set[str]]:
    """cra's top-level packages and modules (train, db, errors, ...) -> those they import."""
    graph: dict[str, set[str]] = {}
    for path in sources("cra"):
        name = module_name(path)
        if name == "cra":
            continue
        source = name.split(".")[1]
        for imported, _ in imports_of(path):
            parts = imported.split(".")
            if parts[0] == "cra" and len(parts) > 1 and parts[1] != source:
                graph.setdefault(source, set()).add(parts[1])
        graph.setdefault(source, set())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_cycles_between_packages():
    graph = package_graph()
    assert {"db", "train", "eval", "dataset", "errors"} <= set(graph)  # the walk saw the packages
    assert "errors" in graph["train"] and "db" in graph["eval"]
    assert cycles(graph) == []


def test_cycles_finds_a_loop_around_several_packages():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _distribution(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def declared_distributions() -> set[str]:
    """Every distribution pyproject.toml names, in the core dependencies or any extra."""
    import re

    from cra.compat import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {_distribution(re.match(r"[A-Za-z0-9_.\-]+", r).group(0)) for r in requirements}


def test_every_third_party_import_is_declared():
    """What cra, the hooks, the scripts and the tests import is in pyproject.toml (core or an extra),
    not only installed because something else pulled it in."""
    import importlib.metadata
    import sys

    # The project's own packages, and the tests' modules (helpers they import from each other).
    own = {"cra", "claude_hooks", "tests", "e2e"} | {p.stem for p in (REPO / "tests").glob("*.py")}
    providers = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    undeclared = set()
    for path in sources("cra", "claude_hooks", "scripts", "tests"):
        if "fixtures" in path.parts:
            continue
        for imported, _ in imports_of(path):
            top = imported.split(".")[0]
            if not top or top in own or top in sys.stdlib_module_names or top.startswith("_"):
                continue
            names = {_distribution(d) for d in providers.get(top, [top])}
            if not names & declared:
                undeclared.add(f"{top} ({', '.join(sorted(names))}) in {path.relative_to(REPO)}")
    assert sorted(undeclared) == []
    assert {"torch", "sqlite-utils", "pyyaml", "llama-cpp-python"} <= declared
