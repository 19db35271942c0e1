"""`aruntime serve`'s output never stops it (issue #11, polish A and E).

Whatever the emulator's own stdout is — an ASCII encoding, a C locale without UTF-8 mode, a
pipe whose reader is gone — the echo of the function's output and the emulator's own lines
(START/END/REPORT, errors) go on: what cannot be encoded is escaped, error lines keep a
readable indent, the function's output keeps being read (a reader that stopped would leave the
function blocked on a full pipe until its timeout), and the invocation is answered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import aiohttp
import pytest

from aruntime.emulator import Emulator

from .helpers import INVOKE, LIMIT, serve_env, served

# More than a pipe's buffer and asyncio's read-ahead together (64 KiB + 2 × 64 KiB): if the
# reader stopped at the first line, the function would block before its end.
BULK_LINES = 6000
HANDLER = '''\
def handler(event, context):
    print("h\\u00e9llo \\u2603 \\U0001f40d", flush=True)
    for i in range(%d):
        print(f"line {i} \\u00fcn\\u00efcode " + "x" * 40)
    print("AFTER BULK", flush=True)
    raise ValueError("b\\u00e4d")
''' % BULK_LINES

ASCII_STDOUT = {
    "PYTHONIOENCODING=ascii": {"PYTHONIOENCODING": "ascii"},
    "LC_ALL=C": {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"},
}


async def invoke(url: str, payload: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    async def call() -> tuple[int, dict[str, str], bytes]:
        async with aiohttp.ClientSession() as session:
            async with session.post(url + INVOKE, data=payload) as r:
                return r.status, dict(r.headers), await r.read()

    return await asyncio.wait_for(call(), LIMIT)


@pytest.mark.parametrize("encoding", list(ASCII_STDOUT), ids=list(ASCII_STDOUT))
async def test_serve_on_an_ascii_stdout_escapes_and_keeps_reading(tmp_path: Path, encoding: str) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    env = serve_env(tmp_path, **ASCII_STDOUT[encoding])
    async with served("app.py:handler", "--timeout", "10", cwd=tmp_path, env=env) as serve:
        status, headers, body = await invoke(serve.url)
        # The function's own error, in time: not a timeout of a function blocked on its pipe.
        assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled", body
        assert json.loads(body)["errorType"] == "ValueError"
        await serve.wait_for("REPORT RequestId: ")
    assert serve.proc.returncode == 0
    out = serve.out
    assert all(line.isascii() for line in out)
    assert "h\\u00e9llo \\u2603 \\ud83d\\udc0d" in out
    assert f"line {BULK_LINES - 1} \\u00fcn\\u00efcode " + "x" * 40 in out
    assert out.index("AFTER BULK") < next(i for i, line in enumerate(out) if line.startswith("END "))
    # The runtime's error record, one line per line, indented with spaces (not \u00a0 escapes).
    error = out.index("[ERROR] ValueError: b\\u00e4d")
    assert out[error + 1] == "Traceback (most recent call last):"
    assert out[error + 2].startswith('  File "') and out[error + 2].endswith('", line 6, in handler')
    assert out[error + 3] == '    raise ValueError("b\\u00e4d")'
    assert not any("\\u00a0" in line for line in out)
    assert [line for line in serve.err if "Traceback" in line or "Task exception" in line] == []


async def test_serve_with_its_stdout_gone_keeps_serving(tmp_path: Path) -> None:
    """`aruntime serve | head -1`: once the reader of its stdout is gone, the lines go to
    stderr, the function is answered, and Ctrl-C stops it with no traceback."""
    (tmp_path / "app.py").write_text(
        "def handler(event, context):\n    print('PRINTED', event['n'], flush=True)\n    return event['n']\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads serve's stdout: every write to it fails (EPIPE)
    try:
        async with served("app.py:handler", cwd=tmp_path, env=serve_env(tmp_path), stdout=write_end) as serve:
            for n in (1, 2):
                status, _, body = await invoke(serve.url, json.dumps({"n": n}).encode())
                assert (status, body) == (200, str(n).encode())
                await serve.wait_for(f"PRINTED {n}", stream="err")
            await serve.wait_for("REPORT RequestId: ", stream="err")
    finally:
        os.close(write_end)
    assert serve.proc.returncode == 0
    assert [line for line in serve.err if "Traceback" in line or "Exception ignored" in line] == []


async def test_a_log_sink_that_raises_is_reported_once_and_never_stops_the_reading(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    shown: list[str] = []

    def sink(line: str) -> None:
        if "\\u" not in ascii(line):  # only ASCII lines can be shown by this sink
            shown.append(line)
            return
        raise UnicodeEncodeError("ascii", line, 0, 1, "this sink shows ASCII only")

    async with Emulator(f"{tmp_path}/app.py:handler", port=0, timeout=10, log=sink) as emu:
        status, _, body = await invoke(emu.url)
        assert status == 200 and json.loads(body)["errorType"] == "ValueError"
        await asyncio.wait_for(_until(lambda: any(s.startswith("REPORT ") for s in shown)), LIMIT)
    assert "AFTER BULK" in shown
    err = capsys.readouterr().err
    assert err.count("aruntime serve: the log sink failed on a line (UnicodeEncodeError") == 1, err


async def _until(predicate) -> None:  # type: ignore[no-untyped-def]
    while not predicate():
        await asyncio.sleep(0.02)



async def test_what_serve_prints_and_where(tmp_path: Path) -> None:
    """README's "What it prints, and where": on stdout the banner, START, the function's stdout
    and stderr lines in order, each `\\r` a new line, END, REPORT; stderr empty; LogResult keeps
    the `\\r` as the runtime wrote it. A warning at start goes to stderr, not stdout."""
    (tmp_path / "app.py").write_text(
        "import sys\n"
        "def handler(event, context):\n"
        "    print('progress 10%\\rprogress 100%', flush=True)\n"
        "    print('to stderr \\u00e9', file=sys.stderr, flush=True)\n"
        "    print('to stdout again', flush=True)\n"
        "    raise ValueError('bad')\n")
    async with served("app.py:handler", cwd=tmp_path, env=serve_env(tmp_path)) as serve:
        async def call() -> tuple[dict[str, str], bytes]:
            async with aiohttp.ClientSession() as session:
                async with session.post(serve.url + INVOKE, data=b"{}",
                                        headers={"X-Amz-Log-Type": "Tail"}) as r:
                    return dict(r.headers), await r.read()

        headers, body = await asyncio.wait_for(call(), LIMIT)
        assert json.loads(body)["errorType"] == "ValueError"
        await serve.wait_for("REPORT RequestId: ", stream="out")
    out = serve.out
    assert out[0].startswith("aruntime: function 'app' (handler app.handler, code in ")
    assert out[1].startswith("  Function URL:  http://127.0.0.1:")
    start = next(i for i, line in enumerate(out) if line.startswith("START RequestId: "))
    end = next(i for i, line in enumerate(out) if line.startswith("END RequestId: "))
    # Each stream in its order; the two pipes' lines may interleave either way.
    between = out[start + 1:end]
    assert [line for line in between if line != "to stderr \u00e9"][:5] == [
        "progress 10%", "progress 100%", "to stdout again", "[ERROR] ValueError: bad",
        "Traceback (most recent call last):"]
    assert between.count("to stderr \u00e9") == 1
    assert out[end + 1].startswith("REPORT RequestId: ") and not any("\r" in line for line in out)
    assert serve.err == []
    tail = base64.b64decode(headers["X-Amz-Log-Result"]).decode()
    assert "\nprogress 10%\rprogress 100%\n" in tail
    assert "\n[ERROR] ValueError: bad\rTraceback (most recent call last):\r" in tail
    # A warning at start: on stderr only.
    async with served("missing.py:handler", cwd=tmp_path, env=serve_env(tmp_path)) as serve:
        pass
    assert [line for line in serve.err if "warning" in line] == [
        f"aruntime serve: warning: no missing.py (nor package missing/) in {tmp_path}: the first "
        "invocation will fail with Runtime.ImportModuleError (the handler is 'missing.py:handler')"]
    assert not [line for line in serve.out if "warning" in line]
