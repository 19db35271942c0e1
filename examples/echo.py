"""A tiny buffered function: returns what it gets, and a few test switches.

    {"sleep": 2}        sleep first (seconds)
    {"raise": "boom"}   raise ValueError("boom")
    {"exit": 3}         end the process at once with that exit status
    {"print": "hi"}     print a line first
"""

import os
import time


def handler(event, context):
    if isinstance(event, dict):
        if "print" in event:
            print(event["print"], flush=True)
        if "sleep" in event:
            time.sleep(float(event["sleep"]))
        if "raise" in event:
            raise ValueError(event["raise"])
        if "exit" in event:
            os._exit(int(event["exit"]))
    return {
        "echo": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
