"""A handler module that installs its own SIGTERM handling at import, as `PREVIOUS` says, for
tests/test_sigterm_chain.py. Every step prints one line, flushed, so the test sees the order."""

import asyncio
import os
import signal
import sys

import aruntime

PREVIOUS = os.environ.get("PREVIOUS", "none")


def say(text):
    print(text, flush=True)


def user_handler(signum, frame):
    say(f"user handler {signum} {frame is None}")
    if PREVIOUS == "callable_exit":
        sys.exit(3)


if PREVIOUS in ("callable", "callable_exit"):
    signal.signal(signal.SIGTERM, user_handler)
elif PREVIOUS == "ign":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif PREVIOUS == "dfl":
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
elif PREVIOUS == "default_int":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
elif PREVIOUS == "loop":
    asyncio.get_event_loop().add_signal_handler(signal.SIGTERM, say, "loop handler")


@aruntime.on_shutdown
def hook():
    say("aruntime hook")


def handler(event, context):
    return {"ok": True}
