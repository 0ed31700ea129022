"""Prometheus exposition of the limiter's metrics (opentelemetry-exporter-prometheus).

Importing this module opts in: unless an OpenTelemetry SDK ``MeterProvider`` is already the
global one, it installs one whose ``PrometheusMetricReader`` feeds prometheus_client's default
registry, so every ``RateLimiter`` using the global provider is exported. Then either mount
``metrics_asgi_app`` / ``metrics_wsgi_app`` (the middlewares do it at ``metrics_path``), or
call ``start_http_server(port)`` for a port of its own.

Several worker processes (gunicorn/uvicorn ``-w N``): each worker counts its own requests, so
a ``/metrics`` answered by whichever worker the request lands on would jump between their
counts. Each worker therefore serves its own port (``start_http_server(0, targets_dir=...)``)
and writes a Prometheus ``file_sd_configs`` target file naming it, with a ``worker`` label;
Prometheus scrapes every worker and ``sum(rate(...))`` adds them up, through restarts too.
prometheus_client's multiprocess mode is not used: the OpenTelemetry exporter does not
support it.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

try:
    import prometheus_client
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"{exc.name} is not installed: pip install 'otel-ratelimit[prometheus]'"
    ) from None

__all__ = ["install", "meter_provider", "metrics_asgi_app", "metrics_wsgi_app",
           "start_http_server"]  # fmt: skip

_lock = threading.Lock()
_provider: MeterProvider | None = None


def install() -> MeterProvider:
    """The MeterProvider exporting to Prometheus (made once per process).

    It becomes the global provider when no SDK provider is set yet; otherwise pass it to
    ``RateLimiter(meter_provider=...)`` yourself.
    """
    global _provider  # noqa: PLW0603  # one exporter per process: a registry accepts one
    with _lock:
        if _provider is None:
            _provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
            if not isinstance(metrics.get_meter_provider(), MeterProvider):
                metrics.set_meter_provider(_provider)
        return _provider


def meter_provider() -> MeterProvider:
    """The provider whose metrics the endpoints of this module serve."""
    return install()


def start_http_server(
    port: int = 0,
    addr: str = "127.0.0.1",
    *,
    targets_dir: str | os.PathLike[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> int:
    """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns the port (0: any free).

    With ``targets_dir``, also write ``<targets_dir>/otel-ratelimit-<pid>.json`` for
    Prometheus' ``file_sd_configs`` (labels: ``worker`` = pid, plus ``labels``); it is removed
    when the process exits.
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be an integer 0..65535, got {port!r}")
    install()
    server, _ = prometheus_client.start_http_server(port, addr)
    bound: int = server.server_port
    if targets_dir is not None:
        _write_target(Path(targets_dir), addr, bound, dict(labels or {}))
    return bound


def _write_target(directory: Path, addr: str, port: int, labels: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"otel-ratelimit-{os.getpid()}.json"
    target = [{"targets": [f"{addr}:{port}"], "labels": {"worker": str(os.getpid()), **labels}}]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(target))
    temporary.replace(path)  # Prometheus never reads half a file
    atexit.register(path.unlink, missing_ok=True)


install()
metrics_asgi_app: Any = prometheus_client.make_asgi_app()
"""An ASGI app answering with the Prometheus exposition text of this process."""
metrics_wsgi_app: Any = prometheus_client.make_wsgi_app()
"""A WSGI app answering with the Prometheus exposition text of this process."""
