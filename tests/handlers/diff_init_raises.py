"""Raises while being imported, from a nested call (differential test)."""


class ConfigError(Exception):
    pass


def _load_config() -> None:
    raise ConfigError("missing setting DB_URL")


_load_config()


def handler(event, context):  # type: ignore[no-untyped-def]
    return None
