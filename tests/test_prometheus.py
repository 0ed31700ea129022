"""Prometheus exposition: 2 real uvicorn workers, a real Prometheus, the dashboard's queries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prom_stack import Stack, require_prometheus, wait_for
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = json.loads((ROOT / "grafana" / "otel-ratelimit.json").read_text())
CALLS = {0: 60, 1: 30}  # requests to the "ietf" 20/s upstream and to the "429-only" 5/s one


def panel_queries(rate_interval: str = "1m") -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel, variables replaced as Grafana would."""
    found = []
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", rate_interval)
            found.append(
                (panel["title"], expr.replace("$job", ".*").replace("$server_address", ".*"))
            )
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_prometheus()
    s = Stack(tmp_path_factory.mktemp("prom"))
    try:
        s.start_app(workers=2)
        s.start_prometheus()
        s.traffic(CALLS)
        yield s
    finally:
        s.stop()


def _scrape(target: str) -> dict[str, list]:
    text = httpx.get(f"http://{target}/metrics", timeout=10).text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}  # parses or raises


def test_two_workers_count_every_request(stack):
    """Each worker's port is valid exposition text; their totals add up to what was sent."""
    targets = stack.worker_targets()
    assert len(targets) == 2
    per_worker = []
    for target in targets:
        families = _scrape(target)
        acquired = sum(s.value for s in families["ratelimit_requests"]
                       if s.name == "ratelimit_requests_total")  # fmt: skip
        retries = sum(s.value for s in families.get("ratelimit_retries", [])
                      if s.name == "ratelimit_retries_total")  # fmt: skip
        per_worker.append(acquired - retries)  # every attempt acquires; retries are attempts
    assert sum(per_worker) == sum(CALLS.values())
    assert all(n > 0 for n in per_worker), per_worker  # both workers served traffic


def test_asgi_endpoint_is_valid_exposition(stack):
    """The ASGI app mounted at /metrics answers parseable text with our metrics."""
    reply = httpx.get(stack.app_url + "/metrics", timeout=10)
    assert reply.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(reply.text)}
    assert {"ratelimit_requests", "ratelimit_wait_duration_seconds", "ratelimit_limit"} <= names


def test_prometheus_scrapes_the_totals(stack):
    """A real Prometheus, scraping both workers, sums ratelimit_requests_total correctly."""

    def total() -> float | None:
        result = stack.query(
            "sum(ratelimit_requests_total) - (sum(ratelimit_retries_total) or vector(0))"
        )
        return float(result[0]["value"][1]) if result else None

    assert wait_for(lambda: total() == sum(CALLS.values()), what="scraped total")
    by_outcome = stack.query("sum by (ratelimit_outcome) (ratelimit_requests_total)")
    assert {r["metric"]["ratelimit_outcome"] for r in by_outcome} >= {"acquired"}


def test_every_dashboard_query_parses_and_returns_data(stack, tmp_path):
    """Each panel's PromQL passes promtool and returns data from the real Prometheus."""
    queries = panel_queries()
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n  - name: dashboard\n    rules:\n" + "".join(
        f"      - record: panel_{i}\n        expr: {json.dumps(expr)}\n"
        for i, (_, expr) in enumerate(queries)))  # fmt: skip
    check = subprocess.run(["promtool", "check", "rules", str(rules)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    wait_for(lambda: stack.query("sum(ratelimit_requests_total)"), what="first scrape")
    time.sleep(3)  # a few scrapes after the traffic, so rate() has two points
    empty = [title for title, expr in queries if not stack.query(expr)]
    assert not empty, empty


def test_dashboard_uses_only_emitted_metric_names(stack):
    """Every metric a panel names is one the exporter really emits (compared with a scrape)."""
    emitted = set()
    for target in stack.worker_targets():
        for samples in _scrape(target).values():
            emitted |= {s.name for s in samples}
    used = set()
    for _, expr in panel_queries():
        used |= set(re.findall(r"\b(ratelimit_[a-z_]+)\{", expr))
    assert used and used <= emitted, used - emitted


def test_dashboard_is_importable_and_shared():
    """__inputs names a Prometheus data source; ${datasource}, job/server_address everywhere."""
    assert DASHBOARD["__inputs"][0]["pluginId"] == "prometheus"
    names = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert {"datasource", "job", "server_address"} <= names
    titles = {p["title"] for p in DASHBOARD["panels"]}
    for wanted in (
        "Wait time quantiles",
        "Wait time heatmap",
        "Requests by outcome",
        "Backoffs by reason",
        "429s per API",
        "Utilization",
        "Remaining vs limit",
        "Adaptive rate",
        "Queued requests",
        "Storage errors",
        "Storage fallback",
    ):
        assert wanted in titles
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job=~"$job"' in target["expr"]
            if "rate(" in target["expr"] or "increase(" in target["expr"]:
                assert "[$__rate_interval]" in target["expr"]


def test_start_http_server_and_wsgi_app(tmp_path):
    """In a fresh process: a port of its own with a target file, the WSGI app, a bad port."""
    code = f"""
import json, pathlib, httpx
from wsgiref.util import setup_testing_defaults
from otel_ratelimit import RateLimiter
from otel_ratelimit.prometheus import metrics_wsgi_app, start_http_server
from otel_ratelimit.testing import Upstream
from otel_ratelimit.errors import ConfigurationError
try:
    start_http_server(70000)
    raise AssertionError("port 70000 accepted")
except ConfigurationError as exc:
    assert "70000" in str(exc)
port = start_http_server(0, targets_dir={str(tmp_path)!r})
[target] = json.loads(next(pathlib.Path({str(tmp_path)!r}).glob("*.json")).read_text())
assert target["targets"] == [f"127.0.0.1:{{port}}"], target
with Upstream("ietf", limit=50, latency=0) as up, RateLimiter() as limiter:
    limiter.request("GET", up.url)
text = httpx.get(f"http://127.0.0.1:{{port}}/metrics").text
assert 'ratelimit_requests_total{{' in text, text
environ = {{}}
setup_testing_defaults(environ)
body = b"".join(metrics_wsgi_app(environ, lambda status, headers: None))
print(body.count(b"ratelimit_requests_total"))
"""
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 1
    assert not list(tmp_path.glob("*.json"))  # removed at exit


def test_limiters_before_and_after_install_share_instruments(tmp_path):
    """A limiter made before the exporter is installed and one made after both export."""
    code = """
import httpx
from otel_ratelimit import RateLimiter
from otel_ratelimit.testing import Upstream
early = RateLimiter()
from otel_ratelimit.prometheus import start_http_server
late = RateLimiter()
port = start_http_server(0)
with Upstream("ietf", limit=50, latency=0) as a, Upstream("ietf", limit=40, latency=0) as b:
    early.request("GET", a.url)
    late.request("GET", b.url)
    late.request("GET", b.url)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
for line in text.splitlines():
    if line.startswith(("ratelimit_limit{", "ratelimit_requests_total{")) and "acquired" in line \\
            or line.startswith("ratelimit_limit{"):
        print(line.rsplit(" ", 1)[1])
"""
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(float(v) for v in done.stdout.split()) == [1.0, 2.0, 40.0, 50.0]
