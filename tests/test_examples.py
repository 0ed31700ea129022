"""The examples run as the README says, against their own local upstream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_batch_example_meets_no_429():
    """examples/batch.py finishes its batch and the upstream sent no 429."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "batch.py"), "--requests", "60"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "upstream answered 60 x 200 and 0 x 429" in done.stdout
    assert "learned: policy 'requests' from header" in done.stdout
