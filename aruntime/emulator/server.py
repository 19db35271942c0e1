"""The emulator: invoke surfaces on one aiohttp port, the function in a sandbox behind them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

from aiohttp import web

from . import function_url, invoke_api
from .config import FunctionConfig, default_runtime_command, parse_handler
from .invoke_api import SANDBOX
from .sandbox import Sandbox


def _print(line: str) -> None:
    print(line, flush=True)


def make_app(sandbox: Sandbox) -> web.Application:
    # Room for a 6 MB payload plus slack; the handlers answer the service's 413 themselves.
    app = web.Application(client_max_size=invoke_api.MAX_REQUEST + 1024 * 1024)
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
    the working directory). `port=0` picks a free port. `log` receives every line the
    emulator and the function print (default: stdout).
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
    ) -> None:
        lambda_handler, root = parse_handler(handler, task_root)
        module = lambda_handler.rpartition(".")[0].replace("/", ".")
        self.config = FunctionConfig(
            handler=lambda_handler,
            task_root=root,
            function_name=function_name or module.rpartition(".")[2] or "function",
            timeout=timeout,
            memory=memory,
            runtime_command=list(runtime_command or default_runtime_command()),
            env=dict(env or {}),
        )
        self.host = host
        self.port = port
        self.sandbox = Sandbox(self.config, log or _print, host)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
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

    async def close(self) -> None:
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
