"""Profile one runtime under the lean server: `python -m benchmarks.profile aruntime`.

Runs N one-at-a-time echo invokes of one event size under cProfile (in the runtime process),
then prints the top functions by own time, per invoke. `--importtime` instead prints the
slowest imports of the runtime's start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from .scenarios import HANDLERS_DIR, Marks, Runtime, Scenarios, _env, all_runtimes, run_session
from .server import RuntimeAPIServer

SIZES = {"100B": "small", "10KiB": "medium", "1MiB": "large"}


async def _profile(rt: Runtime, size: str, invokes: int, out: Path, log: Path) -> None:
    server = RuntimeAPIServer()
    await server.start()
    try:
        sc = Scenarios(server, __import__("benchmarks.scenarios").scenarios.QUICK, log)
        m = Marks()
        m.phase(getattr(sc, SIZES[size]), 0, invokes)
        session = m.session()
        session.exit_status = 500
        # `-m cProfile -o OUT -m module` for runtimes run as modules, `-m cProfile -o OUT script`.
        # A leading `/usr/bin/env VAR=value ...` (the runtimes that pick a wire engine) stays.
        prefix: tuple[str, ...] = ()
        cmd = rt.argv
        if cmd[0] == "/usr/bin/env":
            n = 1
            while "=" in cmd[n]:
                n += 1
            prefix, cmd = cmd[:n], cmd[n:]
        flags = [a for a in cmd[1:2] if a == "-S"]
        argv = cmd[1 + len(flags) :]
        prof = Runtime(rt.name, (*prefix, sys.executable, *flags, "-m", "cProfile", "-o", str(out), *argv))
        await run_session(server, prof, "bench_handlers.echo", session, timeout=300, log_path=log)
        # The runtime exits on the 500; give it a moment to write the profile.
        for _ in range(100):
            if out.exists() and out.stat().st_size:
                break
            await asyncio.sleep(0.05)
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    ap.add_argument("runtime", choices=[rt.name for rt in all_runtimes()])
    ap.add_argument("--size", choices=list(SIZES), default="100B")
    ap.add_argument("--invokes", type=int, default=5000)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args(argv)
    rt = next(r for r in all_runtimes() if r.name == args.runtime)
    if args.importtime:
        mod = "awslambdaric.__main__" if rt.name == "awslambdaric" else "aruntime.__main__"
        env = _env("127.0.0.1:9", "bench_handlers.echo", None)
        err = subprocess.run(
            [sys.executable, "-S", "-X", "importtime", "-c", f"import {mod}"],
            cwd=HANDLERS_DIR, env=env, capture_output=True, text=True, timeout=60,
        ).stderr
        rows = [ln.split("|") for ln in err.splitlines() if ln.startswith("import time:") and "|" in ln]
        rows = [r for r in rows if r[0].split(":")[1].strip().isdigit()]
        rows.sort(key=lambda r: -int(r[1]))
        for r in rows[: args.top]:
            print(f"{int(r[1]) / 1000:8.1f} ms cumulative {int(r[0].split(':')[1]) / 1000:6.1f} ms self  {r[2].rstrip()}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prof.out"
        asyncio.run(_profile(rt, args.size, args.invokes, out, Path(tmp) / "log"))
        if not out.exists():
            print("no profile written; log:", (Path(tmp) / "log").read_text()[-2000:])
            return 1
        stats = pstats.Stats(str(out))
        print(f"{rt.name}: {args.invokes} invokes of {args.size}; times are totals (divide by invokes)")
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
