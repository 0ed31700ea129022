"""What the web middlewares share: the limited pools (one per process, one per event loop)
and a template per client class from which each request's client is copied.

A pool closes itself when its event loop is shut down by ``asyncio.run`` (as uvicorn and
``asyncio.run`` do) and, for the sync pool, when the process exits, so servers and scripts
leave no sockets open without being told to close anything.

Each request gets its own ``httpx.Client`` / ``httpx.AsyncClient``. httpx's constructor
costs about 20 us (it builds and checks every option), so ``ClientTemplate`` runs it once,
for a template, and gives each request a client of the very same class whose attributes are
the template's, with fresh copies of everything a view can mutate (headers, cookies,
timeout, event hooks, mounts) and its own state (unopened) and transport: about 3 us.
This reads httpx's private attribute names, so it is checked: the fast path is taken only
when a constructed client has exactly the attributes it knows, of the expected types
(otherwise every client is constructed as usual), and tests/test_asgi_client_copy.py
compares copied and constructed clients for httpx and httpx2 so an upgrade fails loudly.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Generic, TypeVar

import httpx

from .limiter import RateLimiter
from .transport import closed_with_the_loop

__all__ = ["ClientTemplate", "SharedPools"]

C = TypeVar("C")  # httpx.Client, httpx.AsyncClient or httpx2's

# Everything httpx's (and httpx2's) client constructor sets; the copy path needs exactly these.
_FIELDS = frozenset({
    "_auth", "_base_url", "_cookies", "_default_encoding", "_event_hooks", "_headers",
    "_mounts", "_params", "_state", "_timeout", "_transport", "_trust_env",
    "follow_redirects", "max_redirects",
})  # fmt: skip


class ClientTemplate(Generic[C]):
    """Makes clients configured like ``cls(transport=..., **options)``, copied from a template.

    Shared with the template: immutable values (base URL, query params, auth object,
    encoding, flags), as a client constructed with the same options would share them too.
    An option changed in place later (a headers dict given to the middleware, then updated)
    is seen as before, when every client was constructed: the template is made again.
    """

    __slots__ = ("_init", "_made", "cls", "module", "options")

    cls: type[C]
    _made: tuple[dict[str, Any] | None, Any, list[tuple[str, Any]]]  # fields, cookies, options
    _init: Any

    def __init__(self, cls: type[C], options: Mapping[str, Any] | None = None) -> None:
        self.cls = cls
        self.options = dict(options or {})
        self.module = _package(cls)  # httpx or httpx2, whose Headers, Cookies... it has
        self._init = cls.__init__  # an instrumentation patching it later: construct instead
        self._make()

    @property
    def fields(self) -> dict[str, Any] | None:
        """The template's attributes; None when clients are constructed (httpx changed)."""
        return self._made[0]

    def client(self, transport: Any) -> C:
        """A new client over ``transport``, as if constructed with the template's options."""
        fields, jar, seen = self._made
        for name, value in seen:
            if self.options[name] != value:  # changed in place since the template was made
                self._make()
                fields, jar, seen = self._made
                break
        cls = self.cls
        if fields is None or cls.__init__ is not self._init:
            made: C = self._construct(transport)
            return made
        client = cls.__new__(cls)
        hooks = fields["_event_hooks"]
        client.__dict__.update(fields)
        client.__dict__.update(
            _transport=transport,
            _headers=fields["_headers"].copy(),
            _cookies=self.module.Cookies(jar),
            _timeout=self.module.Timeout(fields["_timeout"]),
            _event_hooks={"request": list(hooks["request"]), "response": list(hooks["response"])},
            _mounts={},
        )
        return client

    def _make(self) -> None:
        module = self.module
        mutable = [(name, _snapshot(value, module)) for name, value in self.options.items()
                   if isinstance(value, (dict, list, module.Headers, module.Timeout))]  # fmt: skip
        base = module.AsyncBaseTransport if hasattr(self.cls, "aclose") else module.BaseTransport
        template = self._construct(base())
        jar = template.cookies if template.cookies else None  # copied into each client
        self._made = (_fields(template, module), jar, mutable)  # one swap: threads see either

    def _construct(self, transport: Any) -> Any:
        constructor: Any = self.cls
        return constructor(transport=transport, **self.options)


