"""The bad-input table for ``test_bad_input.py``: one row per bad request, with the status and a
piece of the message it must get. Targets and bodies may name the live world's values in
braces (see ``World.names``): ``{aid}`` a live awakeable, ``{aid_inv}``/``{aid_idx}``/
``{aid_secret}`` its parts, ``{aid_truncated}``, ``{done}`` a completed invocation, ``{done26}``
its id without ``inv_``, ``{ingress_port}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

MAX_BODY = 4096  # the orchestrator under test runs with RITORNELLO_MAX_BODY_BYTES=4096

Headers = tuple[tuple[str, bytes], ...]
JSON_CT: Headers = (("content-type", b"application/json"),)
TEXT: Headers = (("content-type", b"text/plain"),)
VALIDATION = (400, 422)  # FastAPI request validation: 422 by default, 400 once remapped


@dataclass(frozen=True)
class Case:
    category: str
    port: str  # "ingress" | "admin"
    method: str
    target: str
    body: bytes
    status: int | tuple[int, ...]
    says: str  # a piece of the message, compared case-insensitively
    headers: Headers = JSON_CT
    chunked: bool = False
    raw: bytes | None = None  # the whole request as is (framing rows)

    @property
    def http_level(self) -> bool:
        """Refused by uvicorn's HTTP parser before the app sees it: a plain-text 400."""
        return self.raw is not None


def ing(cat: str, method: str, target: str, body: bytes, status: Any, says: str, **kw: Any) -> Case:
    return Case(cat, "ingress", method, target, body, status, says, **kw)


def adm(cat: str, method: str, target: str, body: bytes, status: Any, says: str, **kw: Any) -> Case:
    return Case(cat, "admin", method, target, body, status, says, **kw)


def raw(rest: bytes, target: bytes = b"/restate/call/Greeter/greet") -> Case:
    """A request framed by hand: ``rest`` is what follows the host and connection headers."""
    data = b"POST " + target + b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n" + rest
    return Case("framing", "ingress", "POST", target.decode("latin-1"), b"", 400, "", raw=data)


def idem(value: bytes) -> Headers:
    return (*JSON_CT, ("idempotency-key", value))


OVER = b'"' + b"x" * MAX_BODY + b'"'
CALL, SEND = "/restate/call/Greeter/greet", "/restate/send/Greeter/greet"
AWK, SHORT = "/restate/awakeables", "/restate/a"
FORGED = "sign_{aid_inv}_{aid_idx}_"  # + a secret
NO_INV = "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"
DEEP = b'{"x": ' + b"[" * 200 + b"]" * 200 + b"}"
GZIP = (*JSON_CT, ("content-encoding", b"gzip"))
FORM = (("content-type", b"application/x-www-form-urlencoded"),)
BROWSER = (("origin", b"http://evil.example"),)  # and no content type
LIES_BIG = (*JSON_CT, ("content-length", b"999999"))
LIES_SHORT = (*JSON_CT, ("content-length", b"4"))
ACTIONS = ("cancel", "kill", "pause", "resume")
# Request headers past the defaults (max_header_bytes 64 KiB, max_headers 100): 431.
HUGE_HEADERS: Headers = (*JSON_CT, *((f"x-pad-{i}", b"a" * 50_000) for i in range(100)))
MANY_HEADERS: Headers = (*JSON_CT, *((f"x-h-{i}", b"v") for i in range(150)))
SAME_HEADER: Headers = (*JSON_CT, *(("x-same", b"v") for _ in range(150)))
ONE_BIG_HEADER: Headers = (*JSON_CT, ("x-big", b"b" * 70_000))
# Admin bodies holding values the ingress refuses: they are refused the same way (400).
YEARLY = b'{"cron": "0 0 1 1 *", "target": '
DEEP300 = b"[" * 300 + b"]" * 300


def schedule(value: bytes, target: bytes = b'"Greeter/greet"', extra: bytes = b"") -> bytes:
    """A ``POST /schedules`` body (a yearly cron: nothing fires during the tests)."""
    return YEARLY + target + b', "input": ' + value + extra + b"}"


def state(value: bytes, name: bytes = b'"n"', key: bytes = b'"badstate"') -> bytes:
    """A ``POST /services/Counter/state`` body."""
    return b'{"object_key": ' + key + b', "new_state": {' + name + b": " + value + b"}}"


