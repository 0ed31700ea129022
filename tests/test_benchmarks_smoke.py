"""The shared-state and Redis benchmarks run as documented and print well-formed tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import require_redis

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--markdown"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in ``text``, as rows keyed by the header's column names."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and (i == 0 or not lines[i - 1].startswith("|")):
            header = [c.strip() for c in line.strip("|").split("|")]
            assert lines[i + 1] == "|" + "---|" * len(header)
            rows = []
            for body in lines[i + 2 :]:
                if not body.startswith("|"):
                    break
                cells = [c.strip() for c in body.strip("|").split("|")]
                assert len(cells) == len(header), body
                rows.append(dict(zip(header, cells, strict=True)))
            tables.append(rows)
    return tables


def test_shared_benchmark_table():
    """Two processes x two threads per client share Redis or SQLite: one row per client, with
    counts that add up, and a target verdict for each otel_ratelimit row."""
    require_redis()
    clients = ["ours-redis", "ours-sqlite", "smartratelimit-redis", "none"]
    out = _run("shared.py", "--styles", "openai", "--clients", ",".join(clients),
               "--duration", "1.5", "--processes", "2", "--threads", "2")  # fmt: skip
    (rows,) = _tables(out)
    assert [row["client"] for row in rows] == clients
    for row in rows:
        assert row["style"] == "openai" and row["hidden limit"] == "20/1s fixed"
        requests, rejected, ok = int(row["requests"]), int(row["429s"]), int(row["ok"])
        assert requests >= rejected + ok and ok > 0
        assert row["goodput"].endswith("%") and row["429 %"].endswith("%")
        assert int(row["allowed"]) == 40  # 20 per window, two windows begun in 1.5 s
    none = rows[-1]
    assert int(none["429s"]) > 0  # 4 threads without a limiter overrun 20/s
    assert "- openai / ours-redis: " in out and "- openai / ours-sqlite: " in out
    assert "Load average" in out


def test_redis_throughput_tables():
    """Every contender admits every call on 1 and 2 threads; a limited request costs two
    EVALSHA and nothing else."""
    require_redis()
    out = _run("redis_throughput.py", "--seconds", "0.2", "--rounds", "1", "--threads", "1,2",
               "--requests", "10")  # fmt: skip
    speed, commands = _tables(out)
    assert len(speed) == 12
    assert {row["contender"] for row in speed} >= {
        "otel_ratelimit acquire", "pyrate-limiter RedisBucket", "limits moving window",
        "limits fixed window",
    }  # fmt: skip
    for row in speed:
        assert row["threads"] in ("1", "2")
        assert float(row["acquires/s"].replace(",", "")) > 0 and row["denied"] == "0"
    assert [row["style"] for row in commands] == ["github", "openai", "429-only"]
    for row in commands:
        assert row["non-2xx"] == "0"
        assert row["sent"] == "EVALSHA 20" and row["commands per request"] == "2.00"
