"""What the web middleware costs a request: views that never call out, and views that call once.

    python benchmarks/middleware.py [--requests 5000] [--calls 500] [--rounds 15]
    python benchmarks/middleware.py --instructions [--calls 500]   # valgrind: no timing noise

Each configuration runs ``--rounds`` times, interleaved, and the fastest round is reported
(the one least disturbed by other processes: this machine is shared).
Views are called straight through ASGI (a minimal server loop, no network) or WSGI, so the
middleware's own cost is not hidden behind a test client's. Outbound calls go to a real local
HTTP server (``otel_ratelimit.testing.Upstream``, no latency, a limit that never binds) and,
separately, to ``httpx.MockTransport`` (no I/O: the limiter's whole cost shows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from otel_ratelimit import RateLimiter, RateLimitMiddleware
from otel_ratelimit.flask import FlaskRateLimit
from otel_ratelimit.testing import Upstream


async def _serve(app: Any, n: int, path: str = "/") -> float:
    """Seconds per request for ``n`` requests straight through ASGI."""
    body = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return body

    async def send(message: dict[str, Any]) -> None:
        return None

    started = time.perf_counter()
    for _ in range(n):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": [],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
        await app(scope, receive, send)
    return (time.perf_counter() - started) / n


def _starlette(view: Callable[..., Any], middleware: RateLimiter | None) -> Starlette:
    app = Starlette(routes=[Route("/", view)])
    if middleware is not None:
        app.add_middleware(RateLimitMiddleware, limiter=middleware)
    return app


async def _plain(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _rounds(configs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, run in configs.items():
            samples[name].append(run())
    return {name: min(values) for name, values in samples.items()}  # least disturbed round


class _PassThrough:
    """The least any pure ASGI middleware costs: one extra call."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


bare_app = _starlette(_plain, None)  # served by uvicorn in ``through_uvicorn``
wrapped_app = _starlette(_plain, RateLimiter())


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def through_uvicorn(n: int, rounds: int) -> dict[str, float]:
    """The same pair behind uvicorn (loopback HTTP, keep-alive): the server's CPU per request."""
    servers = {}
    try:
        for name in ("bare_app", "wrapped_app"):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            here = str(Path(__file__).parent)
            command = [sys.executable, "-m", "uvicorn", f"middleware:{name}", "--app-dir", here,
                       "--port", str(port), "--log-level", "error"]  # fmt: skip
            servers[name] = (subprocess.Popen(command), f"http://127.0.0.1:{port}/")
        clients = {name: httpx.Client() for name in servers}
        for name, (_, url) in servers.items():
            for _ in range(300):
                try:
                    clients[name].get(url)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)

        def run(name: str) -> float:
            proc, url = servers[name]
            client, before = clients[name], _cpu_seconds(proc.pid)
            for _ in range(n):
                client.get(url)
            return (_cpu_seconds(proc.pid) - before) / n

        return _rounds({
            "uvicorn, no middleware": lambda: run("bare_app"),
            "uvicorn + RateLimitMiddleware": lambda: run("wrapped_app"),
        }, rounds)  # fmt: skip
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)


def no_call(n: int, rounds: int) -> dict[str, float]:
    """A view that never touches api_client, with and without the middleware (ASGI, Flask)."""
    limiter = RateLimiter()
    bare, wrapped = _starlette(_plain, None), _starlette(_plain, limiter)
    passing = _starlette(_plain, None)
    passing.add_middleware(_PassThrough)
    flask_bare, flask_wrapped = flask.Flask("bare"), flask.Flask("wrapped")
    for app in (flask_bare, flask_wrapped):
        app.add_url_rule("/", "plain", lambda: "ok")
    FlaskRateLimit(flask_wrapped, limiter=limiter)

    def wsgi(app: flask.Flask) -> float:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "x",
                   "SERVER_PORT": "80", "wsgi.url_scheme": "http"}  # fmt: skip
        started = time.perf_counter()
        for _ in range(n // 4):
            body = app.wsgi_app(dict(environ), _ignore)
            b"".join(body)
            body.close()  # type: ignore[attr-defined]
        return (time.perf_counter() - started) / (n // 4)

    return _rounds({
        "starlette, no middleware": lambda: asyncio.run(_serve(bare, n)),
        "starlette + RateLimitMiddleware": lambda: asyncio.run(_serve(wrapped, n)),
        "starlette + a do-nothing ASGI middleware": lambda: asyncio.run(_serve(passing, n)),
        "flask, no extension": lambda: wsgi(flask_bare),
        "flask + FlaskRateLimit": lambda: wsgi(flask_wrapped),
    }, rounds)  # fmt: skip


ONE_CALL = {
    "plain": "shared httpx.AsyncClient (no limiter)",
    "limited": "shared limiter.async_client()",
    "middleware": "request.state.api_client",
}


async def _one_call(kind: str, n: int, target: str) -> float:
    """Seconds per request of a view making one call to ``target`` with a ``kind`` client."""
    limiter = RateLimiter()
    inner = _mock_transport if target.startswith("http://api.mock") else None
    if kind == "plain":
        shared: Any = httpx.AsyncClient(transport=inner() if inner else None)
    elif kind == "limited":
        shared = limiter.async_client(transport=inner() if inner else None)

    async def view(request: Any) -> PlainTextResponse:
        client = request.state.api_client if kind == "middleware" else shared
        return PlainTextResponse((await client.get(target)).text)

    app = _starlette(view, limiter if kind == "middleware" else None)
    stack: Any = app.build_middleware_stack()
    app.middleware_stack = stack
    ours = stack.app  # RateLimitMiddleware, with kind == "middleware"
    if kind == "middleware" and inner is not None:  # the shared pool sends to the mock
        ours.pools.asynchronous(inner())
    await _serve(app, 1)
    seconds = await _serve(app, n)
    if kind == "middleware":
        await ours.aclose()
    else:
        await shared.aclose()
    return seconds


def _mock_transport() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))


