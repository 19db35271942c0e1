"""`LambdaContext`: every attribute of the reference's, and a repr byte-identical to it."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from awslambdaric import lambda_context as ref

import aruntime.context as ctxmod
from aruntime.context import LambdaContext
from aruntime.errors import RuntimeFault
from aruntime.protocol import Invocation

RID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
ENV = {
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[$LATEST]abc",
    "AWS_LAMBDA_FUNCTION_NAME": "fn",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
}
CLIENT_CONTEXT = {
    "custom": {"k": "v", "n": 1},
    "env": {"platform": "android"},
    "client": {"installation_id": "i-1", "app_title": "App", "app_version_name": "1.0",
               "app_version_code": "7", "app_package_name": "com.example"},
}
IDENTITY = {"cognitoIdentityId": "us-east-1:abc", "cognitoIdentityPoolId": "us-east-1:pool"}


@pytest.fixture(autouse=True)
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    # aruntime reads the function's environment once per process; start each test afresh.
    monkeypatch.setattr(ctxmod, "_env", None)


def make(request_id: str = RID, deadline_ms: int | None = None, client_context: Any = None,
         cognito: Any = None, tenant: str | None = None, arn: str | None = ARN) -> LambdaContext:
    def header(value: Any) -> str | None:
        return value if value is None or isinstance(value, str) else json.dumps(value)

    return LambdaContext(Invocation(
        request_id=request_id, deadline_ms=deadline_ms, function_arn=arn, trace_id=None,
        client_context=header(client_context), cognito_identity=header(cognito), tenant_id=tenant,
        invocation_id=None, content_type="application/json", body=b"{}"))


def reference(deadline_ms: int | None = None, client_context: Any = None, cognito: Any = None,
              tenant: str | None = None, arn: str | None = ARN) -> ref.LambdaContext:
    return ref.LambdaContext(RID, client_context, cognito, deadline_ms, arn, tenant)


def test_attributes() -> None:
    ctx = make(deadline_ms=int(time.time() * 1000) + 10_000, client_context=CLIENT_CONTEXT,
               cognito=IDENTITY, tenant="t-1")
    assert ctx.aws_request_id == RID
    assert ctx.log_group_name == "/aws/lambda/fn"
    assert ctx.log_stream_name == "2026/11/27/[$LATEST]abc"
    assert ctx.function_name == "fn"
    assert ctx.memory_limit_in_mb == "512"  # a string, as in the reference
    assert ctx.function_version == "$LATEST"
    assert ctx.invoked_function_arn == ARN
    assert ctx.tenant_id == "t-1"
    assert ctx.identity.cognito_identity_id == "us-east-1:abc"
    assert ctx.identity.cognito_identity_pool_id == "us-east-1:pool"
    cc = ctx.client_context
    assert cc is not None
    assert cc.custom == {"k": "v", "n": 1}
    assert cc.env == {"platform": "android"}
    assert (cc.client.installation_id, cc.client.app_title, cc.client.app_version_name,
            cc.client.app_version_code, cc.client.app_package_name) == (
        "i-1", "App", "1.0", "7", "com.example")


def test_absent_optional_headers() -> None:
    ctx = make(arn=None)
    assert ctx.client_context is None
    # Always there, empty, exactly as the reference makes it without the header.
    assert isinstance(ctx.identity, ctxmod.CognitoIdentity)
    assert repr(ctx.identity) == repr(ref.LambdaContext(RID, None, None, 0).identity) == (
        "CognitoIdentity([cognito_identity_id=None,cognito_identity_pool_id=None])")
    assert ctx.identity.cognito_identity_id is None
    assert ctx.identity.cognito_identity_pool_id is None
    assert ctx.tenant_id is None
    assert ctx.invoked_function_arn is None
    assert ctx.w3c() == {}


def test_unset_environment_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV:
        monkeypatch.delenv(key)
    ctx = make()
    assert (ctx.function_name, ctx.memory_limit_in_mb, ctx.function_version, ctx.log_group_name,
            ctx.log_stream_name) == (None,) * 5


@pytest.mark.parametrize("client_context, cognito, tenant", [
    (None, None, None),
    (CLIENT_CONTEXT, IDENTITY, "t-1"),
    ({"custom": {"a": 1}}, {"cognitoIdentityId": "only-id"}, None),
    ({"client": None, "env": None}, {}, ""),
    ({**CLIENT_CONTEXT, "w3c": {"traceparent": "00-abc-def-01"}}, None, "tenant"),
])
def test_repr_byte_identical_to_reference(client_context: Any, cognito: Any, tenant: str | None) -> None:
    deadline = int(time.time() * 1000) + 5_000
    # The reference pops "w3c" out of the dict it is given; give each side its own copy.
    expected = repr(reference(deadline, json.loads(json.dumps(client_context)), cognito, tenant))
    got = repr(make(deadline_ms=deadline, client_context=client_context, cognito=cognito, tenant=tenant))
    assert got == expected
    assert got.startswith(f"LambdaContext([aws_request_id={RID},log_group_name=/aws/lambda/fn,")


def test_repr_exact_text() -> None:
    ctx = make(client_context={"custom": {"a": 1}, "client": {"app_title": "T"}}, cognito=IDENTITY)
    assert repr(ctx) == (
        f"LambdaContext([aws_request_id={RID},log_group_name=/aws/lambda/fn,"
        "log_stream_name=2026/11/27/[$LATEST]abc,function_name=fn,memory_limit_in_mb=512,"
        f"function_version=$LATEST,invoked_function_arn={ARN},"
        "client_context=ClientContext([custom={'a': 1},env=None,client=Client([installation_id=None,"
        "app_title=T,app_version_name=None,app_version_code=None,app_package_name=None])]),"
        "identity=CognitoIdentity([cognito_identity_id=us-east-1:abc,"
        "cognito_identity_pool_id=us-east-1:pool]),tenant_id=None])")


def test_w3c_allowlist_and_stripped_from_client_context() -> None:
    cc = {"custom": {"c": 1}, "w3c": {"traceparent": "00-tp-01", "tracestate": "ts=1", "baggage": "b=2",
                                      "other": "dropped", }}
    ctx = make(client_context=cc)
    assert ctx.w3c() == {"traceparent": "00-tp-01", "tracestate": "ts=1", "baggage": "b=2"}
    assert not hasattr(ctx.client_context, "w3c")
    assert "w3c" not in repr(ctx)
    # A copy: the handler cannot change what the next call returns.
    ctx.w3c()["traceparent"] = "x"
    assert ctx.w3c()["traceparent"] == "00-tp-01"
    assert ref.LambdaContext(RID, json.loads(json.dumps(cc)), None, 0).w3c() == ctx.w3c()


@pytest.mark.parametrize("w3c, expected", [
    ({"traceparent": 5, "tracestate": None, "baggage": "b"}, {"baggage": "b"}),
    ("not a dict", {}),
    ({}, {}),
])
def test_w3c_non_string_values_dropped(w3c: Any, expected: dict[str, str]) -> None:
    assert make(client_context={"w3c": w3c}).w3c() == expected


def test_remaining_time() -> None:
    ctx = make(deadline_ms=int(time.time() * 1000) + 3_000)
    remaining = ctx.get_remaining_time_in_millis()
    assert 2_000 < remaining <= 3_000
    time.sleep(0.05)
    assert ctx.get_remaining_time_in_millis() < remaining
    assert make(deadline_ms=int(time.time() * 1000) - 10).get_remaining_time_in_millis() == 0


def test_remaining_time_without_deadline_is_sane() -> None:
    # The reference crashes (None - int); we report Lambda's longest timeout.
    remaining = make(deadline_ms=None).get_remaining_time_in_millis()
    assert isinstance(remaining, int)
    assert remaining == 900_000


@pytest.mark.parametrize("header, name", [
    ("client", "Client Context"),
    ("cognito", "Cognito Identity"),
])
def test_non_json_header_is_context_unmarshal_error(header: str, name: str) -> None:
    kwargs = {"client_context" if header == "client" else "cognito": "{not json"}
    with pytest.raises(RuntimeFault) as info:
        make(**kwargs)
    assert info.value.error_type == "Runtime.LambdaContextUnmarshalError"
    # The reference's wording (json.loads' message).
    assert info.value.message == (f"Unable to parse {name} JSON: Expecting property name enclosed in "
                                  "double quotes: line 1 column 2 (char 1)")


def test_non_json_client_context_message_equals_reference() -> None:
    from awslambdaric.bootstrap import parse_json_header
    from awslambdaric.lambda_runtime_exception import FaultException

    with pytest.raises(FaultException) as expected:
        parse_json_header("nope", "Client Context")
    with pytest.raises(RuntimeFault) as got:
        make(client_context="nope")
    assert got.value.message == expected.value.msg == \
        "Unable to parse Client Context JSON: Expecting value: line 1 column 1 (char 0)"
    assert got.value.error_type == expected.value.exception_type


def test_non_object_json_headers_do_not_crash() -> None:
    ctx = make(client_context="[1, 2]", cognito='"str"')
    assert ctx.identity.cognito_identity_id is None
    assert ctx.client_context is not None and ctx.client_context.custom is None


def test_log_writes_through_root_handler_sink(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    class Sink:
        def log(self, msg: str, frame_type: bytes | None = None) -> None:
            seen.append(msg)

    handler = logging.Handler()
    handler.log_sink = Sink()  # type: ignore[attr-defined]
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        make().log("via sink")
    finally:
        root.removeHandler(handler)
    assert seen == ["via sink"]
    make().log(12)
    assert capsys.readouterr().out == "12"
