"""A place in line for callers waiting on a learned rate (AIMD's, or a leaky bucket's).

Slots of a learned rate are booked at most ``HORIZON`` ahead, so that a pushback's cut (or a
bucket's fresh count) holds for the whole queue at once. A caller whose slot is further off
is told to come back, and takes a place in line: places count cost (``line_end`` issued so
far, ``line_served`` the highest that booked its slot), so a caller's turn is the next slot
plus what is ahead of it at the rate of the moment: a rate cut re-spaces the whole line.

A place that never books (its caller gave up, was cancelled, or died) is skipped as soon as
a later place books (``line_served`` is a maximum), and, when nobody books at all, once the
slots it could have had stand free past ``HORIZON``: the line then drains at its rate by
itself, and a line whose every holder is gone ends.
"""

from __future__ import annotations

import math

from .adaptive import ADAPTIVE
from .keystate import Grant, KeyState
from .windows import roll_window

__all__ = ["HORIZON", "NEAR", "learned", "line_rate", "spare", "wait_in_line"]

HORIZON = 0.25  # slots set by a learned rate (AIMD, a leaky bucket) are reserved this far ahead
NEAR = HORIZON + 1e-9  # a turn this close is booked (the slack absorbs float rounding)


def line_rate(state: KeyState, adaptive: bool, policy: str) -> float:
    """The learned rate a line moves at, in cost per second (0: the key has none)."""
    if adaptive:
        return state.rate or 1.0
    w = state.windows.get(policy)
    if w is not None and w.leak > 0:
        return w.leak
    for w in state.windows.values():
        if w.leak > 0:
            return w.leak
    return 0.0


def spare(state: KeyState, t: float, cost: float) -> float:
    """How much of a line may go at ``t`` too: the room every leaky bucket of the key has then
    beyond ``cost`` (0: none, or no bucket).

    What is out is held in the level until answered, and an answer may give its cost back
    (``windows.learn``): a line that formed meanwhile would otherwise pace a bucket that has
    room again at its drain rate."""
    room = math.inf
    for old in state.windows.values():
        if old.leak > 0:
            w = roll_window(old, t)
            room = min(room, w.base - w.spent - cost)
    return room if 0 < room < math.inf else 0.0


def wait_in_line(
    state: KeyState,
    now: float,
    t: float,
    cost: float,
    max_wait: float,
    place: float,
    rate: float,
    policy: str,
    room: float,
) -> Grant | None:
    """A caller's turn in line, for the earliest slot ``t``: None to book ``t`` now (its turn
    is near), else a Grant to come back (holding its place) or a refusal past ``max_wait``.
    ``room``: how much of what is ahead fits at ``t`` too (``spare``)."""
    served, end = state.line_served, state.line_end
    if end > served and t <= now:  # the next slot stands free: places it passed by are gone
        late = now - max(state.last_at + cost / rate, state.cooldown_until) - HORIZON
        if late > 0:
            served = min(end, served + late * rate)
            if served >= end:
                state.line_served = served  # every holder is gone: the line ends
    new = place <= 0 or place > end  # none yet, or one the store never issued (it was reset)
    if new:
        place = end + cost
    ahead = place - cost - served - room
    turn = t + ahead / rate if ahead > 0 else t
    if turn - now <= NEAR:  # book ``t`` (unless it is past max_wait: refused, taking nothing)
        if t - now <= max_wait:
            state.line_served = place if place > served else served
            if new:
                state.line_end = place
        return None
    if turn - now > max_wait:  # too far: refused, and a place at the end is given back
        if not new and place == end and served < end:
            state.line_end = max(end - cost, state.line_served)
        return Grant(False, turn - now, turn, state.seq, cost, policy)
    if new:
        state.line_end = place
    at = turn - HORIZON
    return Grant(True, at - now, at, state.seq, cost, policy, True, place)


def learned(state: KeyState, policy: str) -> bool:
    """Whether the policy that set a slot is a learned rate: AIMD's or a leaky bucket's."""
    if policy == ADAPTIVE:
        return True
    w = state.windows.get(policy)
    return w is not None and w.leak > 0
