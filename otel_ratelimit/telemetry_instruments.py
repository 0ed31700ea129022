"""The instruments behind ``telemetry.Telemetry``: one set per meter provider, shared by every
limiter that uses it (the SDK refuses a second instrument of the same name, and would never
read a second gauge's callbacks)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

__all__ = ["WAIT_BUCKETS", "Instruments", "instruments"]

WAIT_BUCKETS = (0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SCOPE = "otel_ratelimit"


class _Owner(Protocol):
    def observe_gauge(self, name: str) -> Iterator[Observation]: ...


class Instruments:
    """The instruments of one meter provider, shared by every limiter that uses it."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.owners: weakref.WeakSet[_Owner] = weakref.WeakSet()
        self.lock = threading.Lock()  # owners change while a collection reads them
        self.requests = meter.create_counter(
            "ratelimit.requests", "{request}", "Outbound requests by limiter outcome"
        )
        self.wait = meter.create_histogram(
            "ratelimit.wait.duration",
            "s",
            "Time a request waited for its slot",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        self.backoffs = meter.create_counter(
            "ratelimit.backoffs", "{backoff}", "Pushbacks (429/503, Retry-After) that paused a key"
        )
        self.retries = meter.create_counter(
            "ratelimit.retries", "{retry}", "Requests sent again after a failed attempt"
        )
        self.queued = meter.create_up_down_counter(
            "ratelimit.queued", "{request}", "Requests waiting for a slot now"
        )
        self.storage_errors = meter.create_counter(
            "ratelimit.storage.errors", "{error}", "Failed calls to the limiter's storage"
        )
        self.header_errors = meter.create_counter(
            "ratelimit.header.errors", "{error}", "Rate-limit header values ignored as invalid"
        )
        self.gauges = [
            meter.create_observable_gauge(name, [self._reader(name)], unit, text)
            for name, unit, text in (
                ("ratelimit.limit", "{request}", "The limit of each policy of a key"),
                ("ratelimit.remaining", "{request}", "What is left of each policy's limit"),
                ("ratelimit.utilization", "1", "The used share of each policy's limit, 0..1"),
                ("ratelimit.rate", "{request}/s", "The adaptive (AIMD) rate of a key"),
                ("ratelimit.storage.fallback", "1", "1 while the storage runs on its fallback"),
            )
        ]  # fmt: skip

    def _reader(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def read(options: CallbackOptions) -> Iterator[Observation]:
            with self.lock:
                owners = list(self.owners)
            for owner in owners:
                yield from owner.observe_gauge(name)

        return read


_BY_PROVIDER: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
_BY_PROVIDER_LOCK = threading.Lock()


class _Global:
    """The key of the instruments made through the global provider."""


_GLOBAL = _Global()


def instruments(provider: Any) -> Instruments:
    """The instruments of ``provider`` (None: the global one), made on first use."""
    # Limiters made before and after the global provider is set share one set of instruments
    # (the API's proxies follow the global provider): a second set of the same names would be
    # refused by the SDK, and its gauges would never be read.
    key = _GLOBAL if provider is None or provider is metrics.get_meter_provider() else provider
    with _BY_PROVIDER_LOCK:
        found = _BY_PROVIDER.get(key)
        if found is None:
            chosen = None if key is _GLOBAL else provider
            found = _BY_PROVIDER[key] = Instruments(
                metrics.get_meter(_SCOPE, meter_provider=chosen)
            )
        return found
