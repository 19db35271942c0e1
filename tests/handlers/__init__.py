"""Small user handler modules that tests run under a runtime (e.g. `tests.handlers.basic.handler`)."""
