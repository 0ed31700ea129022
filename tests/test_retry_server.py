"""The retry rules against a real local HTTP server: what is sent again, and what is not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from otel_ratelimit import RateLimiter, RetryConfig

SLOW = -1  # answer after the client's read timeout


@contextmanager
def scripted(statuses: list[int]) -> Iterator[tuple[str, list[str]]]:
    """A server answering each request with the next status of ``statuses``; the methods it
    saw are listed (a request is listed when it arrives, before any answer)."""
    seen: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            with lock:
                seen.append(self.command)
                status = statuses.pop(0) if statuses else 200
            self.rfile.read(int(self.headers.get("content-length") or 0))
            if status == SLOW:
                time.sleep(0.5)
                status = 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("method", "statuses", "final", "sent"),
    [
        ("GET", [504, 200], 200, 2),
        ("POST", [504, 200], 504, 1),  # the server may have acted on it
        ("POST", [503, 200], 200, 2),  # it says it did not
        ("PUT", [SLOW, 200], 200, 2),  # idempotent: a timeout is sent again
        ("GET", [500, 200], 500, 1),  # not a configured status
    ],
)
def test_which_answers_are_retried_by_a_real_server(method, statuses, final, sent):
    """Each row: what the server answered in turn, what the caller got, how often it was sent."""
    limiter = RateLimiter(retry=RetryConfig(base_delay=0.001), backoff_status_codes=())
    with scripted(statuses) as (url, seen), limiter.client(timeout=0.2) as client:
        assert client.request(method, f"{url}/x", content=b"{}").status_code == final
        assert seen == [method] * sent


def test_a_post_that_timed_out_is_raised_not_sent_again():
    """The server got the POST and may act on it: sending it again could do it twice."""
    limiter = RateLimiter(retry=RetryConfig(base_delay=0.001))
    with scripted([SLOW, 200]) as (url, seen), limiter.client(timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(f"{url}/x", content=b"{}")
        assert seen == ["POST"]


class _Counting(httpx.HTTPTransport):
    """A real HTTP transport that counts the attempts going through it."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return super().handle_request(request)


def test_a_refused_post_is_sent_again_until_the_retries_run_out():
    """A refused connection never reached a server: even a POST is tried again."""
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # a free port, closed again below: nothing listens
    inner = _Counting()
    limiter = RateLimiter(retry=RetryConfig(max_retries=2, base_delay=0.001))
    with limiter.client(transport=inner) as client, pytest.raises(httpx.ConnectError):
        client.post(f"http://127.0.0.1:{port}/x", content=b"{}")
    assert inner.attempts == 3  # the first try and two retries