def _ignore(*args: Any) -> Any:
    """A start_response that keeps nothing."""


def one_call(n: int, rounds: int, url: str, mock: bool) -> dict[str, float]:
    """A view making one outbound call: per-request api_client vs one shared client."""
    target = "http://api.mock/x" if mock else url + "/x"

    def run(kind: str) -> Callable[[], float]:
        return lambda: asyncio.run(_one_call(kind, n, target))

    return _rounds({label: run(kind) for kind, label in ONE_CALL.items()}, rounds)


def instructions(n: int, mock: bool) -> dict[str, float]:
    """Instructions per request of the one-call views, counted by valgrind (no timing noise).

    Each count runs in its own process under callgrind, twice (``n // 5`` and ``n`` requests,
    after the same warm-up, ``PYTHONHASHSEED=0``); the difference over ``n - n // 5`` requests
    is the per-request figure, start-up excluded. The local server runs in a process of its
    own, outside valgrind, as a real API would: what is counted is the app's work alone.
    (Counted in the app's process, the server's threads added 0.4 M a request, and how much
    of their polling and GIL hand-offs fell into a request moved the counts by up to 0.1 M
    from run to run.)
    """
    counts = {}
    server = None if mock else _serve_upstream()
    target = "http://api.mock/x" if server is None else server[1] + "/x"
    try:
        for kind, label in ONE_CALL.items():
            totals = []
            for calls in (n // 5, n):
                with tempfile.TemporaryDirectory() as tmp:
                    out = Path(tmp) / "callgrind.out"
                    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                    sys.executable, __file__, "--count", kind, str(calls), target],
                                   check=True, capture_output=True,
                                   env={**os.environ, "PYTHONHASHSEED": "0"})  # fmt: skip
                    summary = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
                    assert summary is not None, "callgrind wrote no total"
                    totals.append(int(summary.group(1)))
            counts[label] = (totals[1] - totals[0]) / (n - n // 5)
    finally:
        if server is not None:
            server[0].communicate("")  # end of stdin: the server stops
    return counts


def _serve_upstream() -> tuple[subprocess.Popen[str], str]:
    """A local upstream in a process of its own (this script with ``--serve``), and its URL."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _upstream_until_stdin_closes() -> None:
    """What ``_serve_upstream`` runs (``--serve``)."""
    with Upstream("ietf", limit=10**9, window=1.0, latency=0.0) as up:
        print(up.url, flush=True)
        sys.stdin.read()


def _count(kind: str, n: int, target: str) -> None:
    """What ``instructions`` runs under callgrind: ``n`` requests of one configuration."""
    asyncio.run(_one_call(kind, n, target))


def _table(title: str, results: dict[str, float], base: str) -> list[str]:
    lines = [f"**{title}**", "", "| configuration | per request | vs first row |", "|---|---|---|"]
    for name, seconds in results.items():
        lines.append(f"| {name} | {seconds * 1e6:.1f} µs | {seconds / results[base]:.3f}x |")
    return [*lines, ""]


def _counted(target: str, counts: dict[str, float]) -> list[str]:
    lines = [f"**Instructions per request, one outbound call to {target}**", "",
             "| configuration | per request | vs first row |", "|---|---|---|"]  # fmt: skip
    base = next(iter(counts.values()))
    for name, count in counts.items():
        lines.append(f"| {name} | {count / 1e6:.3f} M | {count / base:.3f}x |")
    return [*lines, ""]


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a stopped run still cleans up
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--instructions", action="store_true", help="count, don't time")
    parser.add_argument("--count", help=argparse.SUPPRESS)  # one run under callgrind
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # its upstream
    args, rest = parser.parse_known_args()
    if args.count:
        _count(args.count, int(rest[0]), rest[1])
        return
    if args.serve:
        _upstream_until_stdin_closes()
        return
    if args.instructions:  # the mock's requests are about 3x cheaper: count 4x as many
        lines = _counted("a local HTTP server", instructions(args.calls // 2, mock=False))
        lines += _counted("httpx.MockTransport", instructions(args.calls * 2, mock=True))
        print("\n".join(lines))
        return

    quiet = list(no_call(args.requests, args.rounds).items())
    lines = _table("A view that never touches api_client (ASGI, called directly)",
                   dict(quiet[:3]), quiet[0][0])  # fmt: skip
    lines += _table("A view that never touches api_client (Flask, WSGI called directly)",
                    dict(quiet[3:]), quiet[3][0])  # fmt: skip
    served = through_uvicorn(args.requests, args.rounds)
    lines += _table("The same ASGI pair served by uvicorn: server CPU time per request",
                    served, "uvicorn, no middleware")  # fmt: skip
    with Upstream("ietf", limit=10**9, window=1.0, latency=0.0) as up:
        local = one_call(args.calls, args.rounds, up.url, mock=False)
    lines += _table("One outbound call to a local HTTP server", local,
                    "shared httpx.AsyncClient (no limiter)")  # fmt: skip
    mocked = one_call(args.calls * 5, args.rounds, "", mock=True)
    lines += _table("One outbound call to httpx.MockTransport (no I/O)", mocked,
                    "shared httpx.AsyncClient (no limiter)")  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
