"""The threaded HTTP server behind Upstream, able to end keep-alive connections on stop."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._upstream import Upstream

__all__ = ["Server"]


class Server(ThreadingHTTPServer):
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
    server: Server

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
        self._reply(*upstream._response(decision))

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
