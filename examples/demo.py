"""The demo: the FastAPI example under uvicorn, three rate-limited APIs, traffic, a live view.

    python examples/demo.py [--seconds 15] [--callers 8]

Starts three local APIs (``otel_ratelimit.testing.Upstream``): one speaking GitHub's headers,
one OpenAI's, one that announces nothing and only answers 429 (like Stripe). Then serves
``examples/fastapi_app.py`` with uvicorn (memory storage) and sends traffic through its views
faster than the APIs allow. Every second it shows, per API, the calls done, the average wait
for quota, the backoffs (429s the API had to send) and the quota left as the limiter sees it;
at the end, a summary of 429s and goodput (the API's successes / what its limit allowed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from otel_ratelimit.testing import Upstream

HERE = Path(__file__).resolve().parent
LATENCY = 0.02  # each API's own response time; anything above it was a wait for quota


@dataclass
class Api:
    """One upstream and what the demo saw of it."""

    name: str
    upstream: Upstream
    calls: int = 0
    waits: list[float] = field(default_factory=list)
    failures: int = 0

    def wait(self) -> float:
        recent = self.waits[-50:]
        return sum(recent) / len(recent) if recent else 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_app(apis: list[Api]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "OTEL_RATELIMIT_STORAGE": "memory",
        "UPSTREAMS": ",".join(f"{api.name}={api.upstream.url}" for api in apis),
    }
    command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(HERE),
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/limits", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("uvicorn did not start") from None
        time.sleep(0.1)


async def _caller(client: httpx.AsyncClient, api: Api, stop: float, n: int) -> None:
    while time.monotonic() < stop:
        response = await client.get(f"/call/{api.name}/items/{n}")
        api.calls += 1
        if response.status_code != 200:
            api.failures += 1
            continue
        api.waits.append(max(0.0, response.json()["seconds"] - LATENCY))
        n += 1


def _render(apis: list[Api], limits: dict[str, Any], elapsed: float, tty: bool) -> None:
    header = f"{'API':<8} {'calls':>6} {'avg wait':>9} {'backoffs':>9} {'quota left':>14}"
    lines = [f"otel_ratelimit demo  {elapsed:5.1f}s", header]
    for api in apis:
        known = limits.get(api.name)
        if known is None:
            left = "unknown"
        elif known.get("rate") and not known.get("remaining"):
            left = f"learned {known['rate']:.1f}/s"
        else:
            left = f"{known['remaining']:.0f}/{known['limit']:.0f}"
        backoffs = api.upstream.rejected
        lines.append(f"{api.name:<8} {api.calls:>6} {api.wait():>8.2f}s {backoffs:>9} {left:>14}")
    if tty:
        print("\x1b[H\x1b[J" + "\n".join(lines), flush=True)
    else:
        print("\n".join(lines if elapsed < 1.5 else [lines[0], *lines[2:]]), flush=True)


async def _run(url: str, apis: list[Api], seconds: float, callers: int) -> dict[str, float]:
    tty = sys.stdout.isatty()
    for api in apis:
        api.upstream.reset_counts()
    started = time.monotonic()
    stop = started + seconds
    at_stop: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        tasks = [asyncio.create_task(_caller(client, api, stop, i * 1000))
                 for api in apis for i in range(callers)]  # fmt: skip
        while not all(task.done() for task in tasks):
            now = time.monotonic()
            await asyncio.sleep(min(1.0, stop - now) if now < stop else 1.0)  # a tick at stop
            if not at_stop and time.monotonic() >= stop:
                at_stop = {api.name: _goodput(api.upstream, started, stop) for api in apis}
            limits = (await client.get("/limits")).json()
            _render(apis, limits, time.monotonic() - started, tty)
        await asyncio.gather(*tasks)
    return at_stop or {api.name: _goodput(api.upstream, started, stop) for api in apis}


def _goodput(up: Upstream, start: float, stop: float) -> float:
    """Successes so far / what the API's fixed windows allowed from ``start`` to ``stop``.

    The window in progress at the start counts whole (all of its quota could be used); the
    one in progress at the stop counts for the part of it that had elapsed.
    """
    first, last = ((t - up.started_at) / up.window for t in (start, stop))
    return up.ok / (up.limit * (int(last) - int(first) + last % 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--callers", type=int, default=8, help="concurrent callers per API")
    args = parser.parse_args()

    specs = [("github", "github", 50, 5.0), ("openai", "openai", 20, 1.0),
             ("stripe", "stripe", 8, 1.0)]  # fmt: skip
    upstreams = [Upstream(style, limit=limit, window=window, latency=LATENCY).start()
                 for _, style, limit, window in specs]  # fmt: skip
    apis = [Api(name, upstream) for (name, *_), upstream in zip(specs, upstreams, strict=True)]
    proc, url = _start_app(apis)
    try:
        goodputs = asyncio.run(_run(url, apis, args.seconds, args.callers))
    finally:
        proc.terminate()
        proc.wait(10)
        for upstream in upstreams:
            upstream.stop()

    print(f"\nsummary after {args.seconds:g}s ({args.callers} callers per API, one uvicorn worker)")
    for api in apis:
        up = api.upstream
        goodput = goodputs[api.name]
        share = up.rejected / max(1, up.total)
        print(f"{api.name:<8} limit {up.limit}/{up.window:g}s: {up.ok} x 200, {up.rejected} x 429 "
              f"({share:.1%}) at the API, goodput {goodput:.0%}, "
              f"app errors {api.failures}")  # fmt: skip


if __name__ == "__main__":
    main()
