"""Events to ASGI scopes, sans-IO (aruntime/web/events.py; docs/SPEC.md §9)."""

from __future__ import annotations

import base64

import pytest

from aruntime.errors import RuntimeFault
from aruntime.web.events import Format, detect, parse

from . import http_events as E


def test_v2_function_url_scope():
    event = E.v2("POST", "/a%20b/%E2%9C%93?x=1&x=2&y=%2F",
                 headers=[("Content-Type", "application/json"), ("X-Multi", "a"),
                          ("X-Multi", "b"), ("Cookie", "c1=v1; c2=v2")],
                 body=b'{"k": 1}')
    request = parse(event, "ctx")
    s = request.scope
    assert request.format is Format.V2 and request.body == b'{"k": 1}'
    assert s["type"] == "http" and s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert s["method"] == "POST" and s["http_version"] == "1.1" and s["scheme"] == "https"
    assert s["path"] == "/a b/✓" and s["raw_path"] == b"/a%20b/%E2%9C%93"
    assert s["root_path"] == ""
    assert s["query_string"] == b"x=1&x=2&y=%2F"
    # Payload 2.0's cookie list is the Cookie header again; repeated headers stay comma-joined
    # (the service joined them; no way to split safely).
    assert s["headers"] == [
        (b"host", b"abc123.lambda-url.us-east-1.on.aws"), (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-port", b"443"), (b"x-forwarded-for", b"203.0.113.9"),
        (b"content-type", b"application/json"), (b"x-multi", b"a,b"),
        (b"cookie", b"c1=v1; c2=v2")]
    assert s["client"] == ("203.0.113.9", 0)
    assert s["server"] == ("abc123.lambda-url.us-east-1.on.aws", 443)
    assert s["aws.event"] is event and s["aws.context"] == "ctx"


def test_v2_named_stage_is_the_root_path():
    s = parse(E.v2("GET", "/prod/items/1", stage="prod")).scope
    assert (s["root_path"], s["path"]) == ("/prod", "/prod/items/1")
    s = parse(E.v2("GET", "/production/items", stage="prod")).scope
    assert (s["root_path"], s["path"]) == ("", "/production/items")


def test_v2_cookie_header_and_cookie_list_merge():
    event = E.v2("GET", "/")
    event["headers"]["cookie"] = "a=1"
    event["cookies"] = ["b=2", "c=3"]
    assert (b"cookie", b"a=1; b=2; c=3") in parse(event).scope["headers"]


def test_base64_body_decoded_and_bad_base64_refused():
    raw = bytes(range(256))
    assert parse(E.v2("PUT", "/", body=raw, binary=True)).body == raw
    event = E.v2("PUT", "/")
    event.update(body="not*base64", isBase64Encoded=True)
    with pytest.raises(RuntimeFault) as info:
        parse(event)
    assert info.value.error_type == "Runtime.InvalidEvent"
    assert "isBase64Encoded but is not base64" in info.value.message


def test_rest_v1_scope_stage_multi_values():
    event = E.v1("GET", "/items/3?k=1&k=a%20b", headers=[("Accept", "text/html"),
                                                         ("X-Multi", "a"), ("X-Multi", "b")])
    request = parse(event)
    s = request.scope
    assert request.format is Format.V1
    assert (s["root_path"], s["path"], s["raw_path"]) == ("/prod", "/prod/items/3",
                                                          b"/prod/items/3")
    assert s["query_string"] == b"k=1&k=a+b"
    assert (b"x-multi", b"a") in s["headers"] and (b"x-multi", b"b") in s["headers"]
    assert s["client"] == ("203.0.113.9", 0)
    assert s["server"] == ("abc123.execute-api.us-east-1.amazonaws.com", 443)
    # The stage root itself, asked for without a trailing slash.
    event = E.v1("GET", "/")
    event["requestContext"]["path"] = "/prod"
    s = parse(event).scope
    assert (s["root_path"], s["path"]) == ("/prod", "/prod/")
    # A custom domain without base path: nothing precedes the resource path.
    event = E.v1("GET", "/items")
    event["requestContext"]["path"] = "/items"
    s = parse(event).scope
    assert (s["root_path"], s["path"]) == ("", "/items")


def test_http_api_payload_1_0_stage_is_in_the_path():
    event = E.v1("GET", "/dev/items")
    event["version"] = "1.0"
    event["requestContext"].update(stage="dev", path="/dev/items")
    s = parse(event).scope
    assert (s["root_path"], s["path"]) == ("/dev", "/dev/items")


def test_alb_query_as_received_and_client_from_forwarded_for():
    request = parse(E.alb("GET", "/p?q=x%20y&flag=&a=%2B"))
    s = request.scope
    assert request.format is Format.ALB and not request.multi_value
    assert s["query_string"] == b"q=x%20y&flag=&a=%2B"  # ALB does not decode: nor do we
    assert s["client"] == ("203.0.113.9", 0)  # the address ALB appended, not the client's claim
    assert s["root_path"] == "" and s["path"] == "/p"


def test_alb_multi_value_keeps_repeats():
    request = parse(E.alb("GET", "/p?t=1&t=2", headers=[("X-Multi", "a"), ("X-Multi", "b")],
                          multi_value=True))
    assert request.multi_value
    assert request.scope["query_string"] == b"t=1&t=2"
    assert [v for k, v in request.scope["headers"] if k == b"x-multi"] == [b"a", b"b"]


@pytest.mark.parametrize("event, got", [
    ({"foo": 1, "bar": 2}, "got a JSON object with keys [bar, foo]"),
    ([1, 2], "got a JSON array"),
    ("text", "got a JSON string"),
    (None, "got a JSON null"),
    (b"\x00\x01", "got 2 bytes that are not JSON"),
    ({"requestContext": {}, "version": "2.0"}, "got a JSON object with keys [requestContext, version]"),
])
def test_not_an_http_event_says_what_came(event, got):
    with pytest.raises(RuntimeFault) as info:
        detect(event)
    assert info.value.error_type == "Runtime.InvalidEvent"
    assert info.value.message.endswith(got), info.value.message
    assert "Function URL, API Gateway (payload 2.0 or 1.0) or an ALB" in info.value.message


def test_malformed_http_event_names_the_field():
    event = E.v2("GET", "/")
    del event["requestContext"]["http"]["method"]
    with pytest.raises(RuntimeFault) as info:
        parse(event)
    assert info.value.message == "Malformed payload 2.0 event: KeyError: 'method'"
    event = E.v1("GET", "/")
    event["body"] = {"not": "a string"}
    with pytest.raises(RuntimeFault) as info:
        parse(event)
    assert info.value.message == "The event's body is a JSON object, not a string"
