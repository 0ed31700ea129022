"""Which core runs: compiled by mypyc (setup.py) or pure Python, and that CI tests both.

scripts/test.sh installs the compiled core and runs the whole suite on it, then runs the core's
own tests again on a copy of the package without the compiled modules, with
``OTEL_RATELIMIT_EXPECT=pure``: the same decisions must come out of the same source either way.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest

import otel_ratelimit

CORE = ("adaptive", "core", "engine", "headers", "keystate", "line", "windows", "storage.memory")


def _modules() -> dict[str, str]:
    return {name: importlib.import_module(f"otel_ratelimit.{name}").__file__ or "" for name in CORE}


def test_the_flag_tells_which_core_runs() -> None:
    files = _modules()
    compiled = {name for name, path in files.items() if not path.endswith(".py")}
    # all or nothing: a half-compiled core would mean a broken build
    assert compiled in (set(), set(CORE)), files
    whole = compiled == set(CORE)
    assert whole is otel_ratelimit.COMPILED


@pytest.mark.skipif(os.environ.get("CI", "").lower() != "true", reason="CI checks the build")
def test_ci_runs_the_core_it_means_to() -> None:
    expect = os.environ.get("OTEL_RATELIMIT_EXPECT", "compiled")
    wanted = expect == "compiled"
    assert wanted is otel_ratelimit.COMPILED, (expect, _modules(), sys.path[:3])
