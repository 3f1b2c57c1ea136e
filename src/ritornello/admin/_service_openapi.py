"""The OpenAPI 3.1 document of one service's ingress paths (``GET /services/{svc}/openapi``).

``service_openapi(info, version)`` describes, for every handler of the service, the paths the
ingress serves for it (docs/admin-api.md, "A service's OpenAPI document"): Restate's
``POST /restate/call/...`` and ``POST /restate/send/...``, and the older forms
``POST /{Service}/...`` and ``POST /{Service}/.../send``; objects and workflows with their
``{key}`` segment. Each operation carries the handler's input as its request body (its JSON
Schema, or a raw handler's content type), its output as the 200 answer (a send: the 202
``{"invocationId", "status"}``), the optional ``Idempotency-Key`` header, ``?delay=`` on sends,
and the error answers (``{"message"}``). A handler the ingress refuses (ingress-private, in
code or through ``PATCH /services/{svc}``) has no path; the code's description of the service
and of each handler is the document's and the operations' ``description``.

Invariants: the document is a pure function of the ``ServiceInfo`` and the set of private
handlers (the same discovery and settings, the same document); each handler schema's ``$defs``
are moved under ``components/schemas`` with their references rewritten (in an OpenAPI document
``#/$defs/...`` would point at the document's root), a name met twice with different schemas
getting a suffix; operation ids are unique.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException

from ritornello.admin._models import errors
from ritornello.admin._views import app_version
from ritornello.orchestrator import Engine
from ritornello.protocol import HandlerInfo, ServiceInfo

Schema = dict[str, Any]

_KIND = {"service": "service", "object": "virtual object", "workflow": "workflow"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_ERRORS = {
    "400": "Bad input: malformed JSON, a bad key or delay, an input the handler refused",
    "404": "No such service or handler",
    "415": "The body is not JSON (send content-type: application/json)",
    "default": "The handler failed (a TerminalError's status code and message)",
}


def service_openapi_router(engine: Engine) -> APIRouter:
    """``GET /services/{service}/openapi``: 404 when no deployment serves it."""
    router = APIRouter(tags=["services"])

    @router.get(
        "/services/{service}/openapi",
        response_model=dict[str, Any],
        responses=errors(404),
        summary="The OpenAPI 3.1 document of a service's ingress paths",
    )
    async def get_service_openapi(service: str) -> dict[str, Any]:
        found = engine.registry.service(service)
        if found is None:
            raise HTTPException(404, f"service {service} not found")
        info, dep = found
        private = frozenset(
            h.name for h in info.handlers if _is_private(engine, dep, info.name, h.name)
        )
        return service_openapi(info, app_version(), private=private)

    return router


def _is_private(engine: Engine, deployment_id: str, service: str, handler: str) -> bool:
    """The ingress refuses the handler (what ``ingress/_private.py`` asks, the same way)."""
    settings = engine.registry.settings_of(deployment_id, service, handler)
    return settings is not None and settings.ingress_private is True


def service_openapi(
    info: ServiceInfo, version: str, *, private: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``info``'s ingress paths (none for a handler in
    ``private``: the ingress refuses it)."""
    doc = _Document()
    keyed = info.kind != "service"
    for h in info.handlers:
        if h.name in private:
            continue
        request = doc.request_body(h, info.name)
        answer = doc.answer(h, info.name)
        for legacy in (False, True):
            for one_way in (False, True):
                path = _path(info.name, h.name, keyed, one_way=one_way, legacy=legacy)
                doc.paths[path] = {
                    "post": doc.operation(info, h, request, answer, one_way=one_way, legacy=legacy)
                }
    kind = _KIND.get(info.kind, info.kind)
    described = info.settings.description if info.settings is not None else None
    return {
        "openapi": "3.1.0",
        "info": {
            "title": info.name,
            "version": version,
            "description": (f"{described}\n\n" if described else "")
            + f"The ingress paths of the {kind} {info.name} (ingress port 8080 by "
            "default). Generated from the handlers' type hints, as their deployment declared "
            "them.",
        },
        "paths": doc.paths,
        "components": {  # (copies: a caller may change its document)
            "schemas": doc.schemas,
            "parameters": copy.deepcopy(_PARAMETERS),
            "headers": copy.deepcopy(_HEADERS),
            "responses": copy.deepcopy(_RESPONSES),
        },
    }


