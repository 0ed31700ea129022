"""The preset registry: applied by host, overridable, extendable."""

from __future__ import annotations

import pytest

from otel_ratelimit import PRESETS, ConfigurationError, Limit, Preset, RateLimiter

REQUIRED = ["github", "openai", "anthropic", "stripe", "notion", "slack", "discord", "shopify",
            "twitter", "airtable", "vanta", "fieldguide"]  # fmt: skip


def test_registry_has_every_required_api():
    """Every API users come with has a preset; Vanta and Fieldguide are marked placeholders."""
    assert set(REQUIRED) <= set(PRESETS)
    assert PRESETS["vanta"].placeholder and PRESETS["fieldguide"].placeholder
    assert not PRESETS["github"].placeholder


def test_presets_apply_by_host_and_subdomain():
    """A preset applies to its host and its subdomains (shop.myshopify.com)."""
    limiter = RateLimiter()
    assert limiter.preset_for("api.notion.com").name == "notion"
    assert limiter.preset_for("https://shop.myshopify.com/admin").name == "shopify"
    assert limiter.preset_for("example.org") is None
    assert limiter.config_for("api.notion.com").limits == (Limit(3, 1.0, burst=3),)
    assert 529 in limiter.config_for("api.anthropic.com").backoff_status_codes
    assert limiter.config_for("api.airtable.com").cooldown == 30.0


def test_user_config_overrides_and_extends():
    """User presets override fields by name and add new APIs, without touching the registry."""
    limiter = RateLimiter(
        presets={
            "notion": {"limits": "10/1s"},
            "internal": Preset("internal", ("api.internal.test",), limits=(Limit(2, 1),)),
            "fromdict": {"hosts": ("api.dict.test",), "limits": "7/1m"},
        }
    )
    assert limiter.config_for("api.notion.com").limits[0].rate == 10
    assert limiter.config_for("api.internal.test").limits == (Limit(2, 1),)
    assert limiter.config_for("api.dict.test").limits[0].limit == 7
    assert PRESETS["notion"].limits == (Limit(3, 1.0, burst=3),)


def test_set_limit_beats_preset_and_presets_can_be_off():
    """set_limit overrides a preset; use_presets=False ignores the registry."""
    limiter = RateLimiter()
    limiter.set_limit("api.notion.com", 1, "1s")
    assert limiter.config_for("api.notion.com").limits == (Limit(1, 1),)
    assert RateLimiter(use_presets=False).config_for("api.notion.com").limits == ()


def test_bad_user_preset_is_a_configuration_error():
    """An unknown field or a wrong type names the preset."""
    with pytest.raises(ConfigurationError, match="notion"):
        RateLimiter(presets={"notion": {"speed": 3}})
    with pytest.raises(ConfigurationError, match="x"):
        RateLimiter(presets={"x": 5})


def test_preset_limits_accept_strings_and_name_bad_ones():
    preset = Preset("strings", ("api.strings.test",), limits=("3/1s", "100/1h"))  # type: ignore[arg-type]
    assert [(lim.limit, lim.window) for lim in preset.limits] == [(3, 1.0), (100, 3600.0)]
    with pytest.raises(ConfigurationError, match="'3/fortnight'"):
        Preset("bad", ("api.bad.test",), limits=("3/fortnight",))  # type: ignore[arg-type]
