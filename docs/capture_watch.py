"""Capture a real `otel-ratelimit watch` screen for docs/cli.md.

Starts a real redis-server on a free loopback port and three local APIs (GitHub-style headers,
OpenAI-style headers, one that announces nothing until it answers 429), keeps 4 threads calling
them through a limiter that shares its state in that Redis, and runs `otel-ratelimit watch`
under a pseudo-terminal 132 columns wide. Prints the last screen it drew, ANSI codes removed.

    python docs/capture_watch.py
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

from otel_ratelimit import RateLimiter
from otel_ratelimit.testing import Upstream


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _run_watch(storage: str) -> str:
    """Run `otel-ratelimit watch` in a pty of 132x30 and return what it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 132, 0, 0))
    env = dict(os.environ, COLUMNS="132", LINES="30", TERM="xterm-256color")
    exe = shutil.which("otel-ratelimit") or "otel-ratelimit"
    cmd = [exe, "--storage", storage, "watch", "--interval", "1", "--count", "3"]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env)  # noqa: S603
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(10)
    os.close(master)
    return out.decode(errors="replace")


def main() -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        redis = subprocess.Popen(  # noqa: S603
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_for(port)
            storage = f"redis://127.0.0.1:{port}/0"
            with (
                Upstream("github", limit=50, window=10.0) as github,
                Upstream("openai", limit=20, window=1.0) as openai,
                Upstream("429-only", limit=8, window=1.0) as silent,
                RateLimiter(storage=storage) as limiter,
            ):
                stop = threading.Event()

                def call(url: str) -> None:
                    with limiter.client(base_url=url) as client:
                        while not stop.is_set():
                            client.get("/v1/items")

                urls = [github.url, openai.url, silent.url, silent.url]
                threads = [threading.Thread(target=call, args=(u,)) for u in urls]
                for thread in threads:
                    thread.start()
                time.sleep(4)  # let the limiter learn each API
                screen = _run_watch(storage)
                stop.set()
                for thread in threads:
                    thread.join()
                print("upstreams:", f"github {github.url}, openai {openai.url},",
                      f"429-only {silent.url}", file=sys.stderr)  # fmt: skip
        finally:
            redis.terminate()
            redis.wait(10)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "")
    title = plain.rfind("key(s) at")
    start = max(plain.rfind("\n", 0, title), plain.rfind("┘", 0, title)) + 1  # the last frame
    frame = plain[start:] if title >= 0 else plain
    print("\n".join(line.rstrip() for line in frame.split("\n") if line.strip()))


if __name__ == "__main__":
    main()
