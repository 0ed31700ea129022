"""Per-request clients copied from a template behave like constructed ones (httpx and httpx2).

``ClientTemplate`` reads httpx's private attribute names: these tests pin that down for every
installed package, so an upgrade that changes the client's internals fails here loudly.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from typing import Any

import pytest

from otel_ratelimit._pools import ClientTemplate

PACKAGES = [pytest.param(name, marks=pytest.mark.skipif(
    importlib.util.find_spec(name) is None, reason=f"{name} is not installed"))
    for name in ("httpx", "httpx2")]  # fmt: skip


def _options(module: Any, log: list[str]) -> dict[str, Any]:
    """Every option a client takes that a template could carry."""

    def on_request(request: Any) -> None:
        log.append(f"request {request.url.path}")

    def on_response(response: Any) -> None:
        log.append(f"response {response.status_code}")

    return {"base_url": "https://api.example/v1", "headers": {"X-Team": "a", "Accept": "json"},
            "timeout": module.Timeout(5.0, connect=2.0), "follow_redirects": True,
            "max_redirects": 3, "auth": ("user", "pw"), "params": {"page": "1"},
            "cookies": {"session": "s1"}, "event_hooks": {"request": [on_request],
            "response": [on_response]}, "default_encoding": "latin-1",
            "trust_env": False}  # fmt: skip


def _asyncify(options: dict[str, Any]) -> dict[str, Any]:
    """The same options with coroutine event hooks (what an AsyncClient calls)."""

    def wrap(hook: Any) -> Any:
        async def hook_async(value: Any) -> None:
            hook(value)

        return hook_async

    hooks = options["event_hooks"]
    return {**options, "event_hooks": {k: [wrap(h) for h in v] for k, v in hooks.items()}}


class Recorder:
    """The transport both clients send through: answers, redirects once, records and closes."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.sent: list[Any] = []
        self.closed = 0
        self.mock = module.MockTransport(self.answer)

    def answer(self, request: Any) -> Any:
        self.sent.append(request)
        if request.url.path.endswith("/old"):
            return self.response(302, headers={"Location": "/v1/new"})
        return self.response(200, headers={"Set-Cookie": "seen=1; Path=/"}, content=b"ok")

    def response(self, status: int, **kwargs: Any) -> Any:
        return self.module.Response(status, **kwargs)

    def handle_request(self, request: Any) -> Any:
        return self.mock.handle_request(request)

    async def handle_async_request(self, request: Any) -> Any:
        return await self.mock.handle_async_request(request)

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.closed += 1


def _client_classes(package: str) -> list[tuple[Any, Any, bool]]:
    module = importlib.import_module(package)
    return [(module, module.Client, False), (module, module.AsyncClient, True)]


def _public(client: Any) -> dict[str, Any]:
    """What a user can read off a client."""
    return {"base_url": client.base_url, "headers": client.headers.multi_items(),
            "timeout": client.timeout, "follow_redirects": client.follow_redirects,
            "max_redirects": client.max_redirects, "auth": vars(client.auth or object),
            "params": client.params, "cookies": dict(client.cookies),
            "hooks": {k: len(v) for k, v in client.event_hooks.items()},
            "trust_env": client.trust_env, "closed": client.is_closed}  # fmt: skip


def _send(client: Any, is_async: bool, path: str) -> Any:
    if is_async:
        return asyncio.run(client.get(path))
    return client.get(path)


def _close(client: Any, is_async: bool) -> None:
    if is_async:
        asyncio.run(client.aclose())
    else:
        client.close()


