"""The registry of per-API presets, applied by host, overridable and extendable by users."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigurationError
from .limits import AdaptiveConfig, Limit, parse_limits

__all__ = ["PRESETS", "Preset", "preset_for_host", "register_preset", "resolve_presets"]


@dataclass(frozen=True, slots=True)
class Preset:
    """What is known of one API before it answers: hosts, limits and how it pushes back."""

    name: str
    hosts: tuple[str, ...]
    base_url: str | None = None
    limits: tuple[Limit, ...] = ()
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    backoff_status_codes: frozenset[int] = frozenset({429, 503})
    cooldown: float = 1.0  # pause after a pushback that names no Retry-After
    documented: str = ""
    placeholder: bool = False  # the vendor publishes no numbers: tuned guesses, check them

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigurationError(f"preset name must be a non-empty string, got {self.name!r}")
        hosts = (self.hosts,) if isinstance(self.hosts, str) else tuple(self.hosts)
        object.__setattr__(self, "hosts", tuple(h.lower() for h in hosts))
        object.__setattr__(self, "backoff_status_codes", frozenset(self.backoff_status_codes))
        object.__setattr__(self, "limits", parse_limits(self.limits))  # "3/1s" strings too


def _p(name: str, hosts: Iterable[str], **kw: Any) -> Preset:
    return Preset(name, tuple(hosts), **kw)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _p("github", ["api.github.com"], base_url="https://api.github.com",
           backoff_status_codes={403, 429},
           documented="5,000 requests/hour per token (x-ratelimit-* headers); secondary limits "
           "answer 403/429 with Retry-After."),
        _p("openai", ["api.openai.com"], base_url="https://api.openai.com/v1",
           documented="Per-tier requests and tokens per minute, reported in "
           "x-ratelimit-{limit,remaining,reset}-{requests,tokens}."),
        _p("anthropic", ["api.anthropic.com"], base_url="https://api.anthropic.com",
           backoff_status_codes={429, 529},
           documented="Per-tier requests/tokens per minute in anthropic-ratelimit-* headers; "
           "529 means overloaded."),
        _p("stripe", ["api.stripe.com"], base_url="https://api.stripe.com",
           adaptive=AdaptiveConfig(max_rate=100.0),
           documented="100 operations/second in live mode, 25 in test mode; no headers until "
           "429 (Stripe-Rate-Limited-Reason)."),
        _p("notion", ["api.notion.com"], base_url="https://api.notion.com/v1",
           limits=Limit(3, 1.0, burst=3), adaptive=AdaptiveConfig(initial_rate=3.0, max_rate=5.0),
           documented="An average of 3 requests/second per integration, bursts allowed; 429 "
           "with Retry-After."),
        _p("slack", ["slack.com"], base_url="https://slack.com/api",
           limits="50/1m", documented="Per-method tiers (Tier 3: 50+/minute); 429 with "
           "Retry-After."),
        _p("discord", ["discord.com", "discordapp.com"], base_url="https://discord.com/api",
           limits=Limit(50, 1.0, burst=50), documented="50 requests/second global, per-route "
           "buckets in X-RateLimit-* headers."),
        _p("shopify", ["myshopify.com"], limits=Limit(2, 1.0, burst=40),
           documented="REST Admin: leaky bucket of 40 draining 2/second "
           "(X-Shopify-Shop-Api-Call-Limit)."),
        _p("twitter", ["api.twitter.com", "api.x.com"], base_url="https://api.x.com/2",
           documented="Per-endpoint 15-minute windows in x-rate-limit-* headers."),
        _p("airtable", ["api.airtable.com"], base_url="https://api.airtable.com/v0",
           limits="5/1s", cooldown=30.0,
           documented="5 requests/second per base; after a 429 wait 30 seconds."),
        _p("vanta", ["api.vanta.com"], base_url="https://api.vanta.com",
           adaptive=AdaptiveConfig(initial_rate=2.0, min_rate=0.3, max_rate=5.0,
                                   increase_step=0.1, decrease_factor=0.5),
           placeholder=True, documented="No published numbers; conservative learned rate."),
        _p("fieldguide", ["api.fieldguide.io"], base_url="https://api.fieldguide.io",
           adaptive=AdaptiveConfig(initial_rate=2.0, min_rate=0.3, max_rate=5.0,
                                   increase_step=0.1, decrease_factor=0.5),
           placeholder=True, documented="No published numbers; conservative learned rate."),
    )
}  # fmt: skip


def register_preset(preset: Preset, registry: dict[str, Preset] | None = None) -> Preset:
    """Add or replace a preset (in the global registry unless another is given)."""
    (PRESETS if registry is None else registry)[preset.name] = preset
    return preset


def resolve_presets(user: Mapping[str, Preset | Mapping[str, Any]] | None) -> dict[str, Preset]:
    """The global registry overlaid with user presets; a mapping overrides fields by name."""
    merged = dict(PRESETS)
    for name, value in (user or {}).items():
        if isinstance(value, Preset):
            merged[name] = value
            continue
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"preset {name!r} must be a Preset or a mapping, got {value!r}"
            )
        fields = dict(value)
        if "limits" in fields:
            fields["limits"] = parse_limits(fields["limits"])
        if isinstance(fields.get("adaptive"), Mapping):
            fields["adaptive"] = AdaptiveConfig(**fields["adaptive"])
        try:
            merged[name] = (
                replace(merged[name], **fields) if name in merged else (Preset(name, **fields))
            )
        except TypeError as exc:
            raise ConfigurationError(f"preset {name!r}: {exc}") from None
    return merged


def preset_for_host(host: str, registry: Mapping[str, Preset] | None = None) -> Preset | None:
    """The preset whose host is ``host`` or a parent domain of it (myshopify.com subdomains)."""
    host = host.lower()
    for preset in (PRESETS if registry is None else registry).values():
        for known in preset.hosts:
            if host == known or host.endswith("." + known):
                return preset
    return None
