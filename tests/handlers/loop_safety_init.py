"""Starts a non-daemon thread at import, then fails the init (tests/test_loop_safety.py)."""

import threading
import time

threading.Thread(target=time.sleep, args=(60,), name="started-at-import").start()
raise ValueError("init fails after starting a thread")


def handler(event, context):
    return {}
