"""`python -m benchmarks.otel [--quick|--tiny]`: the CPU an invocation costs with OpenTelemetry
spans on and off, aruntime beside awslambdaric, in one run.

Every column runs `handlers/bench_otel.py` (the SDK with a BatchSpanProcessor and an exporter
that drops spans) on 100 B events, one at a time, against the harness's Runtime API server;
CPU is the runtime process's own, read at `GET /next` marks (see README.md). Columns:
awslambdaric; awslambdaric with OpenTelemetry's Lambda instrumentation (the reference's way to
get an invocation span); aruntime and aruntime[fast] with `aruntime.otel` off and on. The
runtimes alternate each round. Writes results/otel.md and results/otel.json (`--out DIR`).
Ratios: on / off for each runtime, and each column / awslambdaric.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/otel.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from .scenarios import Marks, Runtime, all_runtimes, make_event, results_dir, run_session  # noqa: E402
from .server import RuntimeAPIServer, build_next_answers  # noqa: E402

HANDLER = "bench_otel.echo"


@dataclass(frozen=True)
class Mode:
    rounds: int
    warm: int
    count: int
    timeout: float


FULL = Mode(rounds=5, warm=500, count=5000, timeout=180.0)
QUICK = Mode(rounds=2, warm=200, count=2000, timeout=60.0)
TINY = Mode(rounds=1, warm=5, count=30, timeout=30.0)


@dataclass(frozen=True)
class Column:
    name: str
    runtime: Runtime
    env: dict[str, str]


def columns() -> list[Column]:
    known = {rt.name: rt for rt in all_runtimes()}
    ref, h11, fast = known["awslambdaric"], known["aruntime"], known["aruntime-fast"]
    return [
        Column("awslambdaric", ref, {}),
        Column("awslambdaric + instrumentor", ref, {"BENCH_OTEL_INSTRUMENTOR": "1"}),
        Column("aruntime, otel off", h11, {}),
        Column("aruntime, otel on", h11, {"ARUNTIME_OTEL": "1"}),
        Column("aruntime[fast], otel off", fast, {}),
        Column("aruntime[fast], otel on", fast, {"ARUNTIME_OTEL": "1"}),
    ]


async def cpu_per_invoke(server: RuntimeAPIServer, column: Column, mode: Mode, log: Path) -> float:
    """µs of the runtime's CPU per 100 B invoke, after a warm-up, in one process."""
    marks = Marks()
    start, end = marks.phase(build_next_answers(make_event(100)), mode.warm, mode.count)
    s = await run_session(server, column.runtime, HANDLER, marks.session(), timeout=mode.timeout,
                          log_path=log, env=column.env)
    a, b = s.samples[start], s.samples[end]
    assert a.cpu_s is not None and b.cpu_s is not None
    return (b.cpu_s - a.cpu_s) / (b.finished - a.finished) * 1e6


def table(results: dict[str, list[float]]) -> str:
    med = {name: statistics.median(v) for name, v in results.items() if v}
    ref = med.get("awslambdaric")
    lines = ["| runtime | CPU per 100 B invoke (µs) | spread | vs awslambdaric | on / off |",
             "|---|---:|---|---:|---:|"]
    for name, values in results.items():
        if not values:
            lines.append(f"| {name} | failed | | | |")
            continue
        off = {"awslambdaric + instrumentor": "awslambdaric",
               "aruntime, otel on": "aruntime, otel off",
               "aruntime[fast], otel on": "aruntime[fast], otel off"}.get(name)
        on_off = f"{med[name] / med[off]:.2f}×" if off in med else ""
        vs_ref = f"{med[name] / ref:.2f}×" if ref else ""
        lines.append(f"| {name} | {med[name]:,.0f} | {min(values):,.0f}–{max(values):,.0f} | "
                     f"{vs_ref} | {on_off} |")
    return "\n".join(lines) + "\n"


async def run(mode: Mode, log: Path, say=print) -> dict[str, list[float]]:
    server = RuntimeAPIServer()
    await server.start()
    cols = columns()
    results: dict[str, list[float]] = {c.name: [] for c in cols}
    try:
        for r in range(mode.rounds):
            say(f"round {r + 1}/{mode.rounds}")
            k = r % len(cols)
            for column in cols[k:] + cols[:k]:
                try:
                    got = await cpu_per_invoke(server, column, mode, log)
                except Exception as e:  # noqa: BLE001 - one failed column must not lose the run
                    say(f"  {column.name:30} FAILED: {str(e)[:200]}")
                    continue
                results[column.name].append(got)
                say(f"  {column.name:30} {got:8.1f} µs")
    finally:
        await server.close()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.otel", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", type=Path, default=None,
                    help="default: results/ for a full run, results/quick/ (git-ignored) otherwise")
    args = ap.parse_args(argv)
    args.out = args.out or results_dir(full=not (args.quick or args.tiny))
    mode = TINY if args.tiny else QUICK if args.quick else FULL
    log = Path(tempfile.gettempdir()) / "aruntime-bench-otel.log"
    log.write_bytes(b"")
    results = asyncio.run(run(mode, log))
    args.out.mkdir(parents=True, exist_ok=True)
    head = (f"# OpenTelemetry on vs off: CPU per 100 B invoke\n\n"
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
            f"CPython {platform.python_version()}; median of {mode.rounds} rounds, "
            f"{mode.count} invokes each.\n\n")
    (args.out / "otel.md").write_text(head + table(results), encoding="utf-8")
    (args.out / "otel.json").write_text(json.dumps({"mode": mode.__dict__, "results": results}, indent=1),
                                        encoding="utf-8")
    print(table(results))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
