"""Prints and logs through the root logger and a named one (differential test of log output)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("app.orders")


def handler(event: Any, context: Any) -> Any:
    print("printed", event.get("n"))
    logging.info("root info %s", event.get("n"))
    logging.warning("root warning")
    log.error("named error", extra={"order": 7})
    log.debug("debug is below the level")
    try:
        {}["missing"]
    except KeyError:
        log.exception("caught")
    return {"logged": True}
