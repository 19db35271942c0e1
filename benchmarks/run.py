"""`python -m benchmarks [--quick|--tiny]`: aruntime vs awslambdaric vs the floor, one run.

Writes <out>/latest.md, latest.json and (with matplotlib) latest.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from . import procstat, report  # noqa: E402
from .scenarios import DEFAULT_RUNTIMES, FULL, QUICK, TINY, Config, Runtime, RunFailed, Scenarios, all_runtimes, results_dir  # noqa: E402
from .server import RuntimeAPIServer  # noqa: E402


def _rotate(items: list[Runtime], k: int) -> list[Runtime]:
    # Alternate who goes first each round so drift (thermal, caches, neighbours) spreads evenly.
    k %= max(len(items), 1)
    return items[k:] + items[:k]


async def run_all(
    cfg: Config, runtimes: list[Runtime], log_path: Path, say=print, callgrind: bool = False
) -> tuple[report.Results, report.Failures]:
    results: report.Results = {}
    failures: report.Failures = {}
    server = RuntimeAPIServer()
    await server.start()
    sc = Scenarios(server, cfg, log_path)

    async def attempt(rt: Runtime, scenario: str, job) -> None:
        if (rt.name, scenario) in failures:
            return  # it failed in an earlier round; it would fail again
        t0 = time.monotonic()
        try:
            got = await job
        except Exception as e:  # noqa: BLE001 - one broken scenario must not lose the run
            failures[(rt.name, scenario)] = (str(e) if isinstance(e, RunFailed) else "") or repr(e)
            say(f"  {rt.name:12} {scenario:10} FAILED: {str(e)[:200]}")
            return
        for key, value in got.items():
            results.setdefault(key, {}).setdefault(rt.name, []).append(value)
        shown = ", ".join(f"{k}={report._num(v)}" for k, v in list(got.items())[:4])
        say(f"  {rt.name:12} {scenario:10} {time.monotonic() - t0:5.1f}s  {shown}")

    try:
        say("warm-up (unmeasured): one start per runtime, with and without boto3")
        for rt in runtimes:
            for handler in ("bench_handlers.echo", "bench_boto3.echo"):
                try:
                    await sc._run(rt, handler, _init_only())
                except RunFailed as e:
                    say(f"  {rt.name}: {str(e)[:200]}")
        for r in range(cfg.rounds):
            say(f"round {r + 1}/{cfg.rounds}")
            order = _rotate(runtimes, r)
            for rt in order:
                await attempt(rt, "invokes", sc.invokes(rt))
            for rt in order:
                await attempt(rt, "init_boto3", sc.init_boto3(rt))
            for rt in order:
                if rt.streaming:
                    await attempt(rt, "streaming", sc.streaming(rt))
        if cfg.soak[-1]:
            say(f"long run: {cfg.soak[-1]:,} invokes of 100 B in one process (RSS flat?)")
            for rt in runtimes:
                if rt.concurrency:  # the runtimes (not the floor, not the bounds)
                    await attempt(rt, "soak", sc.soak(rt))
        conc = [rt for rt in runtimes if rt.concurrency]
        for r in range(cfg.conc_rounds):
            say(f"concurrency round {r + 1}/{cfg.conc_rounds}")
            for n in cfg.conc_levels:
                for rt in _rotate(conc, r):
                    await attempt(rt, f"conc{n}", sc.concurrency(rt, n))
    finally:
        await server.close()
    if callgrind:
        from . import instructions

        say("instruction counts (valgrind --tool=callgrind; deterministic, one run each)")
        counted = await instructions.measure(runtimes, log_path, say=lambda m: say(m))
        for key, per_rt in counted.items():
            for name, value in per_rt.items():
                results.setdefault(key, {}).setdefault(name, []).append(value)
        for rt in runtimes:
            if rt.name not in counted.get("instr_k_100B", {}):
                failures[(rt.name, "callgrind")] = instructions.LAST_FAILURE.get(rt.name) or (
                    "valgrind is not installed and could not be installed"
                    if instructions.valgrind() is None else "no count")
    return results, failures


def _revision() -> str:
    """The work tree's commit, so a table can be tied to the runtime code it measured."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "aruntime"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + (" + uncommitted changes in aruntime/" if dirty else "")


def _init_only():
    from .scenarios import Marks

    return Marks().session()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="2 rounds, fewer invokes (~30 s)")
    mode.add_argument("--tiny", action="store_true", help="a few invokes each: proves the harness works")
    ap.add_argument("--rounds", type=int, help="override the number of rounds")
    ap.add_argument("--runtimes", default=",".join(DEFAULT_RUNTIMES),
                    help="comma-separated, in column order; also: asyncio-h11, asyncio-raw (bounds)")
    ap.add_argument("--site", action="store_true",
                    help="start runtimes without -S (run the venv's .pth hooks at every start)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write the tables (default: results/ for a full run, "
                         "results/quick/, git-ignored, for --quick and --tiny)")
    ap.add_argument("--callgrind", action=argparse.BooleanOptionalAction, default=None,
                    help="instruction counts under valgrind (default: on for the full run)")
    args = ap.parse_args(argv)
    args.out = args.out or results_dir(full=not (args.quick or args.tiny))

    cfg, name = (TINY, "tiny") if args.tiny else (QUICK, "quick") if args.quick else (FULL, "full")
    if args.rounds:
        cfg = Config(**{**cfg.__dict__, "rounds": args.rounds})
    wanted = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    known = {rt.name: rt for rt in all_runtimes(site=args.site)}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        ap.error(f"unknown runtime(s) {', '.join(unknown)}; known: {', '.join(known)}")
    runtimes = [known[n] for n in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    # What the runtimes print (kept out of results/: it is for diagnosing a failed run).
    log_path = Path(tempfile.gettempdir()) / "aruntime-bench-runtimes.log"
    log_path.write_bytes(b"")

    # An installed package has bytecode (pip compiles it, the layer ships it), but this work
    # tree may not: with PYTHONDONTWRITEBYTECODE set every start would recompile aruntime.
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "aruntime"), quiet=1)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    t0 = time.monotonic()
    callgrind = args.callgrind if args.callgrind is not None else name == "full"
    results, failures = asyncio.run(run_all(cfg, runtimes, log_path, callgrind=callgrind))
    seconds = time.monotonic() - t0
    machine = procstat.machine_info()
    machine["aruntime"] = _revision()
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    md = report.render_markdown(cfg, name, results, failures, machine, started, seconds,
                                [rt.name for rt in runtimes], command)
    (args.out / "latest.md").write_text(md, encoding="utf-8")
    (args.out / "latest.json").write_text(
        json.dumps(
            {
                "date": started,
                "mode": name,
                "seconds": round(seconds, 1),
                "machine": machine,
                "results": results,
                "failures": {f"{rt}/{sc}": why for (rt, sc), why in failures.items()},
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    png = report.render_png(cfg, results, args.out / "latest.png")
    print()
    print(md)
    if failures:
        print(f"runtime output: {log_path}")
    print(f"wrote {args.out / 'latest.md'}" + (f" and {args.out / 'latest.png'}" if png else " (no matplotlib: no PNG)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
