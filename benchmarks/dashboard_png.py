"""Render grafana/preview.png: the dashboard's panels, drawn from a real Prometheus.

    python benchmarks/dashboard_png.py [--seconds 60] [--out grafana/preview.png]

Starts two local rate-limited upstreams ("ietf" 20/s and "429-only" 5/s), the test app with
2 uvicorn workers calling them through limiters that share one SQLite file, and a real
Prometheus scraping every
worker each second. Traffic runs in waves for ``--seconds``; then every panel's PromQL from
grafana/otel-ratelimit.json is run through Prometheus' range API and plotted with matplotlib
(no Grafana server is needed). Needs the prometheus binary and the [bench] extra.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from prom_stack import Stack, wait_for  # noqa: E402


def _traffic(stack: Stack, seconds: float) -> None:
    end = time.monotonic() + seconds
    wave = 0
    while time.monotonic() < end:
        wave += 1
        burst = 40 if wave % 2 else 15  # alternate heavy and light waves
        stack.traffic({0: burst, 1: burst // 2}, concurrency=10)
        time.sleep(1)


def _label(template: str, metric: dict[str, str]) -> str:
    for name, value in metric.items():
        template = template.replace("{{" + name + "}}", value.replace("127.0.0.1:", "port "))
    return re.sub(r"\{\{\w+\}\}", "", template).strip()[:30] or "total"


def _plot_panel(ax, stack: Stack, panel: dict, start: float, end: float) -> None:
    ax.set_title(panel["title"], fontsize=10)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("seconds into the run", fontsize=7)
    ax.set_ylabel(panel["fieldConfig"]["defaults"]["unit"], fontsize=7)
    step = 2.0
    for target in panel["targets"]:
        expr = target["expr"].replace("$__rate_interval", "10s")
        expr = expr.replace("$job", ".*").replace("$server_address", ".*")
        series = stack.query_range(expr, start, end, step)
        if panel["type"] == "heatmap":  # buckets are cumulative: per-bucket counts, as Grafana
            rows = sorted(series, key=lambda s: float(s["metric"]["le"]))
            grid = [[float(v) for _, v in s["values"]] for s in rows]
            width = min((len(r) for r in grid), default=0)
            if width:
                lows = [[0.0] * width, *grid]
                cells = [[b - a for a, b in zip(low[:width], high[:width], strict=True)]
                         for low, high in zip(lows, grid, strict=False)]  # fmt: skip
                ax.imshow(cells, aspect="auto", origin="lower", cmap="inferno",
                          extent=(0, width * step, -0.5, len(rows) - 0.5))  # fmt: skip
                ax.set_yticks(range(len(rows)))
                ax.set_yticklabels([s["metric"]["le"] for s in rows], fontsize=6)
                ax.set_ylabel("wait <= s", fontsize=7)
            continue
        for s in series:
            xs = [float(t) - start for t, _ in s["values"]]
            ys = [float(v) for _, v in s["values"]]
            ax.plot(xs, ys, label=_label(target["legendFormat"], s["metric"]))
    if ax.lines:
        ax.legend(fontsize=6, loc="upper left")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", default=str(ROOT / "grafana" / "preview.png"))
    args = parser.parse_args()
    dashboard = json.loads((ROOT / "grafana" / "otel-ratelimit.json").read_text())
    stack = Stack(Path(tempfile.mkdtemp(prefix="dashboard-")))
    try:
        stack.start_app(workers=2, storage=f"sqlite:///{stack.dir / 'limits.db'}")
        stack.start_prometheus()
        start = time.time()
        worker = threading.Thread(target=_traffic, args=(stack, args.seconds))
        worker.start()
        worker.join()
        time.sleep(5)  # the last scrapes
        end = time.time()
        wait_for(lambda: stack.query("sum(ratelimit_requests_total)"), what="data")
        panels = dashboard["panels"]
        cols = 3
        fig, axes = plt.subplots((len(panels) + cols - 1) // cols, cols, figsize=(16, 14))
        for ax, panel in zip(axes.flat, panels, strict=False):
            _plot_panel(ax, stack, panel, start, end)
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
        fig.suptitle(
            "otel-ratelimit dashboard: real Prometheus data, 2 uvicorn workers sharing SQLite,"
            " 2 local APIs (20/s with headers; 5/s that only answers 429)"
        )
        fig.tight_layout()
        fig.savefig(args.out, dpi=80)
        total = stack.query("sum(ratelimit_requests_total)")[0]["value"][1]
        print(f"wrote {args.out}: {total} requests counted by Prometheus")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
