"""`python -m aruntime [HANDLER]` runs the runtime; `python -m aruntime serve ...` the emulator."""

from __future__ import annotations

import os
import sys

USAGE = """usage:
  python -m aruntime [HANDLER]        run the runtime (HANDLER defaults to $_HANDLER)
  aruntime serve HANDLER [options]    run a function locally on the emulator (aruntime serve -h)
  aruntime layer build [options]      build a Lambda layer zip (aruntime layer build -h)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "serve":
        from .emulator.cli import main as serve

        return serve(args[1:])
    if args and args[0] == "layer":
        from .layer import main as layer

        return layer(args[1:])
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    from .runtime import main as run

    return run(args[0] if args else os.environ.get("_HANDLER"))


if __name__ == "__main__":
    sys.exit(main())
