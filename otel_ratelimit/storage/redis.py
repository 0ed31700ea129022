"""Redis storage: limits shared exactly by every process on every host that reaches one Redis.

Each decision is one EVALSHA of ``engine.lua``, a line-for-line port of ``otel_ratelimit.engine``:
the server loads the key's state (one JSON string), decides and saves it atomically on its own
clock, so an outbound request costs two commands (acquire, observe). A key lives at
``otel_ratelimit:{<key>}``: the braces are a Redis Cluster hash tag, one slot per key. Every
write sets a TTL, so idle keys vanish. What the script is sent and replies is in ``redis_codec``.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from ..engine import Grant, KeyConfig, KeyState, Outcome
from ..errors import ConfigurationError, StorageError
from ..headers import Observation
from . import redact_url
from .redis_codec import (
    PREFIX,
    SCRIPT,
    config_json,
    decode_state,
    grant,
    name,
    num,
    obs_json,
    outcome,
    text,
)

__all__ = ["PREFIX", "RedisStorage"]

# Short timeouts, and one immediate retry on a broken connection only (a pooled connection a
# server restart closed gets one fresh one): a dead server fails a call in milliseconds and a
# hung one in half a second, never after redis-py's default seconds of backoff, so the failure
# policy (fallback.py) takes over without holding requests.
_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
_ERRORS = (RedisError, RedisClusterException, OSError)
_Loop = tuple[Any, AsyncGenerator[None, None]]  # a loop's script and the guard holding its client


def _sync_client(url: str) -> redis.Redis | RedisCluster:
    cluster = _cluster_url(url)
    if cluster is None:
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        return redis.Redis.from_url(url, retry=retry, **_OPTIONS)
    return RedisCluster.from_url(cluster, **_OPTIONS)


def _async_client(url: str) -> Any:
    cluster = _cluster_url(url)
    if cluster is None:
        retry = redis.asyncio.retry.Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        return redis.asyncio.Redis.from_url(url, retry=retry, **_OPTIONS)
    return redis.asyncio.cluster.RedisCluster.from_url(cluster, **_OPTIONS)


def _cluster_url(url: str) -> str | None:
    """``redis+cluster://h:p`` as the ``redis://h:p`` redis-py takes, or None if no cluster."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("redis+cluster", "rediss+cluster"):
        return scheme.lower().split("+")[0] + "://" + rest
    return None


