"""Handlers whose failures break the error-reporting path (tests/test_reporting_path.py).

event["do"] picks the failure; anything else sleeps event["sleep"] seconds and answers
{"ok": event["n"]}, so other invocations are in flight while one fails (N > 1).
"""

import asyncio
import os
import tempfile
import time


class StrExits(Exception):
    def __str__(self):
        raise SystemExit(3)


class StrInterrupts(Exception):
    def __str__(self):
        raise KeyboardInterrupt("from __str__")


class StrGeneratorExit(Exception):
    def __str__(self):
        raise GeneratorExit()


class _NameExits(type):
    @property
    def __name__(cls):  # noqa: PLE0307 - exactly what the test needs: a hostile class name
        raise SystemExit(4)


class NameExits(Exception, metaclass=_NameExits):
    pass


def _fail(do):
    if do == "gone_cwd":
        # A handler working in a temporary directory removed on its way out: no cwd any more.
        with tempfile.TemporaryDirectory() as d:
            os.chdir(d)
            raise ValueError("failed in a removed directory")
    if do == "str_exits":
        raise StrExits()
    if do == "str_interrupts":
        raise StrInterrupts()
    if do == "str_generator_exit":
        raise StrGeneratorExit()
    if do == "cause_str_exits":
        try:
            raise StrExits()
        except StrExits as e:
            raise ValueError("outer") from e
    if do == "name_exits":
        raise NameExits("named")


def handler(event, context):
    _fail(event.get("do"))
    time.sleep(event.get("sleep", 0))
    return {"ok": event.get("n")}


async def async_handler(event, context):
    _fail(event.get("do"))
    await asyncio.sleep(event.get("sleep", 0))
    return {"ok": event.get("n")}


def generator(event, context):
    yield b"first"
    _fail(event.get("do"))
    yield b"ok"


def _deep(n):
    root = cur = {}
    for _ in range(n):
        cur["a"] = {}
        cur = cur["a"]
    return root


RESULTS = {
    "deep": lambda: _deep(100_000),  # beyond every Python's recursion limit
    "huge_int": lambda: {"n": 10**5000},
    "echo": None,  # the event's text, lone surrogate and all
}


def result(event, context):
    make = RESULTS[event["r"]]
    return event["text"] if make is None else make()


async def async_result(event, context):
    return result(event, context)


def returning_generator(event, context):
    # Writes nothing, returns its value: the value is the answer, sent buffered.
    return result(event, context)
    yield


def context_probe(event, context):
    """What the handler sees of its invocation's headers."""
    return {"rid": context.aws_request_id, "left": context.get_remaining_time_in_millis(),
            "trace": os.environ.get("_X_AMZN_TRACE_ID")}


def logs_hostile(event, context):
    """Logs an exception that does not print (a sibling of the reporting path: the log path)."""
    import logging

    for cls in (StrExits, NameExits):
        try:
            raise cls()
        except cls:
            logging.getLogger("app").exception("caught")
    return {"ok": True}
