"""`python -m benchmarks.web [--quick|--tiny]`: a FastAPI app on aruntime.asgi vs Mangum on
awslambdaric, side by side, against the same local Runtime API server.

Both serve `handlers/bench_web_app.py` to Function URL (payload 2.0) events. aruntime streams
(the adapter's default for 2.0); Mangum can only answer buffered. Measured per runtime process,
the runtimes alternating each round:

- a 4 × 0.5 s StreamingResponse: when the status and headers, the first body chunk and the last
  byte reach the Runtime API, from the moment the event was handed out (a caller of a
  `RESPONSE_STREAM` Function URL sees them then; buffered, everything arrives at the end);
- cold start: process start → first `GET /next` (Init), and → first answer of a JSON route
  (more processes than rounds: the spread is wide);
- a warm JSON request: latency (event handed out → answer in) and the runtime's CPU per invoke;
- how many times the app's lifespan startup ran.

aruntime runs with its default wire engine (h11) and with the `fast` extra (httptools), and
once more in buffered invoke mode: the adapter's cost without the stream. Writes results/web.md and results/web.json (`--out DIR` elsewhere).
Ratio = aruntime / Mangum.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import h11

if __package__ in (None, ""):  # `python benchmarks/web.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from . import procstat  # noqa: E402
from .scenarios import BENCH_DIR, REPO_DIR, _env, all_runtimes, results_dir  # noqa: E402

SEPARATOR = b"\0" * 8


@dataclass(frozen=True)
class Mode:
    rounds: int
    warm: int  # JSON requests per round
    streams: int  # stream requests per round
    chunks: int
    delay: float  # seconds before each chunk
    cold: int  # extra processes per round that only measure the cold start


FULL = Mode(rounds=5, warm=1000, streams=3, chunks=4, delay=0.5, cold=3)
QUICK = Mode(rounds=2, warm=300, streams=1, chunks=4, delay=0.5, cold=1)
TINY = Mode(rounds=1, warm=5, streams=1, chunks=4, delay=0.05, cold=0)  # the smoke test's

RUNTIMES = {  # name -> (runtime in scenarios.all_runtimes(), handler, environment)
    "mangum": ("awslambdaric", "bench_web_mangum.handler", {}),
    "aruntime": ("aruntime", "bench_web_aruntime.handler", {}),
    # With the `fast` extra (httptools parses the Runtime API's answers).
    "aruntime-fast": ("aruntime-fast", "bench_web_aruntime.handler", {}),
    # The same handler in buffered invoke mode: what the adapter costs without the stream.
    "aruntime-buffered": ("aruntime-fast", "bench_web_aruntime.handler",
                          {"ARUNTIME_INVOKE_MODE": "buffered"}),
}


def function_url_event(path: str, query: str = "") -> bytes:
    """A Function URL (payload 2.0) GET event, as Lambda sends it."""
    host = "abcdefghij.lambda-url.us-east-1.on.aws"
    return json.dumps({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"host": host, "x-forwarded-proto": "https", "x-forwarded-port": "443",
                    "x-forwarded-for": "203.0.113.9", "accept": "*/*", "user-agent": "curl/8.5"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghij", "domainName": host,
            "domainPrefix": "abcdefghij", "requestId": str(uuid.uuid4()), "routeKey": "$default",
            "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1767225600000,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "curl/8.5"},
        },
        "isBase64Encoded": False,
    }).encode()


@dataclass
class Invocation:
    rid: str
    event: bytes
    handed_ns: int = 0
    head_ns: int = 0  # status and headers complete (streamed: the prelude's separator in)
    first_body_ns: int = 0
    done_ns: int = 0
    streamed: bool = False
    body: bytearray = field(default_factory=bytearray)
    error: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class TimedRuntimeAPI:
    """A Runtime API (h11) that hands out queued events and timestamps every answer's bytes."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Invocation] = asyncio.Queue()
        self.invocations: dict[str, Invocation] = {}
        self.gets: list[tuple[int, float | None]] = []  # (time, runtime CPU) at each GET /next
        self.pid: int | None = None
        self.first_get = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    def reset(self) -> None:
        self.queue = asyncio.Queue()
        self.invocations.clear()
        self.gets.clear()
        self.first_get = asyncio.Event()

    def push(self, event: bytes) -> Invocation:
        inv = Invocation(str(uuid.uuid4()), event)
        self.invocations[inv.rid] = inv
        self.queue.put_nowait(inv)
        return inv

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        conn = h11.Connection(h11.SERVER)

        async def next_event() -> h11.Event:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    if conn.they_are_waiting_for_100_continue:
                        writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data and conn.their_state is not h11.DONE:
                        raise ConnectionError
                    continue
                return event  # type: ignore[return-value]

        def send(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
            data = conn.send(h11.Response(status_code=status, headers=[
                *headers, (b"Content-Length", str(len(body)).encode())]))
            writer.write(data + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))

        try:
            while True:
                request = await next_event()
                if isinstance(request, h11.ConnectionClosed):
                    return
                assert isinstance(request, h11.Request), request
                target = request.target.decode()
                if target.endswith("/invocation/next"):
                    await next_event()  # EndOfMessage
                    cpu = procstat.cpu_seconds(self.pid) if self.pid else None
                    self.gets.append((time.monotonic_ns(), cpu))
                    self.first_get.set()
                    inv = await self.queue.get()
                    inv.handed_ns = time.monotonic_ns()
                    send(200, [(b"Content-Type", b"application/json"),
                               (b"Lambda-Runtime-Aws-Request-Id", inv.rid.encode()),
                               (b"Lambda-Runtime-Deadline-Ms", b"%d" % (time.time() * 1000 + 600_000)),
                               (b"Lambda-Runtime-Invoked-Function-Arn",
                                b"arn:aws:lambda:us-east-1:123456789012:function:bench")],
                         inv.event)
                else:
                    rid = target.split("/")[-2]
                    inv = self.invocations.get(rid) or Invocation(rid, b"")
                    inv.error = target.endswith("/error")
                    inv.streamed = any(k.lower() == b"lambda-runtime-function-response-mode"
                                       for k, _ in request.headers)
                    while True:
                        event = await next_event()
                        now = time.monotonic_ns()
                        if isinstance(event, h11.Data):
                            before = len(inv.body)
                            inv.body += event.data
                            if inv.streamed and not inv.head_ns and SEPARATOR in inv.body:
                                inv.head_ns = now
                            if inv.head_ns and not inv.first_body_ns and \
                                    len(inv.body) > inv.body.find(SEPARATOR) + 8 >= before:
                                inv.first_body_ns = now
                        elif isinstance(event, h11.EndOfMessage):
                            inv.done_ns = now
                            if not inv.streamed:  # buffered: nothing reaches a caller earlier
                                inv.head_ns = inv.first_body_ns = now
                            break
                    send(202, [(b"Content-Type", b"application/json")], b'{"status":"OK"}')
                    inv.done.set()
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()


