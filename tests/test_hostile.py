"""A handler that raises the unprintable, the unsendable or junk: a clear error, and the next
invocation is served."""

from __future__ import annotations

import json
import sys

from fakeapi import run_runtime


async def test_misbehaving_handlers_get_clear_errors_and_the_runtime_goes_on(fake_api):
    for kind in ("unprintable", "weird_name", "junk", "lying_bytes", "len_raises", "fine"):
        fake_api.push({"kind": kind}, request_id=f"r-{kind}")
    fake_api.finish()
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.hostile.handler"], fake_api)
    assert await proc.wait(15) == 1, proc.stderr
    posts = fake_api.posts()
    assert posts["r-unprintable"].json()["errorMessage"] == "<unprintable Unprintable object>"
    weird = posts["r-weird_name"]
    # CR/LF in a class name cannot reach the header; the body keeps the name as it is.
    assert weird.header("lambda-runtime-function-error-type") == "Function.Bad??X-Injected: 1"
    assert weird.header("x-injected") is None
    assert weird.json()["errorType"] == "Bad\r\nX-Injected: 1"
    junk = posts["r-junk"].json()
    assert junk["errorType"] == "Runtime.MarshalError"
    assert junk["errorMessage"] == "Unable to marshal response: Object of type object is not JSON serializable"
    # A bytes subclass is sent as the bytes it holds: its own __len__ (lying or raising) is
    # never the Content-Length, nor called where a raise would stop the runtime.
    assert posts["r-lying_bytes"].body == b"abc"
    assert posts["r-len_raises"].body == b"xyz"
    assert posts["r-lying_bytes"].header("content-type") == "application/unknown"
    assert posts["r-fine"].json() == {"ok": True}


async def test_xray_cause_header_kept_below_one_mib_and_dropped_above(fake_api):
    fake_api.push({"size": 100_000}, request_id="r-small")
    fake_api.push({"size": 1_100_000}, request_id="r-big")
    fake_api.finish()
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.hostile.big_error"], fake_api)
    assert await proc.wait(15) == 1, proc.stderr
    posts = fake_api.posts()
    small = posts["r-small"].header("lambda-runtime-function-xray-error-cause")
    assert small is not None and len(small) > 100_000
    assert json.loads(small)["exceptions"][0]["message"] == "x" * 100_000
    # A cause of 1 MiB or more would be refused by the service: it is left out, the error is not.
    assert posts["r-big"].header("lambda-runtime-function-xray-error-cause") is None
    assert posts["r-big"].json()["errorMessage"] == "x" * 1_100_000
    assert posts["r-big"].header("lambda-runtime-function-error-type") == "Function.ValueError"


async def test_unusable_runtime_api_address_is_a_clear_error(fake_api):
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.hostile.handler"], fake_api,
                             env={"AWS_LAMBDA_RUNTIME_API": "no-port-here"})
    assert await proc.wait(15) == 1
    assert proc.stderr == (b"aruntime: AWS_LAMBDA_RUNTIME_API must be host:port or host:port/path, "
                           b"got 'no-port-here': no port\n")
