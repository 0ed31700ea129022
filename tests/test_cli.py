"""The console script, run as a subprocess against a real Redis holding a real limiter's state."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

from otel_ratelimit import RateLimiter
from otel_ratelimit.cli import main
from otel_ratelimit.testing import Upstream

SCRIPT = str(Path(sys.executable).with_name("otel-ratelimit"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(*args: str, storage: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script with ``OTEL_RATELIMIT_STORAGE`` set to ``storage``."""
    env = {k: v for k, v in os.environ.items() if k != "OTEL_RATELIMIT_STORAGE"}
    if storage is not None:
        env["OTEL_RATELIMIT_STORAGE"] = storage
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60,
                          env=env, check=False)  # fmt: skip


@pytest.fixture
def store(redis_url: str) -> Iterator[str]:
    """A Redis database of its own, emptied before and after."""
    url = f"{redis_url}/9"
    with RateLimiter(storage=url) as limiter:
        limiter.clear()
    yield url
    with RateLimiter(storage=url) as limiter:
        limiter.clear()


@pytest.fixture
def state(store: str) -> Iterator[tuple[str, RateLimiter, str, str]]:
    """State written by a real limiter: a GitHub-style key and a key that only answers 429."""
    with Upstream("github", limit=60, window=30.0) as github, \
            Upstream("429-only", limit=2, window=1.0) as silent:  # fmt: skip
        limiter = RateLimiter(storage=store)
        for _ in range(3):
            assert limiter.request("GET", github.url + "/repos").status_code == 200
        with limiter.client(base_url=silent.url) as client:
            for _ in range(3):
                client.get("/notify")
        assert silent.stats()["rejected"] >= 1  # so the key holds a cooldown or learned rate
        yield store, limiter, github.url.split("//")[1], silent.url.split("//")[1]
        limiter.close()


def test_status_lists_every_key_as_the_limiter_sees_it(state):
    """`status` shows both keys; the GitHub key's row has its limit and remaining."""
    store, _, github, silent = state
    done = run("status", storage=store)
    assert done.returncode == 0, done.stderr
    assert github in done.stdout and silent in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith(github))
    assert row.split()[1:5] == ["default", "header", "60", "57"], row
    assert "limit" in done.stdout and "cooldown" in done.stdout and "rate/s" in done.stdout


def test_status_json_has_limits_remaining_reset_and_rate(state):
    """`status --json` is a list of statuses with every field a script needs."""
    store, limiter, github, silent = state
    done = run("--storage", store, "status", "--json")
    assert done.returncode == 0, done.stderr
    found = {s["endpoint"]: s for s in json.loads(done.stdout)}
    assert set(found) == {github, silent}
    gh = found[github]
    assert (gh["limit"], gh["remaining"]) == (60.0, 57.0)
    assert gh["policies"][0]["source"] == "header" and gh["policies"][0]["name"] == "default"
    assert gh["reset_time"] > time.time() and 0 < gh["reset_in"] <= 31
    assert abs(gh["utilization"] - 0.05) < 1e-9
    mine = limiter.get_status(silent)
    assert found[silent]["rate"] == mine.rate
    assert found[silent]["cooldown_until"] == pytest.approx(mine.cooldown_until, abs=1)


def test_status_endpoint_filters_and_unknown_is_exit_1(state):
    """--endpoint accepts a host or URL; a host with no state exits 1 with a message."""
    store, _, github, _ = state
    done = run("status", "--endpoint", f"http://{github}/x", "--json", storage=store)
    assert done.returncode == 0, done.stderr
    assert [s["endpoint"] for s in json.loads(done.stdout)] == [github]
    missing = run("status", "--endpoint", "api.nowhere.example", storage=store)
    assert missing.returncode == 1
    assert "nothing stored for 'api.nowhere.example'" in missing.stderr


def test_clear_one_endpoint_then_all(state):
    """`clear --endpoint` forgets one key (the other stays); `clear` forgets the rest."""
    store, limiter, github, silent = state
    done = run("clear", "--endpoint", github, storage=store)
    assert done.returncode == 0, done.stderr
    assert limiter.storage.keys() == [silent]
    assert run("clear", "--endpoint", github, storage=store).returncode == 1  # already gone
    done = run("clear", storage=store)
    assert done.returncode == 0 and "cleared 1 key(s)" in done.stdout
    assert limiter.storage.keys() == []


def test_storage_errors_have_their_own_exit_codes(redis_url):
    """Bad URL -> 2, unreachable Redis -> 3 (password redacted), no storage at all -> 2."""
    bad = run("status", storage="bogus://somewhere")
    assert bad.returncode == 2 and "storage URL must start with" in bad.stderr
    port = free_port()
    down = run("--storage", f"redis://:hunter2@127.0.0.1:{port}/0", "status")
    assert down.returncode == 3, down.stderr
    assert "Connection refused" in down.stderr or "connect" in down.stderr.lower()
    assert "hunter2" not in down.stderr + down.stdout and "***" in down.stderr
    none = run("status")
    assert none.returncode == 2 and "OTEL_RATELIMIT_STORAGE" in none.stderr
    assert "Traceback" not in bad.stderr + down.stderr + none.stderr


