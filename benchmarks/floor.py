"""The floor: the least a Python process can do to serve Lambda invokes.

One kept-alive blocking socket, a buffered reader for the answer, JSON decode and
encode, the handler call, nothing else: no context object, no logging setup, no error
handling. A generator handler's items are streamed, one send each (the head with the first).
Each runtime's numbers are read against this.

Usage: AWS_LAMBDA_RUNTIME_API=host:port python floor.py module.function
"""

import importlib
import json
import os
import socket
import sys

json_loads = json.loads
_dumps = json.JSONEncoder(separators=(",", ":")).encode

# JSON: the stdlib's C codec for tiny events, orjson (as aruntime uses) from the first bigger one.
# Importing orjson costs ~10 ms (it pulls in dataclasses, uuid, datetime...), which is not
# unavoidable at init; from a few KiB on its speed is the limit. The floor takes the best of both.
_BIG = 1024
_fast = None


def _codec(size):
    global _fast
    if size < _BIG:
        return json_loads, json_dumps
    if _fast is None:
        try:
            import orjson

            _fast = (orjson.loads, orjson.dumps)
        except ImportError:  # pragma: no cover - orjson is an aruntime dependency
            _fast = (json_loads, json_dumps)
    return _fast


def json_dumps(obj):
    return _dumps(obj).encode()


_GET = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n"
_POST = (
    b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
)
_STREAM = (
    b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\n"
    b"Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n"
)


def _read_head(rfile):
    """Return (content_length, request_id) of the answer whose status line is next."""
    rfile.readline()
    length = 0
    rid = b""
    while True:
        line = rfile.readline()
        if line == b"\r\n" or not line:
            return length, rid
        name, _, value = line.partition(b":")
        name = name.lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"lambda-runtime-aws-request-id":
            rid = value.strip()


def _stream(sock, head, items):
    """The head and the first chunk in one send, then one send per chunk: the least a
    streamed response can cost (items are bytes)."""
    pending = head
    for item in items:
        sock.sendall(pending + b"%x\r\n%s\r\n" % (len(item), item))
        pending = b""
    sock.sendall(pending + b"0\r\n\r\n")


def main() -> None:
    host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
    module, _, func = sys.argv[1].rpartition(".")
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", os.getcwd()))
    handler = getattr(importlib.import_module(module), func)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rfile = sock.makefile("rb")
    while True:
        sock.sendall(_GET)
        length, rid = _read_head(rfile)
        loads, dumps = _codec(length)
        result = handler(loads(rfile.read(length)), None)
        if hasattr(result, "__next__"):  # a generator: stream it, one send per item
            _stream(sock, _STREAM % rid, result)
            length, _ = _read_head(rfile)
            rfile.read(length)
            continue
        out = dumps(result)
        head = _POST % (rid, len(out))
        sent = sock.sendmsg([head, out])
        if sent < len(head) + len(out):  # a signal cut the blocking send short
            sock.sendall((head + out)[sent:])
        length, _ = _read_head(rfile)
        rfile.read(length)


if __name__ == "__main__":
    main()
