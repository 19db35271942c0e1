"""The `fast` wire engine: httptools (llhttp, in C) parses the answers; see `wire.py`."""

from __future__ import annotations

import httptools

from .wire import (CLOSED, CUT, HEAD_LIMIT, HEAD_TOO_LARGE, UNANSWERED, Deliver, RequestHead,
                   Response, WireError, chunk_bytes, end_bytes, head_bytes, only_blank)

# What llhttp refuses in a head that h11 reads (so the default engine reads it): control
# characters other than NUL in a value (RFC 9110 §5.5 lets a recipient keep them), obs-fold
# lines (RFC 9112 §5.2: a user agent replaces them with spaces), a Content-Length repeated with
# the same value or as a list of one value ("2, 2", RFC 9110 §8.6). Such a head is read again
# by h11 itself (`_reread`), so both engines give the same answer for the same bytes.
_REREAD = frozenset((
    "Invalid header value char",
    "Unexpected whitespace after header value",
    "Duplicate Content-Length",
    "Invalid character in Content-Length",
))
# The same refusals in a chunked answer's trailer section, which h11 reads by the same rules.
_TRAILER_REREAD = frozenset(("Invalid header value char", "Unexpected whitespace after header value"))
# Bytes llhttp's strict parser refuses in a value (all controls but HTAB), for the clean head
# fed to a fresh parser once h11 has read the odd one; the values delivered are h11's.
_LLHTTP_UNSAFE = bytes(range(9)) + bytes(range(10, 32)) + b"\x7f"
_TO_QUESTION_MARK = bytes.maketrans(_LLHTTP_UNSAFE, b"?" * len(_LLHTTP_UNSAFE))


class _Unsolicited(Exception):
    """Raised from a parser callback to stop parsing an answer no request is waiting for."""


class _UnsupportedCoding(Exception):
    """Raised from a parser callback: a transfer coding h11 refuses (`on_chunk_header`)."""


