"""Events in, results out: JSON through orjson with the reference client's semantics."""

from __future__ import annotations

import sys
from typing import Any

import orjson

from .errors import MARSHAL_ERROR, UNMARSHAL_ERROR, RuntimeFault, _message

JSON = b"application/json"
RAW = b"application/unknown"
_OPTIONS = orjson.OPT_NON_STR_KEYS
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TWENTY_DIGITS = b"0" * 20


class _Unserialisable(TypeError):
    pass


def _is_decimal(obj: Any) -> bool:
    # No Decimal can exist unless its module was imported: the runtime need not import it.
    decimal = sys.modules.get("decimal")
    return decimal is not None and isinstance(obj, decimal.Decimal)


def _default(obj: Any) -> Any:
    if _is_decimal(obj):
        # Exact digits, as the reference (simplejson RawJSON) sends them: 12.50 stays 12.50.
        if obj.is_finite():
            return orjson.Fragment(str(obj))
        return None
    if hasattr(obj, "_asdict"):  # namedtuple: simplejson's namedtuple_as_object
        return obj._asdict()
    raise _Unserialisable(f"Object of type {type(obj).__name__} is not JSON serializable")


def marshal(result: Any) -> tuple[bytes, bytes]:
    """(body, content type) for a handler's return value: bytes as they are
    (`application/unknown`), anything else as JSON with the reference client's semantics.

    Raises `RuntimeFault(Runtime.MarshalError, "Unable to marshal response: <reason>")`, as the
    reference does, for every result that cannot be serialised: an unserialisable type, nesting
    too deep, an integer with too many digits for `str()`, an exception from the result's own
    code (a `default` hook such as `_asdict`). Lone surrogates in strings go out as `\\udxxx`
    escapes, valid JSON, as the reference's `json.dumps` writes them.
    """
    if isinstance(result, bytes):
        # A subclass is copied to plain bytes: its own __len__ must not become the
        # Content-Length (a lying one cuts the body on the wire), nor raise outside this guard.
        return (result if result.__class__ is bytes else bytes(result)), RAW
    try:
        return orjson.dumps(result, default=_default, option=_OPTIONS), JSON
    except orjson.JSONEncodeError as e:
        cause = e.__cause__
        if isinstance(cause, _Unserialisable):
            raise RuntimeFault(MARSHAL_ERROR, f"Unable to marshal response: {cause}") from None
        if "64-bit" in str(e):
            # Integers beyond 64 bits go in as raw JSON; Decimals stay exact.
            try:
                return orjson.dumps(_big_ints_raw(result), default=_default, option=_OPTIONS), JSON
            except Exception:  # noqa: BLE001 - too many digits for str(), or any other refusal
                pass
        # Nesting orjson refuses (over 254 levels), lone surrogates, integers over 64 bits
        # beside what orjson refuses: the stdlib decides, with the reference's words.
        return _marshal_stdlib(result), JSON


def _big_ints_raw(obj: Any) -> Any:
    if type(obj) is int:
        return obj if -(1 << 63) <= obj < (1 << 64) else orjson.Fragment(str(obj))
    if isinstance(obj, dict):
        return {k: _big_ints_raw(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):  # a namedtuple stays an object
        return _big_ints_raw(obj._asdict())
    if isinstance(obj, (list, tuple)):
        return [_big_ints_raw(v) for v in obj]
    return obj


def _namedtuples_as_dicts(obj: Any, active: set[int]) -> Any:
    """A copy of `obj`'s containers with namedtuples as dicts (the stdlib's encoder writes every
    tuple as an array; orjson's path and the reference write namedtuples as objects). A
    container met again on its own path (a cycle) is left as it is: the encoder reports it."""
    if not isinstance(obj, (dict, list, tuple)) or id(obj) in active:
        return obj
    active.add(id(obj))
    try:
        if isinstance(obj, dict):
            return {k: _namedtuples_as_dicts(v, active) for k, v in obj.items()}
        if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
            return _namedtuples_as_dicts(obj._asdict(), active)
        return [_namedtuples_as_dicts(v, active) for v in obj]
    finally:
        active.discard(id(obj))


def _marshal_stdlib(result: Any) -> bytes:
    import json

    def default(obj: Any) -> Any:
        if _is_decimal(obj):
            return int(obj) if obj == obj.to_integral_value() else float(obj)
        return _default(obj)

    try:
        try:
            result = _namedtuples_as_dicts(result, set())
        except RecursionError:
            pass  # nesting this deep: the encoder decides (it recurses less per level than the walk)
        # A lone surrogate can only sit inside a JSON string: backslashreplace writes it as
        # the JSON escape `\\ud800` (UTF-8 has no bytes for it; everything else is encodable).
        return json.dumps(result, default=default, ensure_ascii=False).encode(
            "utf-8", "backslashreplace")
    except Exception as e:  # noqa: BLE001 - RecursionError, ValueError (digits), the result's own
        raise RuntimeFault(MARSHAL_ERROR, f"Unable to marshal response: {_message(e)}") from None


def unmarshal(body: bytes, content_type: str | None) -> Any:
    """The event: JSON-decoded when the content type is JSON (or missing), else raw bytes."""
    if content_type is not None and content_type != "application/json":
        return body
    # orjson reads integers beyond 64 bits as floats; such events (20+ digits in a row) take
    # the exact path below. The scan costs ~1.5 ms per MiB, a tenth of the parse.
    if body.translate(_DIGITS_AS_ZERO).find(_TWENTY_DIGITS) < 0:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    # The stdlib accepts what simplejson accepts (NaN, huge integers) and words its errors
    # the same way ("Expecting value: line 1 column 1 (char 0)").
    import json

    try:
        return json.loads(body)
    except Exception as e:  # noqa: BLE001 - every failure is the caller's bad event
        raise RuntimeFault(UNMARSHAL_ERROR, f"Unable to unmarshal input: {e}") from None


def dumps(obj: Any) -> bytes:
    """Compact JSON for the runtime's own messages (error bodies, logs)."""
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS)
