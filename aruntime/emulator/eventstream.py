"""Encoder for `application/vnd.amazon.eventstream` messages (InvokeWithResponseStream).

Message layout, all integers big-endian:
    u32 total length | u32 headers length | u32 CRC32(first 8 bytes)
    headers | payload | u32 CRC32(everything before)
Each header: u8 name length | name | u8 value type | value; only type 7 (string:
u16 length + UTF-8 bytes) is needed here.
"""

from __future__ import annotations

import struct
import zlib

import orjson

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = encode_headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _event(event_type: str, content_type: str, payload: bytes) -> bytes:
    headers = {
        ":event-type": event_type,
        ":content-type": content_type,
        ":message-type": "event",
    }
    return encode_message(headers, payload)


def payload_chunk(data: bytes) -> bytes:
    return _event("PayloadChunk", "application/octet-stream", data)


def invoke_complete(
    error_code: str | None = None,
    error_details: str | None = None,
    log_result: str | None = None,
) -> bytes:
    body: dict[str, str] = {}
    if error_code is not None:
        body["ErrorCode"] = error_code
    if error_details is not None:
        body["ErrorDetails"] = error_details
    if log_result is not None:
        body["LogResult"] = log_result
    return _event("InvokeComplete", "application/json", orjson.dumps(body))
