"""Fuzzed storage URLs: a store or a ConfigurationError naming the URL, never a password."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from redis.connection import parse_url

from otel_ratelimit import ConfigurationError
from otel_ratelimit.engine import KeyConfig
from otel_ratelimit.limits import Limit
from otel_ratelimit.storage import StorageURL, open_storage, parse_storage_url, redact_url

PASSWORD = "Pw-PLANTED-9f3a"
CONFIG = KeyConfig(limits=(Limit(5, 1.0),), adaptive=None, backoff_status_codes=frozenset())
SCHEMES = ["memory", "memory://", "sqlite://", "sqlite:///", "sqlite:////", "redis://",
           "rediss://", "redis+cluster://", "rediss+cluster://", "REDIS://", "unix://",
           "postgres://", "redis:/", "redis:", ""]  # fmt: skip
URLISH = st.text(alphabet="ab:/@?&=%[]._-#09 é\x00\t\\", max_size=40)
PASSWORDS = st.sampled_from([PASSWORD, f"{PASSWORD}@x", f"a/{PASSWORD}", f"{PASSWORD}:y",
                             f"%40{PASSWORD}", f"{PASSWORD}?x=1"])  # fmt: skip
HOSTS = st.sampled_from(["127.0.0.1", "localhost", "[::1]", "[::zz]", "", "h_st", "ex.com",
                         "-bad", "bad-", "ünï", "a" * 300, "h..x", "[", "]"])  # fmt: skip
PORTS = st.one_of(st.none(), st.integers(-5, 70_000).map(str), st.sampled_from(["", "x", "6379a"]))


@st.composite
def redis_urls(draw: st.DrawFn) -> str:
    """Near-valid Redis URLs: real shapes with a password and odd hosts, ports, dbs, options."""
    scheme = draw(st.sampled_from(["redis", "rediss", "redis+cluster", "rediss+cluster"]))
    user = draw(st.sampled_from(["", "user", "default"]))
    auth = f"{user}:{draw(PASSWORDS)}@" if draw(st.booleans()) else ""
    port = draw(PORTS)
    db = draw(st.sampled_from(["", "/", "/0", "/3", "/x", "/0/1", "/99999999"]))
    query = draw(st.sampled_from(["", "?socket_timeout=1", "?socket_timeout=abc", "?db=2",
                                  f"?password={PASSWORD}", "?health_check_interval=-",
                                  f"?x=1&token={PASSWORD}"]))  # fmt: skip
    return f"{scheme}://{auth}{draw(HOSTS)}{'' if port is None else ':' + port}{db}{query}"


URLS = st.one_of(
    st.text(max_size=80),
    st.tuples(st.sampled_from(SCHEMES), URLISH).map("".join),
    redis_urls(),
    st.tuples(st.sampled_from(SCHEMES), st.text(min_size=300, max_size=5000)).map("".join),
)


def _check_error(url: str, error: ConfigurationError) -> None:
    message = str(error)
    if PASSWORD not in redact_url(url):  # planted as a password or a secret option: hidden
        assert PASSWORD not in message, message
    shown = redact_url(url)
    assert repr(shown[:200]) in message or repr(shown) in message, message


@settings(max_examples=1500, deadline=None)
@given(URLS)
@example(f"redis://:{PASSWORD}@h:0")
@example(f"redis://u:{PASSWORD}@@h:1/x")
@example(f"redis://u:a/{PASSWORD}@h:1/x")
@example("redis://h:6379/0" + "9" * 5000)
@example("sqlite:///\x00.db")
def test_parse_storage_url_gives_a_url_or_a_configuration_error(url):
    """Any string: a checked URL or ConfigurationError naming it, password redacted."""
    try:
        parsed = parse_storage_url(url)
    except ConfigurationError as error:
        _check_error(url, error)
        return
    assert isinstance(parsed, StorageURL)
    assert PASSWORD not in parsed.location
    if parsed.scheme.startswith("redis"):  # what was accepted, redis-py accepts too
        plain = parsed.scheme.split("+")[0] + "://" + url.split("://", 1)[1]
        parse_url(plain)


@settings(max_examples=800, deadline=None)
@given(redis_urls())
def test_a_planted_redis_password_never_shows(url):
    """Wherever the password sits (holding '@', '/', '?'; as an option), no message shows it."""
    try:
        shown = parse_storage_url(url).location
    except ConfigurationError as error:
        shown = str(error)
    assert PASSWORD not in shown and PASSWORD not in redact_url(url), (url, shown)


@pytest.fixture(scope="module")
def workdir():
    """A scratch working directory: relative SQLite URLs create their files there."""
    before = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sub").mkdir()
        os.chdir(tmp)
        try:
            yield Path(tmp).resolve()
        finally:
            os.chdir(before)


def _local_urls(root: Path) -> st.SearchStrategy[str]:
    names = st.text(alphabet="ab./_-é\x00:@%", max_size=20)
    return st.one_of(
        st.tuples(st.just("sqlite:///"), names).map("".join),
        st.tuples(st.just(f"sqlite:///{root}/"), names).map("".join),
        st.tuples(st.just("sqlite:///sub/"), names).map("".join),
        st.sampled_from(
            [
                "memory",
                "memory://",
                "Memory",
                "memory://x",
                "sqlite:///sub",
                "sqlite:///sub/",
                "sqlite:///" + "n" * 300,
            ]
        ),
        st.text(max_size=40),
    )


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_open_storage_on_local_urls_gives_a_store_or_a_configuration_error(workdir, data):
    """open_storage itself (memory, SQLite files under a scratch dir): a store or the error."""
    url = data.draw(_local_urls(workdir))
    try:
        parsed = parse_storage_url(url)
    except ConfigurationError:
        parsed = None
    local = parsed is not None and parsed.scheme == "sqlite"
    if local and not Path(parsed.location).resolve().is_relative_to(workdir):
        return  # never create files outside the scratch directory
    try:
        store = open_storage(url)
    except ConfigurationError as error:
        assert parsed is None, f"parse accepted {url!r} that open_storage refused: {error}"
        _check_error(url, error)
        return
    assert parsed is not None, f"open_storage accepted {url!r} that parse refused"
    assert store.acquire("k", CONFIG, 1.0, 1.0).ok  # a working store
    store.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:p@ss@h:1/0", "redis://u:***@h:1/0"),
        ("redis://u:a/b@h/0", "redis://u:***@h/0"),
        ("redis://:pw@h?password=pw&db=1", "redis://:***@h?password=***&db=1"),
        ("redis://h:6379/0?x=1&token=t", "redis://h:6379/0?x=1&token=***"),
        ("redis://user@h", "redis://user@h"),
    ],
)
def test_redact_url_hides_passwords_with_odd_characters(url, shown):
    """Passwords holding '@' or '/' and secret query values are hidden whole."""
    assert redact_url(url) == shown
