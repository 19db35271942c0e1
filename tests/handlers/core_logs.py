"""Logs through the root logger in the ways the log-format tests look at."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("core")


def handler(event: Any, context: Any) -> Any:
    do = event.get("do", "levels")
    if do == "levels":
        log.debug("debug line")
        log.info("info line %s", 1)
        log.warning("warning line\nsecond line")
        log.error({"structured": True, "n": 2})
        log.warning("with extra", extra={"color": "blue"})
        try:
            raise ValueError("logged failure")
        except ValueError:
            log.exception("caught it")
    elif do == "fail":
        raise ValueError("invocation failed")
    elif do == "print_then_wait":
        # The test sees this line before the /response arrives, then creates the flag file.
        print("PRINTED", context.aws_request_id)
        flag = Path(event["flag"])
        deadline = time.monotonic() + 5
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return {"flag_seen": flag.exists()}
    elif do == "env":
        return {"telemetry_env": os.environ.get("_LAMBDA_TELEMETRY_LOG_FD"),
                "stdout_type": type(sys.stdout).__name__}
    return {"ok": True}
