"""How the command line shows things: tables (rich on a terminal, plain text otherwise), JSON."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import httpx

from .headers import Observation
from .presets import Preset
from .status import RateLimitStatus

__all__ = [
    "preset_dict",
    "preset_table",
    "print_probe",
    "print_table",
    "probe_report",
    "safe_url",
    "status_dict",
    "status_table",
    "watch",
]

Table = tuple[str, Sequence[str], list[list[str]]]  # title, column names, rows
STATUS_COLUMNS = ("key", "policy", "source", "limit", "remaining", "used", "reset in",
                  "window", "cooldown", "rate/s", "state")  # fmt: skip


def _num(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.{digits}f}"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}s"


def status_dict(status: RateLimitStatus) -> dict[str, Any]:
    """One key's status as JSON-ready values (epoch seconds for times)."""
    data = asdict(status)
    data["policies"] = [{**asdict(p), "utilization": p.utilization} for p in status.policies]
    return data


def status_table(statuses: Sequence[RateLimitStatus], now: float) -> Table:
    """One row per policy of every key; the key's cooldown, rate and state on its first row."""
    rows = []
    for s in statuses:
        cooldown = max(0.0, s.cooldown_until - now) if s.cooldown_until else 0.0
        state = "cooldown" if cooldown else "exceeded" if s.is_exceeded else "ok"
        for i, p in enumerate(s.policies):
            first = i == 0
            rows.append([
                s.endpoint if first else "", p.name, p.source, _num(p.limit),
                _num(p.remaining), f"{p.utilization:.0%}", _secs(max(0.0, p.reset_time - now)),
                _secs(p.window), _secs(cooldown) if first and cooldown else "-",
                _num(s.rate, 2) if first else "", state if first else "",
            ])  # fmt: skip
    title = f"{len(statuses)} key(s) at {time.strftime('%H:%M:%S', time.localtime(now))}"
    return title, STATUS_COLUMNS, rows


def preset_dict(p: Preset) -> dict[str, Any]:
    """One preset as JSON-ready values."""
    return {
        "name": p.name, "hosts": list(p.hosts), "base_url": p.base_url,
        "limits": [f"{_num(lim.limit)}/{_num(lim.window)}s burst {_num(lim.burst)}"
                   for lim in p.limits],
        "adaptive": asdict(p.adaptive), "backoff_status_codes": sorted(p.backoff_status_codes),
        "cooldown": p.cooldown, "placeholder": p.placeholder, "documented": p.documented,
    }  # fmt: skip


def preset_table(presets: Sequence[Preset]) -> Table:
    """The registry as a table."""
    rows = [
        [p.name, ", ".join(p.hosts), ", ".join(preset_dict(p)["limits"]) or "learned",
         ",".join(map(str, sorted(p.backoff_status_codes))),
         ("(placeholder) " if p.placeholder else "") + p.documented]
        for p in presets
    ]  # fmt: skip
    return "presets", ("name", "hosts", "limits", "backoff on", "documented"), rows


def _rich_table(table: Table) -> Any:
    from rich.table import Table as RichTable  # noqa: PLC0415  # the cli extra

    title, columns, rows = table
    out = RichTable(title=title)
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*row)
    return out


def print_table(table: Table) -> None:
    """A rich table on a terminal (when rich is installed), aligned plain text otherwise."""
    if sys.stdout.isatty():
        try:
            from rich.console import Console  # noqa: PLC0415
        except ImportError:
            pass
        else:
            Console().print(_rich_table(table))
            return
    title, columns, rows = table
    if not rows:
        print(f"{title}: nothing stored")
        return
    widths = [max(len(str(c)) for c in col) for col in zip(columns, *rows, strict=False)]
    print(title)
    for row in (list(columns), *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def watch(fetch: Callable[[], Sequence[RateLimitStatus]], interval: float, count: int) -> None:
    """Redraw the status table every ``interval`` s, ``count`` times (0: until Ctrl-C)."""
    from rich.console import Console  # noqa: PLC0415  # ImportError -> "install the cli extra"
    from rich.live import Live  # noqa: PLC0415

    console = Console()
    done = 0
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            live.update(_rich_table(status_table(fetch(), time.time())), refresh=True)
            done += 1
            if count and done >= count:
                break
            time.sleep(interval)


def safe_url(url: str) -> str:
    """A URL fit to print: no user, password or query string (API keys live there)."""
    try:
        parsed = httpx.URL(url)
    except Exception:  # an unparsable URL is shown by its scheme only
        return url.split(":", 1)[0] + "://..."
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def probe_report(url: str, code: int, obs: Observation, status: RateLimitStatus | None,
                 preset: Preset | None) -> dict[str, Any]:  # fmt: skip
    """What one response said, and what the limiter makes of it."""
    if status is None:
        decision = "nothing learned: requests go out unpaced until the API pushes back"
    elif status.cooldown_until:
        decision = f"pause this key for {status.cooldown_until - time.time():.1f}s (cooldown)"
    elif status.is_exceeded:
        wait = max(p.wait for p in status.policies)
        decision = f"the next request waits {wait:.2f}s"
    else:
        decision = "the next request goes now"
    if status is not None and status.reset_in > 0 and status.remaining > 0:
        decision += (f"; {_num(status.remaining)} left, paced over {status.reset_in:.1f}s "
                     f"(about {status.remaining / status.reset_in:.2f}/s)")  # fmt: skip
    return {
        "url": safe_url(url), "status_code": code,
        "format": obs.style or ("retry-after" if obs.retry_after is not None else "none"),
        "policies": [q.as_dict() for q in obs.quotas], "retry_after": obs.retry_after,
        "bucket": obs.bucket, "reason": obs.reason, "header_errors": obs.errors,
        "preset": preset.name if preset else None, "decision": decision,
    }  # fmt: skip


def print_probe(report: dict[str, Any]) -> None:
    """The probe report for a person."""
    print(f"{report['url']} -> HTTP {report['status_code']}")
    print(f"header format: {report['format']}")
    for q in report["policies"]:
        print(f"  policy {q['policy']!r}: limit {_num(q['limit'])}, remaining "
              f"{_num(q['remaining'])}, resets in {_secs(q['reset_after'])}, "
              f"window {_secs(q['window'])}")  # fmt: skip
    if report["retry_after"] is not None:
        print(f"  retry-after: {report['retry_after']:.1f}s")
    if report["header_errors"]:
        print(f"  ignored {report['header_errors']} malformed header value(s)")
    print(f"preset: {report['preset'] or 'none'}")
    print(f"limiter: {report['decision']}")
