"""``ritornello deployments ...`` and ``ritornello services ...`` over the admin API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._client import (
    DEFAULT_ADMIN_URL,
    AdminTokenOpt,
    AdminUrlOpt,
    ApiError,
    CliError,
    JsonOpt,
    admin,
    fails_cleanly,
    quote,
    reworded,
)
from ._output import fields, note, print_json, table, when
from ._services_set import set_service, settings_lines

deployments_app = typer.Typer(
    name="deployments", help="Register, list and remove deployments.", no_args_is_help=True
)
services_app = typer.Typer(
    name="services", help="Services and their handlers.", no_args_is_help=True
)


def _service_names(dep: dict[str, Any]) -> str:
    return ", ".join(s.get("name", "?") for s in dep.get("services", []))


def _show_deployment(dep: dict[str, Any]) -> None:
    shown = [("id", dep["id"]), ("uri", dep.get("uri")), ("created", when(dep.get("created_at")))]
    if dep.get("execution_timeout_s") is not None:
        shown.append(("execution timeout", f"{dep['execution_timeout_s']} s"))
    fields(shown)
    rows = [
        (s.get("name"), s.get("kind"), ", ".join(h.get("name", "?") for h in s.get("handlers", [])))
        for s in dep.get("services", [])
    ]
    table("services", ["service", "kind", "handlers"], rows)


@deployments_app.command("list")
@fails_cleanly
def list_deployments(
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every registered deployment, oldest first."""
    with admin(admin_url, token) as api:
        body = api.get("/deployments")
    if as_json:
        return print_json(body)
    rows = [
        (d["id"], d.get("uri"), when(d.get("created_at")), _service_names(d))
        for d in body["deployments"]
    ]
    table(None, ["id", "uri", "created", "services"], rows)


