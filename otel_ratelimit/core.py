"""One limiting flow for sync and async code: a sans-I/O generator and its two small drivers.

The flow yields what it needs done (reserve a slot, sleep, send, observe, give a slot back);
``drive`` does it with blocking calls and ``adrive`` with awaits. The decisions live in the
flow and the engine, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Protocol, TypeVar

from .engine import Grant, KeyConfig, Outcome
from .errors import RateLimitExceeded
from .headers import Observation, parse_headers
from .retry import RetriesExhausted, RetryPolicy
from .storage import MemoryStorage, Storage
from .telemetry import Telemetry

__all__ = ["COST_EXTENSION", "MAX_WAIT_EXTENSION", "Core", "Flow", "Op", "adrive", "drive",
           "key_for"]  # fmt: skip

R = TypeVar("R")
COST_EXTENSION = "otel_ratelimit.cost"
MAX_WAIT_EXTENSION = "otel_ratelimit.max_wait"  # one request's wait budget (a web deadline)
_NO_ANSWER = Observation()
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Response(Protocol):
    status_code: int
    headers: Any


class _URL(Protocol):
    host: str
    port: int | None
    scheme: str


class _Request(Protocol):
    method: str
    url: Any
    extensions: Any


Op = tuple[Any, ...]
"""One thing the flow asks its driver to do: ``(name, *args)``, the name one of "acquire",
"observe", "release" (storage calls), "sleep", "send" or "read". A plain tuple: one is
made per step, and nothing is cheaper."""

Flow = Generator[Op, Any, R]


class Core:
    """Decides keys and per-key configuration and runs the limiting flow around one send."""

    def __init__(
        self,
        storage: Storage,
        configure: Callable[[str], KeyConfig],
        *,
        max_wait: float,
        raise_on_limit: bool,
        headers_map: Mapping[str, str] | None,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        retry: RetryPolicy | None = None,
        partition: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.storage = storage
        self.partition = partition  # a request's credential partition (credentials.py)
        self.configure = configure
        self.max_wait = max_wait
        self.raise_on_limit = raise_on_limit
        self.headers_map = headers_map
        self.retry = retry
        self.telemetry = Telemetry(storage, configure, meter_provider=meter_provider,
                                   tracer_provider=tracer_provider)  # fmt: skip

    def flow(self, request: _Request, *, attempt: int = 0) -> Flow[_Response]:
        """Reserve, wait, send, learn, and try again where the retry policy says so.

        ``attempt`` numbers the sends of one logical request (0 for the first): a retry layer
        outside passes it so that the CLIENT span carries ``http.request.resend_count``.
        """
        key = key_for(request.url)
        if self.partition is not None and (tag := self.partition(request)):
            key = f"{key}#{tag}"  # a keyed hash of the credential, never the credential
        config = self.configure(key)
        labels = self.telemetry.labels(key, request.url.host)
        cost = float(request.extensions.get(COST_EXTENSION, 1))
        budget = min(self.max_wait, request.extensions.get(MAX_WAIT_EXTENSION, self.max_wait))
        deadline = time.monotonic() + budget  # one budget for all waits of the request, retries too
        retry, last = self.retry, None
        if retry is not None and attempt == 0:
            retry.sent(key)
        while True:
            if attempt:
                self.telemetry.retried(labels)
            try:
                grant = yield from self._reserve(key, config, labels, cost, deadline)
            except RateLimitExceeded:
                if last is None:
                    raise
                return (yield from self._give_up(last, attempt))  # the next try is too far off
            try:
                response = yield from self._send(request, key, config, labels, grant, attempt)
            except Exception as exc:
                delay = None if retry is None else retry.decide(key, request.method, attempt + 1,
                                                                error=exc)  # fmt: skip
                if delay is None or delay > deadline - time.monotonic():
                    raise
            else:
                if retry is None or response.status_code not in retry.config.retry_on_status:
                    return response
                yield ("read", response)  # frees the connection; the body stays readable
                delay = retry.decide(key, request.method, attempt + 1, status=response.status_code)
                if delay is None or delay > deadline - time.monotonic():  # past the budget
                    return (yield from self._give_up(response, attempt + 1))
                last = response
            yield ("sleep", delay)
            attempt += 1

    def _give_up(self, response: _Response, attempts: int) -> Flow[_Response]:
        """The last answer, or RetriesExhausted carrying it when the policy says to raise."""
        if self.retry is not None and self.retry.config.raise_on_failure:
            raise RetriesExhausted(response, attempts)
        return response
        yield  # a generator, for ``yield from``

    def _reserve(self, key: str, config: KeyConfig, labels: Any, cost: float,
                 deadline: float) -> Flow[Grant]:  # fmt: skip
        """Wait, until ``deadline`` at most, for a slot (telemetry around it); a cancelled
        waiter gives its slot back."""
        tel = self.telemetry
        wait = None  # (start, span) once the request has to wait
        place = 0.0  # a place in line, kept from one ``again`` to the next
        try:
            while True:
                budget = 0.0 if self.raise_on_limit else max(0.0, deadline - time.monotonic())
                grant: Grant = yield ("acquire", key, config, cost, budget, place)
                if not grant.ok:
                    raise RateLimitExceeded(key, grant.wait)
                if grant.wait <= 0 and not grant.again:
                    break
                if wait is None:
                    wait = tel.wait_started(labels, grant.policy)
                if grant.again:  # held back (a probe is out, or in line for a learned rate)
                    place = grant.place
                    yield ("sleep", grant.wait)
                    continue
                try:
                    yield ("sleep", grant.wait)
                except BaseException:
                    yield ("release", key, config, grant)  # a cancelled waiter gives back
                    raise
                break
        except BaseException as exc:
            tel.not_acquired(labels, wait, exc, self.raise_on_limit)
            raise
        tel.acquired(labels, wait)
        return grant

    def _send(self, request: _Request, key: str, config: KeyConfig, labels: Any, grant: Grant,
              attempt: int) -> Flow[_Response]:  # fmt: skip
        """One attempt in its CLIENT span, then what the response said, folded into the key."""
        tel = self.telemetry
        span = tel.attempt_started(request, labels, attempt)
        try:
            response: _Response = yield ("send", request)
        except BaseException as exc:
            tel.attempt_ended(span, None, exc)
            if isinstance(exc, Exception):
                yield ("observe", key, config, grant.ticket, 0, _NO_ANSWER)  # no answer
            raise
        tel.attempt_ended(span, response, None)
        obs = parse_headers(response.headers, now=time.time(), headers_map=self.headers_map)
        try:
            status = response.status_code
            outcome: Outcome = yield ("observe", key, config, grant.ticket, status, obs)
        except Exception as exc:
            tel.storage_error(exc)
            raise
        if outcome.backoff is not None or obs.errors:
            tel.observed(labels, outcome, response.status_code, obs.errors)
        return response


def key_for(url: _URL) -> str:
    """The limiter key of a URL: its host, with the port when it is not the scheme's default."""
    host = url.host.lower()
    default = _DEFAULT_PORTS.get(url.scheme)
    return host if url.port in (None, default) else f"{host}:{url.port}"


