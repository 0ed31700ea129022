#!/usr/bin/env bash
# README command 2: install everything the tests need, then run lint, types and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# System servers the integration tests start on loopback (Debian packages), only when missing.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)  # also brings promtool
# the docs test renders the built site in headless Chromium (tests/test_docs.py)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
    echo "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -e '.[test]'  # builds the compiled core in place (setup.py)

ruff check .
ruff format --check .
mypy
pytest "$@"

# The core's own tests once more on pure Python, as it installs without a C compiler: a copy
# of the package without its compiled modules (tests/test_compiled.py checks which one ran).
if (($# == 0)); then
    pure=$(mktemp -d)
    trap 'rm -rf "$pure"' EXIT
    cp -r otel_ratelimit tests benchmarks pyproject.toml "$pure"
    find "$pure/otel_ratelimit" -name '*.so' -delete
    (cd "$pure" && OTEL_RATELIMIT_EXPECT=pure python -m pytest -q -p no:cacheprovider \
        tests/test_compiled.py tests/test_engine*.py tests/test_headers*.py tests/test_limits.py \
        tests/test_storage.py tests/test_transport.py tests/test_line_real_server.py)
fi
