"""CLIENT spans of outbound attempts (stable HTTP semantic conventions) and URL redaction.

The span of an attempt covers the send only: waiting for a slot is the ``ratelimit.wait``
span beside it, so HTTP latency is not inflated by the limiter. While the span is current,
the context carries OpenTelemetry's "suppress HTTP instrumentation" key, so an
``opentelemetry-instrumentation-httpx`` that patched the inner transport makes no second span.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["REDACTED", "end_attempt", "redact_url", "start_attempt"]

# What opentelemetry-instrumentation-* checks before making a CLIENT span of its own.
_SUPPRESS_HTTP: str | None = getattr(context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None)

REDACTED = "REDACTED"
_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT",
                      "TRACE", "QUERY"})  # fmt: skip
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameter names (lowercase, without "-" and "_") whose values are credentials; any
# name ending in one of _SUFFIXES counts too ("client_secret", "refresh_token", "x-api-key").
_SENSITIVE = frozenset({"awsaccesskeyid", "signature", "sig", "xgoogsignature", "xamzsignature",
                        "xamzcredential", "xamzsecuritytoken", "code", "auth", "jwt", "session",
                        "sessionid", "passwd", "pwd", "credentials"})  # fmt: skip
_SUFFIXES = ("key", "token", "secret", "password", "signature", "sig", "credential")


def _sensitive(name: str) -> bool:
    flat = unquote_plus(name).lower().replace("-", "").replace("_", "")
    return flat in _SENSITIVE or flat.endswith(_SUFFIXES)


def redact_url(url: str) -> str:
    """``url`` for ``url.full``: user info and credential query values become REDACTED."""
    if "@" not in url and "?" not in url and "#" not in url:
        return url  # nothing to hide: the common case, kept cheap
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}:{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(
        f"{pair.partition('=')[0]}={REDACTED}" if _sensitive(pair.partition("=")[0]) else pair
        for pair in parts.query.split("&")
    ) if parts.query else ""  # fmt: skip
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))  # fragments are never sent


def start_attempt(tracer: trace.Tracer, request: Any, host: str, attempt: int) -> Any:
    """Open and make current the CLIENT span of one attempt; inject ``traceparent``.

    Returns a handle for ``end_attempt``. When the current span is already a CLIENT span
    (``HTTPXClientInstrumentor.instrument_client`` wrapped the limited transport), that span
    stands for the attempt: no span is made, and the inner transport is kept quiet too.
    """
    parent = context.get_current()  # read once, passed on: each lookup is a few calls
    if getattr(trace.get_current_span(parent), "kind", None) is SpanKind.CLIENT:
        return None, context.attach(_quiet(parent))
    method, url = request.method, str(request.url)
    key = (method, url, host, attempt)
    found = _STARTS.get(key)
    if found is None:
        found = _start_attributes(method, request.url, url, host, attempt)
        if found[1]["url.full"] == url:  # nothing redacted: the cache keeps no secret
            if len(_STARTS) >= _CACHE_SIZE:
                _STARTS.clear()  # a cache of the recent URLs, not of every URL ever called
            _STARTS[key] = found
    name, attributes = found
    span = tracer.start_span(name, context=parent, kind=SpanKind.CLIENT, attributes=attributes)
    current = _quiet(trace.set_span_in_context(span, parent))
    token = context.attach(current)
    propagate.inject(request.headers, current)
    return span, token


_CACHE_SIZE = 512
# (method, URL, server.address, resend count) -> the span's name and start attributes, for URLs
# that redaction leaves as they are. The SDK copies attributes into the span, so one dict
# serves every span of the same request URL.
_STARTS: dict[tuple[Any, str, str, int], tuple[str, dict[str, Any]]] = {}


def _start_attributes(method: Any, url: Any, full: str, host: str,
                      attempt: int) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """The name and start attributes of a CLIENT span (stable HTTP semantic conventions)."""
    method = method if isinstance(method, str) else method.decode()
    known = method if method in _METHODS else "_OTHER"
    attributes: dict[str, Any] = {
        "http.request.method": known,
        "server.address": host,
        "url.full": redact_url(full),
    }
    port = url.port or _DEFAULT_PORTS.get(url.scheme)
    if port:
        attributes["server.port"] = port
    if known == "_OTHER":
        attributes["http.request.method_original"] = method
    if attempt > 0:
        attributes["http.request.resend_count"] = attempt
    return ("HTTP" if known == "_OTHER" else known), attributes


def _quiet(ctx: context.Context) -> context.Context:
    """``ctx`` telling HTTP instrumentations below to make no span of their own."""
    return ctx if _SUPPRESS_HTTP is None else context.set_value(_SUPPRESS_HTTP, True, ctx)


def end_attempt(handle: Any, response: Any, exc: BaseException | None) -> None:
    """Close an attempt's span with the status code, or the error's type (never its message)."""
    span, token = handle
    context.detach(token)
    if span is None:
        return
    if response is not None:
        status = response.status_code
        version = getattr(response, "http_version", None)
        attributes = _ENDS.get((status, version)) or _end_attributes(status, version)
        if status >= 400:
            span.set_status(_ERROR)
        span.set_attributes(attributes)  # one call: the SDK takes a lock per call
    elif exc is not None:
        kind = type(exc)
        module = kind.__module__.split(".")[0]
        span.set_attribute("error.type", kind.__qualname__ if module == "builtins"
                           else f"{module}.{kind.__qualname__}")  # fmt: skip
        span.set_status(_ERROR)
    span.end()


_ERROR = Status(StatusCode.ERROR)
_ENDS: dict[tuple[int, Any], dict[str, Any]] = {}  # (status, HTTP version) -> end attributes


def _end_attributes(status: int, version: Any) -> dict[str, Any]:
    """The end attributes of a response (cached when its HTTP version is a string)."""
    attributes: dict[str, Any] = {"http.response.status_code": status}
    if isinstance(version, str) and version.startswith("HTTP/"):
        attributes["network.protocol.version"] = version[5:]
    if status >= 400:
        attributes["error.type"] = str(status)
    if isinstance(version, str):
        if len(_ENDS) >= _CACHE_SIZE:
            _ENDS.clear()
        _ENDS[status, version] = attributes
    return attributes
