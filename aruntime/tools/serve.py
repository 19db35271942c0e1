"""`aruntime serve HANDLER [options]`: run a function locally behind the Lambda surfaces."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys

from ..emulator.config import default_runtime_command
from ..emulator.server import Emulator


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aruntime serve",
        description="Run a Lambda function locally: Invoke, InvokeWithResponseStream and Function URL on one port.",
    )
    parser.add_argument("handler", help="file and function (examples/chat.py:handler) or module.func")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=30.0, help="function timeout in seconds")
    parser.add_argument("--memory", type=int, default=128, help="memory size in MB (reported only)")
    parser.add_argument(
        "--runtime-command",
        default=None,
        help=f'runtime to start (default "{shlex.join(default_runtime_command())}"); the handler is appended',
    )
    parser.add_argument("--env", type=_env_pair, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--function-name", default=None, help="function name (default: the module name)")
    return parser


async def _serve(emu: Emulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await emu.start()
    name = emu.config.function_name
    print(
        f"aruntime: function {name!r} (handler {emu.config.handler}, code in {emu.config.task_root})\n"
        f"  Function URL:  {emu.url}/\n"
        f"  Invoke:        POST {emu.url}/2015-03-31/functions/{name}/invocations\n"
        f"  Stream invoke: POST {emu.url}/2021-11-15/functions/{name}/response-streaming-invocations\n"
        f"  runtime: {shlex.join(emu.config.runtime_command)}; timeout {emu.config.timeout:g} s; "
        f"memory {emu.config.memory} MB. Ctrl-C stops.",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await emu.close()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    command = shlex.split(args.runtime_command) if args.runtime_command else None
    emu = Emulator(
        args.handler,
        runtime_command=command,
        env=dict(args.env),
        timeout=args.timeout,
        memory=args.memory,
        host=args.host,
        port=args.port,
        function_name=args.function_name,
    )
    try:
        asyncio.run(_serve(emu))
    except OSError as e:
        print(f"aruntime serve: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
