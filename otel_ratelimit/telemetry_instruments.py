"""The instruments behind ``telemetry.Telemetry``: one set per meter provider, shared by every
limiter that uses it (the SDK refuses a second instrument of the same name, and would never
read a second gauge's callbacks).

``ratelimit.requests`` is an observable counter: a request adds 1 to a plain integer of its
key (under a lock), and a collection reports the totals, a monotonic sum exactly like the
synchronous counter's (no exemplars: an observable instrument has none). An SDK
``Counter.add`` copies, cleans and hashes its attributes and offers an exemplar on every call:
about 15 us of the ~100 us that the SDK added to a request.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

__all__ = ["WAIT_BUCKETS", "Instruments", "instruments"]

WAIT_BUCKETS = (0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SCOPE = "otel_ratelimit"


OUTCOMES = ("acquired", "rejected", "timeout")  # the order of ``_Counted.counts``


class _Owner(Protocol):
    def observe_gauge(self, name: str) -> Iterator[Observation]: ...


class _Counted(Protocol):
    """One key's request counts (``telemetry.Labels``)."""

    counts: list[int]  # by OUTCOMES

    @property
    def outcomes(self) -> Sequence[Mapping[str, str]]: ...  # the attributes of each outcome


class Instruments:
    """The instruments of one meter provider, shared by every limiter that uses it."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.owners: weakref.WeakSet[_Owner] = weakref.WeakSet()
        self.lock = threading.Lock()  # owners change while a collection reads them
        self.count_lock = threading.Lock()  # request counts: increments, tables, collection
        self._tables: dict[int, Callable[[], Iterable[_Counted]]] = {}
        self._retired: dict[tuple[str, ...], tuple[int, Mapping[str, str]]] = {}
        self._dead: deque[int] = deque()  # tokens of tables whose owner was collected
        self.requests = meter.create_observable_counter(
            "ratelimit.requests", [self._read_requests], "{request}",
            "Outbound requests by limiter outcome",
        )  # fmt: skip
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

    def count_table(self, owner: object, table: Callable[[], Iterable[_Counted]]) -> None:
        """Report the request counts ``table()`` lists while ``owner`` lives, then keep them.

        ``table`` must not refer to ``owner``. When the owner is collected its totals move to
        a table of retired series (one entry per attribute set), so the counter never drops.
        """
        token = id(table)
        with self.count_lock:
            self._retire_dead()
            self._tables[token] = table
        # A finalizer runs inside whatever thread the garbage collector interrupted, maybe
        # one holding count_lock: it only queues the token (deque.append takes no lock).
        weakref.finalize(owner, self._dead.append, token)

    def _retire_dead(self) -> None:
        """Fold the tables of collected owners into the retired series (count_lock held)."""
        while self._dead:
            table = self._tables.pop(self._dead.popleft(), None)
            if table is not None:
                self._add_up(self._retired, table())

    @staticmethod
    def _add_up(totals: dict[tuple[str, ...], tuple[int, Mapping[str, str]]],
                table: Iterable[_Counted]) -> None:  # fmt: skip
        for labels in table:
            for count, attributes in zip(labels.counts, labels.outcomes, strict=True):
                series = tuple(attributes.values())
                found = totals.get(series)
                totals[series] = (count + found[0] if found else count, attributes)

    def _read_requests(self, options: CallbackOptions) -> Iterator[Observation]:
        with self.count_lock:
            self._retire_dead()
            totals = dict(self._retired)
            for table in list(self._tables.values()):
                self._add_up(totals, table())
        for count, attributes in totals.values():
            yield Observation(count, attributes)

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
