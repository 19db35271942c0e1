"""Fails to import one of its own dependencies at import time (differential test)."""

import tests_handlers_no_such_dependency  # noqa: F401


def handler(event, context):  # type: ignore[no-untyped-def]
    return None
