"""The runtime process: environment Lambda gives it, its output, its memory, killing it."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path

from .config import FunctionConfig, default_runtime_command
from .output import report

LogSink = Callable[[str], None]
# Lambda's Shutdown phase: SIGTERM to the runtime, SIGKILL to what has not exited when the
# phase's 2,000 ms are up ("Lambda execution environment lifecycle", Shutdown phase).
SHUTDOWN_GRACE = 2.0


# Taken from the caller's environment: what starting the interpreter needs (PATH resolves a bare
# `python3` in --runtime-command, LD_LIBRARY_PATH finds a shared libpython) and the credentials
# Lambda gives a function (its execution role's; here the caller's, as `sam local` does).
FROM_CALLER = ("PATH", "LD_LIBRARY_PATH", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN")


def runtime_env(config: FunctionConfig, runtime_api: str) -> dict[str, str]:
    """The runtime process's whole environment: what Lambda sets, FROM_CALLER, then `--env`.

    Nothing else of the caller's environment reaches the function (a shell's PYTHONUNBUFFERED,
    AWS_LAMBDA_LOG_FORMAT or AWS_LAMBDA_MAX_CONCURRENCY would make it behave unlike on Lambda):
    configure the function with `--env KEY=VALUE`, as in its Lambda configuration. Lambda's
    variables are those of a managed Python runtime (the X-Ray daemon's excepted: none runs
    here), plus PYTHONDONTWRITEBYTECODE=1 (nothing written beside the code, as on Lambda's
    read-only /var/task); `AWS_REGION` is `--env AWS_REGION`, else the caller's, else us-east-1. With the
    default runtime command this checkout's aruntime comes first on PYTHONPATH (before an
    `--env PYTHONPATH`), so a source checkout runs without being installed.
    """
    region = config.region
    day = time.strftime("%Y/%m/%d", time.gmtime())
    env = {name: os.environ[name] for name in FROM_CALLER if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "_HANDLER": config.handler,
            "LAMBDA_TASK_ROOT": config.task_root,
            "LAMBDA_RUNTIME_DIR": config.task_root,
            "AWS_LAMBDA_FUNCTION_NAME": config.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[$LATEST]{secrets.token_hex(16)}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            # Lambda's code directory is read-only: no bytecode is ever written beside the code.
            # Here that also keeps a reload from running a stale .pyc (a .pyc is checked by the
            # source's mtime in seconds and its size: an edit within the same second that keeps
            # the size would go unseen).
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(config.env)
    if config.runtime_command == default_runtime_command():
        # `python -m aruntime` must find the same aruntime that runs this emulator,
        # even when it is not installed (a source checkout).
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, config.env.get("PYTHONPATH")) if p)
    return env


class RuntimeProcess:
    """One start of the runtime. Its own process group, so a kill reaches forked workers."""

    def __init__(self, config: FunctionConfig, runtime_api: str, log: LogSink) -> None:
        self.config = config
        self.runtime_api = runtime_api
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0
        self.init_done_at: float | None = None  # first /next
        self.init_reported = False
        self.init_failed = False
        self.killed = False  # ended by the emulator (timeout, shutdown, reload), not by itself
        self._peak_mb = 0
        self._pumps: list[asyncio.Task[None]] = []
        self._reported: set[str] = set()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        argv = [*self.config.runtime_command, self.config.handler]
        self.spawned_at = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.config.task_root,
            env=runtime_env(self.config, self.runtime_api),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            assert stream is not None
            pump = asyncio.create_task(self._pump(stream))
            pump.add_done_callback(functools.partial(self._pump_ended, name))
            self._pumps.append(pump)

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        # Line by line, so the function's output interleaves cleanly with START/REPORT. The
        # reading never stops before the pipe's end: a reader that stopped would leave the
        # function blocked on a full pipe (a line that cannot be shown is the sink's problem).
        while True:
            try:
                line = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:
                line = e.partial
            except asyncio.LimitOverrunError as e:
                line = await stream.read(e.consumed)
            if not line:
                return
            try:
                self.log(line.decode(errors="replace").rstrip("\r\n"))
            except Exception as e:  # noqa: BLE001 - a sink that raises; go on reading
                self._report_once("sink", f"aruntime serve: could not show a line of the function's output "
                                  f"({type(e).__name__}: {e}); still reading it")

    def _pump_ended(self, name: str, task: asyncio.Task[None]) -> None:
        # A reader that failed is said, not dropped silently (nor left to asyncio's "Task
        # exception was never retrieved" at exit).
        if task.cancelled() or task.exception() is None:
            return
        e = task.exception()
        self._report_once(name, f"aruntime serve: stopped reading the function's {name} "
                          f"({type(e).__name__}: {e}); later output is lost")

    def _report_once(self, key: str, line: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            report(line)

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        # Drain what it wrote before dying; a forked child may hold the pipe, so bound it.
        await asyncio.wait(self._pumps, timeout=1.0)
        return code

    def kill(self) -> None:
        """SIGKILL to its process group, at once (a timeout, a failed init)."""
        self._signal(signal.SIGKILL)

    async def stop(self, grace: float | None = None) -> None:
        """End it as Lambda ends an execution environment: SIGTERM to its process group (the
        runtime's shutdown hooks run), then SIGKILL if it has not exited after `grace` s
        (default SHUTDOWN_GRACE)."""
        self._signal(signal.SIGTERM)
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), SHUTDOWN_GRACE if grace is None else grace)
        except asyncio.TimeoutError:
            self.kill()

    def _signal(self, sig: signal.Signals) -> None:
        self.killed = True  # ended on purpose: not a crash, and no longer given invocations
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def max_memory_mb(self) -> int:
        """Peak resident memory (VmHWM), what Lambda reports as Max Memory Used."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return self._peak_mb  # already gone: the last reading
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self._peak_mb = max(self._peak_mb, round(int(line.split()[1]) / 1024))
        return self._peak_mb


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name.removeprefix("SIG").lower()
        except ValueError:
            name = str(-code)
        names = {"kill": "killed", "term": "terminated", "segv": "segmentation fault"}
        return f"signal: {names.get(name, name)}"
    return f"exit status {code}"
