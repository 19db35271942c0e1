"""What one round measures for one runtime: spawn it against the lean server, feed it
phases of pre-built events, and turn the server's samples into numbers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import site
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .server import RuntimeAPIServer, Session, build_next_answers

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HANDLERS_DIR = BENCH_DIR / "handlers"


def results_dir(full: bool) -> Path:
    """Where a run writes its tables when `--out` is not given: `results/` (committed, linked from
    README) for a full run only; a `--quick` or `--tiny` run writes `results/quick/` (git-ignored),
    so trying the benchmarks never rewrites the published figures."""
    return BENCH_DIR / "results" if full else BENCH_DIR / "results" / "quick"


@dataclass(frozen=True)
class Runtime:
    name: str
    argv: tuple[str, ...]  # the handler string is appended
    streaming: bool = False
    concurrency: bool = False
    async_handlers: bool = False


DEFAULT_RUNTIMES = ("floor", "awslambdaric", "aruntime", "aruntime-fast")


def all_runtimes(site: bool = False) -> list[Runtime]:
    """Every runtime the harness knows; the last three (a comparison and two bounds) run only
    when asked for.

    Unless `site`, runtimes start with `python -S`: `site` runs every `.pth` hook in the venv,
    and an editable install's finder plus setuptools' distutils hack cost ~17 ms of each start
    here, which no deployed function pays. `_env` puts site-packages on PYTHONPATH instead.
    """
    py: tuple[str, ...] = (sys.executable,) if site else (sys.executable, "-S")
    lean = str(BENCH_DIR / "lean_loop.py")
    return [
        Runtime("floor", (*py, str(BENCH_DIR / "floor.py")), streaming=True),
        Runtime("awslambdaric", (*py, "-m", "awslambdaric"), concurrency=True),
        # The default wire engine (h11), and the `fast` extra's (httptools).
        Runtime(
            "aruntime",
            ("/usr/bin/env", "ARUNTIME_HTTP=h11", *py, "-m", "aruntime"),
            streaming=True,
            concurrency=True,
            async_handlers=True,
        ),
        Runtime(
            "aruntime-fast",
            ("/usr/bin/env", "ARUNTIME_HTTP=httptools", *py, "-m", "aruntime"),
            streaming=True,
            concurrency=True,
            async_handlers=True,
        ),
        # The `fast` extra with asyncio's loop under concurrency too: what uvloop saves there.
        Runtime(
            "aruntime-fast-asyncio",
            ("/usr/bin/env", "ARUNTIME_HTTP=httptools", "ARUNTIME_LOOP=asyncio", *py, "-m", "aruntime"),
            streaming=True,
            concurrency=True,
            async_handlers=True,
        ),
        Runtime("asyncio-h11", (*py, lean)),
        Runtime("asyncio-raw", ("/usr/bin/env", "LEAN_RAW=1", *py, lean)),
    ]


@dataclass
class Config:
    rounds: int
    small: tuple[int, int, int]  # warm-up, first memory mark, total (100 B events)
    medium: tuple[int, int]  # warm-up, measured (10 KiB)
    large: tuple[int, int]  # warm-up, measured (1 MiB)
    stamp: tuple[int, int]  # streaming first-byte latency: warm-up, measured invokes
    bulk: tuple[int, int, int]  # warm-up, measured invokes, 64 KiB chunks per invoke
    sse: tuple[int, int, int]  # warm-up, measured invokes, SSE events per invoke
    conc_levels: tuple[int, ...]
    conc_rounds: int
    conc_per_slot: tuple[int, int]  # warm-up and measured invokes per concurrency slot
    conc_sleep_ms: int
    timeout: float  # per runtime process
    soak: tuple[int, int, int] = (0, 0, 0)  # RSS marks (invokes) of the long run; 0: no soak


FULL = Config(
    rounds=7,
    small=(500, 1000, 10000),
    medium=(100, 3000),
    large=(5, 60),
    stamp=(5, 50),
    bulk=(1, 8, 512),
    sse=(1, 5, 10000),
    conc_levels=(1, 8, 64),
    conc_rounds=3,
    conc_per_slot=(10, 100),
    conc_sleep_ms=10,
    timeout=180.0,
    soak=(10_000, 50_000, 100_000),
)
QUICK = Config(
    rounds=2,
    small=(200, 1000, 3000),
    medium=(50, 500),
    large=(2, 10),
    stamp=(2, 20),
    bulk=(1, 2, 256),
    sse=(1, 1, 10000),
    conc_levels=(1, 8, 64),
    conc_rounds=1,
    conc_per_slot=(2, 20),
    conc_sleep_ms=10,
    timeout=60.0,
    soak=(2_000, 10_000, 20_000),
)
TINY = Config(  # the smoke test: every row produced, nothing measured well
    rounds=1,
    small=(5, 10, 30),
    medium=(2, 10),
    large=(1, 2),
    stamp=(1, 3),
    bulk=(1, 1, 16),
    sse=(1, 1, 200),
    conc_levels=(1, 8),
    conc_rounds=1,
    conc_per_slot=(1, 3),
    conc_sleep_ms=5,
    timeout=30.0,
    soak=(20, 60, 100),
)


class RunFailed(Exception):
    pass


def make_event(size: int) -> bytes:
    """Compact JSON of exactly `size` bytes, shaped like a real event (many small records)."""
    records: list[dict[str, object]] = []
    event: dict[str, object] = {"source": "bench", "records": records, "pad": ""}
    used = len(_dumps(event))
    n = 0
    while True:
        rec = {"id": n, "name": f"item-{n:06d}", "price": 12.5 + n, "ok": n % 2 == 0, "tags": ["a", "b"]}
        cost = len(_dumps(rec)) + (1 if records else 0)
        if used + cost > size:
            break
        records.append(rec)
        used += cost
        n += 1
    event["pad"] = "x" * (size - used)
    out = _dumps(event)
    assert len(out) == size, (len(out), size)
    return out


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _env(api: str, handler: str, extra: dict[str, str] | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "_HANDLER", "_LAMBDA", "_X_AMZN", "LAMBDA_", "PYTEST"))
    }
    path = env.get("PYTHONPATH")
    env.update(
        AWS_LAMBDA_RUNTIME_API=api,
        _HANDLER=handler,
        LAMBDA_TASK_ROOT=str(HANDLERS_DIR),
        AWS_LAMBDA_FUNCTION_NAME="bench",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/bench",
        AWS_LAMBDA_LOG_STREAM_NAME="2026/01/01/[$LATEST]bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        # The work tree, so `-m aruntime` runs this checkout whether installed or not; then
        # site-packages, for runtimes started with -S (no .pth hooks).
        PYTHONPATH=os.pathsep.join([str(REPO_DIR), *site.getsitepackages(), *([path] if path else [])]),
    )
    env.update(extra or {})
    return env


async def run_session(
    server: RuntimeAPIServer,
    rt: Runtime,
    handler: str,
    session: Session,
    *,
    timeout: float,
    log_path: Path,
    env: dict[str, str] | None = None,
) -> Session:
    """Run one runtime process until the session's last invoke, then kill it."""
    server.session = session
    with open(log_path, "ab") as log:
        log.write(f"\n=== {rt.name} {handler} {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        session.spawn_ns = time.monotonic_ns()
        proc = await asyncio.create_subprocess_exec(
            *rt.argv,
            handler,
            cwd=str(HANDLERS_DIR),
            env=_env(server.address, handler, env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: forked workers die with it
        )
    session.pid = proc.pid
    exited = asyncio.ensure_future(proc.wait())
    finished = asyncio.ensure_future(session.done.wait())
    died = False
    try:
        await asyncio.wait({exited, finished}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        died = exited.done()
        if session.exit_status is not None and not died:
            # Told to exit: let it, so whatever it writes on the way out (a profile) lands.
            await asyncio.wait({exited}, timeout=30)
    finally:
        finished.cancel()
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await asyncio.wait_for(exited, 10)
        server.session = None
    if not session.done.is_set():
        why = f"exited with code {proc.returncode}" if died else f"timed out after {timeout:.0f}s"
        raise RunFailed(f"{rt.name} {handler}: {why} after {session.gets} GET /next; log: {_tail(log_path)}")
    if session.errors or session.init_errors:
        raise RunFailed(
            f"{rt.name} {handler}: {session.errors} invoke errors {session.error_types[:3]}, "
            f"{session.init_errors} init errors; log: {_tail(log_path)}"
        )
    return session


def _tail(path: Path, n: int = 400) -> str:
    try:
        text = path.read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return "?"
    return " | ".join(line for line in text.splitlines() if line.strip())


class Marks:
    """Lays out consecutive phases and remembers the GET index where each starts and ends."""

    def __init__(self) -> None:
        self.segments: list[tuple[int, list[bytes]]] = []
        self.marks: set[int] = {0}
        self.at = 0

    def phase(self, answers: list[bytes], warmup: int, count: int) -> tuple[int, int]:
        self.segments.append((warmup + count, answers))
        start, end = self.at + warmup, self.at + warmup + count
        self.marks.update((start, end))
        self.at = end
        return start, end

    def session(self, **kw: bool) -> Session:
        return Session(self.segments, self.marks, **kw)


Metrics = dict[str, float]


def _span(s: Session, a: int, b: int) -> tuple[float, float, int]:
    """(cpu seconds, wall seconds, invokes) between GET marks a and b."""
    sa, sb = s.samples[a], s.samples[b]
    assert sa.cpu_s is not None and sb.cpu_s is not None
    return sb.cpu_s - sa.cpu_s, (sb.t_ns - sa.t_ns) / 1e9, sb.finished - sa.finished


def _init_metrics(s: Session, prefix: str) -> Metrics:
    first = s.samples[0]
    out = {f"{prefix}_ms": (first.t_ns - s.spawn_ns) / 1e6}
    if first.cpu_s is not None:
        out[f"{prefix}_cpu_ms"] = first.cpu_s * 1e3
    return out


class Scenarios:
    def __init__(self, server: RuntimeAPIServer, cfg: Config, log_path: Path) -> None:
        self.server = server
        self.cfg = cfg
        self.log_path = log_path
        self.small = build_next_answers(make_event(100))
        self.medium = build_next_answers(make_event(10 * 1024))
        self.large = build_next_answers(make_event(1024 * 1024))
        self.empty = build_next_answers(b"{}")

    async def _run(self, rt: Runtime, handler: str, s: Session, env: dict[str, str] | None = None,
                   timeout: float | None = None) -> Session:
        return await run_session(self.server, rt, handler, s, timeout=timeout or self.cfg.timeout,
                                 log_path=self.log_path, env=env)

    async def init_boto3(self, rt: Runtime) -> Metrics:
        """Start with a handler module that imports boto3, and one invoke (the cold start as a
        caller sees it ends at the first response)."""
        m = Marks()
        m.phase(self.empty, 0, 1)
        s = await self._run(rt, "bench_boto3.echo", m.session())
        out = _init_metrics(s, "init_boto3")
        out["init_boto3_rss_mib"] = (s.samples[0].mem_kib or 0) / 1024
        out["first_response_boto3_ms"] = (s.first_response_ns - s.spawn_ns) / 1e6
        return out

    async def soak(self, rt: Runtime) -> Metrics:
        """Many 100 B invokes in one process: RSS at each mark (is it flat?)."""
        marks = self.cfg.soak
        m = Marks()
        m.phase(self.small, 0, marks[-1])
        m.marks.update(marks)
        s = await self._run(rt, "bench_handlers.echo", m.session(), timeout=max(self.cfg.timeout, 600))
        rss = [(s.samples[k].mem_kib or 0) for k in marks]
        out = {f"soak_rss_mib_{k}": v / 1024 for k, v in zip(marks, rss)}
        out["soak_growth_kib"] = float(rss[-1] - rss[0])
        return out

    async def invokes(self, rt: Runtime) -> Metrics:
        """Init, then 100 B / 10 KiB / 1 MiB echo invokes one at a time, in one process."""
        c = self.cfg
        m = Marks()
        warm, mem_first, total = c.small
        small_start, small_end = m.phase(self.small, warm, total - warm)
        m.marks.add(mem_first)
        med = m.phase(self.medium, *c.medium)
        large = m.phase(self.large, *c.large)
        s = await self._run(rt, "bench_handlers.echo", m.session())
        out = _init_metrics(s, "init")
        out["first_response_ms"] = (s.first_response_ns - s.spawn_ns) / 1e6
        for key, (a, b) in (("100B", (small_start, small_end)), ("10KiB", med), ("1MiB", large)):
            cpu, wall, n = _span(s, a, b)
            out[f"cpu_us_{key}"] = cpu / n * 1e6
            out[f"ips_{key}"] = n / wall
        sa, sb = s.samples[small_start], s.samples[small_end]
        out["server_cpu_us_100B"] = (sb.server_cpu_s - sa.server_cpu_s) / (sb.finished - sa.finished) * 1e6
        out["init_rss_mib"] = (s.samples[0].mem_kib or 0) / 1024
        out["rss_first_mib"] = (s.samples[mem_first].mem_kib or 0) / 1024
        out["rss_last_mib"] = (s.samples[small_end].mem_kib or 0) / 1024
        out["rss_growth_kib"] = float((s.samples[small_end].mem_kib or 0) - (s.samples[mem_first].mem_kib or 0))
        return out

    async def streaming(self, rt: Runtime) -> Metrics:
        c = self.cfg
        m = Marks()
        stamp = m.phase(build_next_answers(_dumps({"mode": "stamp"})), *c.stamp)
        bw, bc, bn = c.bulk
        bulk = m.phase(build_next_answers(_dumps({"mode": "bulk", "n": bn})), bw, bc)
        sw, sc, sn = c.sse
        sse = m.phase(build_next_answers(_dumps({"mode": "sse", "n": sn})), sw, sc)
        s = await self._run(rt, "bench_handlers.stream", m.session())
        expected = m.at
        if s.stream_responses != expected:
            raise RunFailed(f"{rt.name}: {s.stream_responses} of {expected} responses were streamed")
        lat = sorted(s.stream_latency_ns[c.stamp[0] :])
        if not lat:
            raise RunFailed(f"{rt.name}: no first-yield timestamps reached the server")
        out = {"stream_first_byte_us": lat[len(lat) // 2] / 1e3}
        cpu, wall, n = _span(s, *bulk)
        out["stream_mb_s"] = n * bn * 65536 / wall / 1e6
        out["stream_cpu_us_64k"] = cpu / (n * bn) * 1e6
        cpu, wall, n = _span(s, *sse)
        out["stream_cpu_us_sse"] = cpu / (n * sn) * 1e6
        _ = stamp
        return out

    async def concurrency(self, rt: Runtime, n: int) -> Metrics:
        """N invocations in flight: async handler in aruntime, forked workers in the reference."""
        c = self.cfg
        warm, count = c.conc_per_slot
        event = _dumps({"sleep_ms": c.conc_sleep_ms, "pad": "x" * 40})
        m = Marks()
        m.segments.append((n * (warm + count), build_next_answers(event)))
        m.marks = {n * warm}
        m.at = n * (warm + count)
        handler = "bench_handlers.asleepy" if rt.async_handlers else "bench_handlers.sleepy"
        s = m.session(tree=True, concurrent=True)
        s = await self._run(rt, handler, s, env={"AWS_LAMBDA_MAX_CONCURRENCY": str(n)})
        # Timing noise can keep a slot or two idle at any moment; one-at-a-time means unsupported.
        if n > 1 and s.max_in_flight < max(2, n // 2):
            raise RunFailed(f"pending: {rt.name} kept at most {s.max_in_flight} of {n} invocations in flight")
        cpu, wall, done = _span(s, n * warm, m.at)
        return {
            f"conc{n}_ips": done / wall,
            f"conc{n}_cpu_us": cpu / done * 1e6,
            f"conc{n}_pss_mib": (s.samples[m.at].mem_kib or 0) / 1024,
        }
