"""The demo (README command 1) runs by itself: uvicorn, three local APIs, a live view, a summary."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("uvicorn")


@pytest.mark.slow
def test_demo_shows_a_live_view_and_a_summary_without_429s_where_headers_speak():
    """A short run prints a view every second and ends with 0 x 429 for the header APIs."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--seconds", "4"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("otel_ratelimit demo") >= 3  # refreshed every second
    for api in ("github", "openai"):
        line = re.search(rf"^{api} +limit .*$", done.stdout, flags=re.M)
        assert line is not None, done.stdout
        assert " 0 x 429 " in line.group(0)
        assert "app errors 0" in line.group(0)
    assert re.search(r"^stripe +limit .* app errors 0$", done.stdout, flags=re.M)
