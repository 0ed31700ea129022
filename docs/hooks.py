"""MkDocs hook: serve files that live outside docs/ without copying them into it.

- the Grafana preview and dashboard JSON (kept current by the code that makes them);
- every ``benchmarks/results/*.md`` as a page under ``benchmarks/``, listed in the nav under
  "Benchmarks", so a new result file shows up on the site without editing docs/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# site path -> file in the repository
EXTERNAL = {
    "assets/grafana-preview.png": "grafana/preview.png",
    "assets/otel-ratelimit.json": "grafana/otel-ratelimit.json",
}


def _results() -> list[Path]:
    return sorted(RESULTS.glob("*.md"))


def _title(path: Path) -> str:
    first = path.read_text(encoding="utf-8").lstrip().splitlines()[0]
    return first.lstrip("#").strip() if first.startswith("#") else path.stem


def on_config(config: Any, **_: Any) -> Any:
    """Expand the nav's "Benchmarks" entry into the summary plus one page per result file."""
    nav = config.get("nav") or []
    for i, entry in enumerate(nav):
        if isinstance(entry, dict) and entry.get("Benchmarks") == "benchmarks/index.md":
            pages: list[Any] = [{"Summary and how to run": "benchmarks/index.md"}]
            pages += [{_title(p): f"benchmarks/{p.name}"} for p in _results()]
            nav[i] = {"Benchmarks": pages}
    return config


def on_files(files: Files, config: Any, **_: Any) -> Files:
    """Add the Grafana files and the benchmark result pages to the site's files."""
    for uri, source in EXTERNAL.items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / source)))
    for path in _results():
        text = path.read_text(encoding="utf-8")
        files.append(File.generated(config, f"benchmarks/{path.name}", content=text))
    return files
