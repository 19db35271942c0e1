"""The `aruntime` command outside Lambda: usage, `--version`, and the tools' dispatch."""

from __future__ import annotations

import difflib
import os
import sys

try:
    from .. import __version__
except ImportError:  # the package's __init__ never ran: see _shadowed_by()
    __version__ = ""

USAGE = """\
usage: aruntime serve HANDLER [options]    run a function locally: Invoke, stream invoke, Function URL (aruntime serve -h)
       aruntime layer build [options]      build a Lambda layer that runs aruntime (aruntime layer build -h)
       aruntime --version
       python -m aruntime [HANDLER]        the runtime itself, inside Lambda (HANDLER defaults to $_HANDLER)
"""


def main(args: list[str]) -> int:
    """Run the tool `args` names; returns the exit status (2 for a usage error)."""
    if (folder := _shadowed_by()) is not None:
        sys.stderr.write(
            f"aruntime: Python took the folder {folder} for the aruntime package, since it is in the "
            "working directory, and the installed package never loaded (an editable install's limit, "
            "pypa/setuptools#3557): run python -m aruntime from another folder, or use the `aruntime` "
            "command, which works from anywhere\n")
        return 2
    if not args:
        sys.stderr.write(USAGE)
        return 2
    command, rest = args[0], args[1:]
    if command == "serve":
        from .serve import main as serve

        return serve(rest)
    if command == "layer":
        from .layer import main as layer

        _escape_unencodable(sys.stdout)  # paths it prints may be non-ASCII, stdout ASCII
        return layer(rest)
    if command in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if command in ("-V", "--version", "version"):
        sys.stdout.write(f"aruntime {__version__}\n")
        return 0
    if command.startswith("-"):
        sys.stderr.write(f"aruntime: unknown option {command!r}\n{USAGE}")
        return 2
    if rest or not any(c in command for c in ".:/"):
        # Not a handler (module.function, file.py:function): a mistyped command, `aruntime
        # server app.py:handler`, is not a handler named "server" to serve.
        close = difflib.get_close_matches(command, ("serve", "layer"), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        sys.stderr.write(f"aruntime: unknown command {command!r}{hint}\n{USAGE}")
        return 2
    # A handler outside Lambda: nothing to poll. Say where the Runtime API comes from.
    sys.stderr.write(
        f"aruntime: AWS_LAMBDA_RUNTIME_API is not set, so there is no Lambda to serve {command!r}: "
        f"run it locally with `aruntime serve {command}`\n")
    return 1


def _shadowed_by() -> str | None:
    """The folder taken for the `aruntime` package when its `__init__` never ran, or None.

    `python -m aruntime` started in the folder that holds a checkout (`/home/you` for
    `/home/you/aruntime`) with the checkout installed editable: the checkout's folder, having no
    `__init__.py`, is found first on `sys.path` as a namespace package, and setuptools' editable
    finder adds the real package's folder to its path, so the submodules load but the package's
    own names (`__version__`, `streaming`...) do not exist."""
    package = sys.modules.get(__name__.rpartition(".tools.")[0])
    if package is None or getattr(package, "__file__", None) is not None:
        return None
    folders = list(getattr(package, "__path__", []))
    here = [f for f in folders if os.path.dirname(os.path.abspath(f)) == os.getcwd()]
    return (here or folders or ["?"])[0]


def _escape_unencodable(stream: object) -> None:
    """A character `stream` cannot encode is written backslash-escaped instead of raising."""
    try:
        stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001, S110 - not a TextIOWrapper (replaced, None): left as is
        pass
