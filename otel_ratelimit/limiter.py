"""RateLimiter: the public face that configures keys and hands out limited httpx clients."""

from __future__ import annotations

import asyncio
import math
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from . import compat, compat_pool
from .core import COST_EXTENSION, Core, key_for
from .credentials import CredentialPartition
from .engine import KeyConfig
from .errors import ConfigurationError
from .limits import AdaptiveConfig, Limit, LimitSpec, parse_limits, parse_window
from .presets import Preset, preset_for_host, resolve_presets
from .retry import RetryConfig, RetryPolicy
from .status import RateLimitStatus, describe
from .storage import Storage, check_policy, open_storage
from .transport import (
    AsyncLimitedTransport,
    LimitedTransport,
    closed_with_the_loop,
    http_module,
    package_of,
    split_inner_options,
    transport_classes,
)

__all__ = ["RateLimiter"]

_MAX_CONFIGS = 10_000  # cached key configurations (rebuilt on demand: a cache, not state)


class RateLimiter:
    """Keeps outbound calls inside every API's limits, learned from headers or configured.

    One limiter serves all threads and coroutines of a process; with a shared storage URL
    it serves every process that uses the same store. ``on_storage_error`` says what happens
    while that store cannot be used: "local" (default: keep limiting in this process with what
    was last learned, back to shared state by itself), "allow", "deny" (StorageError for new
    requests) or "raise" (every store error is raised as StorageError). ``retry`` (default on:
    ``RetryConfig()``) retries 429, 503 and 504 answers inside the transport, within a budget of
    10% of a key's requests; ``retry=False`` hands every answer to the caller as it came.
    ``partition_by_credentials=True`` gives each credential (Authorization, X-Api-Key) its own
    key ``host#<keyed hash>``, the hash keyed by ``credential_key`` (see ``credentials.py``).
    """

    def __init__(
        self,
        storage: str | Storage | None = "memory",
        *,
        on_storage_error: str = "local",
        default_limits: LimitSpec | None = None,
        headers_map: Mapping[str, str] | None = None,
        raise_on_limit: bool = False,
        max_wait: float = 60.0,
        adaptive: bool | AdaptiveConfig = True,
        backoff_status_codes: Iterable[int] | None = None,
        presets: Mapping[str, Preset | Mapping[str, Any]] | None = None,
        use_presets: bool = True,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        retry: RetryConfig | bool | None = True,
        partition_by_credentials: bool = False,
        credential_key: str | bytes | None = None,
    ) -> None:
        if not isinstance(max_wait, (int, float)) or math.isnan(max_wait) or max_wait < 0:
            raise ConfigurationError(f"max_wait must be a number of seconds >= 0, got {max_wait!r}")
        if headers_map is not None:
            unknown = set(headers_map) - {"limit", "remaining", "reset", "retry_after", "used"}
            if unknown:
                raise ConfigurationError(f"unknown headers_map keys: {sorted(unknown)!r}")
        self.storage = open_storage(storage, check_policy(on_storage_error))
        self.default_limits = parse_limits(default_limits)
        self.adaptive = adaptive
        self.backoff_status_codes = (
            None if backoff_status_codes is None else frozenset(backoff_status_codes)
        )
        self.presets = resolve_presets(presets) if use_presets else {}
        self._limits: dict[str, tuple[Limit, ...]] = {}
        self._configs: dict[str, KeyConfig] = {}
        self._lock = threading.Lock()
        self._client: Any = None
        self._async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self.core = Core(
            self.storage,
            self.config_for,
            max_wait=float(max_wait),
            raise_on_limit=raise_on_limit,
            headers_map=headers_map,
            meter_provider=meter_provider,  # None: the global providers (see telemetry.py)
            tracer_provider=tracer_provider,
            retry=_retry_policy(retry),
            partition=CredentialPartition(credential_key) if partition_by_credentials else None,
        )

    # -- configuration -----------------------------------------------------------------

    def set_limit(self, endpoint: str, limit: float | str, window: str | float = "1s",
                  *, burst: float = 1.0) -> None:  # fmt: skip
        """Hold ``endpoint`` (a host) to ``limit`` requests per ``window`` ("30s", "1m", "1h")."""
        if isinstance(limit, str):
            configured = parse_limits(limit)
        else:
            configured = (Limit(limit, parse_window(window), burst),)
        with self._lock:
            self._limits[_host(endpoint)] = configured
            self._configs.clear()

    def preset_for(self, endpoint: str) -> Preset | None:
        """The preset that applies to ``endpoint``, if any."""
        return preset_for_host(_host(endpoint).split(":")[0], self.presets)

    def config_for(self, key: str) -> KeyConfig:
        """The configuration of one key (cached; cleared by ``set_limit``)."""
        config = self._configs.get(key)
        if config is None:
            if len(self._configs) >= _MAX_CONFIGS:  # endless distinct hosts: start the cache over
                self._configs.clear()
            config = self._configs[key] = self._build_config(key)
        return config

    def _build_config(self, key: str) -> KeyConfig:
        key = key.split("#", 1)[0]  # a credential partition has its host's configuration
        preset = self.preset_for(key)
        limits = self._limits.get(key) or (preset.limits if preset else ()) or self.default_limits
        adaptive: AdaptiveConfig | None = None
        if isinstance(self.adaptive, AdaptiveConfig):
            adaptive = self.adaptive
        elif self.adaptive:
            adaptive = preset.adaptive if preset else AdaptiveConfig()
        codes = self.backoff_status_codes
        if codes is None:
            codes = preset.backoff_status_codes if preset else frozenset({429, 503})
        return KeyConfig(
            limits=limits,
            adaptive=adaptive,
            backoff_status_codes=codes,
            cooldown=preset.cooldown if preset else 1.0,
        )

    # -- clients -----------------------------------------------------------------------

    def transport(self, inner: Any = None, *, package: str | None = None, **options: Any) -> Any:
        """A sync transport limiting ``inner`` (default: a new HTTPTransport of ``package``)."""
        package = package or (package_of(inner) if inner is not None else "httpx")
        if inner is None:
            inner = http_module(package).HTTPTransport(**options)
        if isinstance(inner, LimitedTransport):
            return inner  # already limited: a second layer would queue every request twice
        return transport_classes(package)[0](self.core, inner)

    def async_transport(self, inner: Any = None, *, package: str | None = None,
                        **options: Any) -> Any:  # fmt: skip
        """An async transport limiting ``inner`` (default: a new AsyncHTTPTransport)."""
        package = package or (package_of(inner) if inner is not None else "httpx")
        if inner is None:
            inner = http_module(package).AsyncHTTPTransport(**options)
        if isinstance(inner, AsyncLimitedTransport):
            return inner
        return transport_classes(package)[1](self.core, inner)

    def client(self, *, package: str = "httpx", **kwargs: Any) -> Any:
        """An ``httpx.Client`` (or ``httpx2.Client`` with ``package="httpx2"``) that is limited."""
        options = split_inner_options(kwargs)
        transport = self.transport(kwargs.pop("transport", None), package=package, **options)
        return http_module(package).Client(transport=transport, **kwargs)

    def async_client(self, *, package: str = "httpx", **kwargs: Any) -> Any:
        """An ``httpx.AsyncClient`` (or httpx2's) that is limited."""
        options = split_inner_options(kwargs)
        transport = self.async_transport(kwargs.pop("transport", None), package=package, **options)
        return http_module(package).AsyncClient(transport=transport, **kwargs)

    def request(self, method: str, url: str, *, cost: float = 1, **kwargs: Any) -> Any:
        """Send one request within the limits and return the ``httpx.Response``."""
        with self._lock:
            if self._client is None:
                self._client = self.client()
        extensions = {**kwargs.pop("extensions", {}), COST_EXTENSION: cost}
        return self._client.request(method, url, extensions=extensions, **kwargs)

    async def arequest(self, method: str, url: str, *, cost: float = 1, **kwargs: Any) -> Any:
        """Send one request within the limits from async code (one pooled client per loop)."""
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(loop)
        if entry is None:
            client = self.async_client()  # closed by the loop's shutdown if aclose() is not called
            entry = self._async_clients[loop] = (client, closed_with_the_loop(client))
        client = entry[0]
        extensions = {**kwargs.pop("extensions", {}), COST_EXTENSION: cost}
        return await client.request(method, url, extensions=extensions, **kwargs)

    # -- the older libraries' entry points (compat.py) --------------------------------

    def wrap_session(self, session: Any) -> Any:
        """Limit a ``requests.Session`` in place, keeping its auth, headers and cookies."""
        return compat.wrap_session(self, session)

    async def arequest_aiohttp(self, session: Any, method: str, url: str, **kwargs: Any) -> Any:
        """Send one request through an ``aiohttp.ClientSession`` within the limits."""
        return await compat.arequest_aiohttp(self, session, method, url, **kwargs)

    def aiohttp_middleware(self) -> Any:
        """A client middleware limiting every request of ``aiohttp.ClientSession(middlewares=)``."""
        return compat.aiohttp_middleware(self)

    def client_for(self, name: str, **kwargs: Any) -> Any:
        """An httpx client for the preset ``name`` (its base_url, limits and backoff codes)."""
        return compat.client_for(self, name, **kwargs)

    def async_client_for(self, name: str, **kwargs: Any) -> Any:
        """``client_for`` as an ``httpx.AsyncClient``."""
        return compat.client_for(self, name, asynchronous=True, **kwargs)

    def shared_transport(self, **options: Any) -> Any:
        """A limited transport that outlives the clients built on it (githubkit's ``transport``)."""
        return compat_pool.shared_transport(self, **options)

    def shared_async_transport(self, **options: Any) -> Any:
        """``shared_transport`` for async clients (githubkit's ``async_transport``)."""
        return compat_pool.shared_transport(self, asynchronous=True, **options)

    def metrics_text(self) -> str:
        """Every key's status as Prometheus text (``ratelimit_status_*`` gauges)."""
        return compat.metrics_text(self)

    # -- state -------------------------------------------------------------------------

    def get_status(self, endpoint: str) -> RateLimitStatus | None:
        """What is known of ``endpoint`` now; None when nothing is."""
        key = _host(endpoint)
        loaded = self.storage.load(key)
        if loaded is None:
            return None
        state, now = loaded
        return describe(key, state, self.config_for(key), now, self.storage.to_epoch)

    def snapshot(self, endpoint: str) -> dict[str, float | None]:
        """``current_rate``, ``tokens`` and ``cooldown_until`` (epoch s, 0.0 if none) of a key."""
        status = self.get_status(endpoint)
        if status is None:
            return {"current_rate": None, "tokens": None, "cooldown_until": 0.0}
        rate = status.rate
        if rate is None and status.window:
            rate = status.limit / status.window
        return {
            "current_rate": rate,
            "tokens": status.remaining,
            "cooldown_until": status.cooldown_until,
        }

    def clear(self, endpoint: str | None = None) -> None:
        """Forget what was learned of one endpoint, or of all."""
        self.storage.clear(None if endpoint is None else _host(endpoint))

    def close(self) -> None:
        """Release the pooled client of ``request()`` and the storage's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self.core.telemetry.close()  # no gauge reads from a closed store
        self.storage.close()

    async def aclose(self) -> None:
        """Close the async client this loop used for ``arequest()``, then everything else."""
        entry = self._async_clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # its finally closes the client
        aclose = getattr(self.storage, "aclose", None)
        if aclose is not None:  # stores with async connections close this loop's first
            await aclose()
        self.close()

    def __enter__(self) -> RateLimiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _retry_policy(retry: RetryConfig | bool | None) -> RetryPolicy | None:
    if retry is True:
        return RetryPolicy(RetryConfig())
    if retry is False or retry is None:
        return None
    if isinstance(retry, RetryConfig):
        return RetryPolicy(retry)
    raise ConfigurationError(f"retry must be a RetryConfig, True or False, got {retry!r}")


def _host(endpoint: str) -> str:
    """Accept "api.github.com", "https://api.github.com/x" or "host:8080" and give the key."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigurationError(f"endpoint must be a host name, got {endpoint!r}")
    text = endpoint.strip().lower()
    if "://" in text:
        return key_for(http_module().URL(text))
    return text.split("/", 1)[0]
