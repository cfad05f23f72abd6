"""The package's imports point one way, read from the source (every import, at module level
or inside a function): no cycle, the entropy coders know nothing of files, the container
knows nothing of what a payload holds, the formats know only the dtype table, and only the
command line imports the command line."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ansz"

#: Built at install from ansz/_kernels (no source of its own to read).
GENERATED = {"ansz._kernels_aot"}

CODERS = {"ansz.rans", "ansz.huffman", "ansz.qlc", "ansz.prefix", "ansz.pairs",
          "ansz.streams", "ansz.blocks", "ansz.kernels", "ansz._kernels",
          "ansz._kernels.fields", "ansz._kernels.prefix", "ansz._kernels.rans"}
FILE_LEVEL = {"ansz.container", "ansz.chunks", "ansz.plan", "ansz._io", "ansz.api",
              "ansz.reader", "ansz.writer", "ansz.stats", "ansz.benchmark"}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name not in GENERATED:
            out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the ansz modules it imports (a package's submodule, where one is named)."""
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                while target not in mods and "." in target:
                    target = target.rpartition(".")[0]
                if target in mods and target != mod and not mod.startswith(target + "."):
                    graph[mod].add(target)
    return graph


def test_the_graph_is_read():
    graph = import_graph()
    assert "ansz.chunks" in graph["ansz.api"] and "ansz.kernels" in graph["ansz.rans"]
    assert "ansz._kernels.rans" in graph["ansz._kernels"]


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        path.append(mod)
        for dep in sorted(graph[mod]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path)
        path.pop()
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_every_import_points_down():
    graph = import_graph()
    wrong = []
    for mod, deps in graph.items():
        for dep in deps:
            if mod in CODERS and dep in FILE_LEVEL | {"ansz.formats"}:
                wrong.append(f"{mod} (a coder) imports {dep}")
            if mod == "ansz.container" and dep in CODERS:
                wrong.append(f"the container imports the coder {dep}")
            if mod.startswith("ansz.formats") and not (dep.startswith("ansz.formats")
                                                       or dep in {"ansz.dtypes", "ansz.errors"}):
                wrong.append(f"{mod} (a format) imports {dep}")
            if dep.startswith("ansz.cli") and not (mod.startswith("ansz.cli")
                                                   or mod == "ansz.__main__"):
                wrong.append(f"{mod} imports the command line ({dep})")
    assert not wrong, wrong
