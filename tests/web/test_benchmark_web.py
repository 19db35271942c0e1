"""`python -m benchmarks.web --tiny` keeps working: every row for every column, and the runs
behaved as described (aruntime streamed, lifespan once vs per invocation). No speed asserted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from fakeapi import scratch_env

ROOT = Path(__file__).resolve().parents[2]
CELL = re.compile(r"^[\d,]+(\.\d+)? (ms|µs)$")


def test_tiny_run_writes_every_row(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.web", "--tiny", "--out", str(tmp_path)],
                          cwd=ROOT, env=scratch_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {}
    for line in (tmp_path / "web.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not line.startswith("| measure"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    assert len(rows) == 8, rows
    for label, cells in rows.items():
        if label.startswith("lifespan startups"):
            assert label == "lifespan startups in one process's invocations (8)"
            assert cells[:4] == ["8", "1", "1", "1"]  # Mangum: each invocation; aruntime: Init
            continue
        assert all(CELL.match(c) for c in cells[:4]), (label, cells)
        assert len(cells) == 7 and all(c.endswith("×") for c in cells[4:]), (label, cells)
    data = json.loads((tmp_path / "web.json").read_text(encoding="utf-8"))
    assert data["mode"] == "tiny"
    streamed = data["results"]["streamed"]
    assert streamed == {"mangum": [0.0], "aruntime": [1.0], "aruntime-fast": [1.0],
                        "aruntime-buffered": [0.0]}
