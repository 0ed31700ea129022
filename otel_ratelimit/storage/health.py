"""Whether a shared store is up: its failures, one probe at a time while it is down, the
listeners told of each change and the log records (see ``fallback.py``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from ..errors import StorageError

__all__ = ["FAILURES", "PROBE_EVERY", "Attempt", "Health", "Listener"]

PROBE_EVERY = 0.25  # seconds between two tries of a store that is down
FAILURES = (StorageError, OSError)
Listener = Callable[[str, str], None]  # (event, detail): "error" | "fallback" | "recovered"
_logger = logging.getLogger("otel_ratelimit")


class Health:
    """The up/down state of one store. ``label`` names it in log records (a redacted URL),
    ``action`` says what the policy does while it is down."""

    def __init__(self, label: str, action: str, probe_every: float = PROBE_EVERY) -> None:
        self.label, self.action = label, action
        self.listeners: list[Listener] = []
        self.down_since: float | None = None  # time.monotonic() of the failure, while down
        self.outages = 0  # how many times the store went down
        self._probe_every = probe_every
        self._lock = threading.Lock()
        self._probing = False
        self._next_probe = 0.0
        self._cause = ""

    def attempt(self, *, probe: bool = False) -> Attempt:
        """Whether a call goes to the store: always while it works; while it is down, only a
        probe (one at a time, every ``probe_every``)."""
        if self.down_since is None:
            return Attempt(self, go=True, probe=False)
        if probe:
            with self._lock:
                if not self._probing and time.monotonic() >= self._next_probe:
                    self._probing = True
                    return Attempt(self, go=True, probe=True)
        return Attempt(self, go=False, probe=False)

    def succeeded(self, probe: bool) -> None:
        """A call went through; a probe that did brings the store back."""
        if not probe:
            return  # a call sent before the failure: only a probe says the store is back
        with self._lock:
            since, self.down_since, self._probing = self.down_since, None, False
        if since is not None:
            _logger.info("rate-limit storage %s is back after %.2fs: limits are shared again",
                         self.label, time.monotonic() - since)  # fmt: skip
            self._emit("recovered", self._cause)

    def failed(self, exc: BaseException, probe: bool) -> None:
        """A call failed: the store is down (again) and is tried next in ``probe_every``."""
        cause = exc.__cause__ if isinstance(exc, StorageError) and exc.__cause__ else exc
        detail = type(cause).__name__
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since, self._cause = time.monotonic(), detail
                self.outages += 1
            self._probing = self._probing and not probe
            self._next_probe = time.monotonic() + self._probe_every
        self._emit("error", detail)
        if first:
            message = "rate-limit storage %s failed (%s): %s"
            _logger.warning(message, self.label, detail, self.action)
            self._emit("fallback", detail)

    def abandoned(self, probe: bool) -> None:
        """A call was cancelled or interrupted: let the next caller probe."""
        if probe:
            with self._lock:
                self._probing = False

    def _emit(self, event: str, detail: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(event, detail)
            except Exception:  # a broken listener must not fail a request
                _logger.exception("storage listener %r failed on %r", listener, event)


class Attempt:
    """One call that may go to the store: a failure is recorded and swallowed, so the caller
    continues after the ``with`` block as its policy says (``error`` holds it)."""

    __slots__ = ("error", "go", "health", "probe")

    def __init__(self, health: Health, *, go: bool, probe: bool) -> None:
        self.health, self.go, self.probe = health, go, probe
        self.error: BaseException | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:  # fmt: skip
        if not self.go:
            return False
        if exc is None:
            self.health.succeeded(self.probe)
            return False
        if isinstance(exc, FAILURES):
            self.error = exc
            self.health.failed(exc, self.probe)
            return True
        self.health.abandoned(self.probe)
        return False
