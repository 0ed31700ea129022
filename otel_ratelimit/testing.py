"""A real local HTTP API that enforces a hidden rate limit, for tests, examples and benchmarks.

    with Upstream("github", limit=5, window=1.0) as upstream:
        httpx.get(upstream.url + "/anything")  # 200 with x-ratelimit-* headers, 429 when over

Admission is decided under a lock when a request arrives, before the simulated latency, so
the server counts in arrival order as real APIs do. ``GET /_stats`` returns the counters and
is never rate limited. Standard library only.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Upstream"]

_EPS = 1e-9  # slack for float comparisons of bucket levels and window arithmetic
_TOKEN_LIMIT = 10_000_000  # OpenAI-style token quota: reported, never binds
_QUOTA_429_ONLY = ("stripe", "429-only", "retry-after-seconds", "retry-after-date")


@dataclass(frozen=True)
class _Decision:
    """One admission, with the quota as it stood right after it."""

    admitted: bool
    limit: int
    remaining: int
    reset: float  # seconds until the window resets (leaky/gcra: until the bucket is empty)
    retry_in: float  # seconds until a request could be admitted again
    wall: float  # time.time() at admission, for epoch and date headers


class Upstream:
    """A local HTTP API enforcing a hidden rate limit, reported in one vendor's header style.

    ``algorithm`` defaults to "fixed", except for "shopify" (a leaky bucket); ``window``
    defaults to 1 s, except for "shopify" (20 s, so the bucket drains ``limit / 20`` per s).
    ``retry_after``, when given, makes every 429 carry ``Retry-After`` announcing that many
    seconds whatever the true wait; otherwise only the styles that define it send it.
    """

    STYLES: tuple[str, ...] = (
        "ietf", "ietf-07", "ietf-06", "github", "twitter", "openai", "anthropic", "discord",
        "reddit", "shopify", "rapidapi", *_QUOTA_429_ONLY,
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
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_state(0.0)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Upstream:
        """Bind a free port on ``host``, start serving in a daemon thread and return self."""
        if self._server is not None:
            raise RuntimeError("already started")
        server = _Server((self.host, 0), self)
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
            return self.limit * math.ceil(duration / self.window - _EPS)
        return math.floor(self.limit + self.limit / self.window * duration + _EPS)

    # -- the hidden limit ---------------------------------------------------------------

    def _reset_state(self, now: float) -> None:
        self._window_index, self._count = 0, 0  # fixed
        self._log: deque[float] = deque()  # sliding: admission times inside the window
        self._level, self._last = 0.0, now  # leaky / gcra

    def _admit(self) -> _Decision:
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
                admitted = self._level + 1 <= limit + _EPS
                self._level += admitted
                remaining = max(0, math.floor(limit - self._level + _EPS))
                reset = self._level / rate if rate else 0.0
                retry_in = max(0.0, (self._level + 1 - limit) / rate) if rate else window
            self.total += 1
            if admitted:
                self.ok += 1
            else:
                self.rejected += 1
            return _Decision(admitted, limit, remaining, reset, retry_in, time.time())

    # -- the vendor's view of it --------------------------------------------------------

    def _headers(self, d: _Decision) -> list[tuple[str, str]]:
        """The response headers of ``style`` for decision ``d``."""
        limit, remaining, used = d.limit, d.remaining, d.limit - d.remaining
        t = max(0, math.ceil(d.reset))  # whole seconds until reset, rounded up
        epoch = math.ceil(d.wall + d.reset)  # wall-clock reset, rounded up to the second
        w = _number(self.window)
        rfc3339 = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        quota: dict[str, list[tuple[str, object]]] = {
            "ietf": [("RateLimit-Policy", f'"default";q={limit};w={w}'),
                     ("RateLimit", f'"default";r={remaining};t={t}')],
            "ietf-07": [("RateLimit", f"limit={limit}, remaining={remaining}, reset={t}")],
            "ietf-06": [("RateLimit-Limit", f"{limit}, {limit};w={w}"),
                        ("RateLimit-Remaining", remaining), ("RateLimit-Reset", t)],
            "github": [("x-ratelimit-limit", limit), ("x-ratelimit-remaining", remaining),
                       ("x-ratelimit-used", used), ("x-ratelimit-reset", epoch),
                       ("x-ratelimit-resource", "core")],
            "twitter": [("x-rate-limit-limit", limit), ("x-rate-limit-remaining", remaining),
                        ("x-rate-limit-reset", epoch)],
            "openai": [("x-ratelimit-limit-requests", limit),
                       ("x-ratelimit-remaining-requests", remaining),
                       ("x-ratelimit-reset-requests", _go_duration(d.reset)),
                       # a token quota that never binds
                       ("x-ratelimit-limit-tokens", _TOKEN_LIMIT),
                       ("x-ratelimit-remaining-tokens", _TOKEN_LIMIT),
                       ("x-ratelimit-reset-tokens", "0s")],
            "anthropic": [("anthropic-ratelimit-requests-limit", limit),
                          ("anthropic-ratelimit-requests-remaining", remaining),
                          ("anthropic-ratelimit-requests-reset", rfc3339)],
            "discord": [("X-RateLimit-Limit", limit), ("X-RateLimit-Remaining", remaining),
                        ("X-RateLimit-Reset", f"{d.wall + d.reset:.3f}"),
                        ("X-RateLimit-Reset-After", f"{d.reset:.3f}"),
                        ("X-RateLimit-Bucket", "abcd1234")],
            "reddit": [("X-Ratelimit-Used", used),
                       ("X-Ratelimit-Remaining", f"{float(remaining):.1f}"),
                       ("X-Ratelimit-Reset", t)],
            "shopify": [("X-Shopify-Shop-Api-Call-Limit", f"{used}/{limit}")],
            "rapidapi": [("X-RateLimit-Requests-Limit", limit),
                         ("X-RateLimit-Requests-Remaining", remaining),
                         ("X-RateLimit-Requests-Reset", t)],
        }  # fmt: skip
        h = quota.get(self.style, [])
        if not d.admitted:
            if self.style == "stripe":
                h.append(("Stripe-Rate-Limited-Reason", "global-rate"))
            wait = self._retry_wait(d)
            if self.style == "retry-after-date":
                h.append(
                    ("Retry-After", email.utils.formatdate(math.ceil(d.wall + wait), usegmt=True))
                )
            elif self.retry_after is not None:
                h.append(("Retry-After", math.ceil(self.retry_after)))
            elif self.style in ("discord", "retry-after-seconds"):
                h.append(("Retry-After", max(1, math.ceil(wait))))
        return [(name, str(value)) for name, value in h]

    def _retry_wait(self, d: _Decision) -> float:
        return self.retry_after if self.retry_after is not None else d.retry_in

    def _body(self, d: _Decision) -> dict[str, object]:
        if d.admitted:
            return {"ok": True}
        if self.style == "discord":
            wait = round(self._retry_wait(d), 3)
            return {"error": "rate limited", "retry_after": wait, "global": False}
        return {"error": "rate limited"}


def _number(x: float) -> str:
    """``1.0`` -> ``1``, ``0.25`` -> ``0.25``."""
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}".rstrip("0")


def _go_duration(seconds: float) -> str:
    """Go's ``time.Duration`` format at millisecond resolution, rounded up: 120ms, 1s, 6m0s."""
    ms = max(0, math.ceil(seconds * 1000 - _EPS))
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs = str(ms // 1000) if ms % 1000 == 0 else f"{ms / 1000:.3f}".rstrip("0")
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{secs}s"


class _Server(ThreadingHTTPServer):
    """One daemon thread per connection; tracks connections so stop() can end keep-alives."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # many clients connect at once

    def __init__(self, address: tuple[str, int], upstream: Upstream) -> None:
        self.upstream = upstream
        self.stopping = False
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on broken DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client hanging up is not news
            super().handle_error(request, client_address)

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns[conn] = threading.current_thread()
            stopping = self.stopping
        if stopping:
            _shutdown(conn, socket.SHUT_RD)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.pop(conn, None)

    def close_connections(self, timeout: float) -> None:
        """End idle keep-alive connections; wait up to ``timeout`` for in-flight responses."""
        with self._conns_lock:
            self.stopping = True
            conns = list(self._conns.items())
        # Shutting down the read side wakes a handler blocked reading the next request,
        # while one still sleeping on its latency can write its response.
        for conn, _ in conns:
            _shutdown(conn, socket.SHUT_RD)
        deadline = time.monotonic() + timeout
        for conn, thread in conns:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                _shutdown(conn, socket.SHUT_RDWR)


def _shutdown(conn: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):  # already closed
        conn.shutdown(how)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        upstream = self.server.upstream
        if self.command == "GET" and self.path.partition("?")[0] == "/_stats":
            self._reply(200, dict(upstream.stats()), [])
            return
        decision = upstream._admit()
        if upstream.latency:
            time.sleep(upstream.latency)
        status = 200 if decision.admitted else 429
        self._reply(status, upstream._body(decision), upstream._headers(decision))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _reply(self, status: int, body: dict[str, object], headers: list[tuple[str, str]]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        if self.server.stopping:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
