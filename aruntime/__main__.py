"""`python -m aruntime [HANDLER]` (and the `aruntime` script): the runtime, or a tool.

Inside Lambda (`AWS_LAMBDA_RUNTIME_API` set) a handler argument, or none, runs the runtime and
nothing else is imported. A tool's command word (`serve`, `layer`), `--help`, `--version`, or
any call outside Lambda goes to `aruntime.tools`, which a Lambda layer does not ship.
"""

from __future__ import annotations

import os
import sys

_TOOL_WORDS = frozenset({"serve", "layer", "help", "version", "-h", "--help", "-V", "--version"})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if (args and args[0] in _TOOL_WORDS) or not os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        try:
            from .tools.cli import main as tools
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("aruntime.tools"):
                raise
            sys.stderr.write("aruntime: this copy holds the runtime only (as a Lambda layer does): "
                             "install the package for the command-line tools (not on PyPI yet: "
                             "from a checkout of aruntime, pip install -e .)\n")
            return 2
        return tools(args)
    from .runtime import main as run

    return run(args[0] if args else os.environ.get("_HANDLER"))


if __name__ == "__main__":
    sys.exit(main())