def _snapshot(value: Any, module: Any) -> Any:
    """A copy of ``value``'s containers (dicts, lists, Headers, Timeout), sharing the rest."""
    if isinstance(value, dict):
        return {key: _snapshot(item, module) for key, item in value.items()}
    if isinstance(value, list):
        return [_snapshot(item, module) for item in value]
    if isinstance(value, (module.Headers, module.Timeout)):
        return type(value)(value)
    return value  # strings, numbers, functions, auth objects: compared as themselves


def _package(cls: type[Any]) -> Any:
    packages = (base.__module__.split(".")[0] for base in cls.__mro__)
    return sys.modules[next(name for name in packages if name in ("httpx", "httpx2"))]


def _fields(template: Any, module: Any) -> dict[str, Any] | None:
    """The template's attributes if they are exactly those the copy path knows, else None."""
    fields = dict(vars(template))
    hooks = fields.get("_event_hooks")
    expected = {"_headers": module.Headers, "_cookies": module.Cookies,
                "_timeout": module.Timeout, "_params": module.QueryParams,
                "_base_url": module.URL, "_mounts": dict}  # fmt: skip
    if (
        set(fields) != _FIELDS
        or any(type(fields[name]) is not kind for name, kind in expected.items())
        or not isinstance(hooks, dict)
        or set(hooks) != {"request", "response"}
        or not all(type(hooks[name]) is list for name in hooks)
        or fields["_mounts"]  # proxies or mounts: transports a copy would share
        or template.is_closed
    ):
        return None
    return fields


class SharedPools:
    """The limited connection pools of one middleware, and the templates of its clients."""

    def __init__(self, limiter: RateLimiter, client_options: Mapping[str, Any] | None = None
                 ) -> None:  # fmt: skip
        self.limiter = limiter
        self.sync_clients = ClientTemplate(httpx.Client, client_options)
        self.async_clients = ClientTemplate(httpx.AsyncClient, client_options)
        self._lock = threading.Lock()
        self._sync: list[Any] = []  # [pid, transport]: a forked child makes its own
        self._async: weakref.WeakKeyDictionary[Any, tuple[Any, AsyncGenerator[None, None]]] = (
            weakref.WeakKeyDictionary()
        )
        self._last: tuple[weakref.ref[Any], Any] = (weakref.ref(self), None)  # (loop, its pool)
        weakref.finalize(self, _close_sync, self._sync)  # also runs at interpreter exit

    def sync(self) -> httpx.BaseTransport:
        """The process's limited sync pool (thread safe), made on first use."""
        holder, pid = self._sync, os.getpid()
        if not holder or holder[0] != pid:
            with self._lock:
                if not holder or holder[0] != pid:
                    holder[:] = [pid, self.limiter.transport()]
        transport: httpx.BaseTransport = holder[1]
        return transport

    def asynchronous(self, inner: Any = None) -> httpx.AsyncBaseTransport:
        """The running event loop's limited async pool, made on first use (around ``inner``)."""
        loop = asyncio.get_running_loop()
        last, pool = self._last  # one loop serves every request: no weak-keyed lookup then
        if last() is not loop:
            entry = self._async.get(loop)
            if entry is None:
                transport = self.limiter.async_transport(inner)
                entry = self._async[loop] = (transport, closed_with_the_loop(transport))
            pool = entry[0]
            self._last = (weakref.ref(loop), pool)
        return pool  # type: ignore[no-any-return]

    def open_async(self) -> int:
        """How many event loops hold a pool (for tests and diagnostics)."""
        return len(self._async)

    def close(self) -> None:
        """Close the sync pool (at shutdown; requests still running would fail)."""
        with self._lock:
            _close_sync(self._sync)

    async def aclose(self) -> None:
        """Close this event loop's async pool and the sync pool."""
        self._last = (weakref.ref(self), None)
        entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # its finally closes the pool
        self.close()


def _close_sync(holder: list[Any]) -> None:
    if holder:
        transport = holder[1]
        holder.clear()
        transport.close()
