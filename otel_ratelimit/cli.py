"""The ``otel-ratelimit`` console script: look at, probe and clear what the limiters share.

Exit codes, for scripts:
  0  done
  1  not found (no state for --endpoint, unknown preset)
  2  usage or configuration error (bad arguments, bad storage URL, missing extra)
  3  the storage cannot be reached
  4  the probed URL cannot be reached
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from . import cli_render as render
from .errors import ConfigurationError, StorageError
from .headers import parse_headers
from .limiter import RateLimiter, _host
from .storage import redact_url

__all__ = ["EXIT_NOT_FOUND", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "main"]

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_PROBE_FAILED = 0, 1, 2, 3, 4
ENV = "OTEL_RATELIMIT_STORAGE"

_EPILOG = f"""\
storage:
  Every command but probe and presets reads the store your applications share:
  --storage URL, or the {ENV} environment variable. URLs: sqlite:///relative.db,
  sqlite:////abs/path.db, redis://host:6379/0, rediss://:password@host:6380/0,
  redis+cluster://host:7000. Passwords are never printed.

exit codes:
  0 done   1 not found   2 usage or configuration error
  3 storage unreachable   4 probed URL unreachable

examples:
  otel-ratelimit --storage redis://localhost:6379/0 status
  OTEL_RATELIMIT_STORAGE=sqlite:///ratelimit.db otel-ratelimit status --json
  otel-ratelimit status --endpoint api.github.com
  otel-ratelimit probe https://api.github.com/rate_limit -H "Authorization: Bearer $TOKEN"
  otel-ratelimit watch --interval 1
  otel-ratelimit clear --endpoint api.github.com