CASES: dict[str, Any] = {
    # -- malformed JSON, and valid JSON of the wrong shape where an object is needed
    "json-truncated": ing("json", "POST", CALL, b'{"a": ', 400, "invalid JSON"),
    "json-garbage": ing("json", "POST", CALL, b"{bad", 400, "invalid JSON"),
    "json-two-documents": ing("json", "POST", CALL, b'"a" "b"', 400, "invalid JSON"),
    "json-nan": ing("json", "POST", CALL, b"NaN", 400, "invalid JSON"),
    "json-infinite-number": ing("json", "POST", CALL, b"1e400", 400, "invalid JSON"),
    "json-bom": ing("json", "POST", CALL, b'\xef\xbb\xbf"x"', 400, "invalid JSON"),
    "json-raw-nul-in-string": ing("json", "POST", CALL, b'"a\x00b"', 400, "invalid JSON"),
    "json-raw-newline-in-string": ing("json", "POST", CALL, b'"a\nb"', 400, "invalid JSON"),
    "json-invalid-utf8": ing("json", "POST", CALL, b'"\xff\xfe"', 400, "invalid JSON"),
    "json-overlong-utf8": ing("json", "POST", CALL, b'"\xc0\xaf"', 400, "invalid JSON"),
    "json-lone-surrogate": ing("json", "POST", CALL, b'"\\ud800"', 400, "invalid JSON"),
    "json-encoded-surrogate": ing("json", "POST", CALL, b'"\xed\xa0\x80"', 400, "invalid JSON"),
    "json-int-past-64-bits": ing(
        "json", "POST", "/restate/call/Counter/k/add", b"100000000000000000000", 400, "64 bits"
    ),
    "json-negative-int-past-64-bits": ing(
        "json",
        "POST",
        "/restate/send/Checkout/place_order",
        b'{"items": [-9223372036854775809]}',
        400,
        "64 bits",
    ),
    "json-too-deep": ing("json", "POST", "/restate/send/Approvals/d/request", DEEP, 400, "deeper"),
    "json-object-send": ing("json", "POST", "/restate/send/Counter/k/add", b"{,}", 400, "JSON"),
    "json-legacy": ing("json", "POST", "/Greeter/greet", b"[1,", 400, "invalid JSON"),
    "json-legacy-send": ing("json", "POST", "/Counter/k/add/send", b"}", 400, "invalid JSON"),
    "json-workflow": ing("json", "POST", "/restate/call/Signup/u1/run", b"{", 400, "JSON"),
    "json-resolve": ing("json", "POST", f"{AWK}/{{aid}}/resolve", b"tru", 400, "JSON"),
    "json-resolve-short": ing("json", "POST", f"{SHORT}/{{aid}}/resolve", b"{x}", 400, "JSON"),
    "json-attach-target": ing("json", "POST", "/restate/attach", b"{oops", 400, "invalid JSON"),
    "shape-attach-array": ing("json", "POST", "/restate/attach", b"[]", 400, "target object"),
    "shape-output-string": ing("json", "POST", "/restate/output", b'"x"', 400, "target object"),
    "shape-lookup-number": ing("json", "POST", "/restate/lookup", b"7", 400, "target object"),
    "shape-attach-unknown": ing(
        "json", "POST", "/restate/attach", b'{"target": "nope"}', 400, "target must be"
    ),
    "shape-attach-key-number": ing(
        "json",
        "POST",
        "/restate/attach",
        b'{"target": "idempotentInvocation", "service": "Counter", "handler": "add",'
        b' "idempotencyKey": "i", "key": 5}',
        400,
        "key must be a string",
    ),
    "shape-deploy-array": adm("json", "POST", "/deployments", b"[]", VALIDATION, "dict"),
    "shape-deploy-string": adm("json", "POST", "/deployments", b'"http://x"', VALIDATION, "dict"),
    "shape-deploy-uri-number": adm(
        "json", "POST", "/deployments", b'{"uri": 5}', VALIDATION, "string"
    ),
    "json-deploy-garbage": adm("json", "POST", "/deployments", b"{bad", VALIDATION, "JSON"),
    # -- content types and encodings
    "ct-text-call": ing("content-type", "POST", CALL, b'"x"', 415, "not JSON", headers=TEXT),
    "ct-form-send": ing("content-type", "POST", SEND, b"a=1", 415, "not JSON", headers=FORM),
    "ct-xml-object": ing(
        "content-type",
        "POST",
        "/restate/call/Counter/k/add",
        b"1",
        415,
        "not JSON",
        headers=(("content-type", b"application/xml"),),
    ),
    "ct-text-legacy": ing(
        "content-type", "POST", "/Greeter/greet", b'"x"', 415, "JSON", headers=TEXT
    ),
    "ct-text-resolve": ing(
        "content-type", "POST", f"{AWK}/{{aid}}/resolve", b"true", 415, "JSON", headers=TEXT
    ),
    "ct-gzip": ing(
        "content-type", "POST", CALL, b"\x1f\x8b\x08\x00", 415, "encoding", headers=GZIP
    ),
    "ct-gzip-resolve": ing(
        "content-type", "POST", f"{AWK}/{{aid}}/resolve", b"\x1f\x8b", 415, "encoding", headers=GZIP
    ),
    # A request without a content type is JSON, unless a browser sent it (Origin or
    # Sec-Fetch-Mode): a page may send one cross-site without a CORS preflight.
    "ct-none-browser-call": ing(
        "content-type", "POST", CALL, b'"x"', 415, "content-type", headers=BROWSER
    ),
    "ct-none-browser-empty-send": ing(
        "content-type", "POST", SEND, b"", 415, "content-type", headers=BROWSER
    ),
    "ct-none-sec-fetch": ing(
        "content-type",
        "POST",
        "/Counter/k/add",
        b"1",
        415,
        "content-type",
        headers=(("sec-fetch-mode", b"no-cors"),),
    ),
    "ct-none-browser-resolve": ing(
        "content-type", "POST", f"{AWK}/{{aid}}/resolve", b"true", 415, "JSON", headers=BROWSER
    ),
    "ct-text-attach-target": ing(
        "content-type",
        "POST",
        "/restate/attach",
        b'{"target": "invocation", "invocationId": "{done}"}',
        415,
        "not JSON",
        headers=TEXT,
    ),
    "ct-deploy-text": adm(
        "content-type", "POST", "/deployments", b'{"uri": "x"}', VALIDATION, "dict", headers=TEXT
    ),
    "ct-deploy-missing": adm(
        "content-type", "POST", "/deployments", b'{"uri": "x"}', VALIDATION, "dict", headers=()
    ),
    # -- sizes, and bodies whose framing lies about their size
    "size-call": ing("size", "POST", CALL, OVER, 413, "larger than 4096"),
    "size-send": ing("size", "POST", SEND, OVER, 413, "larger than 4096"),
    "size-resolve": ing("size", "POST", f"{AWK}/{{aid}}/resolve", OVER, 413, "larger"),
    "size-reject": ing(
        "size", "POST", f"{SHORT}/{{aid}}/reject", OVER, 413, "larger", headers=TEXT
    ),
    "size-attach-target": ing("size", "POST", "/restate/attach", OVER, 413, "larger"),
    "size-chunked": ing("size", "POST", CALL, OVER, 413, "larger", chunked=True),
    "size-chunked-send": ing("size", "POST", SEND, OVER * 3, 413, "larger", chunked=True),
    "size-length-lies-big": ing("size", "POST", CALL, b'"x"', 413, "than 4096", headers=LIES_BIG),
    "size-length-lies-short": ing(
        "size", "POST", CALL, b"{bad" + b" " * 5000, 400, "invalid JSON", headers=LIES_SHORT
    ),
    "size-chunked-bad-json": ing("size", "POST", CALL, b"[1, 2", 400, "invalid JSON", chunked=True),
    "size-deploy": adm(
        "size",
        "POST",
        "/deployments",
        b'{"uri": "ftp://x", "pad": "' + b"x" * 5000 + b'"}',
        413,
        "larger",
    ),
    # -- framing uvicorn refuses itself (plain-text 400 "Invalid HTTP request received.")
    "framing-duplicate-length": raw(b'content-length: 3\r\ncontent-length: 3\r\n\r\n"x"'),
    "framing-length-and-chunked": raw(
        b'content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\n"x"\r\n0\r\n\r\n'
    ),
    "framing-negative-length": raw(b'content-length: -3\r\n\r\n"x"'),
    "framing-word-length": raw(b'content-length: three\r\n\r\n"x"'),
    "framing-bad-chunk-size": raw(b"transfer-encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n"),
    "framing-nul-in-target": raw(b"content-length: 1\r\n\r\n1", target=b"/Counter/a\x00b/add"),
    "framing-raw-utf8-target": raw(b"content-length: 1\r\n\r\n1", target="/Counter/é/add".encode()),
    "framing-nul-in-header": raw(b'idempotency-key: a\x00b\r\ncontent-length: 3\r\n\r\n"x"'),
    "framing-control-in-header": raw(b'idempotency-key: a\x01b\r\ncontent-length: 3\r\n\r\n"x"'),
    # -- unknown targets and wrong path shapes
    "target-unknown-service": ing("target", "POST", "/restate/call/Nope/greet", b"1", 404, "Nope"),
    "target-unknown-handler": ing("target", "POST", "/restate/call/Greeter/x", b"1", 404, "found"),
    "target-unknown-object-handler": ing(
        "target", "POST", "/restate/call/Counter/k/nope", b"1", 404, "not found"
    ),
    "target-unknown-workflow-handler": ing(
        "target", "POST", "/restate/call/Signup/u1/nope", b"1", 404, "not found"
    ),
    "target-service-with-key": ing(
        "target", "POST", "/restate/call/Greeter/k/greet", b'"x"', 404, "no key"
    ),
    "target-object-without-key": ing(
        "target", "POST", "/restate/call/Counter/add", b"1", 400, "virtual object: the path needs"
    ),
    "target-workflow-without-id": ing(
        "target", "POST", "/restate/send/Signup/run", b"{}", 400, "needs a key"
    ),
    "target-legacy-no-key": ing("target", "POST", "/Counter/add", b"1", 400, "needs a key"),
    "target-legacy-unknown": ing("target", "POST", "/Nope/x/send", b"1", 404, "not found"),
    "target-extra-segment": ing(
        "target", "POST", "/restate/call/Counter/k/add/x", b"1", 404, "no such target"
    ),
    "target-restate-unknown": ing("target", "POST", "/restate/nope", b"1", 404, "no ingress route"),
    "target-root": ing("target", "POST", "/", b"1", 404, "no ingress route"),
    "target-slash-in-service": ing(
        "target", "POST", "/restate/call/Greet%2Fer/greet", b'"x"', 404, "not found"
    ),
    "target-nul-in-handler": ing(
        "target", "POST", "/restate/call/Greeter/gr%00eet", b'"x"', 404, "not found"
    ),
    "target-emoji-service": ing(
        "target", "POST", "/restate/call/%F0%9F%98%80/greet", b'"x"', 404, "not found"
    ),
    # -- keys and idempotency keys that are not valid text
    "key-nul": ing("key", "POST", "/restate/call/Counter/a%00b/add", b"1", 400, "control"),
    "key-nul-send": ing("key", "POST", "/restate/send/Counter/%00/add", b"1", 400, "control"),
    "key-newline": ing("key", "POST", "/restate/call/Counter/a%0Ab/get", b"", 400, "control"),
    "key-escape-legacy": ing("key", "POST", "/Counter/a%1Bb/add/send", b"1", 400, "control"),
    "key-del-workflow": ing("key", "POST", "/restate/call/Signup/a%7F/run", b"{}", 400, "control"),
    "key-invalid-utf8": ing("key", "POST", "/restate/call/Counter/%FF/add", b"1", 400, "UTF-8"),
    "key-surrogate": ing("key", "POST", "/restate/call/Counter/%ED%A0%80/add", b"1", 400, "UTF-8"),
    "key-overlong": ing("key", "POST", "/restate/call/Counter/%C0%AF/add", b"1", 400, "UTF-8"),
    "idem-empty": ing("key", "POST", CALL, b'"x"', 400, "empty", headers=idem(b"")),
    "idem-blank": ing("key", "POST", SEND, b'"x"', 400, "empty", headers=idem(b"   ")),
    "idem-tab-only": ing("key", "POST", CALL, b'"x"', 400, "empty", headers=idem(b"\t")),
    "idem-tab-inside": ing("key", "POST", CALL, b'"x"', 400, "control", headers=idem(b"a\tb")),
    "idem-invalid-utf8": ing("key", "POST", SEND, b'"x"', 400, "UTF-8", headers=idem(b"a\xffb")),
    "idem-latin1-byte": ing("key", "POST", SEND, b'"x"', 400, "UTF-8", headers=idem(b"caf\xe9")),
    # -- delays
    "delay-word": ing("delay", "POST", f"{SEND}?delay=abc", b'"x"', 400, "invalid delay"),
    "delay-negative": ing("delay", "POST", f"{SEND}?delay=-1s", b'"x"', 400, "invalid delay"),
    "delay-iso-negative": ing("delay", "POST", f"{SEND}?delay=PT-1S", b'"x"', 400, "invalid delay"),
    "delay-empty": ing("delay", "POST", f"{SEND}?delay=", b'"x"', 400, "invalid delay"),
    "delay-twice": ing("delay", "POST", f"{SEND}?delay=1s&delay=x", b'"x"', 400, "more than once"),
    "delay-no-unit": ing("delay", "POST", f"{SEND}?delay=10", b'"x"', 400, "invalid delay"),
    "delay-exponent": ing("delay", "POST", f"{SEND}?delay=1e308s", b'"x"', 400, "invalid delay"),
    "delay-nan": ing("delay", "POST", f"{SEND}?delay=nan", b'"x"', 400, "invalid delay"),
    "delay-digits": ing("delay", "POST", f"{SEND}?delay={'9' * 400}s", b'"x"', 400, "than 64"),
    "delay-iso-overflow": ing("delay", "POST", f"{SEND}?delay=PT{'9' * 40}S", b'"x"', 400, "max"),
    "delay-huge-days": ing("delay", "POST", f"{SEND}?delay=P999999999999D", b'"x"', 400, "max"),
    "delay-huge-hours": ing("delay", "POST", f"{SEND}?delay=99999999h", b'"x"', 400, "maximum"),
    "delay-on-call": ing("delay", "POST", f"{CALL}?delay=1s", b'"x"', 400, "only allowed on /send"),
    "delay-iso-years": ing("delay", "POST", "/Counter/k/add/send?delay=P1Y", b"1", 400, "invalid"),
    "delay-not-utf8": ing(
        "delay", "POST", "/restate/send/Signup/u9/run?delay=%FF", b"{}", 400, "invalid delay"
    ),
    # -- awakeables: forged, malformed, another invocation's, and bad bodies
    "awk-wrong-prefix": ing(
        "awakeable",
        "POST",
        f"{AWK}/prom_{{aid_inv}}_{{aid_idx}}_{{aid_secret}}/resolve",
        b"1",
        404,
        "not found",
    ),
    "awk-wrong-secret": ing(
        "awakeable", "POST", f"{AWK}/{FORGED}{'a' * 26}/resolve", b"1", 404, "not found"
    ),
    "awk-wrong-secret-short": ing(
        "awakeable",
        "POST",
        f"{SHORT}/{FORGED}{'b' * 26}/reject",
        b"no",
        404,
        "not found",
        headers=TEXT,
    ),
    "awk-other-index": ing(
        "awakeable",
        "POST",
        f"{AWK}/sign_{{aid_inv}}_0_{{aid_secret}}/resolve",
        b"1",
        404,
        "not found",
    ),
    "awk-index-past-journal": ing(
        "awakeable",
        "POST",
        f"{AWK}/sign_{{aid_inv}}_999999999_{{aid_secret}}/resolve",
        b"1",
        404,
        "not found",
    ),
    "awk-other-invocation": ing(
        "awakeable",
        "POST",
        f"{SHORT}/sign_{{done26}}_{{aid_idx}}_{{aid_secret}}/resolve",
        b"1",
        404,
        "not found",
    ),
    "awk-other-invocation-run-entry": ing(
        "awakeable",
        "POST",
        f"{AWK}/sign_{{done26}}_1_{{aid_secret}}/reject",
        b"x",
        404,
        "not found",
        headers=TEXT,
    ),
    "awk-arabic-digit-index": ing(
        "awakeable",
        "POST",
        f"{AWK}/sign_{{aid_inv}}_%D9%A1_{{aid_secret}}/resolve",
        b"1",
        404,
        "not found",
    ),
    "awk-truncated": ing("awakeable", "POST", f"{AWK}/{{aid_truncated}}/resolve", b"1", 404, "not"),
    "awk-extra-part": ing("awakeable", "POST", f"{AWK}/{{aid}}_x/resolve", b"1", 404, "not found"),
    "awk-nul": ing("awakeable", "POST", f"{SHORT}/{{aid}}%00/resolve", b"1", 404, "not found"),
    "awk-encoded-slash": ing("awakeable", "POST", f"{AWK}/{{aid}}%2F/resolve", b"1", 404, "not"),
    "awk-empty-id": ing("awakeable", "POST", f"{AWK}//resolve", b"1", 404, "not found"),
    "awk-reject-not-utf8": ing(
        "awakeable", "POST", f"{SHORT}/{{aid}}/reject", b"\xff\xfe", 400, "UTF-8", headers=TEXT
    ),
    "awk-unknown-verb": ing(
        "awakeable", "POST", f"{AWK}/{{aid}}/complete", b"1", 404, "no ingress"
    ),
    # -- attach / output / lookup
    "attach-not-an-id": ing("attach", "GET", "/restate/attach/nope", b"", 400, "not an invocation"),
    "output-emoji-id": ing(
        "attach", "GET", "/restate/output/%F0%9F%98%80", b"", 400, "not an invocation id"
    ),
    "attach-unknown": ing("attach", "GET", f"/restate/attach/{NO_INV}", b"", 404, "not found"),
    "output-unknown": ing("attach", "GET", f"/restate/output/{NO_INV}", b"", 404, "not found"),
    "output-nul-id": ing("attach", "GET", "/restate/output/inv_%00", b"", 404, "not found"),
    "attach-legacy-unknown": ing(
        "attach", "GET", f"/restate/invocation/{NO_INV}/attach", b"", 404, "not found"
    ),
    "output-unknown-idempotency-key": ing(
        "attach", "GET", "/restate/invocation/Counter/k/add/nokey/output", b"", 404, "not found"
    ),
    "output-unknown-workflow-id": ing(
        "attach", "GET", "/restate/workflow/Signup/nobody/output", b"", 404, "not found"
    ),
    "attach-not-a-workflow": ing(
        "attach", "GET", "/restate/workflow/Greeter/x/attach", b"", 404, "workflow Greeter"
    ),
    "lookup-unknown": ing(
        "attach",
        "POST",
        "/restate/lookup",
        f'{{"target": "invocation", "invocationId": "{NO_INV}"}}'.encode(),
        404,
        "not found",
    ),
    # -- methods
    "method-get-call": ing("method", "GET", CALL, b"", 405, "POST"),
    "method-put-send": ing("method", "PUT", SEND, b'"x"', 405, "POST"),
    "method-delete-legacy": ing("method", "DELETE", "/Greeter/greet", b"", 405, "POST"),
    "method-get-resolve": ing("method", "GET", f"{AWK}/{{aid}}/resolve", b"", 405, "POST"),
    "method-post-output": ing("method", "POST", "/restate/output/{done}", b"1", 405, "GET"),
    "method-get-attach-target": ing("method", "GET", "/restate/attach", b"", 405, "POST"),
    "method-put-deployments": adm("method", "PUT", "/deployments", b"{}", 405, "not allowed"),
    # -- admin: deployments and services
    "deploy-empty-object": adm(
        "admin-deployments", "POST", "/deployments", b"{}", VALIDATION, "exactly one"
    ),
    "deploy-uri-and-arn": adm(
        "admin-deployments",
        "POST",
        "/deployments",
        b'{"uri": "http://x", "arn": "arn:x"}',
        VALIDATION,
        "exactly one",
    ),
    "deploy-empty-uri": adm(
        "admin-deployments", "POST", "/deployments", b'{"uri": ""}', 400, "URI"
    ),
    "deploy-not-a-url": adm(
        "admin-deployments", "POST", "/deployments", b'{"uri": "not a url"}', 400, "URI"
    ),
    "deploy-ftp": adm(
        "admin-deployments", "POST", "/deployments", b'{"uri": "ftp://127.0.0.1/x"}', 400, "URI"
    ),
    "deploy-unknown-inproc": adm(
        "admin-deployments", "POST", "/deployments", b'{"uri": "inproc://nope"}', 400, "in-process"
    ),
    "deploy-nul-in-port": adm(
        "admin-deployments",
        "POST",
        "/deployments",
        b'{"uri": "http://127.0.0.1:1\\u0000"}',
        400,
        "control characters",
    ),
    # Refused, never stripped: urlsplit drops tabs and newlines, so the address fetched would
    # not be the one stored (and shown).
    **{
        f"deploy-uri-{name}": adm(
            "admin-deployments",
            "POST",
            "/deployments",
            b'{"uri": "%s"}' % uri,
            400,
            "whitespace or control characters",
        )
        for name, uri in (
            ("crlf", b"http://127.0.0.1:1/\\r\\nx-injected: 1"),
            ("newline-at-end", b"http://127.0.0.1:1\\n"),
            ("tab-in-host", b"http://127.0.0.1\\t:1"),
            ("space-in-path", b"http://127.0.0.1:1/a b"),
            ("space-at-end", b"http://127.0.0.1:1 "),
            ("del", b"http://127.0.0.1:1/\\u007f"),
        )
    },
    "deploy-arn-newline": adm(
        "admin-deployments",
        "POST",
        "/deployments",
        b'{"arn": "arn:aws:lambda:us-east-1:123456789012:function:f:1\\n"}',
        400,
        "whitespace or control characters",
    ),
    # Link-local and cloud metadata addresses are denied by default (deployment_hosts_deny),
    # before any connection: nothing is fetched from them.
    **{
        f"deploy-metadata-{name}": adm(
            "admin-deployments", "POST", "/deployments", b'{"uri": "%s"}' % uri, 400, "not allowed"
        )
        for name, uri in (
            ("v4", b"http://169.254.169.254/latest/meta-data/"),
            ("v4-https", b"https://169.254.169.254"),
            ("v4-link-local", b"http://169.254.1.1:8080"),
            ("v6-aws", b"http://[fd00:ec2::254]/"),
            ("v6-link-local", b"http://[fe80::1]:8080"),
            ("v4-mapped-v6", b"http://[::ffff:169.254.169.254]/"),
            ("v4-as-a-number", b"http://2852039166/"),
            ("v4-in-hex", b"http://0xa9.0xfe.0xa9.0xfe/"),
            ("alibaba", b"http://100.100.100.200/"),
        )
    },
    "deploy-emoji-host": adm(
        "admin-deployments",
        "POST",
        "/deployments",
        '{"uri": "http://😀:80"}'.encode(),
        400,
        "URI",
    ),
    "deploy-bad-arn": adm(
        "admin-deployments", "POST", "/deployments", b'{"arn": "nope"}', VALIDATION, "ARN"
    ),
    "deploy-unqualified-arn": adm(
        "admin-deployments",
        "POST",
        "/deployments",
        b'{"arn": "arn:aws:lambda:us-east-1:1:function:f"}',
        400,
        "ARN",
    ),
    # Discovery failures: the request is well formed, the endpoint failed: 502, nothing stored.
    "deploy-unreachable": adm(
        "admin-deployments",
        "POST",
        "/deployments",
        b'{"uri": "http://127.0.0.1:1"}',
        502,
        "discovery",
    ),
    "deploy-not-an-endpoint": adm(
        "admin-deployments",
        "POST",
        "/deployments",
        b'{"uri": "http://127.0.0.1:{ingress_port}"}',
        502,
        "discovery",
    ),
    "deploy-unknown-id": adm(
        "admin-deployments", "GET", "/deployments/dp_x", b"", 404, "not found"
    ),
    "deploy-delete-nul": adm(
        "admin-deployments", "DELETE", "/deployments/%00", b"", 404, "not found"
    ),
    "service-unknown": adm("admin-deployments", "GET", "/services/Nope", b"", 404, "not found"),
    "service-nul": adm("admin-deployments", "GET", "/services/%00/handlers", b"", 404, "not found"),
    # -- admin: invocation ids and actions
    "inv-malformed": adm("admin-invocations", "GET", "/invocations/nope", b"", 404, "not found"),
    "inv-unknown": adm("admin-invocations", "GET", f"/invocations/{NO_INV}", b"", 404, "not found"),
    "inv-nul": adm("admin-invocations", "GET", "/invocations/inv_%00", b"", 404, "not found"),
    "inv-emoji": adm(
        "admin-invocations", "GET", "/invocations/%F0%9F%98%80", b"", 404, "not found"
    ),
    "inv-not-utf8": adm("admin-invocations", "GET", "/invocations/%FF", b"", 404, "not found"),
    **{
        f"inv-{action}-unknown": adm(
            "admin-invocations", "PATCH", f"/invocations/{NO_INV}/{action}", b"", 404, "not found"
        )
        for action in (*ACTIONS, "purge")
    },
    "inv-kill-nul": adm(
        "admin-invocations", "PATCH", "/invocations/inv_%00/kill", b"", 404, "not found"
    ),
    "inv-cancel-emoji": adm(
        "admin-invocations", "PATCH", "/invocations/%F0%9F%98%80/cancel", b"", 404, "not found"
    ),
    "inv-unknown-action": adm(
        "admin-invocations", "PATCH", f"/invocations/{NO_INV}/explode", b"", 404, "not found"
    ),
    **{
        f"inv-{action}-completed": adm(
            "admin-invocations", "PATCH", f"/invocations/{{done}}/{action}", b"", 409, "completed"
        )
        for action in ACTIONS
    },
    # -- admin: query parameters of GET /invocations
    "query-limit-word": adm("admin-query", "GET", "/invocations?limit=x", b"", VALIDATION, "int"),
    "query-limit-zero": adm("admin-query", "GET", "/invocations?limit=0", b"", VALIDATION, "great"),
    "query-limit-huge": adm(
        "admin-query", "GET", "/invocations?limit=100000", b"", VALIDATION, "less"
    ),
    "query-limit-overflow": adm(
        "admin-query", "GET", f"/invocations?limit={'9' * 30}", b"", VALIDATION, "less"
    ),
    "query-cursor-word": adm("admin-query", "GET", "/invocations?cursor=x", b"", 400, "cursor"),
    "query-cursor-overflow": adm(
        "admin-query", "GET", f"/invocations?cursor={'9' * 30}", b"", VALIDATION, "cursor"
    ),
    "query-status-unknown": adm(
        "admin-query", "GET", "/invocations?status=bogus", b"", 400, "unknown status"
    ),
    "query-status-nul": adm("admin-query", "GET", "/invocations?status=%00", b"", 400, "unknown"),
    # -- request headers: too many or too large (before the body is read; nothing journaled)
    "headers-5mb-send": ing("headers", "POST", SEND, b'"x"', 431, "header", headers=HUGE_HEADERS),
    "headers-5mb-call": ing("headers", "POST", CALL, b'"x"', 431, "header", headers=HUGE_HEADERS),
    "headers-many-send": ing("headers", "POST", SEND, b'"x"', 431, "headers", headers=MANY_HEADERS),
    "headers-same-name-many": ing(
        "headers", "POST", "/Counter/k/add/send", b"1", 431, "headers", headers=SAME_HEADER
    ),
    "headers-one-big": ing("headers", "POST", CALL, b'"x"', 431, "header", headers=ONE_BIG_HEADER),
    "headers-resolve": ing(
        "headers", "POST", f"{AWK}/{{aid}}/resolve", b"1", 431, "header", headers=HUGE_HEADERS
    ),
    "headers-attach": ing(
        "headers", "GET", "/restate/attach/{done}", b"", 431, "headers", headers=MANY_HEADERS
    ),
    "headers-admin-size": adm(
        "headers", "GET", "/deployments", b"", 431, "header", headers=HUGE_HEADERS
    ),
    "headers-admin-many": adm(
        "headers", "POST", "/schedules", schedule(b"1"), 431, "headers", headers=MANY_HEADERS
    ),
    # -- admin: schedule inputs go through the ingress's JSON checks
    "schedule-input-too-deep": adm(
        "admin-schedules", "POST", "/schedules", schedule(DEEP300), 400, "deeper than 128"
    ),
    "schedule-input-infinite": adm(
        "admin-schedules", "POST", "/schedules", schedule(b"1e999"), 400, "JSON"
    ),
    "schedule-input-infinity": adm(
        "admin-schedules", "POST", "/schedules", schedule(b"[-Infinity]"), 400, "JSON"
    ),
    "schedule-input-nan": adm(
        "admin-schedules", "POST", "/schedules", schedule(b'{"a": NaN}'), 400, "JSON"
    ),
    "schedule-input-int-past-64-bits": adm(
        "admin-schedules", "POST", "/schedules", schedule(b"18446744073709551616"), 400, "64 bits"
    ),
    "schedule-input-lone-surrogate": adm(
        "admin-schedules", "POST", "/schedules", schedule(b'"\\ud800"'), 400, "UTF-8"
    ),
    "schedule-input-past-the-parser": adm(
        "admin-schedules",
        "POST",
        "/schedules",
        schedule(b"[" * 1990 + b"]" * 1990),
        400,
        "parsing the body",
    ),
    "schedule-key-nul": adm(
        "admin-schedules",
        "POST",
        "/schedules",
        schedule(b"1", b'"Counter/add"', b', "key": "a\\u0000b"'),
        400,
        "control characters",
    ),
    "schedule-key-lone-surrogate": adm(
        "admin-schedules",
        "POST",
        "/schedules",
        schedule(b"1", b'"Counter/add"', b', "key": "\\udc80"'),
        400,
        "UTF-8",
    ),
    "schedule-bad-cron": adm(
        "admin-schedules",
        "POST",
        "/schedules",
        b'{"cron": "61 * * * *", "target": "Greeter/greet"}',
        400,
        "not valid",
    ),
    # -- admin: state writes go through the same checks, names and keys too
    "state-infinite": adm(
        "admin-state", "POST", "/services/Counter/state", state(b"1e999"), 400, "JSON"
    ),
    "state-nan": adm("admin-state", "POST", "/services/Counter/state", state(b"NaN"), 400, "JSON"),
    "state-infinity": adm(
        "admin-state", "POST", "/services/Counter/state", state(b"[Infinity]"), 400, "JSON"
    ),
    "state-too-deep": adm(
        "admin-state", "POST", "/services/Counter/state", state(DEEP300), 400, "deeper than 128"
    ),
    "state-int-past-64-bits": adm(
        "admin-state",
        "POST",
        "/services/Counter/state",
        state(b"-9223372036854775809"),
        400,
        "64 bits",
    ),
    "state-lone-surrogate": adm(
        "admin-state", "POST", "/services/Counter/state", state(b'"\\ud800"'), 400, "UTF-8"
    ),
    "state-name-lone-surrogate": adm(
        "admin-state",
        "POST",
        "/services/Counter/state",
        state(b"1", name=b'"\\ud800"'),
        400,
        "UTF-8",
    ),
    "state-key-nul": adm(
        "admin-state",
        "POST",
        "/services/Counter/state",
        state(b"1", key=b'"a\\u0000b"'),
        400,
        "control characters",
    ),
    "state-key-lone-surrogate": adm(
        "admin-state",
        "POST",
        "/services/Counter/state",
        state(b"1", key=b'"\\udc80"'),
        400,
        "UTF-8",
    ),
    "state-reserved-name": adm(
        "admin-state",
        "POST",
        "/services/Counter/state",
        state(b"1", name=b'"\\u0000p:x"'),
        400,
        "reserved",
    ),
    "state-plain-service": adm(
        "admin-state", "POST", "/services/Greeter/state", state(b"1"), 400, "virtual objects"
    ),
}


def params() -> list[Any]:
    """The table as pytest parameters, ids from its keys (xfail marks kept)."""
    out = []
    for name, case in CASES.items():
        if isinstance(case, Case):
            out.append(pytest.param(case, id=name))
        else:
            out.append(pytest.param(*case.values, id=name, marks=case.marks))
    return out


def counts() -> dict[str, int]:
    """Rows per category."""
    found: dict[str, int] = {}
    for case in CASES.values():
        c = case if isinstance(case, Case) else case.values[0]
        found[c.category] = found.get(c.category, 0) + 1
    return found
