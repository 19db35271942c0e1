"""The Runtime API answers as the service does; this test plays the runtime itself."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import h11

from .helpers import emulator, invoke
from .stream_runtime import Client

# A "runtime" that only sleeps: the test talks to the Runtime API in its place.
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
NEXT = "/2018-06-01/runtime/invocation/next"


async def connect(emu) -> Client:  # type: ignore[no-untyped-def]
    async def address() -> str:
        while emu.sandbox.runtime_api is None:
            await asyncio.sleep(0.01)
        return emu.sandbox.runtime_api

    host, port = (await asyncio.wait_for(address(), 10)).rsplit(":", 1)
    return Client(*await asyncio.open_connection(host, int(port)))


async def call(client: Client, method: str, target: str, body: bytes = b"", headers=()) -> tuple[int, dict, bytes]:  # type: ignore[no-untyped-def]
    hdrs = [("Host", "runtime"), ("Content-Length", str(len(body))), *headers]
    await client.send(h11.Request(method=method, target=target, headers=hdrs))
    if body:
        await client.send(h11.Data(data=body))
    await client.send(h11.EndOfMessage())
    head, data = await asyncio.wait_for(client.response(), 10)
    return head.status_code, {k.decode().lower(): v.decode() for k, v in head.headers}, data


async def test_next_headers_response_and_state_errors() -> None:
    async with emulator(runtime_command=SLEEPER, timeout=5) as emu:
        caller = asyncio.ensure_future(invoke(emu, {"x": 1}))
        client = await connect(emu)
        status, headers, body = await call(client, "GET", NEXT)
        assert status == 200 and json.loads(body) == {"x": 1}
        request_id = headers["lambda-runtime-aws-request-id"]
        assert abs(int(headers["lambda-runtime-deadline-ms"]) - (time.time() * 1000 + 5000)) < 1000
        assert headers["lambda-runtime-invoked-function-arn"] == "arn:aws:lambda:us-east-1:012345678912:function:echo"
        assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
        assert headers["content-type"] == "application/json"
        base = f"/2018-06-01/runtime/invocation/{request_id}"

        status, _, body = await call(client, "POST", "/2018-06-01/runtime/invocation/nope/response", b"{}")
        assert status == 400 and json.loads(body)["errorType"] == "InvalidRequestID"
        status, _, body = await call(client, "POST", base + "/response", b'"done"')
        assert (status, body) == (202, b'{"status":"OK"}')
        status, _, body = await call(client, "POST", base + "/response", b'"again"')
        assert status == 403 and json.loads(body)["errorType"] == "InvalidStateTransition"
        status, _, _ = await call(client, "POST", base + "/error", b'{"errorMessage":"x"}')
        assert status == 403
        status, _, _ = await call(client, "POST", "/2018-06-01/runtime/init/error", b"{}")
        assert status == 403  # init is over once /next was called
        status, _, _ = await call(client, "GET", "/2018-06-01/runtime/nowhere")
        assert status == 404
        assert (await asyncio.wait_for(caller, 10))[2] == b'"done"'


async def test_buffered_limit_is_6_mib_plus_100_bytes() -> None:
    limit = 6 * 1024 * 1024 + 100
    async with emulator(runtime_command=SLEEPER, timeout=10) as emu:
        client = None
        for size, expected in ((limit + 1, 413), (limit - 2, 202)):
            caller = asyncio.ensure_future(invoke(emu, {}))
            client = client or await connect(emu)  # the process starts with the first invoke
            _, headers, _ = await call(client, "GET", NEXT)
            target = f"/2018-06-01/runtime/invocation/{headers['lambda-runtime-aws-request-id']}/response"
            status, _, body = await call(client, "POST", target, b'"' + b"x" * (size - 2) + b'"')
            assert status == expected
            status, response_headers, result = await asyncio.wait_for(caller, 10)
            if expected == 413:
                assert json.loads(body)["errorType"] == "RequestEntityTooLarge"
                assert response_headers["X-Amz-Function-Error"] == "Unhandled"
                assert json.loads(result)["errorType"] == "Function.ResponseSizeTooLarge"
            else:
                assert len(result) == size


async def test_error_and_410_after_timeout() -> None:
    async with emulator(runtime_command=SLEEPER, timeout=1) as emu:
        caller = asyncio.ensure_future(invoke(emu, {}))
        client = await connect(emu)
        _, headers, _ = await call(client, "GET", NEXT)
        target = f"/2018-06-01/runtime/invocation/{headers['lambda-runtime-aws-request-id']}"
        error = {"errorMessage": "bad", "errorType": "KeyError", "stackTrace": []}
        status, _, _ = await call(
            client, "POST", target + "/error", json.dumps(error).encode(),
            [("Lambda-Runtime-Function-Error-Type", "Function.KeyError")],
        )
        assert status == 202
        _, response_headers, body = await asyncio.wait_for(caller, 10)
        assert response_headers["X-Amz-Function-Error"] == "Unhandled"
        assert json.loads(body) == error

        caller = asyncio.ensure_future(invoke(emu, {}))
        _, headers, _ = await call(client, "GET", NEXT)
        target = f"/2018-06-01/runtime/invocation/{headers['lambda-runtime-aws-request-id']}"
        _, _, body = await asyncio.wait_for(caller, 10)
        assert json.loads(body)["errorType"] == "Sandbox.Timedout"
        status, _, body = await call(client, "POST", target + "/response", b"{}")
        assert status == 410


async def test_init_error_fails_the_waiting_invoke() -> None:
    async with emulator(runtime_command=SLEEPER) as emu:
        caller = asyncio.ensure_future(invoke(emu, {}))
        client = await connect(emu)
        error = {"errorMessage": "Unable to import module 'x'", "errorType": "Runtime.ImportModuleError"}
        status, _, _ = await call(
            client, "POST", "/2018-06-01/runtime/init/error", json.dumps(error).encode(),
            [("Lambda-Runtime-Function-Error-Type", "Runtime.ImportModuleError")],
        )
        assert status == 202
        _, headers, body = await asyncio.wait_for(caller, 10)
        assert headers["X-Amz-Function-Error"] == "Unhandled"
        assert json.loads(body) == error


async def test_restore_next_only_with_snap_start() -> None:
    for env, expected in (({}, 403), ({"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}, 200)):
        async with emulator(runtime_command=SLEEPER, env=env) as emu:
            caller = asyncio.ensure_future(invoke(emu, {}))
            client = await connect(emu)
            status, _, _ = await call(client, "GET", "/2018-06-01/runtime/restore/next")
            assert status == expected
            caller.cancel()
            await asyncio.gather(caller, return_exceptions=True)


async def test_a_runtime_command_that_cannot_start_fails_the_invoke_only() -> None:
    async with emulator(runtime_command=["/nonexistent/runtime"]) as emu:
        for _ in range(2):
            status, headers, body = await invoke(emu, {})
            assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled"
            assert json.loads(body)["errorType"] == "Runtime.InvalidEntrypoint"
        # The log says why, each time (a Function URL's caller sees only a 502).
        said = [line for line in emu.logs if "cannot start runtime" in line]  # type: ignore[attr-defined]
        assert said == ["aruntime serve: cannot start runtime '/nonexistent/runtime': [Errno 2] No such file or "
                        "directory: '/nonexistent/runtime'; it will be tried again on the next invoke"] * 2, said


async def test_runtime_api_listens_on_loopback_whatever_the_host() -> None:
    """--host says where the invoke surfaces listen; the Runtime API (whoever reaches it can take
    events and post answers) stays on 127.0.0.1, on a port only the runtime is told."""
    async with emulator(host="127.0.0.2") as emu:
        assert emu.url.startswith("http://127.0.0.2:")
        status, _, body = await invoke(emu, {"x": 1})
        assert status == 200 and json.loads(body)["echo"] == {"x": 1}
        address = emu.sandbox.runtime_api
        assert address is not None
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) != emu.port
        reader, writer = await asyncio.open_connection(host, int(port))  # loopback: reachable
        writer.close()
        try:
            await asyncio.wait_for(asyncio.open_connection("127.0.0.2", int(port)), 5)
        except OSError:
            pass  # refused: nothing of the Runtime API on the --host address
        else:
            raise AssertionError(f"the Runtime API answers on the --host address, port {port}")