def payloads(h: HandlerInfo) -> dict[str, Any]:
    """A handler's input and output as ``GET /services/{svc}`` shows them (Restate's fields):
    ``input_description``, ``output_description``, and the JSON schemas when known."""
    out: dict[str, Any] = {
        "input_description": _describe_input(h),
        "output_description": _describe(h.output_content_type),
    }
    if h.input_schema is not None:
        out["input_json_schema"] = h.input_schema
    if h.output_schema is not None:
        out["output_json_schema"] = h.output_schema
    return out


def _describe(content_type: str | None) -> str:
    return f"value of content-type '{content_type or 'application/json'}'"


def _describe_input(h: HandlerInfo) -> str:
    if h.input_content_type is None and h.input_schema is None and h.input_required is not None:
        return "none"
    if h.input_content_type is not None or h.input_required is True:
        return _describe(h.input_content_type)
    return f'one of ["none", "{_describe(None)}"]'


def _path(service: str, handler: str, keyed: bool, *, one_way: bool, legacy: bool) -> str:
    segments = [_segment(service), *(["{key}"] if keyed else []), _segment(handler)]
    if legacy:
        return "/" + "/".join(segments + (["send"] if one_way else []))
    return f"/restate/{'send' if one_way else 'call'}/" + "/".join(segments)


def _segment(name: str) -> str:
    """A name as a literal path segment (percent-encoded where a template needs it)."""
    return quote(name, safe="-._~!$&'()*+,;=:@")


