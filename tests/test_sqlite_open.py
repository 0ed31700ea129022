"""Several processes opening one new SQLite file at the same moment all get in."""

from __future__ import annotations

import multiprocessing as mp
import time

from otel_ratelimit.storage import SQLiteStorage

PROCESSES, ROUNDS = 4, 30


def _open(url: str, start: float, results) -> None:
    while time.time() < start:  # spin, so that the processes open within microseconds
        pass
    try:
        SQLiteStorage(url).close()
        results.put("ok")
    except Exception as exc:  # reported, so the parent sees every failure
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_file_together_all_succeed(tmp_path):
    """SQLite answers "database is locked" to a concurrent switch to WAL without waiting; the
    store retries it within its timeout (without that, 17 of 120 such opens failed here)."""
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    outcomes = []
    for n in range(ROUNDS):
        url, start = f"sqlite:///{tmp_path}/race{n}.db", time.time() + 0.1
        procs = [ctx.Process(target=_open, args=(url, start, results)) for _ in range(PROCESSES)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        outcomes += [results.get(timeout=10) for _ in procs]
    assert [o for o in outcomes if o != "ok"] == []
    assert len(outcomes) == PROCESSES * ROUNDS
