"""Retries: strategies, full jitter, a per-key retry budget, and a standalone handler.

``RetryConfig`` says when and how long to wait before trying again; ``RetryPolicy`` adds the
budget and makes each decision (the transport and ``RetryHandler`` share it). ``RetryHandler``
wraps any callable the way smartratelimit's did: ``RetryHandler(config).retry_sync(fn)``.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Generator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from .errors import ConfigurationError, RateLimitError, RateLimitExceeded
from .headers import parse_retry_after

__all__ = ["RetriesExhausted", "RetryConfig", "RetryHandler", "RetryPolicy", "RetryStrategy"]

T = TypeVar("T")
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
NOT_PROCESSED = frozenset({429, 503})  # the server says it did not act on the request
UNSENT_ERRORS = ("ConnectError", "ConnectTimeout", "PoolTimeout", "ConnectionError")


class RetryStrategy(Enum):
    """How the delay grows from one retry to the next."""

    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"
    NONE = "none"


class RetriesExhausted(RateLimitError):
    """Every allowed attempt failed; ``response`` is the last answer."""

    def __init__(self, response: Any, attempts: int) -> None:
        self.response = response
        self.attempts = attempts
        status = getattr(response, "status_code", "?")
        super().__init__(f"gave up after {attempts} attempts; last status {status}")


@dataclass(frozen=True)
class RetryConfig:
    """When to try again and how long to wait first.

    ``jitter`` is the share of each delay drawn at random: 1.0 (the default) is full jitter,
    a delay uniform in (0, d]; 0.0 waits exactly d. ``budget`` caps retries at that share of
    a key's requests (plus ``min_retries`` to start with); None lifts the cap.
    """

    max_retries: int = 3
    strategy: RetryStrategy = RetryStrategy.EXPONENTIAL
    base_delay: float = 0.5
    backoff_factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 1.0
    retry_on_status: Collection[int] = (429, 503, 504)
    retry_non_idempotent: bool = False
    retry_on_errors: bool = True
    budget: float | None = 0.1
    min_retries: int = 10
    raise_on_failure: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        if not isinstance(self.strategy, RetryStrategy):
            raise ConfigurationError(f"strategy must be a RetryStrategy, got {self.strategy!r}")
        for name in ("base_delay", "backoff_factor", "max_delay"):
            _check_number(name, getattr(self, name))
        if not 0 <= _check_number("jitter", self.jitter) <= 1:
            raise ConfigurationError(f"jitter must be between 0 and 1, got {self.jitter!r}")
        if self.budget is not None and _check_number("budget", self.budget) > 1:
            raise ConfigurationError(f"budget must be a share between 0 and 1, got {self.budget!r}")
        codes = frozenset(self.retry_on_status)
        if not all(isinstance(c, int) and 100 <= c <= 599 for c in codes):
            raise ConfigurationError(f"retry_on_status must hold HTTP status codes, got {codes!r}")
        object.__setattr__(self, "retry_on_status", codes)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds before retry number ``attempt`` (1 for the first retry), jitter applied."""
        if self.strategy is RetryStrategy.EXPONENTIAL:
            delay = self.base_delay * self.backoff_factor ** (attempt - 1)
        elif self.strategy is RetryStrategy.LINEAR:
            delay = self.base_delay * attempt
        elif self.strategy is RetryStrategy.FIXED:
            delay = self.base_delay
        else:
            return 0.0
        delay = min(delay, self.max_delay)
        return delay * (1.0 - self.jitter * rand())


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
    if math.isinf(value):
        raise ConfigurationError(f"{name} must be finite, got {value!r}")
    return float(value)


