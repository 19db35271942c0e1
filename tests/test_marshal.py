"""Events in, results out (`aruntime.marshal`), against docs/SPEC.md §2 and the reference's marshaller."""

from __future__ import annotations

import collections
import enum
import json
import math
from decimal import Decimal
from typing import Any

import pytest

from aruntime.errors import RuntimeFault
from aruntime.marshal import marshal, unmarshal

JSON = b"application/json"


class Colour(str, enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


Point = collections.namedtuple("Point", "x y")


# -- marshal ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, body", [
    (Decimal("12.50"), b"12.50"),
    ({"price": Decimal("12.50"), "tiny": Decimal("0.000001000")}, b'{"price":12.50,"tiny":0.000001000}'),
    (Decimal("-0.000"), b"-0.000"),
    (Decimal("1E+2"), b"1E+2"),
    ((1, (2, "three")), b'[1,[2,"three"]]'),
    (Colour.RED, b'"red"'),
    (Size.BIG, b"3"),
    ({"c": Colour.RED, "s": [Size.BIG]}, b'{"c":"red","s":[3]}'),
    ({1: "a", None: "n", 1.5: "f", True: "t"}, b'{"1":"t","null":"n","1.5":"f"}'),
    (Point(1, 2), b'{"x":1,"y":2}'),
    ([Point(1, Decimal("0.10"))], b'[{"x":1,"y":0.10}]'),
    (None, b"null"),
    ("ünï", '"ünï"'.encode()),
    (2**70, b"1180591620717411303424"),
    (-(2**80), b"-1208925819614629174706176"),
    ({"big": [2**64]}, b'{"big":[18446744073709551616]}'),
])
def test_marshal_json(value: Any, body: bytes) -> None:
    got, content_type = marshal(value)
    assert content_type == JSON
    # Whitespace aside the text must be the same; the exact digits of numbers matter.
    assert got.replace(b" ", b"") == body


def test_marshal_small_values_are_compact_exact_bytes() -> None:
    assert marshal({"a": [1, 2], "b": Decimal("12.50")}) == (b'{"a":[1,2],"b":12.50}', JSON)


def test_marshal_bytes_raw_as_application_unknown() -> None:
    assert marshal(b"\x00\xffraw") == (b"\x00\xffraw", b"application/unknown")
    assert marshal(b"") == (b"", b"application/unknown")


@pytest.mark.parametrize("value, type_name", [
    ({1, 2}, "set"),
    ({"nested": [{"deep": frozenset()}]}, "frozenset"),
    (object(), "object"),
    (bytearray(b"x"), "bytearray"),
])
def test_marshal_error_reference_message(value: Any, type_name: str) -> None:
    with pytest.raises(RuntimeFault) as info:
        marshal(value)
    assert info.value.error_type == "Runtime.MarshalError"
    assert info.value.message == f"Unable to marshal response: Object of type {type_name} is not JSON serializable"


def test_marshal_set_message_equals_reference() -> None:
    from awslambdaric.lambda_runtime_exception import FaultException
    from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller

    with pytest.raises(FaultException) as ref:
        LambdaMarshaller().marshal_response({"a": {1}})
    with pytest.raises(RuntimeFault) as ours:
        marshal({"a": {1}})
    assert ours.value.message == ref.value.msg == \
        "Unable to marshal response: Object of type set is not JSON serializable"
    assert ours.value.error_type == ref.value.exception_type


def test_marshal_big_int_keeps_decimal_exact() -> None:
    # Integers over 64 bits must not push the whole result onto a path that rounds Decimals.
    got, _ = marshal({"a": 2**70, "d": Decimal("1.10")})
    assert got.replace(b" ", b"") == b'{"a":1180591620717411303424,"d":1.10}'


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("Infinity")])
def test_marshal_non_finite_is_null(value: Any) -> None:
    # Deliberate (README parity table): the reference writes NaN/Infinity, which no JSON
    # parser accepts; we send null.
    assert marshal({"v": value}) == (b'{"v":null}', JSON)


# -- unmarshal -------------------------------------------------------------------------------


def test_unmarshal_json_content_type_and_missing_are_json() -> None:
    assert unmarshal(b'{"a": [1, "x"]}', "application/json") == {"a": [1, "x"]}
    assert unmarshal(b'{"a": 1}', None) == {"a": 1}


@pytest.mark.parametrize("content_type", [
    "application/octet-stream", "text/plain", "application/json; charset=utf-8", "APPLICATION/JSON", "",
])
def test_unmarshal_other_content_types_give_bytes(content_type: str) -> None:
    # The reference compares with == "application/json": anything else is raw bytes.
    got = unmarshal(b'{"a": 1}', content_type)
    assert got == b'{"a": 1}'
    assert type(got) is bytes


