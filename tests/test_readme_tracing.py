"""The README's "Tracing and observability" handler files run as written, under the runtime."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from fakeapi import REPO_ROOT, FakeRuntimeAPI, run_runtime


def readme_files() -> dict[str, str]:
    """The section's ```python blocks that start with `# <file> — handler`."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Tracing and observability", 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        match = re.match(r"# (\w+\.py) — handler ", block)
        if match:
            files[match.group(1)] = block
    return files


async def _run(api: FakeRuntimeAPI, tmp_path: Path, name: str, n: int = 1,
               headers: dict[str, str | None] | None = None) -> tuple[Any, Any, str]:
    (tmp_path / name).write_text(readme_files()[name])
    rid = api.push({}, headers=headers)
    proc = await run_runtime([sys.executable, "-m", "aruntime", name[:-3] + ".handler"], api,
                             cwd=str(tmp_path), env={"LAMBDA_TASK_ROOT": str(tmp_path),
                                                     "AWS_LAMBDA_FUNCTION_NAME": "fn",
                                                     "AWS_LAMBDA_MAX_CONCURRENCY": str(n)})
    await api.wait_for(lambda ex: ex.method == "POST", timeout=30)
    api.finish()
    assert await proc.wait(30) == 1, proc.stderr
    [post] = [ex for ex in api.exchanges if ex.method == "POST"]
    return rid, post, proc.stdout.decode()


def _objects(text: str) -> list[Any]:
    decoder, found, i = json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) >= 0:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        found.append(obj)
        i = end
    return found


def test_the_section_has_its_three_files() -> None:
    assert set(readme_files()) == {"ids.py", "traced.py", "orders.py"}


async def test_readme_current_example(fake_api: FakeRuntimeAPI, tmp_path: Path) -> None:
    rid, post, _ = await _run(fake_api, tmp_path, "ids.py", n=2, headers={
        "Lambda-Runtime-Trace-Id": "Root=1-5f000000-000000000000000000000001;Parent=0000000000000001;Sampled=1",
        "Lambda-Runtime-Aws-Tenant-Id": "t-1", "Lambda-Runtime-Invocation-Id": "inv-1"})
    assert post.json() == {"request": rid, "tenant": "t-1", "invocation": "inv-1",
                           "trace": "Root=1-5f000000-000000000000000000000001;Parent=0000000000000001;Sampled=1"}


async def test_readme_otel_example(fake_api: FakeRuntimeAPI, tmp_path: Path) -> None:
    rid, post, stdout = await _run(fake_api, tmp_path, "traced.py", headers={
        "Lambda-Runtime-Trace-Id": None})
    assert post.body == b"done"
    spans = {s["name"]: s for s in _objects(stdout) if "context" in s and "name" in s}
    assert set(spans) == {"fn", "work"}, stdout
    invocation, work = spans["fn"], spans["work"]
    assert invocation["attributes"]["faas.invocation_id"] == rid
    assert invocation["resource"]["attributes"]["faas.name"] == "fn"
    assert work["parent_id"] == invocation["context"]["span_id"]
    assert work["context"]["trace_id"] == invocation["context"]["trace_id"]


async def test_readme_powertools_example(fake_api: FakeRuntimeAPI, tmp_path: Path) -> None:
    rid, post, stdout = await _run(fake_api, tmp_path, "orders.py", n=2)
    assert post.json() == {"ok": True}
    objects = _objects(stdout)
    [record] = [o for o in objects if o.get("message") == "received"]
    assert record["function_request_id"] == rid and record["service"] == "orders"
    [metric] = [o for o in objects if "_aws" in o]
    assert metric["received"] in (1.0, [1.0])
