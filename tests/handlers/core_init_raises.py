"""Raises at import time: an init failure that is not one of the runtime's named faults."""


def _boom() -> None:
    raise RuntimeError("init exploded")


_boom()


def handler(event, context):  # pragma: no cover - never reached
    return None