@deployments_app.command("show")
@fails_cleanly
def show_deployment(
    deployment_id: Annotated[str, typer.Argument(metavar="ID")],
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One deployment and the services it serves."""
    with admin(admin_url, token) as api:
        dep = api.get(f"/deployments/{quote(deployment_id)}")
    if as_json:
        return print_json(dep)
    _show_deployment(dep)


#: The admin API's field names in its refusals of a registration, as the flags are named.
_FLAGS = {
    '"aws-durable" takes arn and service (not uri)': "aws-durable takes --arn and --service "
    "(not URI)",
    '"aws-durable" takes no assume_role_arn nor limit': "aws-durable takes no "
    "--assume-role-arn nor --limit",
    'protocol must be "aws-durable"': '--protocol must be "aws-durable"',
    "assume_role_arn goes with arn": "--assume-role-arn goes with --arn",
    'execution_timeout_s goes with protocol "aws-durable"': "--execution-timeout goes with "
    "--protocol aws-durable",
    "execution_timeout_s must be": "--execution-timeout must be",
}


@deployments_app.command("register")
@fails_cleanly
def register(
    uri: Annotated[
        str | None,
        typer.Argument(metavar="[URI]", help="http(s)://host:port, a Function URL, inproc://NAME"),
    ] = None,
    arn: Annotated[
        str | None,
        typer.Option("--arn", metavar="ARN", help="a Lambda function ARN with a version or alias"),
    ] = None,
    assume_role_arn: Annotated[
        str | None,
        typer.Option("--assume-role-arn", metavar="ARN", help="IAM role to invoke the function"),
    ] = None,
    limit: Annotated[
        str | None,
        typer.Option(
            "--limit", metavar="NAME", help="a named limit every handler of it holds while it runs"
        ),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            metavar="NAME",
            help="aws-durable: --arn is an AWS Lambda durable function (with --service)",
        ),
    ] = None,
    service: Annotated[
        str | None,
        typer.Option(
            "--service", metavar="NAME", help="the service an aws-durable function is served as"
        ),
    ] = None,
    execution_timeout: Annotated[
        int | None,
        typer.Option(
            "--execution-timeout",
            metavar="SECONDS",
            help="aws-durable: each execution's timeout (1 to 31622400 s; past it, TIMED_OUT)",
        ),
    ] = None,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Discover an endpoint's services and register them (give URI or --arn). An AWS
    Lambda durable function: --arn with its version or alias, --protocol aws-durable and
    --service NAME (its one handler is run), optionally --execution-timeout SECONDS."""
    if (uri is None) == (arn is None):
        raise CliError("give exactly one of URI or --arn")
    body: dict[str, Any] = {"uri": uri} if uri is not None else {"arn": arn}
    for name, value in (
        ("assume_role_arn", assume_role_arn),
        ("limit", limit),
        ("protocol", protocol),
        ("service", service),
        ("execution_timeout_s", execution_timeout),
    ):
        if value is not None:
            body[name] = value
    with admin(admin_url, token) as api:
        try:
            dep = api.send("POST", "/deployments", body)
        except ApiError as exc:  # the admin API's refusal, in the flags' names
            raise reworded(exc, 400 if exc.status == 400 else 422, _FLAGS) from None
    if as_json:
        return print_json(dep)
    note(f"registered deployment {dep['id']}")
    _show_deployment(dep)


@deployments_app.command("delete")
@fails_cleanly
def delete(
    deployment_id: Annotated[str, typer.Argument(metavar="ID")],
    force: Annotated[
        bool,
        typer.Option("--force", metavar="", help="even if unfinished invocations still use it"),
    ] = False,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a deployment. Refused while unfinished invocations are pinned to it, unless
    --force."""
    with admin(admin_url, token) as api:
        try:
            body = api.send(
                "DELETE", f"/deployments/{quote(deployment_id)}", force="true" if force else None
            )
        except ApiError as exc:
            raise reworded(exc, 409, {"pass ?force=true": "add --force"}) from None
    if as_json:
        return print_json(body if body is not None else {"id": deployment_id})
    note(f"deleted deployment {deployment_id}")


def _handlers(svc: dict[str, Any]) -> str:
    return ", ".join(f"{h['name']} ({h.get('ty', '?').lower()})" for h in svc.get("handlers", []))


@services_app.command("list")
@fails_cleanly
def list_services(
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every service of the current deployments."""
    with admin(admin_url, token) as api:
        body = api.get("/services")
    if as_json:
        return print_json(body)
    rows = [
        (s["name"], s.get("ty"), s.get("deployment_id"), _handlers(s)) for s in body["services"]
    ]
    table(None, ["service", "type", "deployment", "handlers"], rows, whole=("type", "deployment"))


@services_app.command("show")
@fails_cleanly
def show_service(
    name: Annotated[str, typer.Argument(metavar="SERVICE")],
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One service: its type, deployment, settings and handlers."""
    with admin(admin_url, token) as api:
        svc = api.get(f"/services/{quote(name)}")
    if as_json:
        return print_json(svc)
    fields(
        [
            ("service", svc["name"]),
            ("type", svc.get("ty")),
            ("deployment", svc.get("deployment_id")),
        ]
    )
    settings_lines(svc)
    rows = [
        (
            h["name"],
            h.get("ty"),
            _payload(h, "input"),
            _payload(h, "output"),
            str(h.get("public", True)).lower(),
            h.get("documentation"),
        )
        for h in svc["handlers"]
    ]
    table("handlers", ["handler", "type", "input", "output", "public", "description"], rows)


services_app.command("set")(set_service)


def _payload(handler: dict[str, Any], side: str) -> str:
    """A handler's input or output in a few words: its schema's type or class name, a raw
    handler's content type, ``none``."""
    schema = handler.get(f"{side}_json_schema")
    if schema is None:
        described = handler.get(f"{side}_description") or ""
        if described == "none":
            return "none"
        return described.removeprefix("value of content-type ").strip("'") or "?"
    text = _schema_words(schema)
    if side == "input" and (handler.get("input_description") or "").startswith("one of"):
        text += " (optional)"
    return text


def _schema_words(schema: Any) -> str:
    if not isinstance(schema, dict) or not schema:
        return "any JSON"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_words(s) for s in schema["anyOf"])
    if "enum" in schema or "const" in schema:
        return "one of " + ", ".join(
            map(str, schema.get("enum", [schema.get("const")]))  # (a short list in practice)
        )
    kind = schema.get("type", "any JSON")
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_schema_words(schema['items'])}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


@services_app.command("openapi")
@fails_cleanly
def service_openapi(
    name: Annotated[str, typer.Argument(metavar="SERVICE")],
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A service's ingress paths; with --json, their OpenAPI 3.1 document (for a code
    generator, Swagger UI, or checking a request against the schemas)."""
    with admin(admin_url, token) as api:
        doc = api.get(f"/services/{quote(name)}/openapi")
    if as_json:
        return print_json(doc)
    rows = []
    for path, item in doc.get("paths", {}).items():
        op: dict[str, Any] = item.get("post", {})
        content: dict[str, Any] = op.get("requestBody", {}).get("content", {})
        if not content:
            body = "none"
        elif "application/json" in content:
            body = _schema_words(content["application/json"].get("schema"))
        else:  # a raw handler: its content type
            body = next(iter(content))
        answer = "202 accepted" if "202" in op.get("responses", {}) else "200"
        rows.append((f"POST {path}", body, answer))
    table(doc.get("info", {}).get("title"), ["path", "body", "answer"], rows)
