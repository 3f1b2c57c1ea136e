"""Raw-bytes handlers at the ingress (issue 19): a handler whose input is ``bytes`` (or that has
a custom input serde) takes any content type, and its body is journaled as it arrived (base64
text in the input entry); a handler whose output is ``bytes`` (or that has a custom output
serde) is answered with the raw bytes and its declared content type, on a call, an attach and
an output alike. The content types travel in discovery, through the stored deployment, to the
ingress. JSON handlers are unchanged. A real engine over a real store, an in-process endpoint,
the ingress app driven over ASGI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from ritornello import BytesSerde, Context, Endpoint, Service, TerminalError
from ritornello.orchestrator import Engine, IngressApp
from ritornello.protocol import RetryPolicy
from ritornello.store.memory import MemoryStore
from tests.asgi_call import asgi_call as _asgi

FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)

blobs = Service("Blobs")


class Csv:
    """A serde of rows as CSV text (standing for any bytes a serde brings)."""

    content_type = "text/csv; charset=utf-8"

    def serialize(self, value: Any) -> bytes:
        return "".join(",".join(map(str, row)) + "\n" for row in value).encode()

    def deserialize(self, data: bytes) -> list[list[str]]:
        return [line.split(",") for line in data.decode().splitlines()]


@blobs.handler()
async def upper(ctx: Context, data: bytes) -> bytes:
    return data.upper()


@blobs.handler()
async def checksum(ctx: Context, data: bytes) -> dict[str, int]:
    return {"size": len(data), "sum": sum(data) % 256}


@blobs.handler(output_serde=BytesSerde("image/png"))
async def thumbnail(ctx: Context, size: int) -> bytes:
    return b"\x89PNG\r\n" + bytes(range(size))


@blobs.handler(input_serde=Csv(), output_serde=Csv())
async def transpose(ctx: Context, rows: list[list[str]]) -> list[list[str]]:
    return [list(col) for col in zip(*rows, strict=True)]


@blobs.handler()
async def refuse(ctx: Context, data: bytes) -> bytes:
    raise TerminalError(f"no thanks to {len(data)} bytes", status_code=422)


@blobs.handler()
async def relay(ctx: Context, text: str) -> str:
    """Calls a raw handler from a handler: bytes in, bytes back."""
    out: bytes = await ctx.call(upper, text.encode())
    return out.decode()


@blobs.handler()
async def doubled(ctx: Context, n: int) -> int:
    return n * 2


def _with_ingress(test: Callable[[Engine, IngressApp], Awaitable[None]]) -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        engine = Engine(store, retry=FAST, inprocess={"app": Endpoint([blobs]).inprocess()})
        await engine.start()
        try:
            await engine.register_deployment("inproc://app")
            await test(engine, IngressApp(engine))
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


async def _input_entry(engine: Engine, inv_id: str) -> dict[str, Any]:
    entries, _ = await engine.store.get_journal(inv_id)
    entry: dict[str, Any] = json.loads(entries[0])
    return entry


BINARY = bytes(range(256))  # not UTF-8, not JSON


def test_a_raw_handler_takes_any_body_as_it_arrived_and_answers_bytes() -> None:
    async def test(engine: Engine, app: IngressApp) -> None:
        for ct in ("application/octet-stream", "image/webp", "text/plain", None):
            headers = {"content-type": ct} if ct else {}
            status, answer, body = await _asgi(
                app, "POST", "/restate/call/Blobs/upper", b"hi \xff\x00", headers
            )
            assert (status, body) == (200, b"HI \xff\x00"), (ct, body)
            assert answer["content-type"] == "application/octet-stream"
            assert answer["content-length"] == "5"
            entry = await _input_entry(engine, answer["x-restate-id"])
            assert entry["value"] == "aGkg/wA="  # base64 of the body, byte for byte
        # the whole byte range, and the legacy path
        status, answer, body = await _asgi(app, "POST", "/Blobs/upper", BINARY)
        assert (status, body) == (200, BINARY.upper())
        # no body at all: the handler gets b""
        status, _, body = await _asgi(app, "POST", "/restate/call/Blobs/upper")
        assert (status, body) == (200, b"")

    _with_ingress(test)


def test_raw_in_json_out_and_json_in_raw_out() -> None:
    async def test(engine: Engine, app: IngressApp) -> None:
        status, answer, body = await _asgi(app, "POST", "/restate/call/Blobs/checksum", BINARY)
        assert (status, json.loads(body)) == (200, {"size": 256, "sum": 128})
        assert answer["content-type"] == "application/json"
        json_ct = {"content-type": "application/json"}
        status, answer, body = await _asgi(
            app, "POST", "/restate/call/Blobs/thumbnail", b"3", json_ct
        )
        assert (status, body) == (200, b"\x89PNG\r\n\x00\x01\x02")
        assert answer["content-type"] == "image/png"
        # a JSON input of a raw-output handler is still JSON: text/plain is refused
        status, _, body = await _asgi(
            app, "POST", "/restate/call/Blobs/thumbnail", b"3", {"content-type": "text/plain"}
        )
        assert status == 415, body

    _with_ingress(test)


def test_a_custom_serde_brings_its_content_type_both_ways() -> None:
    async def test(engine: Engine, app: IngressApp) -> None:
        status, answer, body = await _asgi(
            app,
            "POST",
            "/restate/call/Blobs/transpose",
            b"a,b,c\n1,2,3\n",
            {"content-type": "text/csv"},
        )
        assert (status, body) == (200, b"a,1\nb,2\nc,3\n")
        assert answer["content-type"] == "text/csv; charset=utf-8"

    _with_ingress(test)


def test_attach_and_output_answer_raw_bytes_too() -> None:
    async def test(engine: Engine, app: IngressApp) -> None:
        status, answer, body = await _asgi(app, "POST", "/restate/send/Blobs/upper", b"late \x01")
        assert status == 202 and answer["content-type"] == "application/json"
        inv_id = json.loads(body)["invocationId"]
        status, answer, body = await _asgi(app, "GET", f"/restate/attach/{inv_id}")
        assert (status, body, answer["content-type"]) == (
            200,
            b"LATE \x01",
            "application/octet-stream",
        )
        for path in (f"/restate/output/{inv_id}", f"/restate/invocation/{inv_id}/output"):
            status, answer, body = await _asgi(app, "GET", path)
            assert (status, body) == (200, b"LATE \x01")
            assert answer["content-type"] == "application/octet-stream"

    _with_ingress(test)


def test_failures_of_raw_handlers_are_json_messages() -> None:
    async def test(engine: Engine, app: IngressApp) -> None:
        status, answer, body = await _asgi(app, "POST", "/restate/call/Blobs/refuse", b"abc")
        assert (status, json.loads(body)) == (422, {"message": "no thanks to 3 bytes"})
        assert answer["content-type"] == "application/json"

    _with_ingress(test)


def test_a_browser_cannot_send_a_raw_handler_a_simple_request() -> None:
    """A page a visitor opens could POST a form or text/plain (no CORS preflight) to an ingress
    on their machine: a raw handler refuses those from a browser, as JSON handlers refuse any
    non-JSON content type. A content type that needs a preflight passes (and the ingress
    allows no preflight, so only non-browser clients send one)."""

    async def test(engine: Engine, app: IngressApp) -> None:
        origin = {"origin": "http://evil.example"}
        for ct in (
            None,
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ):
            headers = {**origin, **({"content-type": ct} if ct else {})}
            status, _, body = await _asgi(app, "POST", "/restate/call/Blobs/upper", b"x", headers)
            assert status == 415 and b"preflight" in body, (ct, body)
        fetch = {"sec-fetch-mode": "cors", "content-type": "text/plain;charset=UTF-8"}
        status, _, _ = await _asgi(app, "POST", "/restate/call/Blobs/upper", b"x", fetch)
        assert status == 415
        octets = {**origin, "content-type": "application/octet-stream"}
        status, _, body = await _asgi(app, "POST", "/restate/call/Blobs/upper", b"x", octets)
        assert (status, body) == (200, b"X")
        invocations = await engine.store.list_invocations()
        assert len(invocations) == 1  # the refused ones stored nothing

    _with_ingress(test)


def test_json_handlers_keep_their_behaviour() -> None:
    async def test(engine: Engine, app: IngressApp) -> None:
        json_ct = {"content-type": "application/json"}
        status, answer, body = await _asgi(
            app, "POST", "/restate/call/Blobs/doubled", b"21", json_ct
        )
        assert (status, body, answer["content-type"]) == (200, b"42", "application/json")
        status, _, body = await _asgi(
            app, "POST", "/restate/call/Blobs/doubled", b"21", {"content-type": "text/plain"}
        )
        assert status == 415 and b"not JSON" in body
        status, _, _ = await _asgi(app, "POST", "/restate/call/Blobs/doubled", b"{", json_ct)
        assert status == 400
        # a handler calling a raw handler: the bytes travel as base64, both ways
        status, _, body = await _asgi(app, "POST", "/restate/call/Blobs/relay", b'"abc"', json_ct)
        assert (status, json.loads(body)) == (200, "ABC")

    _with_ingress(test)


def test_content_types_travel_from_discovery_through_the_store() -> None:
    """A second engine over the same store reads the deployment back (no new discovery) and
    answers raw handlers the same way."""

    async def main() -> None:
        store = MemoryStore()
        await store.open()
        endpoint = Endpoint([blobs]).inprocess()
        first = Engine(store, retry=FAST, inprocess={"app": endpoint})
        await first.start()
        await first.register_deployment("inproc://app")
        await first.stop()
        second = Engine(store, retry=FAST, inprocess={"app": endpoint})
        await second.start()
        try:
            target = second.registry.resolve("Blobs", "transpose")
            assert target is not None
            assert target.handler.input_content_type == "text/csv; charset=utf-8"
            assert target.handler.output_content_type == "text/csv; charset=utf-8"
            plain = second.registry.resolve("Blobs", "doubled")
            assert plain is not None
            assert (plain.handler.input_content_type, plain.handler.output_content_type) == (
                None,
                None,
            )
            status, answer, body = await _asgi(
                IngressApp(second), "POST", "/restate/call/Blobs/upper", b"again"
            )
            assert (status, body) == (200, b"AGAIN")
            assert answer["content-type"] == "application/octet-stream"
        finally:
            await second.stop()
            await store.close()

    asyncio.run(main())
