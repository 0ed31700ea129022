"""A real local HTTP API that enforces a hidden rate limit, for tests, examples and benchmarks.

    with Upstream("github", limit=5, window=1.0) as upstream:
        httpx.get(upstream.url + "/anything")  # 200 with x-ratelimit-* headers, 429 when over

Admission is decided under a lock when a request arrives, before the simulated latency, so
the server counts in arrival order as real APIs do. ``GET /_stats`` returns the counters and
is never rate limited. Standard library only.

Modules: ``_upstream`` (the hidden limit), ``_styles`` (each vendor's headers for a decision),
``_server`` (the threaded HTTP server).
"""

from __future__ import annotations

from ._upstream import Upstream

__all__ = ["Upstream"]
