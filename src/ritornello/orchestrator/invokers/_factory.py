"""``make_invoker``: the invoker for a deployment URI.

boto3 is imported (with ``_lambda``) only when a Lambda deployment exists, so a process serving
HTTP endpoints never loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from ._base import MAX_ANSWER_BYTES, MAX_DISCOVERY_BYTES, Invoker, InvokerError
from ._hosts import HostPolicy
from ._http import HttpInvoker
from ._inprocess import InProcessInvoker, InProcessTarget


def check_uri_text(uri: str) -> None:
    """Refuse a deployment URI with whitespace or control characters anywhere. Refused, not
    stripped: ``urlsplit`` silently drops tabs and newlines, so the address reached would not
    be the one stored and shown; a space or a CR/LF in a path would break the request line."""
    bad = next((c for c in uri if c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise InvokerError(
            f"invalid deployment URI {uri!r}: it must not contain whitespace or control "
            f"characters (found {bad!r}; percent-encode what a path needs)"
        )


def _check_http_uri(uri: str) -> None:
    """Refuse an http(s) URI no connection could be made from, with a message naming it."""
    try:
        parts = urlsplit(uri)
        port = parts.port  # ValueError when it is not a number in 0..65535
    except ValueError as exc:
        raise InvokerError(f"invalid deployment URI {uri!r}: {exc}") from None
    host = parts.hostname
    if not host:
        raise InvokerError(f"invalid deployment URI {uri!r}: it names no host")
    if not host.isascii() or any(c.isspace() for c in host):
        raise InvokerError(
            f"invalid deployment URI {uri!r}: the host must be ASCII "
            "(write an internationalised name in its xn-- form)"
        )
    if port == 0:
        raise InvokerError(f"invalid deployment URI {uri!r}: port 0")


def make_invoker(
    uri: str,
    inprocess: Mapping[str, InProcessTarget | Invoker],
    *,
    timeout_s: float,
    signing_secret: str = "",
    hosts: HostPolicy | None = None,
    max_answer_bytes: int = MAX_ANSWER_BYTES,
    max_discovery_bytes: int = MAX_DISCOVERY_BYTES,
) -> Invoker:
    """The invoker for a deployment URI: ``http(s)://...``, a Lambda function ARN
    (``arn:aws:lambda:...:function:NAME:QUALIFIER[?assume_role_arn=...]``, see ``_lambda``) or
    ``inproc://NAME``. boto3 is imported only when a Lambda deployment exists. A non-empty
    ``signing_secret`` signs every request (not in-process ones). An HTTP invoker connects
    only where ``hosts`` allows (None: the default ``HostPolicy``), checked at each connection.
    ``max_answer_bytes`` and ``max_discovery_bytes`` bound the answers (``_base``).

    ``inprocess[NAME]`` is an in-process target (``Endpoint(...).inprocess()``), wrapped in an
    ``InProcessInvoker``, or an ``Invoker`` (a ``FakeInvoker``, say), returned as it is: every
    registration of ``inproc://NAME`` then shares that one instance, which the engine closes on
    re-registration and at shutdown, so it must outlive ``close()`` (``FakeInvoker`` does)."""
    check_uri_text(uri)
    limits = {"max_answer_bytes": max_answer_bytes, "max_discovery_bytes": max_discovery_bytes}
    if uri.startswith("arn:"):
        from ._lambda import LambdaInvoker

        return LambdaInvoker.from_uri(
            uri, timeout_s=timeout_s, signing_secret=signing_secret, **limits
        )
    if uri.startswith("https://") and ".lambda-url." in uri:
        from ._lambda import FunctionUrlInvoker, is_function_url

        if is_function_url(uri):  # AWS_IAM auth: every request SigV4-signed
            return FunctionUrlInvoker(
                uri, timeout_s=timeout_s, signing_secret=signing_secret, hosts=hosts, **limits
            )
    if uri.startswith(("http://", "https://")):
        _check_http_uri(uri)
        return HttpInvoker(
            uri, timeout_s=timeout_s, signing_secret=signing_secret, hosts=hosts, **limits
        )
    if uri.startswith("inproc://"):
        name = uri[len("inproc://") :]
        target = inprocess.get(name)
        if target is None:
            raise InvokerError(f"no in-process endpoint named {name!r} in this process")
        if isinstance(target, Invoker):
            return target
        return InProcessInvoker(target, **limits)
    raise InvokerError(
        f"unsupported deployment URI {uri!r} (expected http(s)://, a Lambda ARN or inproc://)"
    )