"""


class _Exit(Exception):
    """Stop with a message on stderr and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-ratelimit",
        description="Look at, probe and clear the rate-limit state that otel_ratelimit\n"
        "limiters share: limits, remaining quota, resets, cooldowns, learned rates.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--storage", metavar="URL", default=os.environ.get(ENV),
                        help=f"the shared store (default: ${ENV})")  # fmt: skip
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, purpose: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=purpose, description=purpose)

    status = command("status", "every key's limits, remaining quota, reset, utilization, "
                     "cooldown and adaptive rate")  # fmt: skip
    status.add_argument("--endpoint", metavar="HOST", help="only this host (or URL)")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    probe = command("probe", "send one request and show what the limiter reads from the response")
    probe.add_argument("url", metavar="URL", help="the URL to request (its query is never printed)")
    probe.add_argument("-X", "--method", default="GET", help="HTTP method (default GET)")
    probe.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                       help="a request header (repeatable); values are never printed")  # fmt: skip
    probe.add_argument("--timeout", type=float, default=10.0, metavar="S",
                       help="seconds to wait for the answer (default 10)")  # fmt: skip
    probe.add_argument("--json", action="store_true", help="machine-readable output")

    clear = command("clear", "forget the state of one endpoint, or of all")
    clear.add_argument("--endpoint", metavar="HOST", help="only this host (or URL)")

    watch = command("watch", "a live table of every key, refreshed")
    watch.add_argument("--interval", type=_positive, default=1.0, metavar="S",
                       help="seconds between refreshes (default 1)")  # fmt: skip
    watch.add_argument("--count", type=int, default=0, metavar="N",
                       help="stop after N refreshes (default: until Ctrl-C)")  # fmt: skip

    presets = command("presets", "the registry of per-API presets")
    presets.add_argument("name", nargs="?", help="only this preset")
    presets.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args))
    except _Exit as stop:
        print(f"otel-ratelimit: {stop}", file=sys.stderr)
        return stop.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `otel-ratelimit status | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _fail(code: int, message: str) -> NoReturn:
    raise _Exit(code, message)


def _limiter(args: argparse.Namespace) -> RateLimiter:
    url = args.storage
    if not url:
        _fail(EXIT_USAGE, f"no storage given: pass --storage URL or set {ENV}")
    try:
        # unwrapped: the CLI reports the shared store as it is, never a local fallback
        limiter = RateLimiter(storage=url, on_storage_error="raise")
        limiter.storage.keys()  # reach the store now, not halfway through the output
    except (ConfigurationError, StorageError) as exc:
        code = EXIT_UNREACHABLE if _unreachable(exc) else EXIT_USAGE
        _fail(code, str(exc).replace(url, redact_url(url)))
    return limiter


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` came from a store that did not answer (not from a bad URL)."""
    if isinstance(exc, StorageError):
        return True
    seen: BaseException | None = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, OSError) or type(seen).__name__ in ("ConnectionError",
                                                                  "TimeoutError"):  # fmt: skip
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _keys(limiter: RateLimiter, endpoint: str | None) -> list[str]:
    try:
        keys = limiter.storage.keys()
    except StorageError as exc:
        _fail(EXIT_UNREACHABLE, str(exc))
    if endpoint is None:
        return keys
    try:
        key = _host(endpoint)
    except ConfigurationError as exc:
        _fail(EXIT_USAGE, str(exc))
    if key not in keys:
        _fail(EXIT_NOT_FOUND, f"nothing stored for {key!r}")
    return [key]


def _statuses(limiter: RateLimiter, endpoint: str | None) -> list[Any]:
    found = []
    for key in _keys(limiter, endpoint):
        try:
            status = limiter.get_status(key)
        except StorageError as exc:
            _fail(EXIT_UNREACHABLE, str(exc))
        if status is not None:
            found.append(status)
    return found


def _status(args: argparse.Namespace) -> int:
    with _limiter(args) as limiter:
        statuses = _statuses(limiter, args.endpoint)
        if args.json:
            print(json.dumps([render.status_dict(s) for s in statuses], indent=2))
        else:
            render.print_table(render.status_table(statuses, time.time()))
    if args.endpoint and not statuses:
        _fail(EXIT_NOT_FOUND, f"nothing is known now of {args.endpoint!r}")
    return EXIT_OK


def _clear(args: argparse.Namespace) -> int:
    with _limiter(args) as limiter:
        keys = _keys(limiter, args.endpoint)
        try:
            limiter.clear(args.endpoint)
        except StorageError as exc:
            _fail(EXIT_UNREACHABLE, str(exc))
    what = (args.endpoint and f"{keys[0]!r}") or f"{len(keys)} key(s)"
    print(f"cleared {what}")
    return EXIT_OK


def _watch(args: argparse.Namespace) -> int:
    with _limiter(args) as limiter:
        try:
            render.watch(lambda: _statuses(limiter, None), args.interval, args.count)
        except ImportError:
            _fail(EXIT_USAGE, "watch needs rich: pip install 'otel-ratelimit[cli]'")
    return EXIT_OK


def _probe(args: argparse.Namespace) -> int:
    headers = {}
    for line in args.header:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            _fail(EXIT_USAGE, f"a header must look like 'Name: value', got {name.strip()!r}")
        headers[name.strip()] = value.strip()
    # the probe keeps nothing (the shared store is not touched) and sends exactly one request
    with RateLimiter(retry=False) as limiter:
        try:
            response = limiter.request(args.method.upper(), args.url, headers=headers,
                                       timeout=args.timeout)  # fmt: skip
        except ConfigurationError as exc:
            _fail(EXIT_USAGE, str(exc))
        except StorageError as exc:
            _fail(EXIT_UNREACHABLE, str(exc))
        except Exception as exc:  # httpx errors: refused, DNS, TLS, timeout, bad URL
            _fail(EXIT_PROBE_FAILED, f"cannot reach {render.safe_url(args.url)}: "
                  f"{type(exc).__name__}: {exc}")  # fmt: skip
        obs = parse_headers(response.headers, now=time.time(), headers_map=None)
        status = limiter.get_status(args.url)
        report = render.probe_report(args.url, response.status_code, obs, status,
                                     limiter.preset_for(args.url))  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render.print_probe(report)
    return EXIT_OK


def _presets(args: argparse.Namespace) -> int:
    limiter = RateLimiter()
    chosen = [p for n, p in sorted(limiter.presets.items()) if args.name in (None, n)]
    if not chosen:
        _fail(EXIT_NOT_FOUND, f"unknown preset {args.name!r}; known: "
              f"{', '.join(sorted(limiter.presets))}")  # fmt: skip
    if args.json:
        print(json.dumps([render.preset_dict(p) for p in chosen], indent=2))
    else:
        render.print_table(render.preset_table(chosen))
    return EXIT_OK


_COMMANDS = {"status": _status, "probe": _probe, "clear": _clear, "watch": _watch,
             "presets": _presets}  # fmt: skip

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
