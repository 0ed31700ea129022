"""Entry points for users of the older libraries: requests sessions, aiohttp, preset clients.

Every adapter here runs the one limiting flow of ``core`` (``drive`` for blocking code,
``adrive`` for asyncio) around its own library's send; only the request and response shapes
are adapted (the flow reads ``request.url`` and ``request.extensions``, and
``response.status_code`` and ``response.headers``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, Any

import httpx

from .core import COST_EXTENSION, adrive, drive, key_for
from .errors import ConfigurationError
from .presets import Preset
from .transport import http_module, split_inner_options

if TYPE_CHECKING:
    from .limiter import RateLimiter

__all__ = [
    "aiohttp_middleware",
    "arequest_aiohttp",
    "client_for",
    "make_client_for",
    "metrics_text",
    "wrap_session",
]


class _Request:
    """What the flow reads of an outgoing request, around another library's request."""

    __slots__ = ("extensions", "method", "raw", "url")

    def __init__(self, url: str, raw: Any, method: str, cost: float = 1) -> None:
        self.url = httpx.URL(url)
        self.method = method.upper()
        self.extensions = {COST_EXTENSION: cost}
        self.raw = raw


class _Headers:
    """Stands for another library's request where only its headers are known."""

    __slots__ = ("headers",)

    def __init__(self, headers: httpx.Headers) -> None:
        self.headers = headers


class _AiohttpResponse:
    """An aiohttp response seen with httpx's names (``status_code``)."""

    __slots__ = ("headers", "raw", "status_code")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.status_code = raw.status
        self.headers = raw.headers

    async def aread(self) -> None:
        """Read the body (before a retry), which frees the connection."""
        await self.raw.read()


# -- requests -------------------------------------------------------------------------------


def wrap_session(limiter: RateLimiter, session: Any) -> Any:
    """Limit every request ``session`` sends; its auth, headers, cookies and adapters stay.

    Each mounted adapter is wrapped: the session prepares the request as before (auth,
    headers, cookies), then the wrapper waits for a slot, sends through the original adapter
    and learns from the response.
    """
    try:
        import requests.adapters  # noqa: PLC0415  # optional dependency
    except ImportError:
        raise ConfigurationError(
            "wrap_session needs requests: pip install 'otel-ratelimit[requests]'"
        ) from None
    if not isinstance(session, requests.Session):
        raise ConfigurationError(f"wrap_session needs a requests.Session, got {session!r}")
    for prefix, adapter in list(session.adapters.items()):
        if not isinstance(adapter, _limited_adapter_class()):  # never limit twice
            session.mount(prefix, _limited_adapter_class()(limiter, adapter))
    return session


@cache
def _limited_adapter_class() -> type[Any]:
    from requests.adapters import BaseAdapter  # noqa: PLC0415

    class LimitedAdapter(BaseAdapter):
        """A requests adapter that runs the limiting flow around another adapter."""

        def __init__(self, limiter: RateLimiter, inner: Any) -> None:
            super().__init__()
            self.limiter = limiter
            self.inner = inner

        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            """Send one prepared request within the limits."""
            core = self.limiter.core

            def send(req: _Request) -> Any:
                return self.inner.send(req.raw, **kwargs)

            return drive(
                core.flow(_Request(request.url, request, request.method)), core.storage, send
            )

        def close(self) -> None:
            """Close the wrapped adapter."""
            self.inner.close()

    return LimitedAdapter


# -- aiohttp --------------------------------------------------------------------------------


async def arequest_aiohttp(
    limiter: RateLimiter, session: Any, method: str, url: str, *, cost: float = 1, **kwargs: Any
) -> Any:
    """Send one request through an ``aiohttp.ClientSession`` within the limits."""

    async def send(req: _Request) -> _AiohttpResponse:
        return _AiohttpResponse(await session.request(method, url, **kwargs))

    full = str(session._build_url(url)) if hasattr(session, "_build_url") else url
    core = limiter.core
    # The headers the request will carry (the session's, then this call's): a credential
    # partition reads them as it reads an httpx request's.
    headers = httpx.Headers(dict(getattr(session, "headers", None) or {}))
    headers.update(kwargs.get("headers") or {})
    request = _Request(full, _Headers(headers), method, cost)
    response: Any = await adrive(core.flow(request), core.storage, send)
    return response.raw


def aiohttp_middleware(limiter: RateLimiter) -> Callable[[Any, Any], Awaitable[Any]]:
    """An aiohttp client middleware: ``aiohttp.ClientSession(middlewares=(mw,))``."""

    async def middleware(request: Any, handler: Any) -> Any:
        async def send(req: _Request) -> _AiohttpResponse:
            return _AiohttpResponse(await handler(req.raw))

        core = limiter.core
        flow = core.flow(_Request(str(request.url), request, request.method))
        response: Any = await adrive(flow, core.storage, send)
        return response.raw

    return middleware


# -- preset clients -------------------------------------------------------------------------


@cache
def _client_class(package: str, asynchronous: bool) -> type[Any]:
    module = http_module(package)
    base = module.AsyncClient if asynchronous else module.Client
    # ``limiter`` and ``preset`` let dynamic-api-rate-limiter users keep ``client.limiter``.
    return type("PresetClient", (base,), {"limiter": None, "preset": None})


