"""Accuracy benchmark: how close does each client get to a hidden rate limit, and at what cost?

For every (style, client) pair a fresh local ``Upstream`` enforces a hidden limit and reports it
in one vendor's header style (or not at all). The client runs a closed loop, as fast as it can,
for a fixed duration. Figures come from the upstream's own counters, snapshotted at the
deadline: requests, 429s, successes, and goodput = successes / what the hidden limit allows.

    python benchmarks/accuracy.py
    python benchmarks/accuracy.py --styles github,429-only --duration 5 --clients none,ours-sync
    python benchmarks/accuracy.py --markdown > results.md

Run by hand; it is not part of the test suite (the default run takes about 15 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

try:
    from otel_ratelimit.testing import Upstream
except Exception:  # the package may be mid-change; testing.py is standalone
    _spec = importlib.util.spec_from_file_location(
        "otel_ratelimit_testing", ROOT / "otel_ratelimit" / "testing.py"
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _module  # dataclasses look their module up while defining
    _spec.loader.exec_module(_module)
    Upstream = _module.Upstream

try:
    from otel_ratelimit import RateLimiter as OursLimiter

    OURS_ERROR = ""
except Exception as exc:  # report and benchmark the others
    OursLimiter = None
    OURS_ERROR = f"{type(exc).__name__}: {exc}"

try:
    import smartratelimit

    SMART_ERROR = ""
except Exception as exc:
    smartratelimit = None
    SMART_ERROR = f"{type(exc).__name__}: {exc}"

CLIENTS = ("ours-sync", "ours-async", "smartratelimit", "none")
QUIET_STYLES = ("stripe", "429-only", "retry-after-seconds", "retry-after-date")
SYNC_THREADS = 8
ASYNC_TASKS = 32
LATENCY = 0.02  # seconds the upstream takes per request
REQUEST_TIMEOUT = 35.0  # longer than the limiter's max_wait of 30 s
DRAIN_TIMEOUT = 40.0  # after the deadline, how long in-flight requests may take to finish


def hidden_limit(style: str) -> dict[str, Any]:
    """The limit the upstream enforces.

    Styles whose reset has whole-second resolution (epoch seconds, integer deltas, RFC 3339
    without fractions) get 50 per 5 s windows: with 1 s windows a rounded reset would be off by
    up to a whole window, which no real API with such headers does (GitHub's window is an hour).
    Sub-second styles and the ones that announce nothing get 20 per 1 s; Shopify its leaky bucket.
    """
    if style == "shopify":
        return {"limit": 40, "window": 20.0, "algorithm": "leaky"}  # capacity 40, drains 2/s
    if style in WHOLE_SECOND_STYLES:
        return {"limit": 50, "window": 5.0, "algorithm": "fixed"}
    return {"limit": 20, "window": 1.0, "algorithm": "fixed"}


WHOLE_SECOND_STYLES = {"ietf", "ietf-07", "ietf-06", "github", "twitter", "anthropic", "reddit",
                       "rapidapi"}  # fmt: skip


def describe(limit: dict[str, Any]) -> str:
    if limit["algorithm"] == "leaky":
        return f"leaky {limit['limit']}, {limit['limit'] / limit['window']:g}/s"
    return f"{limit['limit']}/{limit['window']:g}s {limit['algorithm']}"


class Errors:
    """Client-side exceptions, counted by type (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, error: BaseException) -> None:
        with self._lock:
            self.counts[type(error).__name__] += 1


def loop_threads(n: int, call: Callable[[], object], deadline: float, errors: Errors) -> None:
    """Run ``call`` in a closed loop on ``n`` threads until the deadline, then let them drain."""

    def worker() -> None:
        while time.monotonic() < deadline:
            try:
                call()
            except Exception as error:  # a failing client must not stop the run
                errors.add(error)
                time.sleep(0.01)  # do not spin on a persistent failure

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline + DRAIN_TIMEOUT - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        errors.add(TimeoutError("drain"))


def run_none(url: str, deadline: float, errors: Errors) -> None:
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        loop_threads(SYNC_THREADS, lambda: client.get(url), deadline, errors)


def run_smartratelimit(url: str, deadline: float, errors: Errors) -> None:
    limiter = smartratelimit.RateLimiter()  # memory storage, its default retry on 429
    call = lambda: limiter.request("GET", url, timeout=REQUEST_TIMEOUT)  # noqa: E731
    loop_threads(SYNC_THREADS, call, deadline, errors)


def run_ours_sync(url: str, deadline: float, errors: Errors) -> None:
    limiter = OursLimiter(max_wait=30.0)
    client = limiter.client()
    try:
        loop_threads(
            SYNC_THREADS, lambda: client.get(url, timeout=REQUEST_TIMEOUT), deadline, errors
        )
    finally:
        client.close()


def run_ours_async(url: str, deadline: float, errors: Errors) -> None:
    async def main() -> None:
        limiter = OursLimiter(max_wait=30.0)  # created inside the loop that will use it
        client = limiter.async_client()

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    await client.get(url, timeout=REQUEST_TIMEOUT)
                except Exception as error:
                    errors.add(error)
                    await asyncio.sleep(0.01)

        try:
            tasks = asyncio.gather(*(worker() for _ in range(ASYNC_TASKS)))
            await asyncio.wait_for(tasks, deadline + DRAIN_TIMEOUT - time.monotonic())
        finally:
            await client.aclose()

    asyncio.run(main())


RUNNERS: dict[str, Callable[[str, float, Errors], None]] = {
    "ours-sync": run_ours_sync,
    "ours-async": run_ours_async,
    "smartratelimit": run_smartratelimit,
    "none": run_none,
}


def stats_at(upstream: Upstream, deadline: float) -> dict[str, int]:
    """The upstream's counters as close to ``deadline`` as we can read them.

    Requests still in flight after the deadline are not scored. A late read would also score
    the first admissions of the next fixed window (which starts exactly at the deadline when
    the duration is a whole number of windows), so sleep to just before it and spin the rest.
    """
    time.sleep(max(0.0, deadline - time.monotonic() - 0.02))
    while time.monotonic() < deadline:
        time.sleep(0)
    return upstream.stats()


def run_one(style: str, client: str, duration: float) -> dict[str, Any]:
    """One closed-loop run of ``client`` against a fresh upstream; the row for the table."""
    limit = hidden_limit(style)
    errors = Errors()
    snapshot: dict[str, int] = {}
    upstream = Upstream(style, latency=LATENCY, **limit).start()
    deadline = upstream.started_at + duration
    timer = threading.Thread(target=lambda: snapshot.update(stats_at(upstream, deadline)))
    timer.start()
    try:
        RUNNERS[client](upstream.url + "/thing", deadline, errors)
    except Exception as error:  # e.g. the limiter could not be built
        errors.add(error)
    finally:
        timer.join()
        upstream.stop()
    total, ok = snapshot["total"], snapshot["ok"]
    allowed = upstream.allowed(duration)
    return {
        "style": style,
        "client": client,
        "hidden limit": describe(limit),
        "seconds": f"{duration:g}",
        "requests": total,
        "429s": snapshot["rejected"],
        "429 %": f"{100 * snapshot['rejected'] / total:.1f}%" if total else "-",
        "ok": ok,
        "allowed": allowed,
        "goodput": f"{min(100.0, 100 * ok / allowed):.1f}%" if allowed else "-",
        "exceptions": sum(errors.counts.values()),
        "errors": dict(errors.counts),
    }


COLUMNS = (
    "style", "client", "hidden limit", "seconds", "requests", "429s", "429 %", "ok", "allowed",
    "goodput", "exceptions",
)  # fmt: skip


def render(rows: list[dict[str, Any]], markdown: bool) -> str:
    cells = [[str(row[c]) for c in COLUMNS] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    numeric = set(range(3, len(COLUMNS)))  # right-align the figures

    def line(values: list[str] | tuple[str, ...]) -> str:
        return "  ".join(
            v.rjust(w) if i in numeric else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(COLUMNS), rule, *(line(r) for r in cells)])


def parse_list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def available(clients: list[str], smart: str) -> list[str]:
    """``clients`` without those whose library failed to import (saying so)."""
    if OURS_ERROR and any(c.startswith("ours") for c in clients):
        print(f"ours: not available ({OURS_ERROR})")
        clients = [c for c in clients if not c.startswith("ours")]
    if SMART_ERROR and smart in clients:
        print(f"smartratelimit: not available ({SMART_ERROR})")
        clients = [c for c in clients if c != smart]
    return clients


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", default=",".join(Upstream.STYLES))
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per header style")
    parser.add_argument(
        "--quiet-duration", type=float, default=30.0, help="seconds per style announcing nothing"
    )
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    styles = parse_list(args.styles, Upstream.STYLES, "style")
    clients = parse_list(args.clients, CLIENTS, "client")

    # The clients log every 429 they see; the table says it better.
    for name in ("smartratelimit", "otel_ratelimit"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    clients = available(clients, "smartratelimit")

    plan = [(s, c) for s in styles for c in clients]
    seconds = sum(args.quiet_duration if s in QUIET_STYLES else args.duration for s, _ in plan)
    print(
        f"{len(plan)} runs, about {seconds / 60:.1f} min; upstream latency {LATENCY * 1000:g} ms; "
        f"hidden limit {describe(hidden_limit('ietf'))} (shopify: "
        f"{describe(hidden_limit('shopify'))}); {SYNC_THREADS} threads per sync client, "
        f"{ASYNC_TASKS} tasks for ours-async",
        file=sys.stderr,
    )
    rows = []
    for i, (style, client) in enumerate(plan, 1):
        duration = args.quiet_duration if style in QUIET_STYLES else args.duration
        print(f"[{i}/{len(plan)}] {style} / {client} ({duration:g} s) ...", file=sys.stderr)
        row = run_one(style, client, duration)
        rows.append(row)
        errors = ", ".join(f"{name} x{n}" for name, n in row["errors"].items())
        print(f"    {row['requests']} requests, {row['429s']} 429s, goodput {row['goodput']}"
              + (f"; exceptions: {errors}" if errors else ""), file=sys.stderr)  # fmt: skip

    print(render(rows, args.markdown))
    print(
        "\nFigures from the upstream's counters at the deadline; goodput = ok / the most the "
        "hidden limit allows in the run; exceptions are raised in the client."
    )


if __name__ == "__main__":
    main()
