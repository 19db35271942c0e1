"""Imports a module that does not exist: Runtime.ImportModuleError at init."""

import core_no_such_dependency  # noqa: F401


def handler(event, context):  # pragma: no cover - never reached
    return None
