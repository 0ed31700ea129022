"""MkDocs hook: serve files that live outside docs/ without copying them into it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
# site path -> file in the repository (the single copy that the code and tests keep current)
EXTERNAL = {
    "assets/grafana-preview.png": "grafana/preview.png",
    "assets/otel-ratelimit.json": "grafana/otel-ratelimit.json",
}


def on_files(files: Files, config: Any, **_: Any) -> Files:
    """Add the Grafana preview and dashboard to the site's files."""
    for uri, source in EXTERNAL.items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / source)))
    return files
