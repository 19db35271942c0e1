"""The README's ASGI and WSGI handler files run as written, under the real runtime."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from fakeapi import REPO_ROOT, run_runtime

from . import http_events as E
from .answers import decode


def readme_files() -> dict[str, str]:
    """The ```python blocks of the README's ASGI section that start with `# <file> — handler`."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## ASGI and WSGI apps", 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        match = re.match(r"# (\w+\.py) — handler ", block)
        if match:
            files[match.group(1)] = block
    return files


async def _serve(api, tmp_path: Path, handler: str, *targets: str):
    ids = [api.push(E.v2("GET", t)) for t in targets]
    api.finish()
    proc = await run_runtime([sys.executable, "-m", "aruntime", handler], api, cwd=str(tmp_path),
                             env={"LAMBDA_TASK_ROOT": str(tmp_path)})
    assert await proc.wait(30) == 1, proc.stderr
    posts = {ex.target.split("/")[-2]: ex for ex in api.exchanges if ex.method == "POST"}
    return [decode(posts[i]) for i in ids]


async def test_readme_fastapi_example(fake_api, tmp_path):
    files = readme_files()
    assert set(files) == {"app.py", "wsgi_app.py"}
    (tmp_path / "app.py").write_text(files["app.py"])
    item, count = await _serve(fake_api, tmp_path, "app.handler", "/items/3?q=x", "/count")
    assert item.streamed and item.json() == {"item_id": 3, "q": "x"}
    assert count.body == b"0\n1\n2\n" and len(count.exchange.chunks) == 5  # prelude, NULs, 3


async def test_readme_flask_example(fake_api, tmp_path):
    (tmp_path / "wsgi_app.py").write_text(readme_files()["wsgi_app.py"])
    (hello,) = await _serve(fake_api, tmp_path, "wsgi_app.handler", "/hello")
    assert hello.status == 200 and hello.json() == {"hello": "world"}
