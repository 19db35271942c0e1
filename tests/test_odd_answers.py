"""Odd `/next` answers, read the same by both wire engines, and odd header values answered
safely (breaker findings 8 and 11). The engine is `pytest --wire` (.ci/run runs this file on
h11 and on httptools); the peer is `RawPeer`, answering with exact bytes.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from test_peers import T, runtime, targets, warnings
from rawpeer import RawPeer, answer

H = "tests.handlers.reporting_breakers."
INV = "/2018-06-01/runtime/invocation/"


def _next(rid: bytes, extra: bytes = b"", deadline: bytes | None = None) -> bytes:
    """A `/next` answer with raw header bytes (which `RawPeer.invocation` cannot carry)."""
    if deadline is None:
        deadline = str(int(time.time() * 1000) + 60_000).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Lambda-Runtime-Aws-Request-Id: " + rid + b"\r\n"
            b"Lambda-Runtime-Deadline-Ms: " + deadline + b"\r\n" + extra
            + b"Content-Length: 2\r\n\r\n{}")


async def test_odd_request_ids_and_deadlines_are_answered_safely() -> None:
    # Breaker finding 11: "." and ".." are dot-segments (`/invocation/../response` is
    # `/runtime/response` to a server that removes them); an id that is not UTF-8 is encoded
    # from its bytes (U+FFFD could never name the invocation); a deadline past the year 9999 is
    # no deadline, as one before 2001 is.
    async with RawPeer() as peer:
        peer.push(_next(b".."))
        peer.push(_next(b"."))
        peer.push(_next(b"r\xff\xfe"))
        peer.push(_next(b"dl-huge", deadline=b"9" * 40))
        peer.finish()
        async with runtime(peer.authority, H + "context_probe") as proc:
            assert await proc.wait(T) == 1, proc.stderr.decode()
    posts = [r for r in peer.requests if r.method == "POST"]
    assert [r.target for r in posts] == [
        INV + "%2E%2E/response", INV + "%2E/response", INV + "r%FF%FE/response",
        INV + "dl-huge/response"]
    bodies = [json.loads(r.body) for r in posts]
    assert [b["rid"] for b in bodies] == ["..", ".", "r\ufffd\ufffd", "dl-huge"]
    # No deadline: Lambda's longest timeout (15 minutes) from now, not a 40-digit number.
    assert 0 < bodies[3]["left"] <= 900_000, bodies[3]


async def test_odd_next_answers_are_read_as_h11_reads_them() -> None:
    # Breaker finding 8: control characters in a value, obs-fold lines, a Content-Length
    # repeated or listed with one value (RFC 9110 §5.5, RFC 9112 §5.2, RFC 9110 §8.6). httptools
    # refused them (the invocation lost; five in a row and the runtime exited); now both engines
    # serve them alike. A head no HTTP/1.1 peer may send (a space before the colon) is refused
    # by both, with a warning that says so, carrying no request id: not the previous
    # invocation's.
    async with RawPeer() as peer:
        peer.push(_next(b"ctl", b"Lambda-Runtime-Trace-Id: Root=a\x01b\x7f\r\n"))
        peer.push(_next(b"fold", b"Lambda-Runtime-Trace-Id: Root=a\r\n  folded\r\n"))
        peer.push(_next(b"dup-cl", b"Content-Length: 2\r\n"))
        peer.push(_next(b"list-cl").replace(b"Content-Length: 2", b"Content-Length: 2, 2"))
        peer.push(_next(b"bad-name", b"Lambda-Runtime-Trace-Id : x\r\n"))
        peer.push(_next(b"last"))
        peer.finish()
        async with runtime(peer.authority, H + "context_probe") as proc:
            assert await proc.wait(T) == 1, proc.stderr.decode()
    posts = [r for r in peer.requests if r.method == "POST"]
    assert [r.target for r in posts] == [INV + rid + "/response" for rid in (
        "ctl", "fold", "dup-cl", "list-cl", "last")], proc.stdout.decode()
    traces = [json.loads(r.body)["trace"] for r in posts]
    assert traces == ["Root=a\x01b\x7f", "Root=a folded", None, None, None]
    (line,) = warnings(proc.stdout)
    level, _, request_id, message = line.split("\t")
    assert (level, request_id) == ("[WARNING]", "")  # not "list-cl"
    assert message.startswith(f"the Runtime API's answer to GET {INV}next is not valid HTTP/1.1: ")
    assert message.endswith("; sending the request again") and "cut short" not in message
