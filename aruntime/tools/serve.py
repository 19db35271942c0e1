"""`aruntime serve HANDLER [options]`: run a function locally behind the Lambda surfaces.

Parsing and the start-up checks need no aiohttp; the emulator is imported once they passed,
so a missing `emulator` extra is one line saying what to install.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import re
import shlex
import signal
import sys
from typing import TYPE_CHECKING

from ..emulator.config import (
    default_runtime_command,
    handler_file_problem,
    missing_module,
    missing_program,
    parse_handler,
    resolve_runtime_command,
    runs_aruntime,
)
from ..emulator.output import echo, report
from ..logs import settle_stdio
from ..wire import engine_description
from .hints import install_hint

if TYPE_CHECKING:
    from ..emulator.server import Emulator

PROG = "aruntime serve"
# Lambda's own bounds for a function's configuration.
MAX_TIMEOUT_S = 900
MEMORY_MB = (128, 10240)


# Variables Lambda sets itself and refuses in a function's configuration (its reserved keys),
# which here carry the emulator's wiring: what to use instead. AWS_REGION, the credentials and
# AWS_LAMBDA_INITIALIZATION_TYPE (snap-start) stay settable: they are how `serve` is told them.
RESERVED_ENV = {
    "AWS_LAMBDA_RUNTIME_API": "it is the emulator's Runtime API",
    "_HANDLER": "HANDLER sets it",
    "LAMBDA_TASK_ROOT": "it is the code directory, from HANDLER",
    "LAMBDA_RUNTIME_DIR": "it is the code directory, from HANDLER",
    "AWS_LAMBDA_FUNCTION_NAME": "--function-name sets it",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "--memory sets it",
    "AWS_LAMBDA_FUNCTION_VERSION": "it is $LATEST",
    "AWS_LAMBDA_LOG_GROUP_NAME": "it is /aws/lambda/<function name>",
    "AWS_LAMBDA_LOG_STREAM_NAME": "each start of the runtime gets a new one",
    "AWS_EXECUTION_ENV": "it names the managed runtime",
    "_X_AMZN_TRACE_ID": "each invocation gets its own, from the caller's X-Amzn-Trace-Id",
}


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if key in RESERVED_ENV:
        raise argparse.ArgumentTypeError(
            f"{key} is one of Lambda's reserved keys, which a function's configuration cannot set "
            f"({RESERVED_ENV[key]})")
    return key, value


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 65535, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535 (0: any free port), got {port}")
    return port


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_TIMEOUT_S} s (Lambda's limit), got {text}")
    return value


def _memory(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of MB, got {text!r}") from None
    low, high = MEMORY_MB
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be from {low} to {high} MB (Lambda's range), got {value}")
    return value


def _function_name(text: str) -> str:
    # Lambda's rule for a function's name (CreateFunction's FunctionName): it is a path segment
    # of the Invoke URLs and part of the ARN, so a space or a slash would break both.
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise argparse.ArgumentTypeError(
            f"must be 1 to 64 letters, digits, hyphens or underscores (Lambda's rule), got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a Lambda function locally: Invoke, InvokeWithResponseStream and a Function URL on "
                    "one port, the runtime started as Lambda starts it.",
    )
    parser.add_argument(
        "handler", metavar="HANDLER",
        help="file and function (examples/chat.py:handler; the code directory is the file's folder; "
             "a file alone means its function handler) or module.function relative to the working directory")
    parser.add_argument("--port", type=_port, default=9000,
                        help="port of the invoke surfaces (default 9000; 0 picks a free one)")
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="address of the invoke surfaces (default 127.0.0.1). 0.0.0.0 lets anyone who reaches this "
             "machine invoke the function, without authentication; the Runtime API stays on loopback")
    parser.add_argument("--timeout", type=_timeout, default=30.0,
                        help="function timeout in seconds (default 30)")
    parser.add_argument("--memory", type=_memory, default=128,
                        help="memory size in MB, as configured on Lambda (default 128; reported only)")
    parser.add_argument(
        "--runtime-command",
        default=None,
        help=f'runtime to start (default "{shlex.join(default_runtime_command())}"); the handler is '
             'appended. A bare python/python3 is this interpreter: "python -m awslambdaric" runs the '
             "reference client (the `reference` extra)")
    parser.add_argument("--env", type=_env_pair, action="append", default=[], metavar="KEY=VALUE",
                        help="set a variable in the function's environment (repeatable), "
                             "e.g. --env AWS_LAMBDA_MAX_CONCURRENCY=4")
    parser.add_argument("--function-name", type=_function_name, default=None,
                        help="function name in the URLs, ARN and logs (default: the module name)")
    parser.add_argument("--reload", action="store_true",
                        help="restart the runtime when a .py file under the code directory changes; "
                             "the next invocation cold-starts with the new code (off by default)")
    return parser


def banner(emu: Emulator) -> str:
    """What `serve` prints once it listens (README's sample output has this shape)."""
    config = emu.config
    name = config.function_name
    reload = "; reloads on .py changes" if emu.reload else ""
    engine = ""
    if runs_aruntime(config.runtime_command):
        # The runtime's environment is built from scratch (process.runtime_env): only an
        # `--env ARUNTIME_HTTP` reaches it, never this shell's variable.
        engine = f" (wire engine {engine_description({'ARUNTIME_HTTP': config.env.get('ARUNTIME_HTTP', '')})})"
    return (
        f"aruntime: function {name!r} (handler {config.handler}, code in {config.task_root})\n"
        f"  Function URL:  {emu.url}/\n"
        f"  Invoke:        POST {emu.url}/2015-03-31/functions/{name}/invocations\n"
        f"  Stream invoke: POST {emu.url}/2021-11-15/functions/{name}/response-streaming-invocations\n"
        f"  runtime: {shlex.join(config.runtime_command)}{engine}; timeout {config.timeout:g} s; "
        f"memory {config.memory} MB{reload}. Ctrl-C stops."
    )


async def _serve(emu: Emulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await emu.start()
    echo(banner(emu))  # escaped, never raising, whatever stdout is (a code path may be non-ASCII)
    try:
        await stop.wait()
    finally:
        await emu.close()


def _warn(message: str) -> None:
    report(f"{PROG}: warning: {message}")


def startup_warnings(handler_spec: str, command: list[str] | None,
                     env: dict[str, str] | None = None) -> list[str]:
    """What would otherwise surface only at the first invocation: a handler file that is not
    there, a runtime command whose program cannot be started (not on the runtime's PATH, `env`
    being the `--env` variables), a `python -m MODULE` runtime whose module this interpreter
    does not have."""
    warnings = []
    handler, task_root = parse_handler(handler_spec)
    if (problem := handler_file_problem(handler, task_root)) is not None:
        warnings.append(f"{problem}: the first invocation will fail with Runtime.ImportModuleError "
                        f"(the handler is {handler_spec!r})")
    if command and (program := missing_program(command, task_root, (env or {}).get("PATH"))) is not None:
        if "/" not in program:
            where = "is not on PATH"
        elif program.startswith("/"):
            where = "is not an executable file"
        else:
            where = f"is not an executable file in {task_root} (the runtime's working directory)"
        warnings.append(f"the runtime command's program {program!r} {where}: every invocation will fail "
                        "with Runtime.InvalidEntrypoint")
    elif command and (module := missing_module(command)) is not None:
        extra = f" ({install_hint('reference')})" if module == "awslambdaric" else ""
        warnings.append(f"{module} is not installed for {command[0]}{extra}: the runtime cannot start")
    return warnings


def _listen_problem(e: BaseException) -> str:
    """Why the invoke surfaces could not listen, and what to do: the OS's words for the errno
    (asyncio wraps them in "error while attempting to bind on address ..."), else the error."""
    number = getattr(e, "errno", None)
    if not isinstance(number, int):
        return str(getattr(e, "strerror", None) or e)
    reason = os.strerror(number).lower()
    if number == errno.EADDRINUSE:
        return f"{reason} (another aruntime serve? --port N picks another port, --port 0 a free one)"
    if number == errno.EACCES:
        return f"{reason} (ports below 1024 need privileges: --port N picks another)"
    if number == errno.EADDRNOTAVAIL:
        return f"{reason} (--host must be an address of this machine, such as 127.0.0.1)"
    return reason


def main(argv: list[str]) -> int:
    """Run `aruntime serve`; returns the exit status (2: bad arguments or missing extra)."""
    args = build_parser().parse_args(argv)
    command = resolve_runtime_command(shlex.split(args.runtime_command)) if args.runtime_command else None
    for warning in startup_warnings(args.handler, command, dict(args.env)):
        _warn(warning)
    try:
        from ..emulator.reload import ReloadUnavailable
        from ..emulator.server import Emulator
    except ModuleNotFoundError as e:
        if (e.name or "").startswith("aruntime"):
            raise
        print(f"{PROG}: the local Lambda needs {e.name}, from the emulator extra: {install_hint('emulator')}",
              file=sys.stderr)
        return 2
    emu = Emulator(
        args.handler,
        runtime_command=command,
        env=dict(args.env),
        timeout=args.timeout,
        memory=args.memory,
        host=args.host,
        port=args.port,
        function_name=args.function_name,
        reload=args.reload,
    )
    try:
        asyncio.run(_serve(emu))
    except ReloadUnavailable as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except (OSError, OverflowError) as e:
        print(f"{PROG}: cannot listen on {args.host}:{args.port}: {_listen_problem(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        settle_stdio()  # a stdout gone (`aruntime serve | head`) must not fail the exit
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