class _Steps:
    """Feeds a flow what its last op gave (or raised) and hands out the next op: the generator
    protocol, shared by both drivers."""

    __slots__ = ("error", "flow", "result", "value")

    def __init__(self, flow: Flow[Any]) -> None:
        self.flow = flow
        self.result: Any = None
        self.error: BaseException | None = None
        self.value: Any = None

    def next(self) -> Op | None:
        """The next op, or None when the flow returned (its value is in ``value``)."""
        try:
            op = self.flow.send(self.result) if self.error is None else self.flow.throw(self.error)
        except StopIteration as stop:
            self.value = stop.value
            return None
        self.result = self.error = None
        return op


def drive(flow: Flow[R], storage: Storage, send: Callable[[Any], Any]) -> R:
    """Run a flow with blocking calls (threads)."""
    steps = _Steps(flow)
    while (op := steps.next()) is not None:
        try:
            name = op[0]
            if name == "send":
                steps.result = send(op[1])
            elif name == "sleep":
                time.sleep(op[1])
            elif name == "read":  # httpx's read(); requests reads on .content
                response = op[1]
                response.read() if hasattr(response, "read") else response.content
            else:
                steps.result = getattr(storage, name)(*op[1:])
        except BaseException as exc:  # handed to the flow, which re-raises what it can't handle
            steps.error = exc
    return steps.value  # type: ignore[no-any-return]


async def adrive(flow: Flow[R], storage: Storage, send: Callable[[Any], Awaitable[Any]]) -> R:
    """Run a flow with awaits (asyncio); nothing here blocks the event loop. In-process
    storage steps are short and never wait, so they are called without an await."""
    prefix = "" if isinstance(storage, MemoryStorage) else "a"
    steps = _Steps(flow)
    while (op := steps.next()) is not None:
        try:
            name = op[0]
            if name == "send":
                steps.result = await send(op[1])
            elif name == "sleep":
                await asyncio.sleep(op[1])
            elif name == "read":
                await op[1].aread()
            elif prefix:
                steps.result = await getattr(storage, prefix + name)(*op[1:])
            else:
                steps.result = getattr(storage, name)(*op[1:])
        except BaseException as exc:  # handed to the flow, which re-raises what it can't handle
            steps.error = exc
    return steps.value  # type: ignore[no-any-return]
