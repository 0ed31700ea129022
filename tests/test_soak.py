"""The soak benchmark (benchmarks/soak.py) in a tiny configuration: ~10 s, 2 processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import require_redis

ROOT = Path(__file__).resolve().parent.parent


def test_soak_smoke_run_loses_no_call_and_reports_rss(tmp_path):
    """Mixed traffic through one Redis restart: no failed call, the report's tables filled."""
    require_redis()
    out = tmp_path / "soak.md"
    done = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "benchmarks" / "soak.py"), "--minutes", "0.15",
         "--processes", "2", "--restarts", "1", "--sample-every", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's code, not an installed one
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    text = out.read_text()
    calls = re.search(r"\| calls \(sync threads and async tasks\) \| (\d+) \(\d+/s\) \|", text)
    assert calls and int(calls[1]) > 100, text
    assert "| failed calls beyond the policy | 0 | 0 | PASS |" in text, text
    assert re.search(r"killed and restarted at \d", text), text
    for style in ("ietf", "github", "openai", "429-only", "garbage"):
        assert re.search(rf"\| {style} \| [1-9]\d* \|", text), text
    rss_rows = re.findall(r"^\| \d+ \| ([\d.]+) \| ([\d.]+) \|$", text, re.M)
    assert len(rss_rows) >= 5 and all(20 < float(mb) < 500 for row in rss_rows for mb in row)
