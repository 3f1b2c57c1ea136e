"""``GET /services/{svc}/openapi`` and the schemas of ``GET /services/{svc}``, through the
admin app in process (httpx's ASGI transport) over an engine on the in-memory store with an
in-process endpoint: the document of a service, an object and a workflow is valid OpenAPI 3.1
(``openapi-spec-validator``), names every ingress path with its body, answers and headers; a
request built from the documented schema alone is accepted by the ingress and reaches the
handler as the typed value; raw handlers show content types and no schema; 404 for an unknown
service. With service settings: ``GET /services/{svc}`` shows each handler's settings beside its
schemas, the code's descriptions become the document's, and a handler the ingress refuses
(private in code, or through ``PATCH``) has no path."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Literal

import httpx
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from ritornello import BytesSerde, Context, Endpoint, Service, VirtualObject, Workflow
from ritornello.admin import create_app
from ritornello.admin._service_openapi import service_openapi
from ritornello.orchestrator import Engine, IngressApp
from ritornello.protocol import HandlerInfo, ServiceInfo
from ritornello.store.memory import MemoryStore
from tests.asgi_call import asgi_call


@dataclasses.dataclass
class Line:
    sku: str
    price: Decimal
    due: dt.date
    gift: bool = False


@dataclasses.dataclass
class Order:
    """An order placed at the ingress."""

    lines: list[Line]
    rush: Literal["no", "yes"]
    parent: Order | None = None


orders = Service("Orders")
carts = VirtualObject("Cart")
signup = Workflow("Signup")
billing = Service("Billing", description="charges and refunds", journal_retention="30d")
seen: list[Any] = []


@orders.handler()
async def place(ctx: Context, order: Order) -> dict[str, Decimal]:
    seen.append(order)
    return {"total": sum((line.price for line in order.lines), Decimal(0))}


@orders.handler(output_serde=BytesSerde("text/csv"))
async def export(ctx: Context, data: bytes) -> bytes:
    return data


@carts.handler()
async def add(ctx: Context, line: Line) -> int:
    seen.append((ctx.key, line))
    return 1


@carts.handler(kind="shared")
async def peek(ctx: Context) -> list[Line]:
    return []


@signup.main()
async def run(ctx: Context, email: str) -> bool:
    seen.append((ctx.key, email))
    return True


@signup.handler()
async def confirm(ctx: Context, secret: str | None = None) -> None:
    return None


@billing.handler(description="one charge")
async def charge(ctx: Context, line: Line) -> Decimal:
    return line.price


@billing.handler(ingress_private=True)
async def refund(ctx: Context, amount: Decimal) -> None:
    return None


Admin = Callable[[str], Awaitable[httpx.Response]]


def _with_stack(test: Callable[[Engine, Admin, IngressApp], Awaitable[None]]) -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        endpoint = Endpoint([orders, carts, signup, billing]).inprocess()
        engine = Engine(store, inprocess={"app": endpoint})
        await engine.start()
        transport = httpx.ASGITransport(app=create_app(engine, admin_token=""))
        try:
            await engine.register_deployment("inproc://app")
            async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
                await test(engine, client.get, IngressApp(engine))
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


_FORMATS = {"decimal": "12.50", "date": "2024-02-29", "date-time": "2024-02-29T10:00:00+00:00"}


def _example(schema: dict[str, Any], doc: dict[str, Any], depth: int = 0) -> Any:
    """A value made from ``schema`` alone: required properties, one item per array, the
    first option of a choice (the last past a depth of 3, to end recursion at null)."""
    schema = _resolve(schema, doc)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][-1]
    if "anyOf" in schema:
        options = schema["anyOf"]
        return _example(options[-1] if depth > 3 else options[0], doc, depth + 1)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(props[k], doc, depth + 1) for k in schema.get("required", [])}
    if kind == "array":
        return [_example(schema.get("items", {}), doc, depth + 1)]
    if kind == "string":
        return _FORMATS.get(schema.get("format", ""), "text")
    return {"integer": 7, "number": 1.5, "boolean": True, "null": None}.get(kind)


def _validator(schema: dict[str, Any], doc: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` whose ``#/components/...`` references resolve in ``doc``."""
    return Draft202012Validator({**schema, "components": doc["components"]})


