"""The SIGALRM "soft timeout" pattern, for tests/test_sync_workers.py."""

import signal
import time


def _timeout(signum, frame):
    raise TimeoutError("soft timeout")


signal.signal(signal.SIGALRM, _timeout)  # at import: the main thread


def handler(event, context):
    signal.alarm(event["alarm"])
    try:
        time.sleep(event["s"])
    except TimeoutError:
        return {"timed_out": True}
    finally:
        signal.alarm(0)
    return {"timed_out": False}
