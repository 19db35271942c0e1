"""Log records written from threads carry the request id (issue #10 item 14; README, Logging).

One invocation at a time: every thread of the process sees the current invocation's id, as
under the reference client (a process-wide value). Several at once: a `threading.Thread`
started, or a pool task submitted (`ThreadPoolExecutor.submit`, `loop.run_in_executor`,
`asyncio.to_thread`), by an invocation's code — or by a thread working for it — carries that
invocation's id and tenant id; a thread started outside every invocation carries none.
"""

from __future__ import annotations

import json
import sys

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

H = "tests.handlers.thread_logs."
SYNC_TAGS = ["thread", "grandchild", "pool from thread", "pool", "background"]
ASYNC_TAGS = [*SYNC_TAGS, "executor", "to_thread"]


async def run(api: FakeRuntimeAPI, style: str, env: dict[str, str]) -> tuple[list[str], bytes]:
    ids = [api.push({"i": i, "gap": 0.05}, request_id=f"r-{i}",
                    headers={"Lambda-Runtime-Aws-Tenant-Id": f"t-{i}"}) for i in range(2)]
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + style], api,
                             env={"AWS_LAMBDA_LOG_LEVEL": "INFO", **env})
    for rid in ids:
        await api.wait_for(lambda ex: ex.path.endswith(f"/{rid}/response"), timeout=15)
    api.finish()
    assert await proc.wait(15) == 1, proc.stderr
    return ids, proc.stdout


def json_records(stdout: bytes) -> dict[str, tuple[str, str | None]]:
    records = [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]
    return {r["message"]: (r["requestId"], r.get("tenantId")) for r in records
            if r.get("logger") == "threads"}


@pytest.mark.parametrize("style", ["sync", "async_"])
async def test_one_at_a_time_every_thread_sees_the_current_id_text(fake_api: FakeRuntimeAPI,
                                                                   style: str) -> None:
    ids, stdout = await run(fake_api, style, {})
    out = stdout.decode()
    for i, rid in enumerate(ids):
        for tag in (SYNC_TAGS if style == "sync" else ASYNC_TAGS):
            assert f"\t{rid}\t{tag} {i}\n" in out, (tag, out)


@pytest.mark.parametrize("style", ["sync", "async_"])
async def test_one_at_a_time_json_ids_and_tenants(fake_api: FakeRuntimeAPI, style: str) -> None:
    ids, stdout = await run(fake_api, style, {"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    got = json_records(stdout)
    tags = SYNC_TAGS if style == "sync" else ASYNC_TAGS
    assert got == {f"{tag} {i}": (rid, f"t-{i}") for i, rid in enumerate(ids) for tag in tags}


@pytest.mark.parametrize("style", ["sync", "async_"])
async def test_concurrent_each_thread_carries_its_invocation(fake_api: FakeRuntimeAPI,
                                                             style: str) -> None:
    ids, stdout = await run(fake_api, style, {"AWS_LAMBDA_MAX_CONCURRENCY": "2"})
    got = json_records(stdout)
    tags = SYNC_TAGS if style == "sync" else ASYNC_TAGS
    expected = {f"{tag} {i}": (rid, f"t-{i}") for i, rid in enumerate(ids) for tag in tags}
    # The thread started at import works for no invocation: no id, no tenant.
    for i in range(2):
        expected[f"background {i}"] = ("", None)
    assert got == expected