class FastWire:
    """httptools as the parser; requests framed by `wire.head_bytes`, as h11 would frame them."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._parser = self._new_parser()
        self._headers: list[tuple[bytes, bytes]] = []
        # The head being parsed: the read it began in (`_head_at`), copies of the reads before
        # the current one when it spans several (`_kept`); for `_reread` and the size limit.
        self._feeding: bytes | memoryview = b""
        self._head_at: bytes | memoryview | None = None
        self._kept: list[bytes] | None = None
        self._pending: bytearray | None = None  # an odd head waiting for its end (`_reread`)
        self._override: list[tuple[bytes, bytes]] | None = None  # h11's headers for the answer
        self._pending_trailers: bytearray | None = None  # an odd trailer section, its end to come
        self._trailers_partial = False  # ...whose first line began in a read not kept
        self._body: list[bytes] = []
        self._head: tuple[int, list[tuple[bytes, bytes]]] | None = None  # final answer's head
        self._sending = False
        self._outstanding = 0  # requests sent whose answer has not arrived
        self._started = False
        self._broken = False
        self._keep_alive = True
        self._version_unchecked = True
        self._close_after = False  # the answer being read has both framings (`on_chunk_header`)

    def _new_parser(self) -> httptools.HttpResponseParser:
        parser = httptools.HttpResponseParser(self)
        # h11 accepts a bare LF as a line end (RFC 9112 §2.2 allows it); so must we. It reads
        # any one-digit HTTP version, as RFC 9110 §2.5 asks for a higher minor one ("HTTP/1.2"
        # is read as 1.1); llhttp, strict, refuses all but 0.9, 1.0, 1.1 and 2.0.
        # A chunked answer that also has a Content-Length is read as chunked (RFC 9112 §6.3:
        # the Transfer-Encoding overrides it), as h11 reads it; llhttp then ends the connection
        # after it, and so does the h11 engine (such framing "ought to be handled as an error").
        parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True, lenient_version=True,
                                        lenient_chunked_length=True)
        return parser

    # httptools callbacks. They run for every answer: keep them lean (the rare cases, such as
    # a body that ends at close, are sorted out at end of stream instead).
    def on_message_begin(self) -> None:
        if not self._outstanding or not self._keep_alive:
            self._broken = True
            raise _Unsolicited
        self._started = True
        self._head_at = self._feeding

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        self._head_at = self._kept = None
        status = self._parser.get_status_code()
        if self._override is not None:  # a head h11 read again (`_reread`): its headers
            self._headers, self._override = self._override, None
        if status >= 200:
            self._head = (status, self._headers)
        # Interim answers' headers are dropped; a final answer's trailers land here and are
        # dropped too (h11 ignores both).
        self._headers = []

    def on_chunk_header(self) -> None:
        # Called for chunked bodies only; checked at the first chunk (nothing of the body read
        # yet). h11 reads a chunked body under exactly one `Transfer-Encoding: chunked` and
        # refuses "gzip, chunked" or a repeated header, which llhttp reads as chunked.
        if not self._body and self._head is not None:
            codings = []
            for name, value in self._head[1]:
                if name == b"transfer-encoding":
                    codings.append(value)
                elif name == b"content-length":
                    # Both framings (`_new_parser`): the connection ends after this answer.
                    # (llhttp's should_keep_alive() says so only once the answer is over.)
                    self._close_after = True
            if len(codings) != 1 or codings[0].lower() != b"chunked":
                raise _UnsupportedCoding

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._head is None:  # an interim answer ended
            return
        parser = self._parser
        keep_alive = parser.should_keep_alive()
        if self._close_after:
            keep_alive = self._close_after = False
        if self._version_unchecked:  # once per connection: the call is not cheap
            self._version_unchecked = False
            # h11 never keeps an HTTP/1.0 connection, whatever its Connection header says.
            keep_alive = keep_alive and parser.get_http_version() != "1.0"
        self._finish(keep_alive)

    def _finish(self, keep_alive: bool) -> None:
        status, headers = self._head  # type: ignore[misc]
        body = b"".join(self._body)
        self._body, self._head, self._started = [], None, False
        if self._headers:  # trailers
            self._headers = []
        self._outstanding -= 1
        if not keep_alive:
            self._keep_alive = False
        self._deliver(Response(status, headers, body))

    def request(self, head: RequestHead, body: bytes = b"") -> bytes:
        data = head_bytes(head)
        self._outstanding += 1
        return data + body if body else data

    def stream_head(self, head: RequestHead) -> bytes:
        data = head_bytes(head)
        self._outstanding += 1
        self._sending = True
        return data

    def chunk(self, data: bytes) -> bytes:
        return chunk_bytes(data)

    def end_stream(self, trailers: list[tuple[bytes, bytes]]) -> bytes:
        data = end_bytes(trailers)
        self._sending = False
        return data

    def receive(self, data: bytes | memoryview) -> None:
        if not data:
            self._eof()
            return
        pending = self._pending
        if pending is not None:  # the rest of an odd head (`_reread`)
            self._pending = None
            pending += data
            self._reread(bytes(pending), 0)
        elif self._pending_trailers is not None:  # the rest of an odd trailer section
            pending, self._pending_trailers = self._pending_trailers, None
            pending += data
            self._reread_trailers(bytes(pending), pending=True)
        elif self._outstanding == 0 or self._broken or not self._keep_alive:
            _unsolicited(self, data)
            return
        else:
            self._feed(data)
        if not self._keep_alive and self._outstanding:
            raise WireError(UNANSWERED)

    def _feed(self, data: bytes | memoryview) -> None:
        self._feeding = data
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            # A 101 (or any upgrade) nobody asked for: not HTTP/1.1 from here on. Not an
            # HttpParserError: uncaught, it escaped the protocol callback (asyncio's "Fatal
            # error" log) and the answer was called cut short.
            raise WireError("the Runtime API switched protocols, unasked", cut=True) from e
        except httptools.HttpParserError as e:
            # Bytes after the last answer we asked for, or after one that ended the connection
            # (`Connection: close`), answer nothing; anything else is a broken answer.
            if not (self._broken or not self._keep_alive):
                if isinstance(e.__context__, _UnsupportedCoding):
                    raise WireError("only Transfer-Encoding: chunked is supported", cut=True) from e
                if self._head is None and self._head_at is not None and str(e) in _REREAD:
                    self._reread_from(data)
                    return
                if self._head is not None and str(e) in _TRAILER_REREAD:
                    self._reread_trailers(bytes(data))
                    return
                raise WireError(str(e), cut=True, head=self._head) from e
        if self._head_at is not None:  # a head continues in the next read: keep its bytes
            kept = self._kept
            if kept is None:
                kept = self._kept = []
            kept.append(bytes(data))  # a copy: the connection reuses its read buffer
            if sum(map(len, kept)) - len(kept[0]) > HEAD_LIMIT:
                raise WireError(HEAD_TOO_LARGE, cut=True)

    def _reread_from(self, data: bytes | memoryview) -> None:
        """llhttp refused a head h11 reads (`_REREAD`): find where the head began in the bytes
        kept since, and read it again with h11."""
        raw = b"".join(self._kept or ()) + bytes(data)
        status = self._parser.get_status_code()
        seen = self._headers  # the head's lines llhttp had read before the odd one
        start = -1
        at = raw.find(b"HTTP/")
        while at >= 0:
            if _head_matches(raw, at, status, seen):
                start = at
                if not seen:  # nothing to tell two candidates apart: the first one
                    break
            at = raw.find(b"HTTP/", at + 1)
        if start < 0:
            raise WireError("the Runtime API's answer has a malformed head", cut=True)
        self._reread(raw, start)

    def _reread_trailers(self, raw: bytes, pending: bool = False) -> None:
        """llhttp refused a trailer section h11 reads (`_TRAILER_REREAD`): check it with h11's
        rules, end the answer (trailers are dropped, as h11 drops them), and go on with a fresh
        parser after it. `raw` is the read the refusal came in (or, `pending`, the section's
        bytes so far); a section begun in an earlier read is checked from where `raw` starts."""
        import re

        start = 0
        if not pending:
            seen = self._headers  # trailer fields llhttp read before the odd one
            for found in re.finditer(rb"(?:^|\n)0+[ \t]*(?:;[^\r\n]*)?\r?\n", raw):
                at = found.end()
                if _lines_match(raw, at, seen):
                    start = at
                    if not seen:
                        break
        partial = self._trailers_partial if pending else start == 0
        end = re.compile(rb"\n\r?\n").search(raw, max(start - 1, 0))
        if end is None:
            if len(raw) - start > HEAD_LIMIT:
                raise WireError(HEAD_TOO_LARGE, cut=True, head=self._head)
            self._pending_trailers = bytearray(raw[start:])
            self._trailers_partial = partial
            return
        section = raw[start:end.start() + 1]  # the trailer lines, the last one's LF included
        if partial:
            # Its first line began in a read not kept: check the rest of that line as a value.
            section = b"X-Partial: x" + (b"\r\n" if section[:1] in (b" ", b"\t") else b"") + section
        import h11

        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method=b"GET", target=b"/", headers=[(b"Host", b"h")]))
        conn.send(h11.EndOfMessage())
        try:
            conn.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
                              + section + b"\r\n")
            while not isinstance(conn.next_event(), h11.EndOfMessage):
                pass
        except h11.RemoteProtocolError as e:
            raise WireError(str(e), cut=True, head=self._head) from e
        status, headers = self._head  # type: ignore[misc]
        keep_alive = self._parser.get_http_version() != "1.0" and not any(
            name == b"connection" and b"close" in value.lower() for name, value in headers)
        self._parser = self._new_parser()
        self._headers, self._head_at, self._kept = [], None, None
        self._finish(keep_alive)
        rest = raw[end.end():]
        if rest:
            if self._outstanding == 0 or self._broken or not self._keep_alive:
                _unsolicited(self, rest)
            else:
                self._feed(rest)

    def _reread(self, raw: bytes, start: int) -> None:
        """Read the head at `raw[start:]` with h11 (waiting for its end if need be), then go
        on with a fresh llhttp parser fed a clean copy of it and the bytes after it."""
        import re

        end = re.compile(rb"\n\r?\n").search(raw, start)
        if end is None:
            if len(raw) - start > HEAD_LIMIT:
                raise WireError(HEAD_TOO_LARGE, cut=True)
            self._pending = bytearray(raw[start:])
            return
        import h11  # the default engine, a dependency of the runtime: only for odd heads

        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=HEAD_LIMIT)
        conn.send(h11.Request(method=b"GET", target=b"/", headers=[(b"Host", b"h")]))
        conn.send(h11.EndOfMessage())
        try:
            conn.receive_data(raw[start:end.end()])
            event = conn.next_event()
        except h11.RemoteProtocolError as e:
            raise WireError(str(e), cut=True) from e
        if not isinstance(event, (h11.Response, h11.InformationalResponse)):
            raise WireError("the Runtime API's answer has a malformed head", cut=True)
        headers = list(event.headers)
        clean = [b"HTTP/%s %d -\r\n" % (event.http_version, event.status_code)]
        for name, value in headers:
            clean += (name, b": ", value.translate(_TO_QUESTION_MARK), b"\r\n")
        clean.append(b"\r\n")
        self._parser = self._new_parser()
        self._headers, self._head_at, self._kept = [], None, None
        self._override = headers
        self._feed(b"".join(clean) + raw[end.end():])

    def _eof(self) -> None:
        if self._pending is not None:  # in an odd head (`_reread`)
            raise WireError(CUT, cut=True)
        if self._pending_trailers is not None:
            raise WireError(CUT, cut=True, head=self._head)
        if not (self._outstanding and self._started and not self._broken):
            raise WireError(CLOSED)
        head = self._head
        if head is None:
            raise WireError(CUT, cut=True)
        status, headers = head
        names = {name for name, _ in headers}
        if b"transfer-encoding" in names:
            if [v.lower() for n, v in headers if n == b"transfer-encoding"] != [b"chunked"]:
                # llhttp read such a body until the close; h11 refuses the head: as h11.
                raise WireError("only Transfer-Encoding: chunked is supported", cut=True)
        elif b"content-length" not in names and status not in (204, 304):
            self._finish(False)  # RFC 9112 §6.3: the body ended with the connection
            if self._outstanding:
                raise WireError(UNANSWERED)
            return
        raise WireError(CUT, cut=True, head=head)

    def reusable(self) -> bool:
        return (self._keep_alive and not self._broken and not self._outstanding
                and not self._sending)


def _head_matches(raw: bytes, at: int, status: int, seen: list[tuple[bytes, bytes]]) -> bool:
    """Whether a head with this status code and these first header lines starts at `at`."""
    line_end = raw.find(b"\n", at)
    if line_end < 0:
        return False
    first = raw[at:line_end].rstrip(b"\r").split(b" ", 2)
    if len(first) < 2 or first[1] != b"%d" % status:
        return False
    return _lines_match(raw, line_end + 1, seen)


def _lines_match(raw: bytes, pos: int, seen: list[tuple[bytes, bytes]]) -> bool:
    """Whether the header lines at `raw[pos:]` begin with these (lower-cased) fields."""
    for name, value in seen:
        line_end = raw.find(b"\n", pos)
        if line_end < 0:
            return False
        line_name, colon, line_value = raw[pos:line_end].rstrip(b"\r").partition(b":")
        if not colon or line_name.lower() != name or line_value.strip(b" \t") != value:
            return False
        pos = line_end + 1
    return True


def _unsolicited(wire: FastWire, data: bytes | memoryview) -> None:
    """Bytes while no answer is awaited: empty lines are harmless; anything else (a second
    answer, a late 408) answers no request, so the connection must not be reused."""
    if not only_blank(data):
        wire._broken = True
