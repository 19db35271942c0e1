"""What the emulated function is: handler, code directory, limits and environment."""

from __future__ import annotations

import os
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
