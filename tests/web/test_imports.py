"""The adapters stay off the runtime's start-up path: `import aruntime` and a plain handler's
runtime load nothing of aruntime.web (nor any web framework); a handler module that calls
aruntime.asgi() loads it then."""

from __future__ import annotations

import subprocess
import sys

from fakeapi import REPO_ROOT, scratch_env

CHECK = """
import sys
import aruntime, aruntime.runtime, aruntime.invoke
loaded = sorted(m for m in sys.modules if m.startswith("aruntime.web") or m in
                ("starlette", "fastapi", "django", "flask", "a2wsgi"))
print(loaded)
aruntime.asgi
print(sorted(m for m in sys.modules if m.startswith("aruntime.web")))
"""


def test_import_aruntime_loads_no_adapter():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         cwd=REPO_ROOT, env=scratch_env(), timeout=30, check=True).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1] == ("['aruntime.web', 'aruntime.web.cycle', 'aruntime.web.events', "
                      "'aruntime.web.lifespan', 'aruntime.web.responses', "
                      "'aruntime.web.wsgi_bridge']")