class _Document:
    """The paths and component schemas gathered so far."""

    def __init__(self) -> None:
        self.paths: dict[str, Any] = {}
        self.schemas: dict[str, Schema] = copy.deepcopy(_SHARED_SCHEMAS)
        #: component name -> the schema as the handler declared it (before rewriting)
        self._raw: dict[str, Schema] = dict(_SHARED_SCHEMAS)
        self._operation_ids: set[str] = set()

    def request_body(self, h: HandlerInfo, service: str) -> dict[str, Any] | None:
        if h.input_content_type is not None:  # raw bytes: any body, as it is
            return {
                "description": f"The input, raw ({h.input_content_type})",
                "required": False,
                "content": {h.input_content_type: {}},
            }
        if h.input_schema is None and h.input_required is not None:
            return None  # the handler takes no input
        schema = self.hoist({} if h.input_schema is None else h.input_schema, service, h, "Input")
        return {
            "description": "The input, as JSON",
            "required": h.input_required is True,
            "content": {"application/json": {"schema": schema}},
        }

    def answer(self, h: HandlerInfo, service: str) -> dict[str, Any]:
        if h.output_content_type is not None:
            content: dict[str, Any] = {h.output_content_type: {}}
        else:
            schema = {} if h.output_schema is None else h.output_schema
            content = {"application/json": {"schema": self.hoist(schema, service, h, "Output")}}
        return {
            "description": "The handler's output",
            "headers": {"x-restate-id": {"$ref": "#/components/headers/InvocationId"}},
            "content": content,
        }

    def operation(
        self,
        info: ServiceInfo,
        h: HandlerInfo,
        request: dict[str, Any] | None,
        answer: dict[str, Any],
        *,
        one_way: bool,
        legacy: bool,
    ) -> dict[str, Any]:
        keyed = info.kind != "service"
        what = "Send to" if one_way else "Call"
        params: list[Any] = [{"$ref": "#/components/parameters/IdempotencyKey"}]
        if keyed:
            params.insert(0, {"$ref": "#/components/parameters/Key"})
        if one_way:
            params.append({"$ref": "#/components/parameters/Delay"})
        op: dict[str, Any] = {
            "operationId": self._operation_id(h.name, one_way=one_way, legacy=legacy),
            "summary": f"{what} {info.name}/{h.name} ({h.kind})",
            "tags": [info.name],
            "parameters": params,
        }
        if h.settings is not None and h.settings.description:
            op["description"] = h.settings.description
        if request is not None:
            op["requestBody"] = request
        ok = {"202": {"$ref": "#/components/responses/Accepted"}} if one_way else {"200": answer}
        op["responses"] = {
            **ok,
            **{
                code: {"description": text, "content": _json(_ERROR)}
                for code, text in _ERRORS.items()
            },
        }
        return op

    def _operation_id(self, handler: str, *, one_way: bool, legacy: bool) -> str:
        base = handler + ("_send" if one_way else "") + ("_legacy" if legacy else "")
        found, n = base, 1
        while found in self._operation_ids:
            n += 1
            found = f"{base}_{n}"
        self._operation_ids.add(found)
        return found

    def hoist(self, schema: Schema, service: str, h: HandlerInfo, side: str) -> Schema:
        """``schema`` with its ``$defs`` (or ``definitions``) under ``components/schemas``
        (a self-reference ``#``: the whole schema there, as ``{Service}_{handler}_{side}``)."""
        schema = dict(schema)
        local: dict[str, Schema] = {}
        for holder in ("$defs", "definitions"):
            defs = schema.pop(holder, None)
            if isinstance(defs, dict):
                local.update({f"#/{holder}/{name}": s for name, s in defs.items()})
        names: dict[str, str] = {}
        for ref in local:
            names[ref] = self._claim(ref.rsplit("/", 1)[-1], local[ref], names)
        if _refers_to_root(schema):
            names["#"] = self._claim(f"{service}_{h.name}_{side}", schema, names)
        for ref, name in names.items():
            self.schemas[name] = _rewrite(schema if ref == "#" else local[ref], names)
        root = _rewrite(schema, names)
        return {"$ref": f"#/components/schemas/{names['#']}"} if "#" in names else root

    def _claim(self, wanted: str, schema: Schema, taken_here: dict[str, str]) -> str:
        """A free component name for ``schema`` (its own, if free or holding the same)."""
        base = "".join(c if c.isalnum() or c in "._-" else "_" for c in wanted) or "Schema"
        name, n = base, 1
        while name in taken_here.values() or self._raw.get(name, schema) != schema:
            n += 1
            name = f"{base}{n}"
        self._raw[name] = schema  # (filled in under schemas once every name is known)
        return name


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _refers_to_root(schema: Any) -> bool:
    if isinstance(schema, dict):
        return schema.get("$ref") == "#" or any(_refers_to_root(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_refers_to_root(v) for v in schema)
    return False


def _rewrite(schema: Any, names: dict[str, str]) -> Any:
    """``schema`` with its local references pointing at ``#/components/schemas/...``."""
    if isinstance(schema, dict):
        out = {k: _rewrite(v, names) for k, v in schema.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref in names:
            out["$ref"] = f"#/components/schemas/{names[ref]}"
        return out
    if isinstance(schema, list):
        return [_rewrite(v, names) for v in schema]
    return schema


_SHARED_SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    },
    "SendResponse": {
        "type": "object",
        "properties": {
            "invocationId": {"type": "string"},
            "status": {"enum": ["Accepted", "PreviouslyAccepted"]},
        },
        "required": ["invocationId", "status"],
    },
}

_PARAMETERS: dict[str, Any] = {
    "Key": {
        "name": "key",
        "in": "path",
        "required": True,
        "description": "The object key or workflow id",
        "schema": {"type": "string"},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "The same key within the retention window: the same invocation",
        "schema": {"type": "string"},
    },
    "Delay": {
        "name": "delay",
        "in": "query",
        "required": False,
        "description": "Start it later: 10s, 500ms, 1m30s or PT10S",
        "schema": {"type": "string"},
    },
}

_HEADERS: dict[str, Any] = {
    "InvocationId": {"description": "The invocation's id", "schema": {"type": "string"}},
}

_RESPONSES: dict[str, Any] = {
    "Accepted": {
        "description": "Accepted: the invocation is stored and will run (or was already, with "
        "this idempotency key)",
        "headers": {"x-restate-id": {"$ref": "#/components/headers/InvocationId"}},
        "content": _json({"$ref": "#/components/schemas/SendResponse"}),
    },
}
