"""The floor: the least a Python process can do to serve Lambda invokes.

One kept-alive blocking socket, a buffered reader for the answer, JSON decode and
encode (orjson when present, as aruntime uses), the handler call, nothing else: no
context object, no logging setup, no error handling. Each runtime's numbers are
read against this.

Usage: AWS_LAMBDA_RUNTIME_API=host:port python floor.py module.function
"""

import importlib
import os
import socket
import sys

try:
    from orjson import dumps, loads
except ImportError:  # pragma: no cover - orjson is an aruntime dependency
    import json

    loads = json.loads

    def dumps(obj):  # type: ignore[no-redef]
        return json.dumps(obj, separators=(",", ":")).encode()


_GET = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n"
_POST = (
    b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
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
        out = dumps(handler(loads(rfile.read(length)), None))
        head = _POST % (rid, len(out))
        sent = sock.sendmsg([head, out])
        if sent < len(head) + len(out):  # a signal cut the blocking send short
            sock.sendall((head + out)[sent:])
        length, _ = _read_head(rfile)
        rfile.read(length)


if __name__ == "__main__":
    main()
