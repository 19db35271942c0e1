"""Records which modules the runtime imports after this module (the end of init) and during
the first invocation: there should be none (tests/test_startup.py)."""

import sys

AT_IMPORT = set(sys.modules)
_seen: list[set[str]] = []


def handler(event, context):
    _seen.append(set(sys.modules))
    if len(_seen) == 1:
        return {"after_init": sorted(_seen[0] - AT_IMPORT)}
    return {"during_first_answer": sorted(_seen[1] - _seen[0]),
            "loaded": sorted(m for m in sys.modules if m.split(".")[0] in
                             ("h11", "httptools", "aiohttp", "uvloop", "concurrent")
                             or m.startswith(("aruntime.emulator", "aruntime.web", "aruntime.layer")))}
