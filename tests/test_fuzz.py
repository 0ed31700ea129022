"""The long fuzz run of benchmarks/fuzz.py, on a few thousand inputs (the full run is by hand)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_fuzz_loop_finds_no_defect_in_5000_inputs():
    done = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "benchmarks" / "fuzz.py"), "--inputs", "5000",
         "--seed", "7", "--max-wait", "5", "--url-inputs", "5000"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = re.search(
        r"(\d+) inputs .* (\d+) acquires admitted, longest wait ([\d.]+) s", done.stdout
    )
    assert found, done.stdout
    inputs, admitted, longest = int(found[1]), int(found[2]), float(found[3])
    assert inputs == 5000 and admitted > 100
    assert longest <= 5.0
    urls = re.search(r"5000 storage URLs .*: 0 exceptions; (\d+) accepted", done.stdout)
    assert urls and int(urls[1]) > 50, done.stdout