def test_sqlite_store_works_too(tmp_path):
    """The same commands read an SQLite store written by another limiter."""
    url = f"sqlite:///{tmp_path}/rl.db"
    with Upstream("openai", limit=20, window=5.0) as api, RateLimiter(storage=url) as limiter:
        limiter.request("GET", api.url + "/v1/models")
        done = run("status", "--json", storage=url)
    assert done.returncode == 0, done.stderr
    (status,) = json.loads(done.stdout)
    assert {p["name"] for p in status["policies"]} == {"requests", "tokens"}


def test_probe_reports_format_policies_and_decision():
    """`probe` sends one request and names the format, the policies and the limiter's plan."""
    with Upstream("openai", limit=10, window=5.0) as api:
        done = run("probe", api.url + "/v1/models?api_key=sk-secret-1",
                   "-H", "Authorization: Bearer sk-secret-2")  # fmt: skip
        assert api.stats()["total"] == 1
        as_json = run("probe", api.url + "/v1/models", "--json")
    assert done.returncode == 0, done.stderr
    assert "header format: openai" in done.stdout
    assert "policy 'requests': limit 10, remaining 9" in done.stdout
    assert "the next request goes now" in done.stdout and "paced over" in done.stdout
    assert "sk-secret" not in done.stdout + done.stderr
    report = json.loads(as_json.stdout)
    assert report["format"] == "openai" and report["status_code"] == 200
    assert {q["policy"] for q in report["policies"]} == {"requests", "tokens"}


def test_probe_of_an_exhausted_api_says_it_waits():
    """A 429 with Retry-After is reported as a cooldown."""
    with Upstream("retry-after-seconds", limit=0, window=5.0) as api:
        done = run("probe", api.url + "/x")
    assert done.returncode == 0, done.stderr
    assert "HTTP 429" in done.stdout and "retry-after: " in done.stdout
    assert "cooldown" in done.stdout


def test_probe_unreachable_is_exit_4_and_bad_header_exit_2():
    """A refused connection exits 4; a malformed -H exits 2."""
    down = run("probe", f"http://127.0.0.1:{free_port()}/x")
    assert down.returncode == 4 and "cannot reach" in down.stderr
    bad = run("probe", "http://127.0.0.1:1/x", "-H", "no colon here")
    assert bad.returncode == 2 and "Name: value" in bad.stderr


def test_presets_table_json_and_unknown():
    """`presets` lists the registry; one by name as JSON; an unknown name exits 1."""
    table = run("presets")
    assert table.returncode == 0 and "notion" in table.stdout and "api.github.com" in table.stdout
    (notion,) = json.loads(run("presets", "notion", "--json").stdout)
    assert notion["base_url"] == "https://api.notion.com/v1" and notion["limits"]
    unknown = run("presets", "nope")
    assert unknown.returncode == 1 and "known:" in unknown.stderr


def test_help_reads_well(capsys):
    """--help lists the commands, the storage variable and the exit codes."""
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for word in ("status", "probe", "clear", "watch", "presets", "OTEL_RATELIMIT_STORAGE",
                 "exit codes", "3 storage unreachable"):  # fmt: skip
        assert word in text
    usage = run("status", "--bogus")
    assert usage.returncode == 2 and "unrecognized arguments" in usage.stderr


def test_watch_redraws_a_live_table_in_a_terminal(state):
    """Under a pseudo-terminal `watch` redraws; a key written meanwhile shows up."""
    store, limiter, github, silent = state
    env = {**os.environ, "OTEL_RATELIMIT_STORAGE": store, "COLUMNS": "160", "LINES": "40",
           "TERM": "xterm-256color"}  # fmt: skip
    env.pop("NO_COLOR", None)
    primary, secondary = pty.openpty()
    command = [SCRIPT, "watch", "--interval", "0.4", "--count", "8"]
    proc = subprocess.Popen(command, stdin=secondary, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with Upstream("reddit", limit=30, window=20.0) as later:
        time.sleep(1.0)  # a few redraws without the new key
        limiter.request("GET", later.url + "/r")
        assert proc.wait(timeout=30) == 0
    reader.join(5)
    os.close(primary)
    raw = b"".join(chunks).decode(errors="replace")
    text = ANSI.sub("", raw)
    assert "\x1b[" in raw  # drawn for a terminal, with cursor movement
    frames = text.count("key(s) at")
    assert frames >= 8, text[-2000:]
    assert github in text and silent in text
    assert "remaining" in text and "cooldown" in text
    new_key = later.url.split("//")[1]
    first_with_new = text.find(new_key)
    assert first_with_new > text.find("key(s) at")  # absent from the first frame
    assert "3 key(s) at" in text and "2 key(s) at" in text


def test_watch_needs_a_positive_interval():
    """A zero interval is a usage error, exit 2."""
    done = run("watch", "--interval", "0", storage="memory")
    assert done.returncode == 2 and "must be a number of seconds > 0" in done.stderr


def test_watch_exits_3_when_redis_goes_away(redis_factory):
    """A store that stops answering mid-watch ends it with exit 3 and a clear message."""
    port, server = redis_factory()
    url = f"redis://127.0.0.1:{port}/0"
    with Upstream("github", limit=50, window=5.0) as api, RateLimiter(storage=url) as limiter:
        limiter.request("GET", api.url + "/x")
    env = {**os.environ, "OTEL_RATELIMIT_STORAGE": url}
    proc = subprocess.Popen([SCRIPT, "watch", "--interval", "0.2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    time.sleep(1.5)
    server.kill()
    server.wait(5)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert "Redis storage" in err and "failed" in err and "Traceback" not in err
    assert "1 key(s) at" in out