def test_unmarshal_bad_json_reference_message() -> None:
    with pytest.raises(RuntimeFault) as info:
        unmarshal(b"", "application/json")
    assert info.value.error_type == "Runtime.UnmarshalError"
    assert info.value.message == "Unable to unmarshal input: Expecting value: line 1 column 1 (char 0)"
    with pytest.raises(RuntimeFault) as info:
        unmarshal(b"{bad", None)
    # The stdlib's wording of this one varies across Python versions; its prefix does not.
    assert info.value.message.startswith(
        "Unable to unmarshal input: Expecting property name enclosed in double quotes")


def test_unmarshal_nan_accepted() -> None:
    got = unmarshal(b'{"a": NaN, "b": [Infinity, -Infinity]}', "application/json")
    assert math.isnan(got["a"])
    assert got["b"] == [math.inf, -math.inf]


def test_unmarshal_non_utf8_is_unmarshal_error() -> None:
    with pytest.raises(RuntimeFault) as info:
        unmarshal(b'"\xff"', "application/json")
    assert info.value.error_type == "Runtime.UnmarshalError"
    assert info.value.message == ("Unable to unmarshal input: 'utf-8' codec can't decode byte 0xff in "
                                  "position 1: invalid start byte")


def test_unmarshal_non_utf8_raw_when_not_json() -> None:
    assert unmarshal(b"\xff\xfe", "application/octet-stream") == b"\xff\xfe"


def test_unmarshal_big_int_exact() -> None:
    # orjson alone reads these as floats; the reference keeps them exact.
    got = unmarshal(b'{"n": 123456789012345678901234567890}', "application/json")
    assert got == {"n": 123456789012345678901234567890}
    assert type(got["n"]) is int


def test_unmarshal_matches_reference_for_plain_events() -> None:
    from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller

    ref = LambdaMarshaller()
    for raw in (b'{"k": [1, 2.5, "s", null, true]}', b'"x"', b"[]", b'{"u": "\\u00fc"}', '{"ü": 1}'.encode()):
        assert unmarshal(raw, "application/json") == ref.unmarshal_request(raw) == json.loads(raw)


# -- results the reference refuses as Runtime.MarshalError, or escapes (breaker finding 7) --------


def _deep(n: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    cur = root
    for _ in range(n):
        cur["a"] = {}
        cur = cur["a"]
    return root


class _AsDictRaises:
    def _asdict(self) -> Any:
        raise LookupError("no fields today")


@pytest.mark.parametrize("value", [
    _deep(100_000),  # beyond every Python's limit (3.13's C recursion limit lets 5000 pass)
    10**5000,
    {"n": [-(10**5000)]},
    {"big": 2**70, "huge": 10**5000},
    _AsDictRaises(),
], ids=["deep", "huge_int", "nested_huge_int", "big_and_huge", "asdict_raises"])
def test_marshal_failures_are_marshal_errors_worded_as_the_reference(value: Any) -> None:
    from awslambdaric.lambda_runtime_exception import FaultException
    from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller

    with pytest.raises(FaultException) as ref:
        LambdaMarshaller().marshal_response(value)
    with pytest.raises(RuntimeFault) as ours:
        marshal(value)
    # The runtime's fault, no handler frames: never Function.RecursionError / ValueError.
    assert (ours.value.error_type, ours.value.stack) == ("Runtime.MarshalError", None)
    if isinstance(value, dict) and "a" in value:
        # Which C call hits the limit first is the encoder's (simplejson's or the stdlib's) and
        # the Python version's: "while encoding a JSON object" or "while calling a Python object".
        prefix = "Unable to marshal response: maximum recursion depth exceeded while "
        assert ours.value.message.startswith(prefix) and ref.value.msg.startswith(prefix)
    else:
        assert ours.value.message == ref.value.msg


@pytest.mark.parametrize("value, body", [
    ("cut emoji \ud83d", b'"cut emoji \\ud83d"'),
    ({"a\udc80": ["\ud800", "ü"]}, '{"a\\udc80": ["\\ud800", "ü"]}'.encode()),
    ("\ud83d\ude00", b'"\\ud83d\\ude00"'),  # two lone halves: JSON readers join them again
    ({"s": "x\ud800", "big": 2**70}, b'{"s": "x\\ud800", "big": 1180591620717411303424}'),
    # The stdlib's path writes namedtuples as objects too, as orjson's path and the reference do.
    ([Point("\ud800", 2**70)], b'[{"x": "\\ud800", "y": 1180591620717411303424}]'),
    ([Point(1, 2)] * 2 + [_deep(300)], b'[{"x": 1, "y": 2}, {"x": 1, "y": 2}, ' + b'{"a": ' * 300
     + b'{}' + b'}' * 300 + b']'),
])
def test_marshal_fallback_path_escapes_lone_surrogates_and_keeps_namedtuples(value: Any, body: bytes) -> None:
    from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller

    got, content_type = marshal(value)
    assert (got, content_type) == (body, JSON)
    got.decode("utf-8")  # valid UTF-8 on the wire
    # The same value as the reference's JSON (ASCII-escaped by default) reads back as.
    ref, _ = LambdaMarshaller().marshal_response(value)
    assert json.loads(got) == json.loads(ref)