@pytest.mark.parametrize("package", PACKAGES)
def test_a_copied_client_is_a_constructed_one(package: str) -> None:
    """Same class, attributes, options, requests sent, hooks run, redirects followed, closing."""
    for module, cls, is_async in _client_classes(package):
        log: list[str] = []
        options = _options(module, log)
        options = _asyncify(options) if is_async else options
        template = ClientTemplate(cls, options)
        assert template.fields is not None, f"{cls} changed: the copy path is off"
        copied_door, constructed_door = Recorder(module), Recorder(module)
        copied = template.client(copied_door)
        constructed = cls(transport=constructed_door, **options)
        assert type(copied) is cls
        assert vars(copied).keys() == vars(constructed).keys()
        for name, value in vars(constructed).items():
            assert type(vars(copied)[name]) is type(value), name
        assert _public(copied) == _public(constructed)
        assert copied._transport is copied_door

        for client in (copied, constructed):
            answer = _send(client, is_async, "old")
            assert answer.status_code == 200 and answer.encoding == "latin-1"
            assert [r.status_code for r in answer.history] == [302]
        first, second = copied_door.sent, constructed_door.sent
        assert [str(r.url) for r in first] == [str(r.url) for r in second] == [
            "https://api.example/v1/old?page=1", "https://api.example/v1/new"]  # fmt: skip
        for mine, theirs in zip(first, second):
            assert mine.headers.multi_items() == theirs.headers.multi_items()
            assert mine.extensions == theirs.extensions  # the timeout
        assert first[0].headers["authorization"].startswith("Basic ")
        assert log == ["request /v1/old", "response 302", "request /v1/new", "response 200"] * 2
        assert copied.cookies["seen"] == constructed.cookies["seen"] == "1"

        for client, door in ((copied, copied_door), (constructed, constructed_door)):
            _close(client, is_async)
            assert client.is_closed and door.closed == 1
            with pytest.raises(RuntimeError, match="closed"):
                _send(client, is_async, "again")


@pytest.mark.parametrize("package", PACKAGES)
def test_copied_clients_share_nothing_a_view_can_change(package: str) -> None:
    """Mutating one copy's headers, cookies, params, hooks, timeout or auth leaves the rest."""
    for module, cls, is_async in _client_classes(package):
        options = _options(module, [])
        options = _asyncify(options) if is_async else options
        template = ClientTemplate(cls, options)
        before, changed = template.client(Recorder(module)), template.client(Recorder(module))
        expected = _public(before)
        changed.headers["X-Mine"] = "secret"
        changed.headers["X-Team"] = "b"
        changed.cookies.set("mine", "1")
        changed.params = changed.params.set("page", "2")
        changed.event_hooks["request"].append(print)
        changed.timeout.read = 99.0
        changed.auth = ("other", "pw")
        changed.base_url = "https://elsewhere.example"
        changed.follow_redirects = False
        after = template.client(Recorder(module))
        assert _public(before) == _public(after) == expected
        assert "x-mine" not in after.headers and after.timeout.read == 5.0
        assert _public(changed) != expected
        _close(changed, is_async)
        assert not before.is_closed and not after.is_closed


def test_unknown_client_internals_fall_back_to_construction() -> None:
    """A client with attributes the copy path does not know (a newer httpx) is constructed."""
    httpx = pytest.importorskip("httpx")

    class Newer(httpx.Client):  # type: ignore[misc]
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            self.new_state: list[str] = []

    template = ClientTemplate(Newer, {"headers": {"X-Team": "a"}})
    assert template.fields is None
    one, two = template.client(httpx.MockTransport(print)), template.client(None)
    assert type(one) is Newer and one.headers["x-team"] == "a"
    assert one.new_state is not two.new_state


def test_an_init_patched_after_the_template_is_honoured() -> None:
    """Instrumentation that wraps the constructor later sees every new client constructed."""
    httpx = pytest.importorskip("httpx")
    seen: list[Any] = []

    class Client(httpx.Client):  # type: ignore[misc]
        pass

    template = ClientTemplate(Client, {})
    assert template.fields is not None
    original = Client.__init__

    def patched(self: Any, **options: Any) -> None:
        seen.append(options["transport"])
        original(self, **options)

    Client.__init__ = patched  # type: ignore[method-assign]
    door = httpx.MockTransport(print)
    client = template.client(door)
    assert seen == [door] and client._transport is door


def test_options_changed_in_place_reach_later_clients() -> None:
    """A headers dict or Timeout updated after set-up is seen, as when clients were constructed."""
    httpx = pytest.importorskip("httpx")
    headers, timeout = {"Authorization": "Bearer old"}, httpx.Timeout(5.0)
    template = ClientTemplate(httpx.Client, {"headers": headers, "timeout": timeout})
    before = template.client(httpx.MockTransport(print))
    headers["Authorization"] = "Bearer new"  # a rotated token
    timeout.read = 9.0
    after = template.client(httpx.MockTransport(print))
    assert before.headers["authorization"] == "Bearer old"
    assert after.headers["authorization"] == "Bearer new" and after.timeout.read == 9.0
    assert template.fields is not None  # still copied, from a new template
    assert template.client(httpx.MockTransport(print)).headers["authorization"] == "Bearer new"
