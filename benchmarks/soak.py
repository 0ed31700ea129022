"""Soak: minutes of mixed traffic from several processes sharing a Redis restarted mid-run.

    python benchmarks/soak.py [--minutes 10] [--processes 4] [--restarts 2] [--out FILE]

The script starts a redis-server (loopback, free port) and five local APIs (``Upstream``)
in this process: IETF, GitHub and OpenAI header styles, a silent one (429 only, no headers:
its limit is configured with ``set_limit``) and one whose answers carry garbage rate-limit
headers (NaN, inf, negative, cut-short fields, 10^12 s resets). Each worker process runs one
``RateLimiter`` on that Redis (``on_storage_error="local"``) with sync threads and async tasks
calling random APIs as fast as the limiter lets them. Redis is killed (SIGKILL) and started
again ``--restarts`` times, evenly spread. Reported: calls, failed calls beyond the policy
(an exception, or a final answer that is not 2xx or 429), the 429 share seen by the APIs
(every attempt, retries included) and by the callers, and each worker's RSS over time:
growth is measured from the end of the warm-up (the first fifth of the run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from otel_ratelimit import RateLimiter
from otel_ratelimit.testing import Upstream

STYLES = ("ietf", "github", "openai", "429-only", "garbage")
GARBAGE = ["nan", "inf", "-inf", "-1", "abc", "1e309", "1000000000000", ";;;", '"cut;r=1',
           "q=0", "default;q=0;w=0", "0/0", "99999h", "", "1,2,3"]  # fmt: skip
GARBAGE_NAMES = ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit",
                 "ratelimit-policy", "retry-after", "x-ratelimit-reset-requests"]  # fmt: skip


class GarbageUpstream(Upstream):
    """An IETF-style API whose answers carry garbage rate-limit headers, added or in place."""

    def _response(self, d: Any) -> tuple[int, dict[str, object], list[tuple[str, str]]]:
        status, body, headers = super()._response(d)
        rng = random.Random()
        if rng.random() < 0.5:  # half the answers: real headers kept, garbage ones added
            headers = [*headers, (rng.choice(GARBAGE_NAMES), rng.choice(GARBAGE))]
        elif rng.random() < 0.3:  # some: every header value replaced by garbage
            headers = [(name, rng.choice(GARBAGE)) for name, _ in headers]
        return status, body, headers


def _upstreams(limit: int) -> dict[str, Upstream]:
    ups: dict[str, Upstream] = {}
    for style in STYLES:
        cls = GarbageUpstream if style == "garbage" else Upstream
        ups[style] = cls("ietf" if style == "garbage" else style, limit=limit, latency=0.005)
        ups[style].start()
    return ups


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_redis(port: int, directory: str) -> subprocess.Popen[bytes]:
    import redis  # noqa: PLC0415

    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", directory]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with redis.Redis(port=port, socket_connect_timeout=0.2) as client:
                client.ping()
            return proc
        except redis.RedisError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- one worker process ------------------------------------------------------------------------


def _kind(status: int) -> str:
    return "ok" if status < 300 else "429" if status == 429 else f"status {status}"


def _failure(exc: Exception) -> str:
    """A failure beyond the policy: counted by kind, never hidden."""
    return f"error {type(exc).__name__}: {str(exc)[:80]}"


def worker(urls: dict[str, str], redis_url: str, limit: int, until: float, threads: int,
           tasks: int, queue: Any) -> None:  # fmt: skip
    """Call the APIs until ``until`` (epoch s); put the outcome counts on ``queue``."""
    line = f"%(asctime)s worker {os.getpid()} %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=line)
    logging.getLogger("otel_ratelimit").setLevel(logging.INFO)  # the outages and recoveries
    limiter = RateLimiter(storage=redis_url, on_storage_error="local", max_wait=30.0)
    limiter.set_limit(urls["429-only"], limit, "1s", burst=1)  # the silent API's documented limit
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    names = list(urls)

    def sync_loop(seed: int) -> None:
        rng = random.Random(seed)
        with limiter.client(timeout=30) as client:
            while time.time() < until:
                url = f"{urls[rng.choice(names)]}/v1/items?n={rng.randrange(1000)}"
                try:
                    kind = _kind(client.get(url).status_code)
                except Exception as exc:
                    kind = _failure(exc)
                with lock:
                    counts[kind] += 1

    async def async_loop(seed: int, client: Any) -> None:
        rng = random.Random(seed)
        while time.time() < until:
            url = f"{urls[rng.choice(names)]}/v1/items?n={rng.randrange(1000)}"
            try:
                kind = _kind((await client.get(url)).status_code)
            except Exception as exc:
                kind = _failure(exc)
            with lock:
                counts[kind] += 1

    async def async_main() -> None:
        async with limiter.async_client(timeout=30) as client:
            await asyncio.gather(*(async_loop(1000 + i, client) for i in range(tasks)))

    pool = [
        threading.Thread(target=sync_loop, args=(os.getpid() * 10 + i,)) for i in range(threads)
    ]
    for t in pool:
        t.start()
    asyncio.run(async_main())
    for t in pool:
        t.join()
    limiter.close()
    queue.put(dict(counts))


# -- the run -----------------------------------------------------------------------------------


def run(minutes: float, processes: int, restarts: int, limit: int, threads: int, tasks: int,
        sample_every: float) -> dict[str, Any]:  # fmt: skip
    """Start everything, run the traffic, restart Redis, sample RSS; the figures."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    duration = minutes * 60
    ups = _upstreams(limit)
    urls = {name: up.url for name, up in ups.items()}
    tmp = tempfile.mkdtemp(prefix="soak-")
    port = _free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    server = _start_redis(port, tmp)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start = time.time() + 2.0  # the workers' imports happen before the clock starts
    until = start + duration
    procs = [ctx.Process(target=worker, args=(urls, redis_url, limit, until, threads, tasks, queue))
             for _ in range(processes)]  # fmt: skip
    for p in procs:
        p.start()
    restart_at = [start + duration * (i + 1) / (restarts + 1) for i in range(restarts)]
    samples: list[tuple[float, list[float]]] = []
    outages: list[float] = []
    next_sample = start
    try:
        while time.time() < until:
            now = time.time()
            if restart_at and now >= restart_at[0]:
                restart_at.pop(0)
                server.send_signal(signal.SIGKILL)
                server.wait()
                time.sleep(2.0)  # two seconds without Redis
                server = _start_redis(port, tmp)
                outages.append(round(now - start, 1))
            if now >= next_sample:
                samples.append((now - start, [_rss_mb(p.pid) for p in procs]))
                next_sample += sample_every
            time.sleep(0.1)
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        server.terminate()
        server.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
        stats = {name: up.stats() for name, up in ups.items()}
        for up in ups.values():
            up.stop()
    total: Counter[str] = Counter()
    for r in results:
        total.update(r)
    return {"counts": total, "stats": stats, "samples": samples, "outages": outages,
            "duration": duration, "processes": processes}  # fmt: skip


