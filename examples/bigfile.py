"""A large-file streamer: sends a generated file of any size in 64 KiB chunks.

    aruntime serve examples/bigfile.py:handler
    curl -s 'http://127.0.0.1:9000/?mib=100' | wc -c        # 104857600

Memory stays flat however large the file: each chunk is written when the network takes it.
A buffered Lambda response stops at 6 MB; a streamed one goes to 200 MB.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator
from urllib.parse import parse_qs

from aruntime import HttpResponse

CHUNK = 64 * 1024


def size_of(event: Any) -> int:
    if isinstance(event, dict):
        if "mib" in event:
            return int(float(event["mib"]) * (1 << 20))
        query = parse_qs(event.get("rawQueryString") or "")
        if "mib" in query:
            return int(float(query["mib"][0]) * (1 << 20))
    return 10 << 20


def handler(event: Any, context: Any) -> Iterator[Any]:
    size = size_of(event)
    yield HttpResponse(status_code=200, headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": 'attachment; filename="big.bin"',
    })
    # Deterministic content: the caller can check it (sha256 of block i is block i+1's seed).
    block = hashlib.sha256(b"aruntime").digest() * (CHUNK // 32)
    sent = 0
    while sent < size:
        piece = block[: min(CHUNK, size - sent)]
        yield piece
        sent += len(piece)
