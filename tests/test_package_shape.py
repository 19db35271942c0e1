"""The package's shape: the top level is the runtime alone, tools and the emulator sit in their
own subpackages, and no subpackage's modules import each other in a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from fakeapi import REPO_ROOT

PACKAGE = REPO_ROOT / "aruntime"
# Nothing the runtime's own modules may import: the tools' and the emulator's stacks.
NOT_FOR_THE_RUNTIME = ("aruntime.tools", "aruntime.emulator", "aiohttp", "argparse", "zipfile",
                       "watchfiles", "tempfile")


def imports_of(path: Path, package: str) -> set[str]:
    """Modules `path` imports (TYPE_CHECKING blocks too), absolute, relative ones resolved."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_top_level_modules_are_the_runtimes() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "__main__.py":
            continue  # the entry point: sends tool commands on to aruntime.tools, lazily
        bad = {m for m in imports_of(path, "aruntime") for ban in NOT_FOR_THE_RUNTIME
               if m == ban or m.startswith(ban + ".")}
        assert not bad, f"{path.name} imports {sorted(bad)}"
    assert not (PACKAGE / "layer.py").exists()
    assert (PACKAGE / "tools" / "layer.py").is_file() and (PACKAGE / "tools" / "cli.py").is_file()


def test_runtime_start_imports_no_tool(tmp_path: Path) -> None:
    """`python -m aruntime HANDLER` inside Lambda loads the runtime only."""
    code = ("import os, sys; os.environ['AWS_LAMBDA_RUNTIME_API'] = '127.0.0.1:9'; "
            "from aruntime.__main__ import main; main(['x.handler']); "
            "print(sorted(m for m in sys.modules if m.startswith(('aruntime', 'aiohttp', 'argparse', 'watchfiles'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    loaded = proc.stdout.strip().splitlines()[-1]
    for name in ("aruntime.tools", "aruntime.emulator", "aiohttp", "argparse", "watchfiles"):
        assert f"'{name}" not in loaded, loaded
    assert "'aruntime.runtime'" in loaded


@pytest.mark.parametrize("subpackage", ["emulator", "tools"])
def test_no_import_cycles(subpackage: str) -> None:
    package = f"aruntime.{subpackage}"
    graph: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / subpackage).glob("*.py")):
        name = module_name(path)
        own = package if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {m for m in imports_of(path, own) if m in {module_name(p) for p in (PACKAGE / subpackage).glob("*.py")}} - {name}
    # The package's __init__ re-exports lazily; the cycle that matters is between modules.
    graph.pop(package, None)
    for deps in graph.values():
        deps.discard(package)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, f"import cycle: {' -> '.join(visiting[visiting.index(node):] + [node])}"
        visiting.append(node)
        for dep in sorted(graph.get(node, ())):
            visit(dep)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert f"{package}.runtime_api" not in graph or f"{package}.sandbox" not in graph[f"{package}.runtime_api"]
