"""One limiting flow for sync and async code: a sans-I/O generator and its two small drivers.

The flow yields what it needs done (reserve a slot, sleep, send, observe, give a slot back);
``drive`` does it with blocking calls and ``adrive`` with awaits. The decisions live in the
flow and the engine, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, NoReturn, Protocol, TypeVar

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
_STORAGE_OPS = frozenset({"acquire", "observe", "release"})


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
"observe", "release" (storage calls), "sleep", "send", "read" or "done". A plain tuple:
one is made per step, and nothing is cheaper.

``("done", response)`` ends the flow as ``return response`` would: the driver returns the
response and drops the generator. Returning costs an exception (StopIteration) that the
compiled driver catches at about 4k instructions, 6% of the limiter's work on a request; so
the common ending yields, outside any ``try`` (a dropped compiled generator runs no
``finally``), and the rare ones (retries given up) still return."""

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
        url, extensions, tel = request.url, request.extensions, self.telemetry
        key = key_for(url)
        if self.partition is not None and (tag := self.partition(request)):
            key = f"{key}#{tag}"  # a keyed hash of the credential, never the credential
        config = self.configure(key)
        labels = tel.labels(key, url)
        cost = float(extensions.get(COST_EXTENSION, 1))
        budget = min(self.max_wait, extensions.get(MAX_WAIT_EXTENSION, self.max_wait))
        deadline = time.monotonic() + budget  # one budget for all waits of the request, retries too
        retry, last = self.retry, None
        if retry is not None and attempt == 0:
            retry.sent(key)
        while True:
            if attempt:
                tel.retried(labels)
            try:
                grant = yield from self._reserve(key, config, labels, cost, deadline)
            except RateLimitExceeded:
                if last is None:
                    raise
                return (yield from self._give_up(last, attempt))  # the next try is too far off
            # The attempt, inline (a generator of its own costs a frame switch per step):
            # its CLIENT span, the send, and what the response said, folded into the key.
            span = tel.attempt_started(request, labels, attempt)
            try:
                try:
                    response: _Response = yield ("send", request)
                except BaseException as exc:
                    yield from self._unanswered(span, key, config, grant, exc)  # re-raises
                tel.attempt_ended(span, response, None)
                status = response.status_code
                obs = parse_headers(response.headers, now=time.time(), headers_map=self.headers_map)
                try:
                    outcome: Outcome = yield ("observe", key, config, grant.ticket, status, obs,
                                              grant.cost)  # fmt: skip
                except Exception as error:
                    tel.storage_error(error)
                    raise
                if outcome.backoff is not None or obs.errors:
                    tel.observed(labels, outcome, status, obs.errors)
            except Exception as exc:
                delay = None if retry is None else retry.decide(key, request.method, attempt + 1,
                                                                error=exc)  # fmt: skip
                if delay is None or delay > deadline - time.monotonic():
                    raise
            else:
                if retry is None or response.status_code not in retry.config.retry_on_status:
                    yield ("done", response)  # the driver returns it (see Op)
                    return response  # not reached by drive/adrive, which stop at "done"
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

    def _unanswered(self, span: Any, key: str, config: KeyConfig, grant: Grant,
                    exc: BaseException) -> Flow[NoReturn]:  # fmt: skip
        """A send that raised: its span ends with the error, and the key learns that no answer
        came (not for a cancellation); then the error goes on up."""
        self.telemetry.attempt_ended(span, None, exc)
        if isinstance(exc, Exception):
            yield ("observe", key, config, grant.ticket, 0, _NO_ANSWER, grant.cost)  # no answer
        raise exc


def key_for(url: _URL) -> str:
    """The limiter key of a URL: its host, with the port when it is not the scheme's default."""
    host = url.host.lower()
    default = _DEFAULT_PORTS.get(url.scheme)
    return host if url.port in (None, default) else f"{host}:{url.port}"


def drive(flow: Flow[R], storage: Storage, send: Callable[[Any], Any]) -> R:
    """Run a flow with blocking calls (threads).

    The generator protocol is written out in both drivers, not shared: a helper called for
    each step costs about a tenth of the flow's own work."""
    resume = step = flow.send  # flow.throw after an op raised: the flow gets the error
    result: Any = None
    try:
        while True:
            op = step(result)
            step, name = resume, op[0]
            if name == "done":
                return op[1]  # type: ignore[no-any-return]
            try:
                if name == "send":
                    result = send(op[1])
                elif name in _STORAGE_OPS:
                    result = getattr(storage, name)(*op[1:])
                elif name == "sleep":
                    result = None
                    time.sleep(op[1])
                else:  # "read": httpx's read(); requests reads on .content
                    response, result = op[1], None
                    response.read() if hasattr(response, "read") else response.content
            except BaseException as exc:  # the flow re-raises what it can't handle
                step, result = flow.throw, exc
    except StopIteration as stop:  # the flow returned
        return stop.value  # type: ignore[no-any-return]


async def adrive(flow: Flow[R], storage: Storage, send: Callable[[Any], Awaitable[Any]]) -> R:
    """Run a flow with awaits (asyncio); nothing here blocks the event loop. In-process
    storage steps are short and never wait, so they are called without an await."""
    resume = step = flow.send  # as in drive
    result: Any = None
    prefix = "" if isinstance(storage, MemoryStorage) else "a"
    try:
        while True:
            op = step(result)
            step, name = resume, op[0]
            if name == "done":
                return op[1]  # type: ignore[no-any-return]
            try:
                if name in _STORAGE_OPS:
                    result = getattr(storage, prefix + name)(*op[1:])
                    if prefix:
                        result = await result
                elif name == "send":
                    result = await send(op[1])
                elif name == "sleep":
                    result = None
                    await asyncio.sleep(op[1])
                else:  # "read"
                    result = None
                    await op[1].aread()
            except BaseException as exc:  # the flow re-raises what it can't handle
                step, result = flow.throw, exc
    except StopIteration as stop:  # the flow returned
        return stop.value  # type: ignore[no-any-return]