def test_a_service_document_is_valid_openapi_with_every_ingress_path() -> None:
    async def test(engine: Engine, get: Admin, ingress: IngressApp) -> None:
        resp = await get("/services/Orders/openapi")
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
        doc = resp.json()
        validate(doc)  # OpenAPI 3.1, its schemas and references included
        assert doc["openapi"] == "3.1.0" and doc["info"]["title"] == "Orders"
        assert set(doc["paths"]) == {
            f"{prefix}/Orders/{h}{suffix}"
            for h in ("place", "export")
            for prefix, suffix in [
                ("/restate/call", ""),
                ("/restate/send", ""),
                ("", ""),
                ("", "/send"),
            ]
        }
        call = doc["paths"]["/restate/call/Orders/place"]["post"]
        body = call["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Order"
        }
        order = doc["components"]["schemas"]["Order"]
        assert order["description"] == "An order placed at the ingress."
        # the recursive reference now points into components
        assert order["properties"]["parent"]["anyOf"][0] == {"$ref": "#/components/schemas/Order"}
        assert doc["components"]["schemas"]["Line"]["required"] == ["sku", "price", "due"]
        ok = call["responses"]["200"]
        assert ok["content"]["application/json"]["schema"] == {
            "type": "object",
            "additionalProperties": {"type": "string", "format": "decimal"},
        }
        assert "x-restate-id" in ok["headers"]
        assert {"400", "404", "default"} <= set(call["responses"])
        params = [p["$ref"].rsplit("/", 1)[-1] for p in call["parameters"]]
        assert params == ["IdempotencyKey"]
        assert doc["components"]["parameters"]["IdempotencyKey"]["name"] == "Idempotency-Key"
        send = doc["paths"]["/restate/send/Orders/place"]["post"]
        assert set(send["responses"]) >= {"202", "400"} and "200" not in send["responses"]
        assert [p["$ref"].rsplit("/", 1)[-1] for p in send["parameters"]] == [
            "IdempotencyKey",
            "Delay",
        ]
        accepted = doc["components"]["responses"]["Accepted"]["content"]["application/json"]
        assert accepted["schema"] == {"$ref": "#/components/schemas/SendResponse"}
        assert doc["paths"]["/Orders/place/send"]["post"]["requestBody"] == body
        # a raw handler: its content types, no schema
        raw = doc["paths"]["/restate/call/Orders/export"]["post"]
        assert raw["requestBody"]["content"] == {"application/octet-stream": {}}
        assert raw["responses"]["200"]["content"] == {"text/csv": {}}
        ids = [op["post"]["operationId"] for op in doc["paths"].values()]
        assert len(ids) == len(set(ids)) == 8

    _with_stack(test)


def test_a_request_built_from_the_schema_is_accepted_by_the_ingress() -> None:
    async def test(engine: Engine, get: Admin, ingress: IngressApp) -> None:
        doc = (await get("/services/Orders/openapi")).json()
        op = doc["paths"]["/restate/call/Orders/place"]["post"]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        body = _example(schema, doc)
        _validator(schema, doc).validate(body)
        seen.clear()
        status, _, answer = await asgi_call(
            ingress,
            "POST",
            "/restate/call/Orders/place",
            json.dumps(body).encode(),
            {"content-type": "application/json", "idempotency-key": "k1"},
        )
        assert status == 200, answer
        out = json.loads(answer)
        assert out == {"total": "12.50"}
        _validator(op["responses"]["200"]["content"]["application/json"]["schema"], doc).validate(
            out
        )
        assert seen == [Order([Line("text", Decimal("12.50"), dt.date(2024, 2, 29))], rush="yes")]
        # the documented send answer
        status, _, answer = await asgi_call(
            ingress, "POST", "/restate/send/Orders/place", json.dumps(body).encode()
        )
        assert status == 202
        accepted = doc["components"]["responses"]["Accepted"]["content"]["application/json"]
        _validator(accepted["schema"], doc).validate(json.loads(answer))
        # a body the schema refuses is refused by the handler too (400), never run
        bad = {**body, "rush": "maybe"}
        assert not _validator(schema, doc).is_valid(bad)
        status, _, answer = await asgi_call(
            ingress, "POST", "/restate/call/Orders/place", json.dumps(bad).encode()
        )
        assert status == 400 and "rush" in json.loads(answer)["message"]
        _validator({"$ref": "#/components/schemas/Error"}, doc).validate(json.loads(answer))

    _with_stack(test)


