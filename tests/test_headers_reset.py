"""Header parsing: reset encodings and Retry-After."""

from __future__ import annotations

import pytest
from header_helpers import NOW, http_date
from hypothesis import given
from hypothesis import strategies as st

from otel_ratelimit.headers import parse_headers, parse_reset, parse_retry_after
from otel_ratelimit.headers._context import Context, _amount, read_amount
from otel_ratelimit.headers._reset import MAX_RESET_SECONDS, _instant, seconds

# --- reset encodings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("7", "delta", 7.0),
        ("7.25", "delta", 7.25),
        ("0", "delta", 0.0),
        (" 7 ", "auto", 7.0),
        (str(int(NOW) + 60), "epoch", 60.0),
        (f"{NOW + 1.5:.3f}", "epoch", 1.5),
        (str(int(NOW) + 60), "auto", 60.0),
        (str(int(NOW + 60) * 1000), "auto", 60.0),
        (str(int(NOW + 60) * 1000), "epoch-ms", 60.0),
        ("1500", "delta-ms", 1.5),
        ("2023-11-14T22:14:20Z", "rfc3339", 60.0),
        ("2023-11-14T22:14:20z", "auto", 60.0),
        ("2023-11-14T22:13:20.250Z", "rfc3339", 0.25),
        ("2023-11-14T22:13:20.123456789Z", "rfc3339", 0.123456789),
        ("2023-11-14T23:14:20+01:00", "rfc3339", 60.0),
        ("2023-11-14T22:14:20+00:00", "auto", 60.0),
        ("2023-11-14T21:44:20-00:30", "rfc3339", 60.0),
        ("Tue, 14 Nov 2023 22:14:20 GMT", "http-date", 60.0),
        ("Tue, 14 Nov 2023 22:14:20 GMT", "auto", 60.0),
        ("20ms", "duration", 0.02),
        ("1s", "duration", 1.0),
        ("6m0s", "duration", 360.0),
        ("1h2m3.5s", "duration", 3723.5),
        ("1.5", "duration", 1.5),
        ("250us", "duration", 0.00025),
        ("30", "retry-after", 30.0),
    ],
)
def test_parse_reset_encodings(value: str, kind: str, expected: float) -> None:
    """Each reset encoding turns into seconds from now."""
    assert parse_reset(value, now=NOW, kind=kind) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (str(int(NOW) - 100), "epoch"),
        (str(int(NOW) - 100), "auto"),
        (str(int(NOW - 100) * 1000), "auto"),
        ("2000-01-01T00:00:00Z", "rfc3339"),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "http-date"),
        ("0", "epoch"),
    ],
)
def test_past_reset_is_zero(value: str, kind: str) -> None:
    """A reset in the past means already reset: 0.0, never negative."""
    assert parse_reset(value, now=NOW, kind=kind) == 0.0


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("nan", "auto"),
        ("inf", "delta"),
        ("-inf", "auto"),
        ("1e309", "delta"),
        ("-1", "delta"),
        ("1_000", "delta"),
        ("٣", "delta"),
        (str(10**12), "delta"),
        (str(int(NOW) + 40 * 86400), "epoch"),
        ("9999-12-31T23:59:59Z", "rfc3339"),
        ("2023-13-01T00:00:00Z", "rfc3339"),
        ("2023-11-14T22:14:20", "rfc3339"),
        ("soon", "auto"),
        ("", "auto"),
        ("1m", "delta"),
        ("6m0", "duration"),
        ("-1s", "duration"),
        ("1d", "duration"),
        ("30", "rfc3339"),
        ("30", "http-date"),
        ("30", "no-such-kind"),
        ("1" * 5000, "delta"),
    ],
)
def test_parse_reset_garbage(value: str, kind: str) -> None:
    """Garbage and absurd resets give None."""
    assert parse_reset(value, now=NOW, kind=kind) is None


def test_parse_reset_non_string() -> None:
    """Non-string values give None instead of raising."""
    assert parse_reset(None, now=NOW) is None  # type: ignore[arg-type]
    assert parse_retry_after(b"5", now=NOW) is None  # type: ignore[arg-type]


# --- Retry-After --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        (http_date(30), 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    """Retry-After is delta seconds (int or float) or an HTTP-date."""
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    "value", ["-1", "nan", "soon", str(10**12), "", "2023-11-14T22:14:20Z", http_date(10**8)]
)
def test_parse_retry_after_garbage(value: str) -> None:
    """Negative, absurd or malformed Retry-After values give None."""
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_ms_preferred() -> None:
    """retry-after-ms is more precise than Retry-After, so it wins."""
    obs = parse_headers({"Retry-After": "2", "retry-after-ms": "1500"}, now=NOW)
    assert obs.retry_after == 1.5 and obs.errors == 0


def test_retry_after_bad_ms_falls_back() -> None:
    """A malformed retry-after-ms is counted, and Retry-After still applies."""
    obs = parse_headers({"Retry-After": "2", "retry-after-ms": "-5"}, now=NOW)
    assert obs.retry_after == 2.0 and obs.errors == 1


@pytest.mark.parametrize("value", ["-3", "nan", "later", "1e309", str(10**9)])
def test_retry_after_garbage_counted(value: str) -> None:
    """Bad Retry-After values are ignored and counted."""
    obs = parse_headers({"Retry-After": value}, now=NOW)
    assert obs.retry_after is None and obs.errors == 1 and obs.empty


# --- plain numbers, read without the cache --------------------------------------------------

_KINDS = ("auto", "delta", "delta-ms", "epoch", "epoch-ms", "duration", "rfc3339", "http-date",
          "retry-after")  # fmt: skip


@given(
    st.from_regex(r"[0-9]{0,18}(\.[0-9]{0,6})?s?", fullmatch=True),
    st.sampled_from(_KINDS),
)
def test_a_plain_number_read_on_the_spot_reads_as_through_the_cache(text: str, kind: str) -> None:
    """``seconds`` reads short plain decimals without the cache; the cached reader (every
    other text) must agree on each of them, for every kind."""
    found = _instant(text, kind)  # the cached path, which takes any text
    expected = None if found is None else found[0] if found[1] else max(0.0, found[0] - NOW)
    if found is not None and not found[1] and found[0] - NOW > MAX_RESET_SECONDS:
        expected = None
    assert seconds(text, NOW, kind) == expected


@given(
    st.from_regex(r"[0-9]{0,18}(\.[0-9]{0,4})?|[0-9\u0660-\u0669\u00b2]{1,3}", fullmatch=True),
    st.sampled_from("qwrt"),
)
def test_a_plain_count_read_on_the_spot_reads_as_through_the_cache(text: str, check: str) -> None:
    """``read_amount`` reads short plain decimals without the cache: same result (non-ASCII
    digits, which it must not take, included)."""
    ctx = Context({"x": text}, set(), NOW)
    assert read_amount(ctx, "x", check) == _amount(text, check)
    assert bool(ctx.bad_keys) == (_amount(text, check) is None)