def report(r: dict[str, Any]) -> tuple[str, bool]:
    """The markdown report, and whether every bound held."""
    counts, stats, samples = r["counts"], r["stats"], r["samples"]
    calls = sum(counts.values())
    failed = sum(v for k, v in counts.items() if k not in ("ok", "429"))
    answers = sum(s["total"] for s in stats.values())
    rejected = sum(s["rejected"] for s in stats.values())
    share = rejected / answers if answers else 0.0
    warm = r["duration"] / 5
    after = [rss for t, rss in samples if t >= warm]
    base = after[0] if after else samples[-1][1]
    growth = (
        [max(s[i] for s in after) / base[i] - 1 for i in range(r["processes"])] if after else [0.0]
    )
    checks = [failed == 0, share <= 0.01, max(growth) <= 0.10]
    ok = all(checks)

    def mark(good: bool) -> str:
        return "PASS" if good else "FAIL"

    lines = [
        f"Soak: {r['duration'] / 60:g} min, {r['processes']} processes sharing one Redis,"
        f" killed and restarted at {', '.join(f'{t:g} s' for t in r['outages']) or 'never'}"
        f" (down 2 s each).",
        "",
        "| figure | value | bound | |",
        "|---|---:|---|---|",
        f"| calls (sync threads and async tasks) | {calls} ({calls / r['duration']:.0f}/s) | | |",
        f"| failed calls beyond the policy | {failed} | 0 | {mark(checks[0])} |",
        f"| 429 answers seen by the APIs (every attempt) | {rejected} of {answers}"
        f" ({share:.2%}) | <= 1% | {mark(checks[1])} |",
        f"| 429 answers handed to callers | {counts.get('429', 0)} | | |",
        f"| RSS growth after warm-up (worst process) | {max(growth):+.1%} | <= 10% |"
        f" {mark(checks[2])} |",
        "",
        "| API | answers | 429 | share |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {s['total']} | {s['rejected']} | {s['rejected'] / max(1, s['total']):.2%} |"
          for name, s in stats.items()),
        "",
        "RSS (MB) of each worker over time (warm-up: the first fifth of the run):",
        "",
        "| t (s) | " + " | ".join(f"p{i + 1}" for i in range(r["processes"])) + " |",
        "|---:|" + "---:|" * r["processes"],
    ]  # fmt: skip
    step = max(1, len(samples) // 12)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    lines += [f"| {t:.0f} | " + " | ".join(f"{m:.1f}" for m in rss) + " |" for t, rss in shown]
    failures = [f"- {k}: {v}" for k, v in counts.items() if k not in ("ok", "429")]
    if failures:
        lines += ["", "Failures:", *failures]
    return "\n".join(lines) + "\n", ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--limit", type=int, default=20, help="requests/s of each API")
    parser.add_argument("--threads", type=int, default=3, help="sync threads per process")
    parser.add_argument("--tasks", type=int, default=3, help="async tasks per process")
    parser.add_argument("--sample-every", type=float, default=10.0, metavar="S")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a stopped run still cleans up
    result = run(args.minutes, args.processes, args.restarts, args.limit, args.threads,
                 args.tasks, args.sample_every)  # fmt: skip
    text, ok = report(result)
    command = "python benchmarks/soak.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = f"`{command.strip()}`\n\n{text}"
    print(text, end="")
    if args.out:
        args.out.write_text(f"# Soak benchmark\n\n{text}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
