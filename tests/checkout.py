"""A throwaway clone of this checkout, and the shell blocks of the docs, for tests that run the
README's commands exactly as written (tests/test_docs_commands.py, tests/test_deploy.py).

The clone is a copy of the checkout's files in a directory named `aruntime`, as `git clone`
makes it (so nothing may depend on the path: the name "aruntime" is in it on purpose). Its
virtualenv lives beside it, not in it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakeapi import REPO_ROOT

ILLUSTRATIVE = "# illustrative"
_SKIP_PARTS = {".git", ".venv", "__pycache__", "build", "dist", ".pytest_cache", ".mypy_cache"}


@dataclass(frozen=True)
class Block:
    """A fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of its opening fence
    lang: str
    text: str

    @property
    def illustrative(self) -> bool:
        return self.text.startswith(ILLUSTRATIVE)

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def blocks(path: Path, lang: str | None = None) -> list[Block]:
    """The fenced blocks of `path` (only those of `lang` if given), indented ones included."""
    found = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if m:
            indent, block_lang, start = m.group(1), m.group(2), i
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
                i += 1
            if lang is None or block_lang == lang:
                found.append(Block(path, start + 1, block_lang, "\n".join(body) + "\n"))
        i += 1
    return found


def block_with(path: Path, needle: str, lang: str = "sh") -> Block:
    """The one block of `path` (of `lang`) that contains `needle`."""
    found = [b for b in blocks(path, lang) if needle in b.text]
    assert len(found) == 1, f"{len(found)} {lang} blocks of {path} contain {needle!r}"
    return found[0]


def copy_checkout(dest: Path) -> Path:
    """Copy the checkout's files (tracked or not ignored; as they are in the work tree) to `dest`."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, timeout=60, check=True).stdout.decode().split("\0")
        files = [REPO_ROOT / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in REPO_ROOT.rglob("*") if p.is_file()
                 and not _SKIP_PARTS & set(p.relative_to(REPO_ROOT).parts)]
    for src in files:
        if not src.is_file():
            continue  # deleted in the work tree
        target = dest / src.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


def venv_env(venv: Path, home: Path, **extra: str) -> dict[str, str]:
    """An environment built from scratch with `venv` activated: PATH (venv first), pip's own
    settings (the package index this machine uses), nothing else of the host's."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    # Where this machine keeps its Pythons (pyenv), for tools that look for one by version.
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    if Path(pyenv).is_dir():
        env["PYENV_ROOT"] = pyenv
    env.update({
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "VIRTUAL_ENV": str(venv), "HOME": str(home), "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    })
    env.update(extra)
    return env


def run_block(block: Block, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a shell block as written (bash, stopping at the first failing command)."""
    assert not block.illustrative, block
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=str(cwd), env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{block} failed ({proc.returncode}):\n{block.text}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


# Test modules import these fixtures; each import makes a fixture of its own, so what they make
# is kept here, once per session.
_made: dict[str, Path] = {}


@pytest.fixture(scope="session")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout in a directory named `aruntime`."""
    if "clone" not in _made:
        _made["clone"] = copy_checkout(tmp_path_factory.mktemp("clone") / "aruntime")
    return _made["clone"]


@pytest.fixture(scope="session")
def clone_venv(clone: Path) -> Path:
    """An empty virtualenv (with pip) beside the clone: where the docs' `pip install` lines go."""
    if "venv" not in _made:
        venv = clone.parent / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300,
                       capture_output=True)
        _made["venv"] = venv
    return _made["venv"]


@pytest.fixture(scope="session")
def built_wheel(clone: Path, clone_venv: Path) -> Path:
    """examples/deploy/README.md's wheel for the images, built as written in the clone."""
    if "wheel" not in _made:
        block = block_with(REPO_ROOT / "examples" / "deploy" / "README.md", "pip wheel --no-deps -w dist .")
        run_block(block, clone, venv_env(clone_venv, clone.parent))
        (wheel,) = (clone / "dist").glob("aruntime-*.whl")
        _made["wheel"] = wheel
    return _made["wheel"]
