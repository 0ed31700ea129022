"""Real web servers (uvicorn, gunicorn) serving the examples, and traffic driven at them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from conftest import free_port, stop_server

from otel_ratelimit.testing import Upstream

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def serve(command: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """Run ``command`` (with ``{port}`` filled in) until it answers /limits; yield its URL."""
    port = free_port()
    args = [part.format(port=port) for part in command]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/limits", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start:\n" + log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        stop_server(proc)


def drive(url: str, paths: list[str], seconds: float, threads: int = 16) -> list[tuple[int, int]]:
    """``threads`` callers loop over ``paths`` for ``seconds``: (app status, upstream status)."""
    results: list[tuple[int, int]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def loop(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            i = offset
            while time.monotonic() < stop:
                response = client.get(paths[i % len(paths)].format(i=i))
                upstream = response.json().get("status", 0) if response.status_code == 200 else 0
                with lock:
                    results.append((response.status_code, upstream))
                i += 1

    workers = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def measure(url: str, upstream: Upstream, paths: list[str], seconds: float = 6.0) -> dict:
    """Warm up, then drive for ``seconds``: 429 share and goodput at the upstream, every answer."""
    drive(url, paths, 1.5)  # first contact and the first headers are learned here
    upstream.reset_counts()
    at_stop: dict[str, int] = {}
    timer = threading.Timer(seconds, lambda: at_stop.update(upstream.stats()))
    timer.start()  # what the upstream admitted while callers were waiting to send more
    results = drive(url, paths, seconds)
    timer.join()
    stats = upstream.stats()
    allowed = upstream.limit * seconds / upstream.window
    return {
        "answers": len(results),
        "not_ok": [r for r in results if r != (200, 200) and r[1] != 429],
        "rejected_share": stats["rejected"] / max(1, stats["total"]),
        "goodput": at_stop["ok"] / allowed,
        "stats": stats,
    }
