"""Calls sys.exit inside the handler (differential test: SystemExit is not an Exception)."""

from __future__ import annotations

import sys
from typing import Any


def handler(event: Any, context: Any) -> Any:
    sys.exit(3)
