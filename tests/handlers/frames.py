"""Handlers of every style that fail two calls deep, with or without a chained exception, for
tests/test_error_frames.py. `event["kind"]` picks the failure, `event["after"]` fails after the
first streamed chunk."""

import asyncio
import logging

import aruntime

log = logging.getLogger("frames")


def _plain():
    raise LookupError("could not load")


def _cause():
    try:
        {}["missing"]
    except KeyError as e:
        raise LookupError("could not load") from e


def _context():
    try:
        {}["missing"]
    except KeyError:
        raise LookupError("could not load")


def _suppressed():
    try:
        {}["missing"]
    except KeyError:
        raise LookupError("could not load") from None


FAIL = {"plain": _plain, "cause": _cause, "context": _context, "suppressed": _suppressed}


def _outer(kind):
    FAIL[kind]()


def sync(event, context):
    if event["kind"] == "logged":  # not an error: a record with a chained exception
        try:
            _outer("cause")
        except LookupError:
            log.exception("caught")
        return {"ok": True}
    _outer(event["kind"])


async def async_(event, context):
    await asyncio.sleep(0)
    _outer(event["kind"])


def sync_gen(event, context):
    if event.get("after"):
        yield b"first"
    _outer(event["kind"])
    yield b"never"


async def async_gen(event, context):
    if event.get("after"):
        yield b"first"
    await asyncio.sleep(0)
    _outer(event["kind"])
    yield b"never"


@aruntime.streaming
async def writer(event, context, stream):
    if event.get("after"):
        await stream.write(b"first")
    await asyncio.sleep(0)
    _outer(event["kind"])