class RedisStorage:
    """Key states in Redis (one server or a cluster), decided by a Lua script on the server.

    ``url``: ``redis://``, ``rediss://`` (TLS) or ``redis+cluster://host:port``, or a ready
    ``redis.Redis`` / ``redis.cluster.RedisCluster``. Async calls use a ``redis.asyncio``
    client made per event loop from the URL (or ``async_client``); with a ready sync client
    and no ``async_client`` they run the sync call in a worker thread. ``clock`` replaces the
    server's clock (tests only).
    """

    shared = True

    def __init__(self, url: str | redis.Redis | RedisCluster, *, async_client: Any = None,
                 clock: Callable[[], float] | None = None) -> None:  # fmt: skip
        self._clock = clock
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[Any, _Loop] = weakref.WeakKeyDictionary()
        self._async_script = None if async_client is None else async_client.register_script(SCRIPT)
        self.url = url if isinstance(url, str) else None
        self._label = redact_url(url) if isinstance(url, str) else type(url).__name__
        self._password = unquote(urlsplit(url).password or "") if isinstance(url, str) else ""
        client: Any  # redis.Redis | RedisCluster; their stubs differ between redis-py releases
        try:
            if isinstance(url, (redis.Redis, RedisCluster)):
                client = url
            elif isinstance(url, str):
                client = _sync_client(url)
            else:
                raise ConfigurationError(
                    f"Redis storage needs a URL, redis.Redis or RedisCluster, got {url!r}"
                )
            self._client = client
            self._script = client.register_script(SCRIPT)
            client.ping()
            client.script_load(SCRIPT)  # once; EVALSHA reloads it after a server restart
        except (*_ERRORS, ValueError, TypeError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(
                f"cannot use Redis storage {self._label!r}: {self._scrub(exc)}"
            ) from None

    # -- calls ---------------------------------------------------------------------------

    def _scrub(self, exc: BaseException) -> str:
        message = str(exc) or type(exc).__name__
        return message.replace(self._password, "***") if self._password else message

    def _failed(self, exc: BaseException) -> StorageError:
        return StorageError(f"Redis storage {self._label!r} failed: {self._scrub(exc)}")

    def _args(self, op: str, config: KeyConfig, *rest: str) -> list[str]:
        now = "" if self._clock is None else num(self._clock())
        return [op, config_json(config), now, *rest]

    def _call(self, key: str, args: list[str]) -> Any:
        try:
            return self._script(keys=[name(key)], args=args)
        except _ERRORS as exc:
            raise self._failed(exc) from exc

    async def _acall(self, key: str, args: list[str]) -> Any:
        script = self._async_script or await self._loop_script()
        if script is None:  # a ready sync client: keep the loop free with a worker thread
            return await asyncio.to_thread(self._call, key, args)
        try:
            return await script(keys=[name(key)], args=args)
        except _ERRORS as exc:
            raise self._failed(exc) from exc

    def acquire(
        self, key: str, config: KeyConfig, cost: float, max_wait: float, place: float = 0.0
    ) -> Grant:
        """Reserve a slot for ``cost`` on ``key`` (one EVALSHA)."""
        args = self._args("acquire", config, num(cost), num(max_wait), num(place))
        return grant(self._call(key, args), cost)

    def observe(self, key: str, config: KeyConfig, ticket: float, status: int,
                obs: Observation, cost: float = 1.0) -> Outcome:  # fmt: skip
        """Fold a response into ``key`` (one EVALSHA)."""
        args = self._args(
            "observe", config, num(ticket), str(int(status)), obs_json(obs), num(cost)
        )
        return outcome(self._call(key, args), obs)

    def release(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """Give back a slot that was never used (one EVALSHA)."""
        self._call(key, self._args("release", config, num(grant.at), num(grant.cost)))

    async def aacquire(
        self, key: str, config: KeyConfig, cost: float, max_wait: float, place: float = 0.0
    ) -> Grant:
        """``acquire`` for async code, on a ``redis.asyncio`` client."""
        args = self._args("acquire", config, num(cost), num(max_wait), num(place))
        return grant(await self._acall(key, args), cost)

    async def aobserve(self, key: str, config: KeyConfig, ticket: float, status: int,
                       obs: Observation, cost: float = 1.0) -> Outcome:  # fmt: skip
        """``observe`` for async code."""
        args = self._args(
            "observe", config, num(ticket), str(int(status)), obs_json(obs), num(cost)
        )
        return outcome(await self._acall(key, args), obs)

    async def arelease(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """``release`` for async code."""
        await self._acall(key, self._args("release", config, num(grant.at), num(grant.cost)))

    # -- state ---------------------------------------------------------------------------

    def load(self, key: str) -> tuple[KeyState, float] | None:
        """The state of ``key`` and the server's time, read together."""
        raw, now = self._call(key, self._args("load", KeyConfig()))
        return None if raw is None else (decode_state(raw), float(now))

    def now(self) -> float:
        """The store's clock: the Redis server's time (epoch seconds)."""
        if self._clock is not None:
            return self._clock()
        try:
            seconds, micros = self._client.time()
        except _ERRORS as exc:
            raise self._failed(exc) from exc
        return float(seconds) + float(micros) / 1e6

    def to_epoch(self, t: float) -> float:
        """Store times are already epoch seconds."""
        return t

    def _names(self) -> list[Any]:
        try:
            return list(self._client.scan_iter(match=PREFIX + "*", count=1000))
        except _ERRORS as exc:
            raise self._failed(exc) from exc

    def keys(self) -> list[str]:
        """Every key with state (SCAN; on a cluster, of every primary)."""
        names = (text(n) for n in self._names())
        return sorted({n[len(PREFIX) : -1] for n in names if n.endswith("}")})

    def clear(self, key: str | None = None) -> None:
        """Forget one key, or every key of this library."""
        names = [name(key)] if key is not None else self._names()
        try:
            for i in range(0, len(names), 500):
                self._client.delete(*names[i : i + 500])
        except _ERRORS as exc:
            raise self._failed(exc) from exc

    # -- async clients, one per event loop -------------------------------------------------

    async def _loop_script(self) -> Any:
        if self.url is None:
            return None
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._loops.get(loop)
        if entry is None:
            client = _async_client(self.url)
            entry = (client.register_script(SCRIPT), self._guard(loop, client))
            with self._lock:
                self._loops[loop] = entry
            await anext(entry[1])  # the guard is now registered with the loop: see _guard
        return entry[0]

    async def _guard(self, loop: Any, client: Any) -> AsyncGenerator[None, None]:
        """Holds a loop's client; ``asyncio.run`` closes it (shutdown_asyncgens) on the way out."""
        try:
            yield
        finally:
            with self._lock:
                self._loops.pop(loop, None)
            await client.aclose()

    async def aclose(self) -> None:
        """Close this event loop's client now, then everything else."""
        with self._lock:
            entry = self._loops.get(asyncio.get_running_loop())
        if entry is not None:
            await entry[1].aclose()
        self.close()

    def close(self) -> None:
        """Close the connections this store opened (not a client it was handed)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        with self._lock:
            entries = [(loop, e) for loop, e in self._loops.items() if loop is not running]
        for loop, entry in entries:  # the running loop's client closes when the loop ends
            if loop.is_closed():
                continue
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(entry[1].aclose(), loop)
            else:
                loop.run_until_complete(entry[1].aclose())
        if self.url is not None:
            self._client.close()
