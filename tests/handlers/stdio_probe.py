"""Writes to stdout and stderr, then waits for the test's go-ahead (tests/test_runtime_stdio.py)."""

import logging
import os
import sys
import time


def handler(event, context):
    print("to stdout", end="")  # no newline: only an unbuffered stream has sent it yet
    sys.stderr.write("to stderr")
    logging.getLogger("probe").warning("logged")
    deadline = time.monotonic() + 10
    while not os.path.exists(event["go"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"waited": os.path.exists(event["go"])}