async def one_round(api: TimedRuntimeAPI, name: str, mode: Mode, log: Path,
                    cold_only: bool = False) -> dict[str, float]:
    """One runtime process: cold start, warm JSON requests, streams. Its numbers, in ms/µs."""
    runtime_name, handler, extra = RUNTIMES[name]
    runtime = next(r for r in all_runtimes() if r.name == runtime_name)
    api.reset()
    env = _env(f"127.0.0.1:{api.port}", handler, extra)
    with open(log, "ab") as out:
        out.write(f"\n=== {name} {time.strftime('%H:%M:%S')}\n".encode())
        spawn = time.monotonic_ns()
        proc = await asyncio.create_subprocess_exec(
            *runtime.argv, handler, env=env, cwd=str(BENCH_DIR / "handlers"),
            stdin=asyncio.subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=out)
    api.pid = proc.pid
    try:
        await asyncio.wait_for(api.first_get.wait(), 60)
        got: dict[str, float] = {"init_ms": (api.gets[0][0] - spawn) / 1e6}
        first = api.push(function_url_event("/json"))
        await asyncio.wait_for(first.done.wait(), 60)
        got["first_answer_ms"] = (first.done_ns - spawn) / 1e6
        if cold_only:
            return got

        for _ in range(mode.warm // 5):  # unmeasured: first-call costs (route caches, imports)
            await asyncio.wait_for(api.push(function_url_event("/json")).done.wait(), 60)
        skip = len(api.gets)
        warm = [api.push(function_url_event("/json")) for _ in range(mode.warm)]
        await asyncio.wait_for(warm[-1].done.wait(), 120)
        await _until(lambda: len(api.gets) >= skip + mode.warm)  # parked in /next again
        cpu = [c for _, c in api.gets[skip - 1:skip + mode.warm]]
        got["json_latency_ms"] = statistics.median((i.done_ns - i.handed_ns) / 1e6 for i in warm)
        if cpu[0] is not None and cpu[-1] is not None:
            got["json_cpu_us"] = (cpu[-1] - cpu[0]) / mode.warm * 1e6
        for inv in [first, *warm]:
            assert json.loads(_body(inv)) == {"ok": True, "items": list(range(10))}, inv.body[:200]

        query = f"n={mode.chunks}&delay={mode.delay}"
        streams = []
        for _ in range(mode.streams):
            inv = api.push(function_url_event("/stream", query))
            await asyncio.wait_for(inv.done.wait(), 60)
            expected = b"".join(b"chunk %d\n" % i for i in range(mode.chunks))
            assert _body(inv) == expected, inv.body[:300]
            streams.append(inv)
        got["stream_head_ms"] = statistics.median((i.head_ns - i.handed_ns) / 1e6 for i in streams)
        got["stream_first_chunk_ms"] = statistics.median(
            (i.first_body_ns - i.handed_ns) / 1e6 for i in streams)
        got["stream_total_ms"] = statistics.median((i.done_ns - i.handed_ns) / 1e6 for i in streams)
        got["streamed"] = float(all(i.streamed for i in streams))
        await _until(lambda: len(api.gets) >= skip + mode.warm + mode.streams)
    finally:
        proc.kill()
        stdout, _ = await proc.communicate()
    with open(log, "ab") as out:
        out.write(stdout)
    got["invocations"] = float(1 + mode.warm // 5 + mode.warm + mode.streams)
    got["lifespan_startups"] = float(stdout.count(b"bench-web lifespan startup"))
    return got


def _body(inv: Invocation) -> bytes:
    if inv.streamed:
        return bytes(inv.body).partition(SEPARATOR)[2]
    answer = json.loads(inv.body)
    return answer["body"].encode()


async def _until(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the runtime did not come back to /next")
        await asyncio.sleep(0.005)


ROWS = [  # key, label, unit
    ("stream_head_ms", "4 × 0.5 s stream: status and headers reach the caller", "ms"),
    ("stream_first_chunk_ms", "4 × 0.5 s stream: first body chunk", "ms"),
    ("stream_total_ms", "4 × 0.5 s stream: last byte", "ms"),
    ("init_ms", "cold start: process start → ready for the first request (Init)", "ms"),
    ("first_answer_ms", "cold start: process start → first JSON answer", "ms"),
    ("json_latency_ms", "warm JSON request: event handed out → answer in (median)", "ms"),
    ("json_cpu_us", "warm JSON request: runtime CPU per invoke", "µs"),
    ("lifespan_startups", "lifespan startups in one process's invocations", ""),
]


COLUMNS = [  # key, column, ratio column
    ("mangum", "Mangum on awslambdaric", ""),
    ("aruntime", "aruntime.asgi", "ratio"),
    ("aruntime-fast", "aruntime[fast] .asgi", "ratio fast"),
    ("aruntime-buffered", "aruntime[fast] .asgi, buffered mode", "ratio fast buffered"),
]


def table(results: dict[str, dict[str, list[float]]], mode: Mode) -> str:
    head = " | ".join(label for _, label, _ in COLUMNS)
    ratios = " | ".join(ratio for _, _, ratio in COLUMNS[1:])
    lines = [f"| measure | {head} | {ratios} |",
             "|---|" + "---:|" * (2 * len(COLUMNS) - 1)]
    for key, label, unit in ROWS:
        label = label.replace("4 × 0.5 s", f"{mode.chunks} × {mode.delay:g} s")
        values = [statistics.median(results.get(key, {}).get(name) or [float("nan")])
                  for name, _, _ in COLUMNS]
        if key == "lifespan_startups":
            n = int(statistics.median(results["invocations"]["aruntime"]))
            cells = " | ".join(f"{v:.0f}" for v in values)
            lines.append(f"| {label} ({n}) | {cells} |" + " |" * (len(COLUMNS) - 1))
            continue
        cells = " | ".join(f"{_fmt(v)} {unit}" for v in values)
        ratios = " | ".join(_ratio(v, values[0]) for v in values[1:])
        lines.append(f"| {label} | {cells} | {ratios} |")
    return "\n".join(lines) + "\n"


def _ratio(value: float, reference: float) -> str:
    if not reference:
        return "—"
    r = value / reference
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.1g}×"  # 0.0008×, not 0.00×


def _fmt(value: float) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


async def run(mode: Mode, out_dir: Path, say=print) -> dict[str, dict[str, list[float]]]:  # type: ignore[no-untyped-def]
    api = TimedRuntimeAPI()
    await api.start()
    log = Path(tempfile.gettempdir()) / "aruntime-bench-web-runtimes.log"
    log.write_bytes(b"")
    results: dict[str, dict[str, list[float]]] = {}
    try:
        names = list(RUNTIMES)
        for r in range(mode.rounds):
            order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
            for name in order:
                got = await one_round(api, name, mode, log)
                say(f"round {r + 1}/{mode.rounds} {name:9} " + ", ".join(
                    f"{k}={v:.1f}" for k, v in got.items()))
                for key, value in got.items():
                    results.setdefault(key, {}).setdefault(name, []).append(value)
            for _ in range(mode.cold):  # cold starts are noisy: more samples, runtimes alternating
                for name in order:
                    got = await one_round(api, name, mode, log, cold_only=True)
                    for key, value in got.items():
                        results[key][name].append(value)
    finally:
        await api.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="2 rounds, fewer requests")
    group.add_argument("--tiny", action="store_true", help="seconds; what the smoke test runs")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: results/ for a full run, results/quick/ (git-ignored) otherwise")
    args = parser.parse_args(argv)
    args.out = args.out or results_dir(full=not (args.quick or args.tiny))
    mode = TINY if args.tiny else QUICK if args.quick else FULL
    name = "tiny" if args.tiny else "quick" if args.quick else "full"
    # Compiled bytecode, as an install has (this machine sets PYTHONDONTWRITEBYTECODE).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_DIR / "aruntime"),
                    str(BENCH_DIR / "handlers")], check=True, env={**os.environ,
                                                                     "PYTHONDONTWRITEBYTECODE": ""})
    results = asyncio.run(run(mode, args.out))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md = markdown(results, mode, name, stamp, commit)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "web.md").write_text(md, encoding="utf-8")
    (args.out / "web.json").write_text(json.dumps(
        {"mode": name, "when": stamp, "commit": commit, "results": results}, indent=1),
        encoding="utf-8")
    print(md)
    return 0


def markdown(results: dict[str, dict[str, list[float]]], mode: Mode, name: str, stamp: str,
             commit: str) -> str:
    return (f"# FastAPI: aruntime.asgi vs Mangum on awslambdaric\n\n"
          f"`python -m benchmarks.web{' --' + name if name != 'full' else ''}`, {stamp}, "
          f"{platform.processor() or platform.machine()} {os.cpu_count()} cores, "
          f"CPython {platform.python_version()}, aruntime {commit}; median of {mode.rounds} "
          f"round(s), one runtime process each, the order rotated every round (cold starts: "
          f"{mode.rounds * (1 + mode.cold)} processes each); "
          f"ratio = aruntime / Mangum.\n\n"
          + table(results, mode))


if __name__ == "__main__":
    raise SystemExit(main())
