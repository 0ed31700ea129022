"""What the engine keeps per key and what its steps answer: plain data, no decisions.

``KeyState`` is what every store saves (memory as objects, SQLite as JSON, Redis as the
JSON that ``storage/engine.lua`` reads and writes); ``KeyConfig`` is what is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .limits import AdaptiveConfig, Limit

__all__ = ["Grant", "KeyConfig", "KeyState", "Outcome", "Window"]


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """What is configured for one key: limits, adaptive learning and pushback handling."""

    limits: tuple[Limit, ...] = ()
    adaptive: AdaptiveConfig | None = None
    backoff_status_codes: frozenset[int] = frozenset({429, 503})
    cooldown: float = 1.0  # pause after a pushback that names no Retry-After (doubles per strike)
    max_cooldown: float = 300.0
    # (name, rate, burst) of every limit: what each acquire reads, as plain typed values
    buckets: tuple[tuple[str, float, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        buckets = tuple((lim.name, float(lim.rate), float(lim.burst)) for lim in self.limits)
        object.__setattr__(self, "buckets", buckets)


@dataclass(slots=True)
class Window:
    """A quota learned from headers: `base` left at `start`, `spent` since, reset at `end`.

    A leaky bucket (``leak`` > 0, e.g. Shopify's) never resets: it refills ``leak`` per
    second up to ``limit``, and ``end`` is when it would be empty if nothing more went out.
    """

    limit: float
    start: float
    end: float
    base: float
    spent: float = 0.0
    length: float = 0.0  # the window's length when known or estimated (0: unknown)
    seq: float = 0.0  # ticket of the response this estimate came from
    assumed: bool = False  # rolled past a reset by ourselves, not yet confirmed by the server
    leak: float = 0.0  # a leaky bucket's drain per second (0: a window that resets)


@dataclass(slots=True)
class KeyState:
    """Everything stored for one key."""

    seq: float = 0.0  # cost admitted so far; orders responses against later admissions
    cooldown_until: float = 0.0
    strikes: int = 0  # pushbacks since the last success
    tats: dict[str, float] = field(default_factory=dict)  # GCRA theoretical arrival times
    windows: dict[str, Window] = field(default_factory=dict)
    rate: float | None = None  # adaptive rate; None until the API first pushes back
    ramping: bool = False  # after the first estimate: grow 15%/s up to ``peak``
    peak: float = 0.0  # the learned rate that last drew a pushback; while ramping, where the
    # ramp ends (0: none)
    probe_start: float = 0.0  # when success counting for the first rate estimate began
    probe_ok: float = 0.0
    decrease_seq: float = -1.0  # responses to tickets up to this one are already accounted for
    last_at: float = 0.0  # the latest slot handed out: slots go in ticket order
    probing_until: float = 0.0  # a probe is out: others look again until its answer (or this)
    sent: int = 0  # requests admitted
    answered: int = 0  # requests whose response (or failure, or cancellation) came back
    out: float = 0.0  # the cost of requests admitted and not yet answered
    line_end: float = 0.0  # places in line issued so far, in cost (see line.py)
    line_served: float = 0.0  # the highest place that booked its slot (or was skipped)


class Grant:
    """An acquire's answer: go after ``wait`` seconds (when ``ok``), holding ``ticket``.

    Read-only by convention (``replaced`` makes a changed copy). One is built per request, so
    it is a plain class with its own ``__init__``: compiled (setup.py) that is a C struct
    filled in place, where a dataclass's generated ``__init__`` would run as Python.
    """

    __slots__ = ("again", "at", "cost", "ok", "place", "policy", "ticket", "wait")

    def __init__(
        self,
        ok: bool,
        wait: float,
        at: float,  # when the slot is, on the store's clock
        ticket: float,
        cost: float,
        policy: str,  # the policy that decided the wait ("" when nothing made it wait)
        again: bool = False,  # nothing reserved: sleep ``wait`` and ask again (first contact)
        place: float = 0.0,  # the caller's place in line, for its next acquire (0: none)
    ) -> None:
        self.ok = ok
        self.wait = wait
        self.at = at
        self.ticket = ticket
        self.cost = cost
        self.policy = policy
        self.again = again
        self.place = place

    def fields(self) -> tuple[bool, float, float, float, float, str, bool, float]:
        """Every field, in order."""
        return (self.ok, self.wait, self.at, self.ticket, self.cost, self.policy, self.again,
                self.place)  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grant) and self.fields() == other.fields()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and not read-only

    def replaced(self, *, wait: float | None = None, ticket: float | None = None) -> Grant:
        """A copy with ``wait`` or ``ticket`` changed."""
        return Grant(self.ok, self.wait if wait is None else wait, self.at,
                     self.ticket if ticket is None else ticket, self.cost, self.policy,
                     self.again, self.place)  # fmt: skip

    def __repr__(self) -> str:
        names = ("ok", "wait", "at", "ticket", "cost", "policy", "again", "place")
        pairs = zip(names, self.fields(), strict=True)
        return f"Grant({', '.join(f'{name}={value!r}' for name, value in pairs)})"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a response changed: a backoff (and why), and the adaptive rate after it."""

    backoff: str | None = None  # "retry_after", "status_429", ...
    cooldown: float = 0.0
    rate: float | None = None
    header_errors: int = 0
