"""Builds the compiled core: the decision path (engine, header parsing, the request flow and
the in-memory store) compiled to C with mypyc, from the same typed Python source.

pyproject.toml holds the project's metadata; this file only adds the extension modules.
The compiled core is optional: without a C compiler, or with ``OTEL_RATELIMIT_PURE=1`` in the
environment at install time, the package installs as the pure Python it is written in, and
behaves the same (``otel_ratelimit.COMPILED`` says which one is running).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

try:
    from mypyc.build import mypycify
except ImportError:  # built without mypy (build isolation off): pure Python
    mypycify = None

# Modules on every request's path, with no httpx or OpenTelemetry classes of their own. Not
# limits.py: compiled classes check argument types before __post_init__ could name a bad value.
COMPILED = [
    "otel_ratelimit/adaptive.py",
    "otel_ratelimit/core.py",
    "otel_ratelimit/engine.py",
    "otel_ratelimit/headers/__init__.py",
    "otel_ratelimit/headers/_context.py",
    "otel_ratelimit/headers/_ietf.py",
    "otel_ratelimit/headers/_model.py",
    "otel_ratelimit/headers/_reset.py",
    "otel_ratelimit/headers/_table.py",
    "otel_ratelimit/keystate.py",
    "otel_ratelimit/line.py",
    "otel_ratelimit/storage/memory.py",
    "otel_ratelimit/windows.py",
]


class OptionalBuildExt(build_ext):
    """Compile when possible; on any failure, install pure Python instead of half a build."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure means: install pure Python
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            print(f"otel_ratelimit: compiled core not built ({exc}); pure Python", file=sys.stderr)


def extensions() -> list[object]:
    if os.environ.get("OTEL_RATELIMIT_PURE") == "1" or mypycify is None:
        return []
    try:  # other modules are read for their types only (their checks are scripts/test.sh's)
        return list(mypycify(["--follow-imports=silent", *COMPILED], opt_level="3"))
    except (Exception, SystemExit) as exc:  # mypyc refused the source: install pure Python
        print(f"otel_ratelimit: compiled core not built ({exc!r}); pure Python", file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
