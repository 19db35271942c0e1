"""What the emulated function is: handler, code directory, limits and environment."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

ACCOUNT_ID = "012345678912"
DEFAULT_REGION = "us-east-1"


@dataclass
class FunctionConfig:
    handler: str  # Lambda form, module.func
    task_root: str  # LAMBDA_TASK_ROOT and the runtime's working directory
    function_name: str = "function"
    timeout: float = 30.0
    memory: int = 128
    runtime_command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return self.env.get("AWS_REGION") or os.environ.get("AWS_REGION") or DEFAULT_REGION

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def max_concurrency(self) -> int:
        # Only a positive integer turns Managed Instances concurrency on; anything else is 1.
        raw = self.env.get("AWS_LAMBDA_MAX_CONCURRENCY", "")
        return int(raw) if raw.isdigit() and int(raw) > 0 else 1

    @property
    def snap_start(self) -> bool:
        return self.env.get("AWS_LAMBDA_INITIALIZATION_TYPE", "") == "snap-start"


def default_runtime_command() -> list[str]:
    return [sys.executable, "-m", "aruntime"]


# Interpreter names that mean "a Python", not one in particular.
_BARE_PYTHONS = ("python", "python3")


def resolve_runtime_command(command: list[str]) -> list[str]:
    """`python -m awslambdaric` runs with the interpreter serving the emulator (the one whose
    packages were installed with it), not with whatever `python` comes first on PATH."""
    if command and command[0] in _BARE_PYTHONS:
        return [sys.executable, *command[1:]]
    return list(command)


def runs_aruntime(command: list[str]) -> bool:
    """Whether `command` starts aruntime (`PYTHON -m aruntime`, the `aruntime` script), not
    another runtime (`python -m awslambdaric`, a bootstrap of its own)."""
    if len(command) >= 3 and command[1] == "-m":
        return command[2] in ("aruntime", "aruntime.__main__")
    return bool(command) and os.path.basename(command[0]) == "aruntime"


def missing_module(command: list[str]) -> str | None:
    """The module a `PYTHON -m MODULE` runtime command names when this interpreter (the one
    the command runs with once resolved) cannot find it; else None."""
    if len(command) >= 3 and command[0] == sys.executable and command[1] == "-m":
        top = command[2].split(".", 1)[0]
        if importlib.util.find_spec(top) is None:
            return command[2]
    return None


def missing_program(command: list[str], task_root: str, path: str | None = None) -> str | None:
    """The program of `command` when it cannot be started, or None: a bare name not found on
    `path` (the runtime's PATH; default this process's), or a path (relative to `task_root`,
    the runtime's working directory, as exec resolves it there) that is not an executable file."""
    if not command:
        return None
    program = command[0]
    if "/" not in program:
        search = path if path is not None else os.environ.get("PATH", os.defpath)
        return None if shutil.which(program, path=search) else program
    target = Path(task_root, program)
    return None if target.is_file() and os.access(target, os.X_OK) else program


def handler_file_problem(handler: str, task_root: str) -> str | None:
    """Why the module of a Lambda-form `handler` cannot be found under `task_root` (nor as an
    installed module), or None. Checked at start so the first invoke is not the first to say."""
    module = handler.rpartition(".")[0]
    if not module:
        return f"handler {handler!r} is not module.function"
    rel = module.replace(".", "/")
    root = Path(task_root)
    if (root / f"{rel}.py").is_file() or (root / rel / "__init__.py").is_file():
        return None
    if (root / rel).is_dir():  # a folder without __init__.py is a namespace package
        return None
    top = module.replace("/", ".").split(".", 1)[0]
    if "/" not in module and (root / top).is_dir():
        return None
    try:
        if "/" not in module and importlib.util.find_spec(top) is not None:
            return None  # an installed module (site-packages), found by the runtime too
    except (ImportError, ValueError):
        pass
    return f"no {rel}.py (nor package {rel}/) in {task_root}"


def parse_handler(spec: str, cwd: str | None = None) -> tuple[str, str]:
    """Turn `path/app.py:func` or `module.func` into (Lambda handler, task root).

    A file path puts the task root at the file's directory (as a zip's root would be),
    so `examples/chat.py:handler` becomes `chat.handler` run from `examples/`.
    """
    base = Path(cwd or os.getcwd())
    path_part, sep, func = spec.rpartition(":")
    if sep and (path_part.endswith(".py") or (base / path_part).is_file()):
        file = (base / path_part).resolve()
        return f"{file.stem}.{func or 'handler'}", str(file.parent)
    if spec.endswith(".py"):
        file = (base / spec).resolve()
        return f"{file.stem}.handler", str(file.parent)
    return spec, str(base.resolve())
