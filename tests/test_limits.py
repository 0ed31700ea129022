"""Windows, limits and configuration errors."""

from __future__ import annotations

import pytest

from otel_ratelimit import ConfigurationError, Limit, RateLimiter
from otel_ratelimit.limits import AdaptiveConfig, parse_limit, parse_limits, parse_window


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m", 60), ("1h", 3600), ("1d", 86400), ("1.5h", 5400), ("500ms", 0.5),
     ("minute", 60), (" 2 hours ", 7200), (45, 45), (0.25, 0.25)],
)  # fmt: skip
def test_windows_parse(text, seconds):
    """Every documented window form turns into seconds."""
    assert parse_window(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["0s", "", "abc", "1x", "-1s", 0, -5, float("nan"), "1e999h", True])
def test_bad_windows_name_the_value(bad):
    """A bad window is a ConfigurationError whose message names the bad value."""
    with pytest.raises(ConfigurationError) as info:
        parse_window(bad)
    assert repr(bad) in str(info.value)


def test_limit_strings():
    """'100/1h', '10/s' and '60 per minute' become Limits."""
    assert parse_limit("100/1h") == Limit(100, 3600)
    assert parse_limit("10/s").rate == 10
    assert parse_limit("60 per minute").rate == 1


@pytest.mark.parametrize("bad", ["100", "x/1h", "100/0s", "/1h"])
def test_bad_limit_strings(bad):
    """A malformed limit string names itself."""
    with pytest.raises(ConfigurationError, match="'"):
        parse_limit(bad)


@pytest.mark.parametrize("bad", [0, -1, float("inf"), "10", None])
def test_bad_limit_values(bad):
    """A non-positive or non-numeric limit is refused with its value in the message."""
    with pytest.raises(ConfigurationError) as info:
        Limit(bad, 1)
    assert repr(bad) in str(info.value)


def test_default_limits_mapping():
    """requests_per_{second,minute,hour,day} keys map to windows."""
    limits = parse_limits({"requests_per_minute": 60, "requests_per_day": 1000})
    assert [(lim.limit, lim.window) for lim in limits] == [(60, 60), (1000, 86400)]
    with pytest.raises(ConfigurationError, match="requests_per_fortnight"):
        parse_limits({"requests_per_fortnight": 1})


def test_set_limit_validates_and_applies():
    """set_limit accepts windows and limit strings, and refuses bad ones naming them."""
    limiter = RateLimiter()
    limiter.set_limit("api.example.com", limit=100, window="1h")
    assert limiter.config_for("api.example.com").limits == (Limit(100, 3600),)
    limiter.set_limit("https://api.other.com/v1/x", "5/1s")
    assert limiter.config_for("api.other.com").limits[0].rate == 5
    with pytest.raises(ConfigurationError, match="'0s'"):
        limiter.set_limit("api.example.com", 10, "0s")
    with pytest.raises(ConfigurationError, match="-3"):
        limiter.set_limit("api.example.com", -3, "1m")


@pytest.mark.parametrize(
    "kwargs",
    [{"max_wait": -1}, {"headers_map": {"limitt": "X"}}, {"storage": "mysql://x"},
     {"storage": "nonsense"}, {"default_limits": "ten per hour"}],
)  # fmt: skip
def test_limiter_construction_errors(kwargs):
    """Wrong options fail at construction with a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        RateLimiter(**kwargs)


def test_adaptive_config_validation():
    """Adaptive knobs are checked: factor in (0, 1), rates positive, max >= min."""
    with pytest.raises(ConfigurationError, match=r"1\.5"):
        AdaptiveConfig(decrease_factor=1.5)
    with pytest.raises(ConfigurationError, match="max_rate"):
        AdaptiveConfig(min_rate=2, max_rate=1)
    with pytest.raises(ConfigurationError, match="initial_rate"):
        AdaptiveConfig(initial_rate=0)
