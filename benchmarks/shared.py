"""Shared-state benchmark: several processes share one limiter state in Redis or SQLite.

For every (style, client) pair a fresh local ``Upstream`` enforces a hidden limit (the same
limits and counters as ``benchmarks/accuracy.py``, whose helpers this script reuses). Worker
processes (4 by default, 4 threads each) call it in a closed loop for a fixed duration, and
every process of a client shares one state:

    ours-redis            otel_ratelimit, storage="redis://..." (a redis-server this script starts)
    ours-sqlite           otel_ratelimit, storage="sqlite:////tmp/.../ratelimit.db"
    smartratelimit-redis  smartratelimit 0.5.1, storage="redis://..." (fail_closed=True, so a
                          run that could not reach Redis fails instead of pacing per process)
    none                  plain httpx, no limiter

    python benchmarks/shared.py
    python benchmarks/shared.py --styles github --clients ours-redis,none --duration 5
    python benchmarks/shared.py --markdown > results.md

Run by hand; the default run (3 styles x 4 clients) takes about 6 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from accuracy import (  # the same styles, limits, closed loop, counters and table
    QUIET_STYLES,
    REQUEST_TIMEOUT,
    RUNNERS,
    Errors,
    OursLimiter,
    Upstream,
    available,
    loop_threads,
    parse_list,
    render,
    run_one,
    smartratelimit,
)

CLIENTS = ("ours-redis", "ours-sqlite", "smartratelimit-redis", "none")
STYLES = ("openai", "github", "429-only")
TARGETS = {"header": (0.5, 95.0), "silent": (3.0, 90.0)}  # (max 429 %, min goodput %)
HOST = "127.0.0.1"


class RedisServer:
    """A ``redis-server`` on a free loopback port (no persistence), for one benchmark run."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is needed (apt-get install redis-server)")
        self._dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://{HOST}:{self.port}/0"
        args = [binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--dir", self._dir.name]  # fmt: skip
        self._log = Path(self._dir.name, "redis.log").open("wb")  # noqa: SIM115
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        import redis  # noqa: PLC0415  # the redis extra; only when a server is wanted

        self.admin = redis.Redis.from_url(self.url, socket_timeout=5)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.admin.ping()
                break
            except redis.RedisError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server and remove its directory; idempotent."""
        self.admin.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._log.close()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _quiet() -> None:
    # The clients log every 429 they see; the table says it better.
    for name in ("smartratelimit", "otel_ratelimit"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _start(barrier: Any) -> None:
    """Pool initializer: quiet logs, then wait until every process is up and imported."""
    _quiet()
    # Both libraries import their Redis client on first use; importing it inside the timed
    # run would cost each process its first window on a loaded machine.
    with contextlib.suppress(ImportError):
        import redis  # noqa: F401, PLC0415

        import otel_ratelimit.storage.redis  # noqa: F401, PLC0415
    barrier.wait(120)


class _Errors(Errors):
    """``accuracy.Errors`` that also keeps the first message of each exception type."""

    def __init__(self) -> None:
        super().__init__()
        self.first: dict[str, str] = {}

    def add(self, error: BaseException) -> None:
        super().add(error)
        self.first.setdefault(type(error).__name__, str(error)[:200])


def worker(client: str, url: str, storage: str, threads: int, deadline: float) -> Any:
    """One process: ``threads`` threads calling ``url`` until ``deadline``.

    Returns the pid, the exceptions by type, and the first message of each type.
    """
    errors = _Errors()
    try:
        if client.startswith("ours-"):
            limiter = OursLimiter(storage=storage, max_wait=30.0)
            http = limiter.client()
            try:
                call = lambda: http.get(url, timeout=REQUEST_TIMEOUT)  # noqa: E731
                loop_threads(threads, call, deadline, errors)
            finally:
                http.close()
                limiter.close()
        elif client == "smartratelimit-redis":
            smart = smartratelimit.RateLimiter(storage=storage, fail_closed=True)
            call = lambda: smart.request("GET", url, timeout=REQUEST_TIMEOUT)  # noqa: E731
            loop_threads(threads, call, deadline, errors)
        else:
            with httpx.Client(timeout=REQUEST_TIMEOUT) as plain:
                loop_threads(threads, lambda: plain.get(url), deadline, errors)
    except Exception as error:  # e.g. the limiter could not be built
        errors.add(error)
    return os.getpid(), dict(errors.counts), errors.first


class Bench:
    """Worker processes (started once, reused by every run) and the stores they share."""

    def __init__(self, processes: int, threads: int, redis_url: str | None) -> None:
        self.processes, self.threads, self.redis_url = processes, threads, redis_url
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-sqlite-")
        self._runs = 0
        self.messages: dict[str, str] = {}  # the last run's exception types -> a message
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(processes + 1)
        self.pool = ctx.Pool(processes, initializer=_start, initargs=(barrier,))
        barrier.wait(120)  # every process up, imports done, before an upstream starts its clock

    def storage(self, client: str) -> str:
        """A fresh shared store for one run of ``client``."""
        self._runs += 1
        if client.endswith("-redis"):
            assert self.redis_url is not None
            import redis  # noqa: PLC0415

            with redis.Redis.from_url(self.redis_url) as admin:
                admin.flushall()
            return self.redis_url
        if client.endswith("-sqlite"):
            return f"sqlite:///{self._tmp.name}/run{self._runs}.db"  # absolute: 4 slashes
        return ""

    def runner(self, client: str) -> Any:
        """``accuracy.run_one``'s runner for ``client``: every worker process in parallel."""

        def run(url: str, deadline: float, errors: Errors) -> None:
            args = (client, url, self.storage(client), self.threads, deadline)
            self.messages = {}
            results = self.pool.starmap(worker, [args] * self.processes, chunksize=1)
            for _, counts, first in results:
                errors.counts.update(counts)
                for name, message in first.items():
                    self.messages.setdefault(name, message)
            if len({pid for pid, _, _ in results}) != self.processes:
                message = "a worker process ran two shares: another share ended early"
                errors.add(RuntimeError(message))
                self.messages.setdefault("RuntimeError", message)

        return run

    def close(self) -> None:
        self.pool.close()
        self.pool.join()
        self._tmp.cleanup()


def verdict(row: dict[str, Any]) -> str:
    """Whether a limiter's row meets the issue's targets for its kind of style."""
    kind = "silent" if row["style"] in QUIET_STYLES else "header"
    max_429, min_goodput = TARGETS[kind]
    share = 100 * row["429s"] / row["requests"] if row["requests"] else 0.0
    goodput = min(100.0, 100 * row["ok"] / row["allowed"]) if row["allowed"] else 0.0
    ok = share <= max_429 and goodput >= min_goodput and not row["exceptions"]
    target = f"<= {max_429:g}% 429s, >= {min_goodput:g}% goodput, no exceptions"
    measured = f"{share:.2f}% 429s, {goodput:.1f}% goodput, {row['exceptions']} exceptions"
    result = "meets" if ok else "MISSES"
    return f"{row['style']} / {row['client']}: {result} the {kind} target ({target}): {measured}"


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a stopped run still cleans up
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per header style")
    parser.add_argument(
        "--quiet-duration", type=float, default=30.0, help="seconds per style announcing nothing"
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="threads per process")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    styles = parse_list(args.styles, Upstream.STYLES, "style")
    clients = parse_list(args.clients, CLIENTS, "client")
    if args.processes < 1 or args.threads < 1:
        raise SystemExit("--processes and --threads must be >= 1")
    _quiet()
    clients = available(clients, "smartratelimit-redis")

    plan = [(s, c) for s in styles for c in clients]
    seconds = sum(args.quiet_duration if s in QUIET_STYLES else args.duration for s, _ in plan)
    load_before = os.getloadavg()
    print(f"{len(plan)} runs, about {seconds / 60:.1f} min; {args.processes} processes x "
          f"{args.threads} threads per client", file=sys.stderr)  # fmt: skip
    redis_server = RedisServer() if any(c.endswith("-redis") for c in clients) else None
    bench = Bench(args.processes, args.threads, redis_server.url if redis_server else None)
    rows = []
    try:
        for client in clients:
            RUNNERS[client] = bench.runner(client)  # accuracy.run_one looks runners up here
        for i, (style, client) in enumerate(plan, 1):
            duration = args.quiet_duration if style in QUIET_STYLES else args.duration
            print(f"[{i}/{len(plan)}] {style} / {client} ({duration:g} s) ...", file=sys.stderr)
            row = run_one(style, client, duration)
            row["messages"] = bench.messages
            rows.append(row)
            errors = ", ".join(f"{name} x{n}" for name, n in row["errors"].items())
            print(f"    {row['requests']} requests, {row['429s']} 429s, goodput {row['goodput']}"
                  + (f"; exceptions: {errors}" if errors else ""), file=sys.stderr)  # fmt: skip
    finally:
        bench.close()
        if redis_server is not None:
            redis_server.stop()
    load_after = os.getloadavg()

    print(render(rows, args.markdown))
    print(
        f"\n{args.processes} processes x {args.threads} threads per client, one shared store per "
        "run. Figures from the upstream's counters at the deadline; goodput = ok / the most the "
        "hidden limit allows in the run; exceptions are raised in the clients."
    )
    print(f"Load average (1/5/15 min) on {os.cpu_count()} CPUs: before "
          + "/".join(f"{x:.1f}" for x in load_before) + ", after "
          + "/".join(f"{x:.1f}" for x in load_after) + ".")  # fmt: skip
    failed = [row for row in rows if row["errors"]]
    if failed:
        print("\nExceptions:" if not args.markdown else "\nExceptions:\n")
    for row in failed:
        for name, n in row["errors"].items():
            message = row["messages"].get(name, "")
            print(f"{'- ' if args.markdown else '  '}{row['style']} / {row['client']}: "
                  f"{name} x{n}: {message}")  # fmt: skip
    limited = [row for row in rows if row["client"].startswith("ours-")]
    if limited:
        print("\nTargets:" if not args.markdown else "\nTargets:\n")
        for row in limited:
            print(("- " if args.markdown else "  ") + verdict(row))


if __name__ == "__main__":
    main()
