"""The install hint for an extra, true today: aruntime is not on PyPI yet.

A hint naming only the published distribution would answer "No matching distribution" until
the package is published, so a hint gives the command that works from where this aruntime was
imported: from a checkout (an editable install, or the source on PYTHONPATH) the exact command
for that checkout and this interpreter; otherwise the published name with README's form
(`pip install -e '.[extra]'` from a checkout's root) beside it.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path


def install_hint(extra: str) -> str:
    """One line: how to install the `extra` of aruntime (a name from pyproject.toml's
    optional-dependencies, e.g. "emulator"), for this interpreter."""
    root = checkout()
    if root is not None:
        return f"{shlex.quote(sys.executable)} -m pip install -e {shlex.quote(f'{root}[{extra}]')}"
    return (f"pip install 'aruntime[{extra}]' once published (not on PyPI yet: from a checkout "
            f"of aruntime, pip install -e '.[{extra}]')")


def checkout() -> Path | None:
    """The source checkout this aruntime is imported from, or None (installed in site-packages,
    unpacked from a layer...): the folder above the package, when its pyproject.toml is aruntime's."""
    root = Path(__file__).resolve().parents[2]
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return root if re.search(r'^name\s*=\s*"aruntime"\s*$', text, re.M) else None