def test_object_and_workflow_documents_take_the_key_in_the_path() -> None:
    async def test(engine: Engine, get: Admin, ingress: IngressApp) -> None:
        cart = (await get("/services/Cart/openapi")).json()
        validate(cart)
        assert set(cart["paths"]) >= {
            "/restate/call/Cart/{key}/add",
            "/restate/send/Cart/{key}/add",
            "/Cart/{key}/add",
            "/Cart/{key}/add/send",
            "/restate/call/Cart/{key}/peek",
        }
        add_op = cart["paths"]["/restate/call/Cart/{key}/add"]["post"]
        assert add_op["parameters"][0] == {"$ref": "#/components/parameters/Key"}
        assert cart["components"]["parameters"]["Key"]["in"] == "path"
        peek_op = cart["paths"]["/restate/call/Cart/{key}/peek"]["post"]
        assert "requestBody" not in peek_op  # it takes no input
        schema = add_op["requestBody"]["content"]["application/json"]["schema"]
        seen.clear()
        status, _, answer = await asgi_call(
            ingress, "POST", "/Cart/c1/add", json.dumps(_example(schema, cart)).encode()
        )
        assert (status, json.loads(answer)) == (200, 1)
        assert seen == [("c1", Line("text", Decimal("12.50"), dt.date(2024, 2, 29)))]

        flow = (await get("/services/Signup/openapi")).json()
        validate(flow)
        run_op = flow["paths"]["/restate/call/Signup/{key}/run"]["post"]
        assert run_op["summary"] == "Call Signup/run (workflow)"
        assert run_op["requestBody"]["content"]["application/json"]["schema"] == {"type": "string"}
        confirm_op = flow["paths"]["/restate/send/Signup/{key}/confirm"]["post"]
        assert confirm_op["requestBody"]["required"] is False  # its input has a default
        status, _, answer = await asgi_call(
            ingress, "POST", "/restate/call/Signup/w1/run", b'"a@b.c"'
        )
        assert (status, json.loads(answer)) == (200, True)

    _with_stack(test)


def test_the_service_view_shows_each_handlers_schemas_and_an_unknown_service_is_404() -> None:
    async def test(engine: Engine, get: Admin, ingress: IngressApp) -> None:
        body = (await get("/services/Orders")).json()
        handlers = {h["name"]: h for h in body["handlers"]}
        place_h = handlers["place"]
        assert place_h["input_json_schema"]["$ref"] == "#/$defs/Order"
        assert set(place_h["input_json_schema"]["$defs"]) == {"Order", "Line"}
        assert place_h["input_description"] == "value of content-type 'application/json'"
        Draft202012Validator.check_schema(place_h["input_json_schema"])
        export_h = handlers["export"]
        assert export_h["input_json_schema"] is None and export_h["output_json_schema"] is None
        assert export_h["output_description"] == "value of content-type 'text/csv'"
        peek_h = (await get("/services/Cart/handlers")).json()["handlers"][1]
        assert (peek_h["name"], peek_h["input_description"]) == ("peek", "none")
        confirm_h = (await get("/services/Signup")).json()["handlers"][1]
        assert confirm_h["input_description"] == (
            'one of ["none", "value of content-type \'application/json\'"]'
        )
        missing = await get("/services/Nope/openapi")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "service Nope not found"}
        spec = (await get("/openapi.json")).json()
        assert "/services/{service}/openapi" in spec["paths"]

    _with_stack(test)


