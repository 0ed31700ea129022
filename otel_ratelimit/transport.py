"""httpx (and httpx2) transports that wrap any inner transport with the limiter.

``LimitedTransport`` and ``AsyncLimitedTransport`` are twins of a few lines each: both run
the same flow from ``core``. For httpx2 the same classes are mixed with httpx2's base classes,
so one implementation serves either package.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncGenerator
from functools import cache
from types import ModuleType
from typing import Any

import httpx

from .core import Core, adrive, drive
from .errors import ConfigurationError

__all__ = ["AsyncLimitedTransport", "LimitedTransport", "closed_with_the_loop", "http_module",
           "transport_classes"]  # fmt: skip

_INNER_OPTIONS = ("verify", "cert", "trust_env", "http1", "http2", "limits", "proxy", "retries")


class LimitedTransport(httpx.BaseTransport):
    """A sync transport: every request waits for its slot, then goes out through ``inner``."""

    def __init__(self, core: Core, inner: Any) -> None:
        self._core = core
        self.inner = inner

    def handle_request(self, request: Any) -> Any:
        """Send one request within the limits."""
        return drive(self._core.flow(request), self._core.storage, self.inner.handle_request)

    def close(self) -> None:
        """Close the inner transport."""
        self.inner.close()


class AsyncLimitedTransport(httpx.AsyncBaseTransport):
    """An async transport: waits with ``asyncio.sleep``, never blocking the event loop."""

    def __init__(self, core: Core, inner: Any) -> None:
        self._core = core
        self.inner = inner

    async def handle_async_request(self, request: Any) -> Any:
        """Send one request within the limits."""
        core = self._core
        return await adrive(core.flow(request), core.storage, self.inner.handle_async_request)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()


def http_module(package: str = "httpx") -> ModuleType:
    """The httpx or httpx2 module, with a clear error when it is not installed."""
    if package not in ("httpx", "httpx2"):
        raise ConfigurationError(f"package must be 'httpx' or 'httpx2', got {package!r}")
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigurationError(
            f"{package} is not installed: pip install 'otel-ratelimit[{package}]'"
        ) from None


@cache
def transport_classes(
    package: str = "httpx",
) -> tuple[type[LimitedTransport], type[AsyncLimitedTransport]]:
    """The (sync, async) limited transport classes that subclass ``package``'s base classes."""
    if package == "httpx":
        return LimitedTransport, AsyncLimitedTransport
    module = http_module(package)
    sync = type("LimitedTransport", (LimitedTransport, module.BaseTransport), {})
    asynchronous = type(
        "AsyncLimitedTransport", (AsyncLimitedTransport, module.AsyncBaseTransport), {}
    )
    return sync, asynchronous


def package_of(transport: object) -> str:
    """Which package ("httpx" or "httpx2") an inner transport belongs to."""
    return "httpx2" if type(transport).__module__.split(".")[0] == "httpx2" else "httpx"


def split_inner_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the options that belong to the inner HTTP transport out of client kwargs."""
    return {name: kwargs.pop(name) for name in _INNER_OPTIONS if name in kwargs}


def closed_with_the_loop(transport: Any) -> AsyncGenerator[None, None]:
    """An async generator parked at its ``yield``: the loop's ``shutdown_asyncgens`` closes it."""

    async def closer() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await transport.aclose()

    generator = closer()
    with contextlib.suppress(StopIteration):  # runs to the yield; the loop now tracks it
        generator.asend(None).send(None)
    return generator
