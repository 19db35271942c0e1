"""The event-stream encoder, byte for byte, and as botocore's own decoder reads it."""

from __future__ import annotations

import json
import struct

from botocore.eventstream import EventStreamBuffer

from aruntime.emulator import eventstream


def test_empty_message_matches_the_published_vector() -> None:
    # aws-c-event-stream's "empty message" test vector.
    expected = bytes.fromhex("00000010 00000000 05c248eb 7d98c8ff".replace(" ", ""))
    assert eventstream.encode_message({}, b"") == expected


def test_payload_chunk_layout_byte_exact() -> None:
    frame = eventstream.payload_chunk(b"hi")
    headers = (
        b"\x0b:event-type\x07\x00\x0cPayloadChunk"
        b"\x0d:content-type\x07\x00\x18application/octet-stream"
        b"\x0d:message-type\x07\x00\x05event"
    )
    total = 12 + len(headers) + 2 + 4
    prelude = struct.pack(">II", total, len(headers))
    assert frame[:8] == prelude
    assert frame[12 : 12 + len(headers)] == headers
    assert frame[12 + len(headers) : -4] == b"hi"
    assert len(frame) == total
    # Both CRCs, checked with a bitwise CRC-32 written here (not zlib).
    assert frame[8:12] == struct.pack(">I", _crc32(prelude))
    assert frame[-4:] == struct.pack(">I", _crc32(frame[:-4]))


def test_botocore_decodes_chunks_and_completion() -> None:
    raw = (
        eventstream.payload_chunk(b"first")
        + eventstream.payload_chunk(bytes(range(256)))
        + eventstream.invoke_complete("Function.ValueError", '{"errorMessage":"x"}', "bG9n")
    )
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    messages = list(buffer)
    assert [m.headers[":event-type"] for m in messages] == ["PayloadChunk", "PayloadChunk", "InvokeComplete"]
    assert messages[0].payload == b"first"
    assert messages[1].payload == bytes(range(256))
    assert all(m.headers[":message-type"] == "event" for m in messages)
    assert json.loads(messages[2].payload) == {
        "ErrorCode": "Function.ValueError",
        "ErrorDetails": '{"errorMessage":"x"}',
        "LogResult": "bG9n",
    }


def test_success_completion_is_an_empty_object() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(eventstream.invoke_complete())
    (message,) = list(buffer)
    assert message.headers[":content-type"] == "application/json"
    assert json.loads(message.payload) == {}


def _crc32(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
