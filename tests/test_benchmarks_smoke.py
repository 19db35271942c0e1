"""The benchmark harness must keep working: a tiny run produces every row, and the lean
Runtime API server speaks enough HTTP/1.1 for all three runtimes. No speed is asserted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.scenarios import TINY, Marks, make_event
from benchmarks.report import _cell, median, metrics
from benchmarks.server import RuntimeAPIServer, build_next_answers
from fakeapi import scratch_env

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?( \([\d,.]+–[\d,.]+\))?$")


def _rows(md: str) -> dict[str, list[str]]:
    rows = {}
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| Measure") :
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_tiny_run_writes_every_row(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--out", str(tmp_path)],
        cwd=ROOT, env=scratch_env(), capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    md = (tmp_path / "latest.md").read_text(encoding="utf-8")
    rows = _rows(md)
    for m in metrics(TINY):
        assert m.label in rows, f"missing row {m.label!r}"
    # Columns: unit, floor, awslambdaric, aruntime, aruntime-fast, ratio, fast ratio, goal, floor/ref.
    for label in ("Init: start → first `GET /next`, empty handler", "CPU per invoke, 100 B event",
                  "CPU per invoke, 1 MiB event", "RSS after 30 invokes (100 B)"):
        unit, floor, ref, ours, fast, ratio, fast_ratio, _, floor_ratio = rows[label]
        for cell in (floor, ref, ours, fast):
            assert NUMBER.match(cell), f"{label}: {cell!r} is not a number"
        assert ratio.endswith("×") and fast_ratio.endswith("×") and floor_ratio.endswith("×")
    stream = rows["Streaming: throughput, 64 KiB chunks"]
    # The floor streams too (the base of the streaming goals); the reference cannot.
    assert stream[2] == "n/a" and all(NUMBER.match(c) for c in (stream[1], stream[3], stream[4]))
    first = rows["Cold start: start → first response at the API, empty handler"]
    assert all(NUMBER.match(c) for c in first[1:5]) and "fast ≤ 2×" in first[7]
    assert rows["Instructions per invoke, 100 B event (callgrind)"][1:5] == ["n/a"] * 4  # full runs only
    data = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    assert data["mode"] == "tiny" and data["machine"]["cores"] == str(os.cpu_count())
    # The table shows exactly the numbers the JSON holds: every runtime's cell, and the ratio.
    results = data["results"]
    for m in metrics(TINY):
        if m.key not in ("init_ms", "cpu_us_100B", "cpu_us_1MiB"):
            continue
        measured = [results[m.key][rt] for rt in ("floor", "awslambdaric", "aruntime", "aruntime-fast")]
        assert all(values and all(v > 0 for v in values) for values in measured), (m.key, measured)
        assert rows[m.label][1:5] == [_cell(values, None) for values in measured], m.label
        assert rows[m.label][5] == f"{median(measured[2]) / median(measured[1]):.2f}×", m.label


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(marker), 5)


async def test_lean_server_framing() -> None:
    server = RuntimeAPIServer()
    await server.start()
    m = Marks()
    m.phase(build_next_answers(make_event(100)), 0, 2)
    session = m.session()
    server.session = session
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 5)
        writer.write(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await _read_until(reader, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        body = await asyncio.wait_for(reader.readexactly(length), 5)
        assert len(body) == 100 and json.loads(body)["source"] == "bench"
        rid = re.search(rb"Request-Id: (\S+)", head).group(1)  # type: ignore[union-attr]

        # libcurl's way: Expect: 100-continue must be answered before the body comes.
        writer.write(b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n"
                     b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n" % rid)
        assert await _read_until(reader, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hel")
        await asyncio.sleep(0.01)
        writer.write(b"lo")
        assert (await _read_until(reader, b"\r\n\r\n")).startswith(b"HTTP/1.1 202")
        await asyncio.wait_for(reader.readexactly(16), 5)
        assert session.responses == 1

        # A streamed response split at awkward places, with an error trailer.
        writer.write(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
        head = await _read_until(reader, b"\r\n\r\n")
        await asyncio.wait_for(reader.readexactly(100), 5)
        stamped = time.monotonic_ns()
        stamp = b"T%d\n" % stamped
        raw = (b"POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\r\n"
               b"Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % len(stamp) + stamp + b"\r\n" + b"a;ext=1\r\n0123456789\r\n"
               + b"0\r\nLambda-Runtime-Function-Error-Type: Function.ValueError\r\n\r\n")
        for i in range(0, len(raw), 7):
            writer.write(raw[i : i + 7])
            await writer.drain()
        assert (await _read_until(reader, b"\r\n\r\n")).startswith(b"HTTP/1.1 202")
        answered = time.monotonic_ns()
        await asyncio.wait_for(reader.readexactly(16), 5)
        assert session.stream_responses == 1 and session.errors == 1
        assert session.stream_bytes == len(stamp) + 10
        # From the stamp to the server reading it: after the stamp, before its answer came back.
        (latency,) = session.stream_latency_ns
        assert 0 < latency <= answered - stamped, (latency, answered - stamped)

        # Past the last event the GET is parked and the session reports done.
        writer.write(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
        await asyncio.wait_for(session.done.wait(), 5)
        assert session.gets == 3 and set(session.samples) == {0, 2}
        writer.close()
    finally:
        server.session = None
        await server.close()


def test_events_have_exact_sizes() -> None:
    for size in (100, 10 * 1024, 1024 * 1024):
        event = make_event(size)
        assert len(event) == size
        assert isinstance(json.loads(event)["records"], list)


def test_only_a_full_run_rewrites_the_committed_tables(tmp_path: Path, monkeypatch) -> None:
    """README links results/ as the latest full run: --quick / --tiny without --out must not
    rewrite it, and what they write is ignored by git."""
    from benchmarks import otel, run, scenarios, web

    assert scenarios.results_dir(full=True) == ROOT / "benchmarks" / "results"
    monkeypatch.setattr(scenarios, "BENCH_DIR", tmp_path)
    assert run.main(["--tiny", "--runtimes", "floor"]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.md")) == [
        "results/quick/latest.md"]
    for module in (otel, web):  # the other entry points take their default from the same place
        assert "results_dir(full=not (args.quick or args.tiny))" in Path(module.__file__).read_text()
    if (ROOT / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", "benchmarks/results/quick/latest.md"], cwd=ROOT)
        kept = subprocess.run(["git", "check-ignore", "-q", "benchmarks/results/latest.md"], cwd=ROOT)
        assert (ignored.returncode, kept.returncode) == (0, 1)
