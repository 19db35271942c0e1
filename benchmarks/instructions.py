"""Instruction counts (`valgrind --tool=callgrind`): what wall and CPU clocks on a shared machine
cannot show steadily.

Each runtime runs under callgrind against the lean server (`server.py`), which answers the
`GET /next` after the last invoke with 500 so the runtime exits by itself and callgrind writes
its totals. Per invoke = (instructions of a run with `hi` invokes - of one with `lo`) / (hi - lo):
start-up and exit cancel out. Init = a run that exits at its first `GET /next` (start-up plus
the interpreter's exit, which every runtime pays alike); first response = one that exits at its
second (init + the first invoke).

`python -m benchmarks.instructions [--runtimes floor,awslambdaric,aruntime,aruntime-fast]`
prints a table; `python -m benchmarks` runs it too and puts the rows in its table.
Instruction counts are deterministic to within a fraction of a percent (hash seed fixed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/instructions.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from .scenarios import DEFAULT_RUNTIMES, Marks, Runtime, RunFailed, all_runtimes, make_event, run_session  # noqa: E402
from .server import RuntimeAPIServer, build_next_answers  # noqa: E402

# Invokes of the two runs whose difference is the per-invoke count.
LO, HI = 50, 550
# Why a runtime has no counts (shown under the table).
LAST_FAILURE: dict[str, str] = {}


def valgrind() -> str | None:
    """The valgrind executable, installing Debian's package when it is missing and we can (the
    bench set-up's duty); None (and the reason printed) when there is none."""
    found = shutil.which("valgrind")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "valgrind"], capture_output=True, timeout=600)
        found = shutil.which("valgrind")
    return found


def _under_callgrind(rt: Runtime, out: Path, vg: str) -> Runtime:
    """`rt` with valgrind in front of its interpreter (after a leading `/usr/bin/env VAR=...`)."""
    argv = rt.argv
    prefix: tuple[str, ...] = ()
    if argv[0] == "/usr/bin/env":
        n = 1
        while "=" in argv[n]:
            n += 1
        prefix, argv = argv[:n], argv[n:]
    tool = (vg, "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-line=no",
            "--compress-strings=no", "--compress-pos=no", "-q")
    return Runtime(rt.name, (*prefix, *tool, *argv), rt.streaming, rt.concurrency, rt.async_handlers)


def _total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RunFailed(f"no totals in {path}")


async def count(server: RuntimeAPIServer, rt: Runtime, handler: str, answers: list[bytes], invokes: int,
                vg: str, log: Path, timeout: float = 900) -> int:
    """Instructions of one process: start, `invokes` invokes, then exit on the 500."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        m = Marks()
        if invokes:
            m.phase(answers, 0, invokes)
        session = m.session()
        session.exit_status = 500
        await run_session(server, _under_callgrind(rt, out, vg), handler, session, timeout=timeout,
                          log_path=log, env={"PYTHONHASHSEED": "0"})
        for _ in range(200):  # callgrind writes its file as the process exits
            if out.exists() and out.stat().st_size:
                break
            await asyncio.sleep(0.05)
        return _total(out)


async def measure(runtimes: list[Runtime], log: Path, say=print, lo: int = LO, hi: int = HI) -> dict[str, dict[str, float]]:
    """{metric: {runtime: value}}: instructions per 100 B invoke, init, and to the first response."""
    vg = valgrind()
    if vg is None:
        say("  valgrind: not installed and could not be installed; instruction rows are absent")
        for rt in runtimes:
            LAST_FAILURE[rt.name] = "valgrind is not installed and could not be installed"
        return {}
    server = RuntimeAPIServer()
    await server.start()
    small = build_next_answers(make_event(100))
    empty = build_next_answers(b"{}")
    out: dict[str, dict[str, float]] = {}
    try:
        for rt in runtimes:
            try:
                a = await count(server, rt, "bench_handlers.echo", small, lo, vg, log)
                b = await count(server, rt, "bench_handlers.echo", small, hi, vg, log)
                init = await count(server, rt, "bench_handlers.echo", small, 0, vg, log)
                first = await count(server, rt, "bench_handlers.echo", empty, 1, vg, log)
                boto = await count(server, rt, "bench_boto3.echo", empty, 1, vg, log)
            except (RunFailed, OSError, asyncio.TimeoutError) as e:
                LAST_FAILURE[rt.name] = f"callgrind: {str(e)[:200]}"
                say(f"  {rt.name:14} callgrind FAILED: {str(e)[:200]}")
                continue
            per = (b - a) / (hi - lo)
            for key, value in (("instr_k_100B", per / 1e3), ("instr_m_init", init / 1e6),
                               ("instr_m_first", first / 1e6), ("instr_m_first_boto3", boto / 1e6)):
                out.setdefault(key, {})[rt.name] = value
            say(f"  {rt.name:14} callgrind: {per / 1e3:,.0f}k instructions per 100 B invoke, "
                f"{init / 1e6:,.1f}M to the first GET /next (and exit), {first / 1e6:,.1f}M to the "
                f"first response, {boto / 1e6:,.1f}M with boto3")
    finally:
        await server.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    ap.add_argument("--runtimes", default=",".join(DEFAULT_RUNTIMES))
    ap.add_argument("--invokes", default=f"{LO},{HI}", help="the two run lengths, e.g. 50,550")
    args = ap.parse_args(argv)
    known = {rt.name: rt for rt in all_runtimes()}
    runtimes = [known[n.strip()] for n in args.runtimes.split(",") if n.strip()]
    lo, hi = (int(x) for x in args.invokes.split(","))
    log = Path(tempfile.gettempdir()) / "aruntime-bench-callgrind.log"
    log.write_bytes(b"")
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "aruntime"), quiet=1)
    asyncio.run(measure(runtimes, log, lo=lo, hi=hi))
    return 0


if __name__ == "__main__":
    sys.exit(main())