@dataclass
class RetryPolicy:
    """A config plus the per-key budget: decides, for one failed attempt, whether to retry."""

    config: RetryConfig = field(default_factory=RetryConfig)
    max_keys: int = 10_000
    _balance: OrderedDict[str, float] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent(self, key: str) -> None:
        """Count a first attempt: each one earns ``budget`` of a retry."""
        if self.config.budget is None or (key not in self._balance and self.config.min_retries):
            return  # a key that is not stored has its full allowance: nothing to add
        with self._lock:
            self._deposit(key, self.config.budget)

    def _deposit(self, key: str, amount: float) -> float:
        """Add to a key's balance; only keys below their starting allowance are stored."""
        start = float(self.config.min_retries)
        balance = min(self._balance.pop(key, start) + amount, max(start, 1.0))
        if balance != start:
            self._balance[key] = balance
            if len(self._balance) > self.max_keys:
                self._balance.popitem(last=False)
        return balance

    def _withdraw(self, key: str) -> bool:
        if self.config.budget is None:
            return True
        with self._lock:
            if self._balance.get(key, self.config.min_retries) < 1.0:
                return False
            self._deposit(key, -1.0)
            return True

    def decide(self, key: str, method: str | None, attempt: int, *, status: int | None = None,
               error: BaseException | None = None) -> float | None:  # fmt: skip
        """The delay before retry ``attempt`` (1-based), or None to stop here.

        Retried: the configured statuses, and transport errors; for POST, PATCH and other
        methods that are not idempotent, only answers that say the server did not act (429,
        503) and errors before the request was sent, unless ``retry_non_idempotent``.
        """
        cfg = self.config
        if attempt > cfg.max_retries or cfg.strategy is RetryStrategy.NONE:
            return None
        safe = cfg.retry_non_idempotent or method is None or method.upper() in IDEMPOTENT
        if error is not None:
            if isinstance(error, RateLimitExceeded):
                unsent = True  # our own refusal: nothing went out
            elif not cfg.retry_on_errors or not isinstance(error, Exception):
                return None
            else:
                unsent = type(error).__name__ in UNSENT_ERRORS
            if not (safe or unsent):
                return None
        elif status not in cfg.retry_on_status or not (safe or status in NOT_PROCESSED):
            return None
        if not self._withdraw(key):
            return None
        return cfg.delay(attempt)


def _about(result: Any) -> tuple[str, str | None, float | None]:
    """Key, method and Retry-After (seconds) of a response from httpx, requests or aiohttp."""
    request = getattr(result, "request", None) or getattr(result, "request_info", None)
    url = getattr(request, "url", None)
    host = getattr(url, "host", None) or "default"
    method = getattr(request, "method", None)
    value = (getattr(result, "headers", None) or {}).get("retry-after")
    after = parse_retry_after(value, now=time.time()) if isinstance(value, str) else None
    return str(host), method if isinstance(method, str) else None, after


class RetryHandler:
    """Retries a callable that returns a response (or raises), like smartratelimit's handler.

    Waits the strategy's delay, or the server's ``Retry-After`` (or a
    ``RateLimitExceeded.retry_after``) when that is longer; a wait beyond ``max_wait`` ends
    the attempts. The last response is returned (or ``RetriesExhausted`` raised when
    ``raise_on_failure``); the last exception is raised.
    """

    def __init__(self, config: RetryConfig | None = None, *, max_wait: float = 60.0) -> None:
        self.policy = RetryPolicy(config or RetryConfig())
        self.max_wait = _check_number("max_wait", max_wait)

    @property
    def config(self) -> RetryConfig:
        """The configuration in use."""
        return self.policy.config

    def _next(self, attempt: int, result: Any, error: BaseException | None) -> float | None:
        """The wait before the next attempt, or None to finish with this outcome."""
        if error is not None:
            key, method, after = "default", None, getattr(error, "retry_after", None)
            delay = self.policy.decide(key, method, attempt, error=error)
        else:
            key, method, after = _about(result)
            if attempt == 1:
                self.policy.sent(key)
            delay = self.policy.decide(key, method, attempt, status=result.status_code)
        if delay is None:
            return None
        delay = max(delay, after or 0.0)
        return delay if delay <= self.max_wait else None

    def _finish(self, result: Any, error: BaseException | None, attempts: int) -> Any:
        if error is not None:
            raise error
        if self.config.raise_on_failure and result.status_code in self.config.retry_on_status:
            raise RetriesExhausted(result, attempts)
        return result

    def _attempts(self) -> Generator[float, tuple[Any, BaseException | None], Any]:
        """The retry loop without I/O: takes each outcome, yields the wait before the next."""
        attempt, delay = 0, 0.0
        while True:
            attempt += 1
            result, error = yield delay
            if error is None and not hasattr(result, "status_code"):
                return result  # not a response: nothing to judge
            next_delay = self._next(attempt, result, error)
            if next_delay is None:
                return self._finish(result, error, attempt)
            delay = next_delay

    def retry_sync(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``func(*args, **kwargs)`` until it succeeds or the retries run out."""
        steps = self._attempts()
        next(steps)
        while True:
            try:
                outcome: tuple[Any, BaseException | None] = (func(*args, **kwargs), None)
            except Exception as exc:
                outcome = (None, exc)
            try:
                delay = steps.send(outcome)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            time.sleep(delay)

    async def retry_async(self, func: Callable[..., Awaitable[T]], *args: Any,
                          **kwargs: Any) -> T:  # fmt: skip
        """Await ``func(*args, **kwargs)`` until it succeeds or the retries run out."""
        steps = self._attempts()
        next(steps)
        while True:
            try:
                outcome: tuple[Any, BaseException | None] = (await func(*args, **kwargs), None)
            except Exception as exc:
                outcome = (None, exc)
            try:
                delay = steps.send(outcome)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            await asyncio.sleep(delay)
