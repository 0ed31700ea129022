"""SQLite storage: limits shared exactly by every process on one host, surviving restarts.

Each step is one ``BEGIN IMMEDIATE`` transaction (read the key, run the engine, write it
back), so concurrent processes serialize on the database's write lock instead of racing a
read-modify-write. WAL mode keeps readers (status, the CLI) out of the writers' way. Time is
the wall clock, which every process on the host shares.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..engine import KeyState, Window
from ..errors import ConfigurationError, StorageError
from .base import SteppedStorage
from .urls import redact_url

__all__ = ["SQLiteStorage", "sqlite_path"]

T = TypeVar("T")
_SCHEMA = """CREATE TABLE IF NOT EXISTS ratelimit_state (
    key TEXT PRIMARY KEY, state TEXT NOT NULL, touched REAL NOT NULL)"""


def _wal(conn: sqlite3.Connection, deadline: float) -> None:
    """Switch to WAL. SQLite answers "database is locked" at once, without the busy timeout,
    while other processes open the same new file; so try again until ``deadline``."""
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db`` is relative to the working directory, ``sqlite:////abs.db``
    absolute (the SQLAlchemy convention, so a relative file never lands in ``/``)."""
    if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
        raise ConfigurationError(
            f"SQLite URL must look like 'sqlite:///relative.db' or 'sqlite:////abs/path.db',"
            f" got {redact_url(url)!r}"
        )
    rest = url[len("sqlite:///") :]
    if "\x00" in rest or any(len(part.encode(errors="replace")) > 255 for part in rest.split("/")):
        raise ConfigurationError(f"SQLite file name is not a valid path: {redact_url(url)[:200]!r}")
    path = Path(rest) if rest.startswith("/") else Path.cwd() / rest
    if rest.endswith("/") or path.is_dir():
        raise ConfigurationError(f"SQLite URL names a directory, not a file: {redact_url(url)!r}")
    if not path.parent.is_dir():
        raise ConfigurationError(
            f"directory of the SQLite file does not exist: {redact_url(url)!r}"
        )
    return path


def _dump(state: KeyState) -> str:
    return json.dumps(dataclasses.asdict(state), separators=(",", ":"))


def _load(text: str) -> KeyState:
    data: dict[str, Any] = json.loads(text)
    windows = {name: Window(**w) for name, w in data.pop("windows").items()}
    return KeyState(**data, windows=windows)


class SQLiteStorage(SteppedStorage):
    """Key states in one SQLite file; a connection per thread, async calls in a worker thread."""

    shared = True

    def __init__(self, url: str, *, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.path = sqlite_path(url)
        self._timeout = timeout
        self._clock = clock
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._connect()  # fail at construction, not at the first request

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
                )
                _wal(conn, time.monotonic() + self._timeout)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(_SCHEMA)
            except sqlite3.Error as exc:
                raise StorageError(
                    f"cannot open SQLite database {str(self.path)!r}: {exc}"
                ) from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def now(self) -> float:
        """The store's clock: wall time, shared by every process on the host."""
        return self._clock()

    def to_epoch(self, t: float) -> float:
        """Store times are already epoch seconds."""
        return t

    def _step(self, key: str, fn: Callable[[KeyState, float], T]) -> T:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT state FROM ratelimit_state WHERE key = ?", (key,)
                ).fetchone()
                state = _load(row[0]) if row else KeyState()
                now = self.now()
                result = fn(state, now)
                conn.execute(
                    "INSERT INTO ratelimit_state (key, state, touched) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET state = excluded.state, "
                    "touched = excluded.touched",
                    (key, _dump(state), now),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite has rolled back by itself after SQLITE_FULL
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # locked past the timeout, read-only file, disk full
            raise StorageError(f"SQLite database {str(self.path)!r} failed: {exc}") from exc
        return result

    async def _astep(self, key: str, fn: Callable[[KeyState, float], T]) -> T:
        # In a worker thread: the event loop never waits on the database's lock.
        return await asyncio.to_thread(self._step, key, fn)

    def _run(self, sql: str, *args: str) -> list[Any]:
        try:
            return self._connect().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite database {str(self.path)!r} failed: {exc}") from exc

    def load(self, key: str) -> tuple[KeyState, float] | None:
        """The state of ``key`` and the current time, or None."""
        rows = self._run("SELECT state FROM ratelimit_state WHERE key = ?", key)
        return (_load(rows[0][0]), self.now()) if rows else None

    def keys(self) -> list[str]:
        """Every key with state."""
        return [row[0] for row in self._run("SELECT key FROM ratelimit_state ORDER BY key")]

    def clear(self, key: str | None = None) -> None:
        """Forget one key, or everything."""
        if key is None:
            self._run("DELETE FROM ratelimit_state")
        else:
            self._run("DELETE FROM ratelimit_state WHERE key = ?", key)

    def close(self) -> None:
        """Close every connection this store opened (threads reconnect if used again)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
