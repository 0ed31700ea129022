"""OpenTelemetry metrics and spans of the limiter, through ``opentelemetry-api`` only.

Names and units are API (the Grafana dashboard depends on them). Metric attributes are only
``server.address``, ``ratelimit.key``, ``ratelimit.policy`` and the outcome/reason; a limiter
reports at most ``max_series`` keys, the rest as ``_OTHER``. Gauges read the (possibly shared)
storage, so N workers report the same value N times: aggregate them with ``max``, not ``sum``.
When the providers are the API's no-op ones, a request costs a locked increment and one
no-op instrument call.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from .engine import KeyConfig, Outcome
from .errors import RateLimitExceeded
from .status import RateLimitStatus, describe
from .telemetry_http import end_attempt, start_attempt
from .telemetry_instruments import instruments

__all__ = ["OTHER", "Labels", "Telemetry"]

OTHER = "_OTHER"  # attribute value of keys beyond the series cap, and of odd error types
_NOOP_TRACING = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_ERROR_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")
_GAUGE_TTL = 1.0  # the four gauges of one collection share one read of the storage
_SCOPE = "otel_ratelimit"  # the instrumentation scope of our spans
# A measurement's context with no valid span: the SDK samples no exemplar for it (an empty
# Context would not do: the SDK takes the current context in place of a falsy one).
_NO_TRACE = trace.set_span_in_context(trace.INVALID_SPAN)


class Labels:
    """The precomputed attribute sets of one key (built once, reused by every request), and
    its request counts by outcome (``ratelimit.requests``, read at collection time)."""

    __slots__ = ("acquired", "base", "counts", "host", "key", "outcomes", "rejected", "timeout")

    def __init__(self, host: str, key: str) -> None:
        self.host, self.key = host, key
        self.base = {"server.address": host, "ratelimit.key": key}
        self.acquired = {**self.base, "ratelimit.outcome": "acquired"}
        self.rejected = {**self.base, "ratelimit.outcome": "rejected"}
        self.timeout = {**self.base, "ratelimit.outcome": "timeout"}
        self.outcomes = (self.acquired, self.rejected, self.timeout)  # as OUTCOMES
        self.counts = [0, 0, 0]  # changed under Instruments.count_lock


class Telemetry:
    """The metrics and spans of one limiter; ``Core.flow`` calls it at each step."""

    def __init__(
        self,
        storage: Any,
        configure: Callable[[str], KeyConfig],
        *,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        max_series: int = 500,  # x3 outcomes stays under the SDK's 2000 series per metric
    ) -> None:
        self.storage, self.configure, self.max_series = storage, configure, max_series
        self.tracer_provider = tracer_provider
        self.m = instruments(meter_provider)
        with self.m.lock:
            self.m.owners.add(self)
        self._labels: dict[str, Labels] = {}
        self._other = Labels(OTHER, OTHER)
        table, other = self._labels, self._other  # not self: the table outlives the limiter
        self.m.count_table(self, lambda: [*table.values(), *([other] if any(other.counts) else [])])
        self._tracer: trace.Tracer | None = None
        self._tracer_of: Any = None
        self._tracer_until = 0.0
        self._snapshot: tuple[float, list[RateLimitStatus]] = (0.0, [])
        self.in_fallback = False
        self.m.storage_errors.add(0)
        listeners = getattr(storage, "listeners", None)
        if isinstance(listeners, list):  # FallbackStorage tells of errors and fallbacks
            listeners.append(self.storage_event)

    def close(self) -> None:
        """Stop reporting gauges (the limiter's storage is about to close)."""
        with self.m.lock:
            self.m.owners.discard(self)

    # -- hot path --------------------------------------------------------------------

    def labels(self, key: str, url: Any) -> Labels:
        """The attribute sets of ``key`` (``_OTHER`` beyond ``max_series`` keys); ``url`` (a
        request's, whose host names the key's server) is read only for a new key."""
        found = self._labels.get(key)
        if found is None:
            if len(self._labels) >= self.max_series:
                return self._other
            found = self._labels.setdefault(key, Labels(url.host, key))
            self._zero(found)
        return found

    def _zero(self, labels: Labels) -> None:
        """Start a new key's counters at 0, so rates and dashboards see them from the start."""
        self.m.retries.add(0, labels.base)  # ratelimit.requests reads labels.counts
        self.m.header_errors.add(0, labels.base)

    def tracer(self) -> trace.Tracer | None:
        """The tracer to use now, or None while tracing is the API's no-op (nearly free).

        The global provider is looked up again at most once a second: the lookup reads the
        environment, which costs more than the rest of the no-op path.
        """
        now = time.monotonic()
        if now < self._tracer_until:
            return self._tracer
        provider = self.tracer_provider or trace.get_tracer_provider()
        if isinstance(provider, _NOOP_TRACING):
            self._tracer = None
        elif self._tracer is None or self._tracer_of is not provider:
            self._tracer = trace.get_tracer(_SCOPE, tracer_provider=provider)
            self._tracer_of = provider
        self._tracer_until = now + (1.0 if self.tracer_provider is None else math.inf)
        return self._tracer

    def wait_started(self, labels: Labels, policy: str) -> tuple[float, Any]:
        """A request has to wait: count it as queued and open its ``ratelimit.wait`` span."""
        self.m.queued.add(1, labels.base)
        tracer = self.tracer()
        span = None
        if tracer is not None:
            attributes = {**labels.base, "ratelimit.policy": policy} if policy else labels.base
            span = tracer.start_span("ratelimit.wait", kind=SpanKind.INTERNAL,
                                     attributes=attributes)  # fmt: skip
        return time.monotonic(), span

    def acquired(self, labels: Labels, wait: tuple[float, Any] | None) -> None:
        """The request got its slot (after ``wait``, when it had to wait)."""
        lock = self.m.count_lock
        lock.acquire()  # not ``with``: half the instructions (see storage/memory.py)
        try:
            labels.counts[0] += 1
        finally:
            lock.release()
        if wait:
            self.m.wait.record(self._end_wait(labels, wait, None), labels.base)
        else:  # no exemplar: a zero wait has no trace worth linking, and sampling one is costly
            self.m.wait.record(0.0, labels.base, context=_NO_TRACE)

    def not_acquired(self, labels: Labels, wait: tuple[float, Any] | None,
                     exc: BaseException, raise_on_limit: bool) -> None:  # fmt: skip
        """The request never got a slot: rejected, timed out (or cancelled), or storage failed."""
        if not isinstance(exc, RateLimitExceeded) and isinstance(exc, Exception):
            self.storage_error(exc)  # the store failed; the request has no limiter outcome
            if wait:
                self._end_wait(labels, wait, exc)
            return
        rejected = isinstance(exc, RateLimitExceeded) and raise_on_limit and wait is None
        with self.m.count_lock:
            labels.counts[1 if rejected else 2] += 1
        if wait:
            self.m.wait.record(self._end_wait(labels, wait, exc), labels.base)

    def _end_wait(
        self, labels: Labels, wait: tuple[float, Any], exc: BaseException | None
    ) -> float:
        self.m.queued.add(-1, labels.base)
        start, span = wait
        if span is not None:
            if exc is not None:
                span.set_attribute("error.type", _error_type(exc))
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        return time.monotonic() - start

    def retried(self, labels: Labels) -> None:
        """The request is an attempt after a failed one."""
        self.m.retries.add(1, labels.base)

    def attempt_started(self, request: Any, labels: Labels, attempt: int) -> Any:
        """Open the CLIENT span of one attempt (None when tracing is off)."""
        tracer = self.tracer()
        if tracer is None:
            return None
        return start_attempt(tracer, request, labels.host, attempt)

    def attempt_ended(self, handle: Any, response: Any, exc: BaseException | None) -> None:
        """Close the CLIENT span of one attempt."""
        if handle is not None:
            end_attempt(handle, response, exc)

    def observed(self, labels: Labels, outcome: Outcome, status: int, header_errors: int) -> None:
        """Count a backoff and invalid header values that one response brought."""
        if header_errors:
            self.m.header_errors.add(header_errors, labels.base)
        if outcome.backoff is None:
            return
        self.m.backoffs.add(1, {**labels.base, "ratelimit.backoff.reason": outcome.backoff})
        tracer = self.tracer()
        if tracer is not None:
            attributes: dict[str, Any] = {
                **labels.base,
                "ratelimit.backoff.reason": outcome.backoff,
                "ratelimit.backoff.cooldown": outcome.cooldown,
                "http.response.status_code": status,
            }
            tracer.start_span("ratelimit.backoff", attributes=attributes).end()

    # -- storage ---------------------------------------------------------------------

    def storage_error(self, exc: BaseException | str) -> None:
        """Count one failed storage call."""
        kind = exc if isinstance(exc, str) else type(exc).__qualname__
        self.m.storage_errors.add(1, {"error.type": _error_type(kind)})

    def storage_event(self, event: str, detail: str) -> None:
        """Listener for ``FallbackStorage``: "error", "fallback" or "recovered"."""
        if event == "error":
            self.storage_error(detail)
        elif event == "fallback":
            self.in_fallback = True
        elif event == "recovered":
            self.in_fallback = False

    # -- gauges ----------------------------------------------------------------------

    def statuses(self) -> list[RateLimitStatus]:
        """The state of every key this limiter reports, read once per collection."""
        at, found = self._snapshot
        if time.monotonic() - at < _GAUGE_TTL:
            return found
        found = []
        for key in list(self._labels):
            try:
                loaded = self.storage.load(key)
                if loaded is not None:
                    state, now = loaded
                    status = describe(key, state, self.configure(key), now, self.storage.to_epoch)
                    if status is not None:
                        found.append(status)
            except Exception as exc:  # a scrape must not fail because the store did
                self.storage_error(exc)
        self._snapshot = (time.monotonic(), found)
        return found

    def observe_gauge(self, name: str) -> Iterator[Observation]:
        """The observations of one gauge (see ``Instruments.gauges``)."""
        if name == "ratelimit.storage.fallback":  # 0 for stores without a fallback
            yield Observation(1 if self.in_fallback else 0)
            return
        for status in self.statuses():
            base = self._labels[status.endpoint].base
            if name == "ratelimit.rate":
                if status.rate is not None:
                    yield Observation(status.rate, base)
                continue
            for policy in status.policies:
                attributes = {**base, "ratelimit.policy": policy.name}
                if name == "ratelimit.limit":
                    yield Observation(policy.limit, attributes)
                elif name == "ratelimit.remaining":
                    yield Observation(policy.remaining, attributes)
                else:
                    yield Observation(policy.utilization, attributes)


def _error_type(exc: BaseException | str) -> str:
    """A short, safe ``error.type``: a class name (never a message, which may hold secrets)."""
    kind = exc if isinstance(exc, str) else type(exc).__qualname__
    return kind if _ERROR_TYPE.fullmatch(kind) else OTHER