def client_for(
    limiter: RateLimiter,
    name: str,
    *,
    asynchronous: bool = False,
    package: str = "httpx",
    backoff_status_codes: Iterable[int] | None = None,
    **kwargs: Any,
) -> Any:
    """A limited client for the preset ``name``, with the preset's ``base_url``.

    A ``base_url`` elsewhere (a proxy, a test server) gets the same preset: its host is added
    to the preset's hosts in this limiter. ``backoff_status_codes`` replaces the preset's.
    """
    preset = limiter.presets.get(name)
    if preset is None:
        raise ConfigurationError(
            f"unknown preset {name!r}; known presets: {', '.join(sorted(limiter.presets))}"
        )
    base_url = kwargs.pop("base_url", None) or preset.base_url
    if base_url is None:
        raise ConfigurationError(f"preset {name!r} has no base_url: pass base_url=...")
    changes: dict[str, Any] = {}
    url: Any = httpx.URL(str(base_url))
    host = key_for(url).split(":")[0]
    if limiter.preset_for(host) is not preset:
        changes["hosts"] = (*preset.hosts, host)
    if backoff_status_codes is not None:
        changes["backoff_status_codes"] = _codes(backoff_status_codes)
    if changes:
        preset = replace(preset, **changes)
        _adopt(limiter, preset)
    options = split_inner_options(kwargs)
    if asynchronous:
        transport = limiter.async_transport(package=package, **options)
    else:
        transport = limiter.transport(package=package, **options)
    client = _client_class(package, asynchronous)(transport=transport, base_url=base_url, **kwargs)
    client.limiter, client.preset = limiter, preset
    return client


def _codes(codes: Iterable[int]) -> frozenset[int]:
    found = frozenset(codes)
    if not found or not all(isinstance(c, int) and 400 <= c <= 599 for c in found):
        raise ConfigurationError(
            f"backoff_status_codes must be HTTP error codes (400-599), got {codes!r}"
        )
    return found


def _adopt(limiter: RateLimiter, preset: Preset) -> None:
    """Put ``preset`` first in the limiter's registry so its hosts match it before others."""
    others = {n: p for n, p in limiter.presets.items() if n != preset.name}
    limiter.presets = {preset.name: preset, **others}
    limiter._configs.clear()


def make_client_for(
    name: str,
    *,
    storage: str | None = "memory",
    backoff_status_codes: Iterable[int] | None = None,
    limiter_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """dynamic-api-rate-limiter's one-line factory: a new limiter and its client for ``name``.

    ``client.limiter`` is the limiter; ``client.close()`` closes the client only.
    """
    from .limiter import RateLimiter  # noqa: PLC0415  # limiter imports this module

    limiter = RateLimiter(storage=storage, **dict(limiter_options or {}))
    return client_for(limiter, name, backoff_status_codes=backoff_status_codes, **kwargs)


# -- a Prometheus text export of the status -------------------------------------------------

_GAUGES = (
    ("limit", "The limit of each policy of a key.", "policy"),
    ("remaining", "What is left of each policy of a key.", "policy"),
    ("utilization", "The used share (0..1) of each policy of a key.", "policy"),
    ("reset_seconds", "Seconds until each policy of a key is whole again.", "policy"),
    ("exceeded", "1 when a request to the key would wait now.", "key"),
    ("cooldown_seconds", "Seconds left of the key's pushback pause.", "key"),
    ("rate", "The adaptive (AIMD) rate of the key, requests/second.", "key"),
)


def metrics_text(limiter: RateLimiter) -> str:
    """Every key's status in the Prometheus text format (``ratelimit_status_*`` gauges)."""
    rows: dict[str, list[str]] = {name: [] for name, _, _ in _GAUGES}
    for key in limiter.storage.keys():  # noqa: SIM118  # a Storage, not a dict
        status = limiter.get_status(key)
        if status is None:
            continue
        now = status.reset_time - status.reset_in
        for p in status.policies:
            labels = _labels(key=key, policy=p.name, source=p.source)
            reset = max(0.0, p.reset_time - now)
            values = {"limit": p.limit, "remaining": p.remaining,
                      "utilization": p.utilization, "reset_seconds": reset}  # fmt: skip
            for name, value in values.items():
                rows[name].append(f"ratelimit_status_{name}{labels} {float(value)!r}")
        labels = _labels(key=key)
        cooldown = max(0.0, status.cooldown_until - now) if status.cooldown_until else 0.0
        rows["exceeded"].append(f"ratelimit_status_exceeded{labels} {int(status.is_exceeded)}")
        rows["cooldown_seconds"].append(f"ratelimit_status_cooldown_seconds{labels} {cooldown!r}")
        if status.rate is not None:
            rows["rate"].append(f"ratelimit_status_rate{labels} {status.rate!r}")
    lines: list[str] = []
    for name, help_text, _ in _GAUGES:
        lines += [f"# HELP ratelimit_status_{name} {help_text}",
                  f"# TYPE ratelimit_status_{name} gauge", *rows[name]]  # fmt: skip
    return "\n".join(lines) + "\n"


def _labels(**labels: str) -> str:
    def escape(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"