def test_schemas_of_two_handlers_share_components_and_clashing_names_are_renamed() -> None:
    """Pure: one ``Line`` used by two handlers is one component; two different schemas of
    one name get ``Name`` and ``Name2``; a schema referring to its own root (``#``) becomes a
    component; an endpoint that said nothing gets a body of any JSON."""
    line = {"type": "object", "properties": {"n": {"type": "integer"}}}
    other = {"type": "object", "properties": {"s": {"type": "string"}}}
    looped = {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"$ref": "#"}]}}
    info = ServiceInfo(
        "S",
        "service",
        (
            HandlerInfo("a", input_schema={"$ref": "#/$defs/Line", "$defs": {"Line": line}}),
            HandlerInfo("b", output_schema={"$ref": "#/$defs/Line", "$defs": {"Line": line}}),
            HandlerInfo(
                "c", input_schema={"$ref": "#/definitions/Line", "definitions": {"Line": other}}
            ),
            HandlerInfo("d", input_schema=looped, input_required=True),
            HandlerInfo("e"),
            HandlerInfo("Error", output_schema={"$ref": "#/$defs/Error", "$defs": {"Error": line}}),
        ),
    )
    doc = service_openapi(info, "1")
    validate(doc)
    schemas = doc["components"]["schemas"]
    assert schemas["Line"] == line and schemas["Line2"] == other
    assert schemas["Error"]["required"] == ["message"] and schemas["Error2"] == line
    assert schemas["S_d_Input"]["items"]["anyOf"][1] == {"$ref": "#/components/schemas/S_d_Input"}
    e_body = doc["paths"]["/restate/call/S/e"]["post"]["requestBody"]
    assert e_body == {
        "description": "The input, as JSON",
        "required": False,
        "content": {"application/json": {"schema": {}}},
    }
    assert service_openapi(info, "1") == doc  # a pure function of the discovery


def test_settings_and_schemas_together_private_handlers_have_no_path() -> None:
    """``GET /services/Billing`` shows the settings and each handler's schemas side by side;
    the code's descriptions are the document's; ``refund`` (private in code) has no path;
    ``public=false`` (``engine.patch_service``, what ``PATCH /services/{svc}`` calls) takes
    ``charge``'s away too (the ingress refuses it: 400), and ``public=true`` (an operator's
    override beats the code) gives both handlers theirs."""

    async def test(engine: Engine, get: Admin, ingress: IngressApp) -> None:
        body = (await get("/services/Billing")).json()
        assert (body["documentation"], body["journal_retention"]) == (
            "charges and refunds",
            "30days",
        )
        handlers = {h["name"]: h for h in body["handlers"]}
        assert handlers["charge"]["input_json_schema"]["$ref"] == "#/$defs/Line"
        assert handlers["charge"]["documentation"] == "one charge"
        assert handlers["charge"]["public"] is True and handlers["refund"]["public"] is False
        assert handlers["refund"]["input_json_schema"] == {"type": "string", "format": "decimal"}

        doc = (await get("/services/Billing/openapi")).json()
        validate(doc)
        assert doc["info"]["description"].startswith("charges and refunds\n\n")
        assert set(doc["paths"]) == {
            "/restate/call/Billing/charge",
            "/restate/send/Billing/charge",
            "/Billing/charge",
            "/Billing/charge/send",
        }
        assert doc["paths"]["/Billing/charge"]["post"]["description"] == "one charge"

        await engine.patch_service("Billing", {"public": False})
        body = (await get("/services/Billing")).json()
        assert body["public"] is False and body["overrides"] == ["public"]
        assert body["handlers"][0]["input_json_schema"]["$ref"] == "#/$defs/Line"
        assert (await get("/services/Billing/openapi")).json()["paths"] == {}
        line = json.dumps({"sku": "a", "price": "1.50", "due": "2024-02-29"}).encode()
        headers = {"content-type": "application/json"}
        status, _, answer = await asgi_call(ingress, "POST", "/Billing/charge", line, headers)
        assert status == 400 and b"private" in answer
        await engine.patch_service("Billing", {"public": True})  # beats refund's code too
        assert len((await get("/services/Billing/openapi")).json()["paths"]) == 8

    _with_stack(test)
