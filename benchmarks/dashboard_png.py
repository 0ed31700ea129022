"""Render grafana/preview.png: the dashboard's panels, drawn from a real Prometheus.

    python benchmarks/dashboard_png.py [--seconds 60] [--out grafana/preview.png]

Starts two local rate-limited upstreams ("ietf" 20/s and "429-only" 5/s), the test app with
2 uvicorn workers calling them through the limiter, and a real Prometheus scraping every
worker each second. Traffic runs in waves for ``--seconds``; then every panel's PromQL from
grafana/otel-ratelimit.json is run through Prometheus' range API and plotted with matplotlib
(no Grafana server is needed). Needs the prometheus binary and the [bench] extra.
"""

from __future__ import annotations

import argparse
import json
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


def _plot_panel(ax, stack: Stack, panel: dict, start: float, end: float) -> None:
    ax.set_title(panel["title"], fontsize=10)
    step = 2.0
    for target in panel["targets"]:
        expr = target["expr"].replace("$__rate_interval", "10s")
        expr = expr.replace("$job", ".*").replace("$server_address", ".*")
        series = stack.query_range(expr, start, end, step)
        if panel["type"] == "heatmap":
            rows = sorted(series, key=lambda s: float(s["metric"]["le"]))
            grid = [[float(v) for _, v in s["values"]] for s in rows]
            width = min(len(r) for r in grid) if grid else 0
            if width:
                ax.imshow([r[:width] for r in grid], aspect="auto", origin="lower", cmap="inferno")
                ax.set_yticks(range(len(rows)))
                ax.set_yticklabels([s["metric"]["le"] for s in rows], fontsize=6)
            continue
        for s in series:
            label = target["legendFormat"]
            for name, value in s["metric"].items():
                label = label.replace("{{" + name + "}}", value.replace("127.0.0.1:", ":"))
            xs = [float(t) - start for t, _ in s["values"]]
            ax.plot(xs, [float(v) for _, v in s["values"]], label=label[:28])
    if panel["type"] != "heatmap" and ax.lines:
        ax.legend(fontsize=6, loc="upper left")
    ax.tick_params(labelsize=7)
    ax.set_xlabel(panel["fieldConfig"]["defaults"]["unit"] + " / seconds into the run", fontsize=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", default=str(ROOT / "grafana" / "preview.png"))
    args = parser.parse_args()
    dashboard = json.loads((ROOT / "grafana" / "otel-ratelimit.json").read_text())
    stack = Stack(Path(tempfile.mkdtemp(prefix="dashboard-")))
    try:
        stack.start_app(workers=2)
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
        fig.suptitle("otel-ratelimit dashboard (real Prometheus data, 2 workers, 2 local APIs)")
        fig.tight_layout()
        fig.savefig(args.out, dpi=80)
        total = stack.query("sum(ratelimit_requests_total)")[0]["value"][1]
        print(f"wrote {args.out}: {total} requests counted by Prometheus")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
