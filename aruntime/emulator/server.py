"""The emulator: invoke surfaces on one aiohttp port, the function in a sandbox behind them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

from aiohttp import web

from . import function_url, invoke_api
from . import reload
from .config import FunctionConfig, default_runtime_command, parse_handler, resolve_runtime_command
from .invoke_api import SANDBOX
from .limits import MAX_REQUEST
from .output import echo
from .sandbox import Sandbox


def make_app(sandbox: Sandbox) -> web.Application:
    # The handlers read request bodies as streams and answer the service's own 413 past its
    # limits; aiohttp's buffered-read cap (a plain-text 413) is only a backstop.
    app = web.Application(client_max_size=MAX_REQUEST + 1024 * 1024)
    app[SANDBOX] = sandbox
    app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke_api.invoke)
    app.router.add_post(
        "/2021-11-15/functions/{name}/response-streaming-invocations", invoke_api.invoke_stream
    )
    app.router.add_route("*", "/{tail:.*}", function_url.handle)
    return app


class Emulator:
    """A local Lambda function.

        async with Emulator("examples/echo.py:handler", port=0) as emu:
            ...  # POST f"{emu.url}/2015-03-31/functions/function/invocations"

    `handler` is `path/to/file.py:func` or `module.func` (relative to `task_root`, default
    the working directory). `host`/`port` are where the invoke surfaces listen (`port=0`
    picks a free port); the Runtime API always listens on loopback, on a port only the
    runtime process is told. A bare `python`/`python3` in `runtime_command` means this
    interpreter. `reload=True` restarts the runtime when a .py file under the code directory
    changes (needs watchfiles). `log` receives every line the emulator and the function print
    (default `output.echo`: stdout, escaped where it cannot encode a character; a `log` that
    raises is reported once on stderr and never stops the emulator reading the function's output).
    """

    def __init__(
        self,
        handler: str,
        *,
        task_root: str | None = None,
        runtime_command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        memory: int = 128,
        host: str = "127.0.0.1",
        port: int = 9000,
        function_name: str | None = None,
        log: Callable[[str], None] | None = None,
        reload: bool = False,
    ) -> None:
        lambda_handler, root = parse_handler(handler, task_root)
        module = lambda_handler.rpartition(".")[0].replace("/", ".")
        self.config = FunctionConfig(
            handler=lambda_handler,
            task_root=root,
            function_name=function_name or module.rpartition(".")[2] or "function",
            timeout=timeout,
            memory=memory,
            runtime_command=resolve_runtime_command(list(runtime_command or default_runtime_command())),
            env=dict(env or {}),
        )
        self.host = host
        self.port = port
        self.reload = reload
        self.sandbox = Sandbox(self.config, log or echo)
        self._runner: web.AppRunner | None = None
        self._stop_watching = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen; the runtime process starts with the first invocation (a cold start).
        Raises OSError when the address cannot be bound, reload.ReloadUnavailable when
        `reload` is asked without watchfiles."""
        if self.reload:
            reload.check_available()
        self._runner = web.AppRunner(
            make_app(self.sandbox), access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # the bound port when 0 was asked for
        sockets = getattr(server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        if self.reload:
            self._watcher = asyncio.ensure_future(
                reload.watch(self.config.task_root, self._code_changed, self._stop_watching))

    def _code_changed(self, paths: list[str]) -> None:
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        busy = " (the invocation in flight finishes first)" if self.sandbox.busy else ""
        self.sandbox.notice(f"aruntime serve: {shown} changed: restarting the runtime{busy}; "
                         "the next invocation starts it with the new code")
        self.sandbox.restart()

    async def close(self) -> None:
        self._stop_watching.set()
        if self._watcher is not None:
            await asyncio.wait({self._watcher}, timeout=5)
            self._watcher = None
        await self.sandbox.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


__all__ = ["Emulator", "make_app"]
