"""The shared-state and Redis benchmarks run as documented and print well-formed tables."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
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


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def test_a_stopped_middleware_benchmark_stops_its_uvicorn_servers():
    """SIGTERM (Ctrl-C's sibling, what `kill` sends) while the benchmark's two uvicorn servers
    run: its cleanup still runs, and no server outlives it (before: both did)."""
    bench = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "middleware.py"), "--requests", "3000",
         "--rounds", "20", "--calls", "5"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        servers: set[int] = set()
        while len(servers) < 2 and time.monotonic() < deadline and bench.poll() is None:
            servers = _children(bench.pid)
            time.sleep(0.05)
        assert len(servers) == 2, "the benchmark never started its uvicorn servers"
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=30) != 0
        until = time.monotonic() + 15
        while any(Path(f"/proc/{pid}").exists() for pid in servers) and time.monotonic() < until:
            time.sleep(0.1)
        left = [pid for pid in servers if Path(f"/proc/{pid}").exists()]
        assert not left, f"uvicorn servers outlived the benchmark: {left}"
    finally:
        bench.kill()
        bench.wait()
