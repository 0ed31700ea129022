"""Real redis-server processes on free loopback ports: one server, a 3-node cluster, or more."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import otel_ratelimit
from otel_ratelimit.storage import FallbackStorage

HOST = "127.0.0.1"


def stale_compiled() -> list[str]:
    """Sources edited after the compiled core (setup.py) was built: those edits would not run.

    The code of every compiled module is in one shared library (``<hash>__mypyc``); the ``.so``
    beside each source only loads it, and is not rebuilt when the source changes.
    """
    built = [m.__file__ for name, m in sys.modules.items() if name.endswith("__mypyc")]
    if not built or not otel_ratelimit.COMPILED:
        return []
    at = max(Path(f).stat().st_mtime for f in built if f)
    root = Path(otel_ratelimit.__file__).parent
    sources = (p.with_name(p.name.split(".", 1)[0] + ".py") for p in root.rglob("*.so"))
    return sorted(str(s.relative_to(root.parent)) for s in sources if s.stat().st_mtime > at)


def pytest_configure(config: pytest.Config) -> None:
    stale = stale_compiled()
    if stale:
        raise pytest.UsageError(
            f"{', '.join(stale)} changed after the compiled core was built, so the tests would run "
            "the old code: run `pip install -e .` again (or delete otel_ratelimit/**/*.so to run "
            "pure Python)"
        )


def require(package: str, *binaries: str) -> None:
    """Skip without ``binaries`` (from Debian's ``package``); on CI (CI=true) fail instead."""
    if all(shutil.which(binary) for binary in binaries):
        return
    message = f"{' and '.join(binaries)} are needed (apt-get install {package})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_redis() -> None:
    """redis-server and redis-cli, or a skip (a failure on CI)."""
    require("redis-server", "redis-server", "redis-cli")


def storage_events(limiter: Any) -> list[tuple[float, str, str]]:
    """(monotonic time, event, detail) of every storage event of the limiter, as they come."""
    events: list[tuple[float, str, str]] = []
    assert isinstance(limiter.storage, FallbackStorage)
    limiter.storage.listeners.append(lambda e, d: events.append((time.monotonic(), e, d)))
    return events


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, bus: bool = False) -> int:
    """A free loopback port (with ``bus``: port + 10000 free too, for a cluster node's bus)."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if not bus or (port + 10000 < 65536 and _bindable(port + 10000)):
            return port


def start_server(directory: Path, port: int, *extra: str, ping_url: str | None = None,
                 tls: bool = False) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start ``redis-server`` on ``port`` (no persistence, loopback only) and wait for PING."""
    import redis  # noqa: PLC0415  # only when a server is wanted

    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"redis-{port}.log"
    ports = ["--port", "0", "--tls-port", str(port)] if tls else ["--port", str(port)]
    args = ["redis-server", *ports, "--bind", HOST, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(directory), *extra]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    url = ping_url or f"redis://{HOST}:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
            with client:
                client.ping()
            return proc
        except redis.RedisError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_server(proc)
                pytest.fail(f"redis-server on port {port} did not start:\n{log.read_text()}")
            time.sleep(0.02)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started by ``start_server``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server for the session: its URL."""
    require_redis()
    port = free_port()
    proc = start_server(tmp_path_factory.mktemp("redis"), port)
    yield f"redis://{HOST}:{port}"
    stop_server(proc)


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-primary Redis Cluster for the session: ``redis+cluster://`` URL of one node."""
    require_redis()
    directory = tmp_path_factory.mktemp("cluster")
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port(bus=True)
        if port not in ports:
            ports.append(port)
    procs = []
    try:
        for port in ports:
            procs.append(start_server(
                directory, port, "--cluster-enabled", "yes",
                "--cluster-config-file", str(directory / f"nodes-{port}.conf"),
                "--cluster-node-timeout", "5000",
            ))  # fmt: skip
        nodes = [f"{HOST}:{port}" for port in ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not all(_cluster_ok(port) for port in ports):
            if time.monotonic() > deadline:
                pytest.fail("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        yield f"redis+cluster://{HOST}:{ports[0]}"
    finally:
        for proc in procs:
            stop_server(proc)


def _cluster_ok(port: int) -> bool:
    command = ["redis-cli", "-h", HOST, "-p", str(port), "cluster", "info"]
    info = subprocess.run(command, check=False, capture_output=True, text=True, timeout=5).stdout
    return "cluster_state:ok" in info and "cluster_known_nodes:3" in info


@pytest.fixture
def redis_factory(
    tmp_path: Path,
) -> Iterator[Callable[..., tuple[int, subprocess.Popen[bytes]]]]:
    """Start extra servers for one test (``start(*args, ping_url=..., tls=...)``)."""
    require_redis()
    procs: list[subprocess.Popen[bytes]] = []

    def start(*extra: str, ping_url: Callable[[int], str] | None = None,
              tls: bool = False) -> tuple[int, subprocess.Popen[bytes]]:  # fmt: skip
        port = free_port()
        url = ping_url(port) if ping_url else None
        proc = start_server(tmp_path / f"r{port}", port, *extra, ping_url=url, tls=tls)
        procs.append(proc)
        return port, proc

    yield start
    for proc in procs:
        stop_server(proc)


REDIS_PASSWORD = "s3cret"


class KillableRedis:
    """One redis-server (with a password) that a test kills and starts again on its port."""

    def __init__(self, directory: Path) -> None:
        require_redis()
        self.directory, self.port = directory, free_port()
        self.url = f"redis://:{REDIS_PASSWORD}@{HOST}:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.back_at = 0.0  # time.monotonic() when the restarted server first answered PING

    def start(self) -> None:
        self.proc = start_server(self.directory, self.port, "--requirepass", REDIS_PASSWORD,
                                 ping_url=self.url)  # fmt: skip
        self.back_at = time.monotonic()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no goodbye to the clients
        self.proc.wait(5)

    def first_evalsha(self, timeout: float = 5.0) -> float:
        """When the (restarted) server first ran a script call: shared limiting again."""
        import redis  # noqa: PLC0415  # only when a server is wanted

        admin = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while "cmdstat_evalsha" not in admin.info("commandstats"):
                assert time.monotonic() < deadline, "no request went through Redis again"
                time.sleep(0.005)
            return time.monotonic()
        finally:
            admin.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)


@pytest.fixture
def killable_redis(tmp_path: Path) -> Iterator[KillableRedis]:
    """A redis-server for one test that it may kill (``kill``) and start again (``start``)."""
    srv = KillableRedis(tmp_path)
    srv.start()
    yield srv
    srv.stop()
