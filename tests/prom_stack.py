"""Real processes for the Prometheus tests and the dashboard picture: upstreams, a 2-worker
uvicorn app exporting metrics, and a Prometheus server scraping its workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import free_port, require

from otel_ratelimit.testing import Upstream

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent


def require_prometheus() -> None:
    """prometheus and promtool, or a skip (a failure on CI)."""
    require("prometheus", "prometheus", "promtool")


def wait_for(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (httpx.HTTPError, OSError, ValueError):
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


class Stack:
    """Upstreams ("ietf" 20/s and "429-only" 5/s), the app with 2 workers, and Prometheus."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.targets = directory / "targets"
        self.targets.mkdir(parents=True, exist_ok=True)
        self.upstreams = [Upstream("ietf", limit=20, latency=0.01).start(),
                          Upstream("429-only", limit=5, latency=0.01).start()]  # fmt: skip
        self.procs: list[subprocess.Popen[bytes]] = []
        self.app_url = self.prom_url = ""

    def start_app(self, workers: int = 2, storage: str = "memory") -> None:
        port = free_port()
        env = {**os.environ, "UPSTREAMS": ",".join(u.url for u in self.upstreams),
               "OTEL_RATELIMIT_TARGETS": str(self.targets),
               "OTEL_RATELIMIT_STORAGE": storage}  # fmt: skip
        with (self.dir / "app.log").open("wb") as log:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "prom_app:app", "--app-dir", str(HERE),
                 "--host", HOST, "--port", str(port), "--workers", str(workers),
                 "--log-level", "warning", "--no-access-log"],
                env=env, stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        self.app_url = f"http://{HOST}:{port}"
        wait_for(lambda: len(self.worker_targets()) == workers, what="worker target files")
        wait_for(lambda: httpx.get(self.app_url + "/metrics").status_code == 200, what="app")

    def worker_targets(self) -> list[str]:
        found = []
        for path in self.targets.glob("*.json"):
            found += json.loads(path.read_text())[0]["targets"]
        return found

    def start_prometheus(self, scrape_interval: str = "1s") -> None:
        port = free_port()
        config = self.dir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: " + scrape_interval + "\n"
            "scrape_configs:\n  - job_name: otel-ratelimit\n    file_sd_configs:\n"
            f"      - files: ['{self.targets}/*.json']\n        refresh_interval: 1s\n"
        )
        with (self.dir / "prometheus.log").open("wb") as log:
            self.procs.append(subprocess.Popen(
                ["prometheus", f"--config.file={config}",
                 f"--storage.tsdb.path={self.dir / 'tsdb'}", f"--web.listen-address={HOST}:{port}"],
                stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        self.prom_url = f"http://{HOST}:{port}"
        wait_for(lambda: httpx.get(self.prom_url + "/-/ready").status_code == 200,
                 what="prometheus ready")  # fmt: skip

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} if at is None else {"query": expr, "time": at}
        reply = httpx.get(self.prom_url + "/api/v1/query", params=params, timeout=10).json()
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        params = {"query": expr, "start": start, "end": end, "step": step}
        reply = httpx.get(self.prom_url + "/api/v1/query_range", params=params, timeout=20)
        body = reply.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def traffic(self, calls: dict[int, int], concurrency: int = 8) -> None:
        """Send ``calls[i]`` requests to /call/i, ``concurrency`` at a time."""
        import asyncio  # noqa: PLC0415

        async def run() -> None:
            paths = [f"/call/{i}" for i, n in calls.items() for _ in range(n)]
            gate = asyncio.Semaphore(concurrency)
            fresh = httpx.Limits(max_keepalive_connections=0)  # new connections: both workers
            async with httpx.AsyncClient(base_url=self.app_url, timeout=60, limits=fresh) as client:

                async def one(path: str) -> None:
                    async with gate:
                        (await client.get(path)).raise_for_status()

                await asyncio.gather(*(one(p) for p in paths))

        asyncio.run(run())

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for up in self.upstreams:
            up.stop()
