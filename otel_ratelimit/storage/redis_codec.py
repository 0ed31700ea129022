"""What goes to ``engine.lua`` and comes back: the script, key names and the JSON both sides read.

Pure functions, no connection: the Redis storage sends ``config_json``/``obs_json`` with each
call and turns the script's replies into the engine's ``Grant``, ``Outcome`` and ``KeyState``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files
from typing import Any

from .. import engine
from ..engine import Grant, KeyConfig, KeyState, Outcome, Window
from ..headers import Observation
from ..line import NEAR

__all__ = ["PREFIX", "SCRIPT", "config_json", "decode_state", "grant", "name", "num",
           "obs_json", "outcome", "text"]  # fmt: skip

PREFIX = "otel_ratelimit:{"
_PARTS = ("engine.lua", "engine_acquire.lua", "engine_observe.lua")  # one script, in order
SCRIPT = "".join(files(__package__).joinpath(part).read_text("utf-8") for part in _PARTS)
_CONSTANTS = (engine.PACE_BURST, engine.PACE_SPAN, engine.DEFAULT_RESET, engine.PROBE_TIMEOUT,
              engine.PROBE_POLL, engine.RAMP, engine.SPACING, engine.LEAK_MATCH,
              engine.HORIZON, engine.PEAK_NEAR, engine.PEAK_STEP, NEAR, engine.ROUNDING,
              engine.ROUNDING_SHARE)  # fmt: skip
_ADAPTIVE_FIELDS = ("initial_rate", "min_rate", "max_rate", "increase_step", "decrease_factor")
_INTS = ("strikes", "sent", "answered")


def name(key: str) -> str:
    """The Redis key of a limiter key; the braces are a Redis Cluster hash tag (one slot)."""
    return f"{PREFIX}{key}}}"


def text(value: bytes | str) -> str:
    """A reply as ``str``."""
    return value.decode() if isinstance(value, bytes) else value


def num(x: float) -> str:
    """The shortest text that reads back as the same double (``inf`` too)."""
    return repr(float(x))


@lru_cache(maxsize=1024)
def config_json(config: KeyConfig) -> str:
    """A key's configuration as the script reads it (cached: configs are few and frozen)."""
    a = config.adaptive
    adaptive = None if a is None else {n: getattr(a, n) for n in _ADAPTIVE_FIELDS}
    data = {
        "limits": [[lim.name, lim.rate, lim.burst] for lim in config.limits],
        "adaptive": adaptive,
        "codes": sorted(config.backoff_status_codes),
        "cooldown": config.cooldown,
        "max_cooldown": config.max_cooldown,
        "span": max((lim.window for lim in config.limits), default=0.0),
        "k": _CONSTANTS,
    }
    return json.dumps(data, separators=(",", ":"))


def obs_json(obs: Observation) -> str:
    """A response's observation as the script reads it."""
    quotas = [[q.policy, q.limit, q.remaining, q.reset_after, q.window] for q in obs.quotas]
    return json.dumps({"q": quotas, "ra": obs.retry_after}, separators=(",", ":"))


def decode_state(raw: bytes | str) -> KeyState:
    """The KeyState stored as JSON by ``engine.lua``: every field of ``KeyState`` it holds."""
    d = json.loads(raw)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(KeyState):
        if field.name not in d:
            continue  # written by an older version: the field's default
        n, v = field.name, d[field.name]
        if n == "windows":
            v = {w["name"]: _window(w) for w in v}
        elif n == "tats":
            v = {k: float(t) for k, t in v.items()}
        elif n in _INTS:
            v = int(v)
        elif n == "ramping":
            v = bool(v)
        elif v is not None or n != "rate":
            v = float(v)
        values[n] = v
    return KeyState(**values)


def _window(w: dict[str, Any]) -> Window:
    values: dict[str, Any] = {f.name: float(w[f.name]) for f in dataclasses.fields(Window)
                              if f.name != "assumed" and f.name in w}  # fmt: skip
    return Window(**values, assumed=bool(w["assumed"]))


def grant(reply: Sequence[Any], cost: float) -> Grant:
    """An acquire's reply as a Grant."""
    ok, wait, at, ticket, policy, again, place = reply
    return Grant(ok == 1, float(wait), float(at), float(ticket), cost, text(policy), again == 1,
                 float(place))  # fmt: skip


def outcome(reply: Sequence[Any], obs: Observation) -> Outcome:
    """An observe's reply as an Outcome."""
    backoff, cooldown, rate, answered = reply
    if answered != 1:
        return Outcome()  # no response at all: the engine reports nothing, not even the rate
    return Outcome(None if backoff is None else text(backoff), float(cooldown),
                   None if rate is None else float(rate), obs.errors)  # fmt: skip
