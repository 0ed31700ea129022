"""Upstream: the hidden limit (fixed, sliding, GCRA or leaky) and its server's lifecycle."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from ._server import Server
from ._styles import EPS, QUOTA_429_ONLY, Decision, response_body, response_headers

__all__ = ["Upstream"]


class Upstream:
    """A local HTTP API enforcing a hidden rate limit, reported in one vendor's header style.

    ``algorithm`` defaults to "fixed", except for "shopify" (a leaky bucket); ``window``
    defaults to 1 s, except for "shopify" (20 s, so the bucket drains ``limit / 20`` per s).
    ``retry_after``, when given, makes every 429 carry ``Retry-After`` announcing that many
    seconds whatever the true wait; otherwise only the styles that define it send it.
    """

    STYLES: tuple[str, ...] = (
        "ietf", "ietf-07", "ietf-06", "github", "twitter", "openai", "anthropic", "discord",
        "reddit", "shopify", "rapidapi", *QUOTA_429_ONLY,
    )  # fmt: skip
    ALGORITHMS: tuple[str, ...] = ("fixed", "sliding", "gcra", "leaky")

    def __init__(
        self,
        style: str = "ietf",
        *,
        limit: int = 20,
        window: float | None = None,
        algorithm: str | None = None,
        latency: float = 0.02,
        host: str = "127.0.0.1",
        retry_after: float | None = None,
    ) -> None:
        shopify = style == "shopify"
        algorithm = algorithm or ("leaky" if shopify else "fixed")
        window = window if window is not None else (20.0 if shopify else 1.0)
        if style not in self.STYLES:
            raise ValueError(f"unknown style {style!r}; expected one of {self.STYLES}")
        if algorithm not in self.ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {self.ALGORITHMS}")
        if limit < 0 or window <= 0 or latency < 0:
            raise ValueError("limit must be >= 0, window > 0 and latency >= 0")
        self.style, self.limit, self.window, self.algorithm = style, limit, window, algorithm
        self.latency, self.host, self.retry_after = latency, host, retry_after
        self.url = ""
        self.started_at = 0.0
        self.ok = self.rejected = self.total = 0
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_state(0.0)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Upstream:
        """Bind a free port on ``host``, start serving in a daemon thread and return self."""
        if self._server is not None:
            raise RuntimeError("already started")
        server = Server((self.host, 0), self)
        port = server.server_address[1]
        self.url = f"http://{self.host}:{port}"
        with self._lock:
            self.started_at = time.monotonic()
            self._reset_state(self.started_at)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name=f"upstream-{self.style}-{port}",
        )  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close the socket, let in-flight responses finish; idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()  # ends serve_forever
        thread.join()
        server.server_close()  # frees the port
        server.close_connections(timeout=self.latency + 2.0)
        self._server = self._thread = None

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- counters -----------------------------------------------------------------------

    def reset_counts(self) -> None:
        """Zero the ok / rejected / total counters (the rate-limit state is kept)."""
        with self._lock:
            self.ok = self.rejected = self.total = 0

    def stats(self) -> dict[str, int]:
        """A consistent snapshot of the counters."""
        with self._lock:
            return {"ok": self.ok, "rejected": self.rejected, "total": self.total}

    def allowed(self, duration: float) -> int:
        """How many requests the hidden limit admits at most in ``duration`` s from start."""
        if duration <= 0:
            return 0
        if self.algorithm in ("fixed", "sliding"):
            return self.limit * math.ceil(duration / self.window - EPS)
        return math.floor(self.limit + self.limit / self.window * duration + EPS)

    # -- the hidden limit ---------------------------------------------------------------

    def _reset_state(self, now: float) -> None:
        self._window_index, self._count = 0, 0  # fixed
        self._log: deque[float] = deque()  # sliding: admission times inside the window
        self._level, self._last = 0.0, now  # leaky / gcra

    def _admit(self) -> Decision:
        """Decide on one arriving request and update the counters."""
        with self._lock:
            now, limit, window = time.monotonic(), self.limit, self.window
            if self.algorithm == "fixed":
                index = int((now - self.started_at) // window)
                if index != self._window_index:
                    self._window_index, self._count = index, 0
                admitted = self._count < limit
                self._count += admitted
                remaining = limit - self._count
                reset = retry_in = self.started_at + (index + 1) * window - now
            elif self.algorithm == "sliding":
                log = self._log
                while log and log[0] <= now - window:
                    log.popleft()
                admitted = len(log) < limit
                if admitted:
                    log.append(now)
                remaining = limit - len(log)
                # When the oldest admission leaves the window, one more request fits.
                reset = retry_in = log[0] + window - now if log else 0.0
            else:  # leaky bucket (GCRA is the same schedule): capacity limit, drains limit/window
                rate = limit / window
                self._level = max(0.0, self._level - (now - self._last) * rate)
                self._last = now
                admitted = self._level + 1 <= limit + EPS
                self._level += admitted
                remaining = max(0, math.floor(limit - self._level + EPS))
                reset = self._level / rate if rate else 0.0
                retry_in = max(0.0, (self._level + 1 - limit) / rate) if rate else window
            self.total += 1
            if admitted:
                self.ok += 1
            else:
                self.rejected += 1
            return Decision(admitted, limit, remaining, reset, retry_in, time.time())

    # -- the vendor's view of it --------------------------------------------------------

    def _response(self, d: Decision) -> tuple[int, dict[str, object], list[tuple[str, str]]]:
        """Status, JSON body and headers that ``style`` sends for decision ``d``."""
        body = response_body(self.style, d, retry_after=self.retry_after)
        headers = response_headers(self.style, d, window=self.window, retry_after=self.retry_after)
        return (200 if d.admitted else 429), body, headers
