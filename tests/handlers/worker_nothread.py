"""A process where the OS starts one worker thread and refuses the next (a pid or memory limit),
simulated by refusing `Thread.start`, for tests/test_sync_workers.py."""

import threading
import time

_start = threading.Thread.start


def _refuse_after_the_first(self):
    if self.name.startswith("aruntime-sync_") and self.name != "aruntime-sync_0":
        raise RuntimeError("can't start new thread")
    _start(self)


threading.Thread.start = _refuse_after_the_first


def handler(event, context):
    time.sleep(event["s"])
    return {"ok": threading.current_thread().name}
