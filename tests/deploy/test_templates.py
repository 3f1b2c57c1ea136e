"""The AWS templates: template.yaml (SAM: handlers, journal table, payload bucket, admin API) and
infra/*.yaml (the orchestrator on ECS Fargate). Linted by cfn-lint, transformed by
aws-sam-translator offline, and checked for what a user wires together: outputs, names, IAM."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ritornello.store import _dynamo_schema
from ritornello.store._dynamo_client import DynamoClient
from ritornello.store._dynamo_keys import DONE_INDEX, SEQ_INDEX
from tests.deploy._templates import (
    INFRA_TEMPLATES,
    ROOT,
    SAM_TEMPLATE,
    as_list,
    if_branches,
    load_cfn,
    policy_statements,
    resources_of,
    sam_transform,
    sub_sample,
)

CFN_LINT = Path(sys.executable).parent / "cfn-lint"
SAMPLE = {
    "AWS__Partition": "aws",
    "AWS__Region": "eu-west-1",
    "AWS__AccountId": "123456789012",
    "AWS__StackName": "ritornello-dev",
}
# Statements allowed a Resource "*" because AWS offers no narrower one: (resource, action).
RESOURCE_STAR_REQUIRED_BY_AWS = {("ExecutionRole", "ecr:GetAuthorizationToken")}


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_cfn(SAM_TEMPLATE)


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    """template.yaml after the SAM transform."""
    return sam_transform(sam)


@pytest.fixture(scope="module")
def infra() -> dict[str, Any]:
    return load_cfn(ROOT / "infra" / "orchestrator.yaml")


def handler_functions(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The SAM functions that serve examples (they publish versions for the orchestrator)."""
    fns = resources_of(sam, "AWS::Serverless::Function")
    return {k: v for k, v in fns.items() if "AutoPublishAlias" in v["Properties"]}


# ------------------------------------------------------------------------------ linters


@pytest.mark.parametrize(
    "path", [SAM_TEMPLATE, *INFRA_TEMPLATES], ids=lambda p: str(p.relative_to(ROOT))
)
def test_cfn_lint_passes_with_informational_checks(path: Path) -> None:
    assert CFN_LINT.exists(), "cfn-lint is part of the dev extra (make install)"
    proc = subprocess.run(
        [str(CFN_LINT), "--include-checks", "I", "--", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_infra_holds_the_orchestrator_template() -> None:
    assert [p.name for p in INFRA_TEMPLATES] == ["orchestrator.yaml"]


def test_sam_translator_transforms_the_template(cfn: dict[str, Any]) -> None:
    types = [r["Type"] for r in cfn["Resources"].values()]
    assert not [t for t in types if t.startswith("AWS::Serverless::")]
    assert types.count("AWS::Lambda::Function") == 5  # four example groups and the admin API
    assert types.count("AWS::Lambda::Version") == 4
    assert types.count("AWS::Lambda::Alias") == 4
    assert types.count("AWS::Lambda::LayerVersion") == 2
    urls = resources_of(cfn, "AWS::Lambda::Url")
    assert len(urls) == 5
    assert {u["Properties"]["AuthType"] for u in urls.values()} == {"AWS_IAM"}
    # A handler's URL is on its alias (a published version), never on $LATEST.
    aliases = resources_of(cfn, "AWS::Lambda::Alias")
    on_alias = [
        u for u in urls.values() if u["Properties"]["TargetFunctionArn"].get("Ref") in aliases
    ]
    assert len(on_alias) == 4
    # Old versions (and the layer versions they use) stay, so in-flight invocations can finish.
    for rtype in ("AWS::Lambda::Version", "AWS::Lambda::LayerVersion"):
        assert {r.get("DeletionPolicy") for r in resources_of(cfn, rtype).values()} == {"Retain"}


def test_a_new_sdk_layer_or_setting_publishes_new_versions(sam: dict[str, Any]) -> None:
    """The alias must not stay on a version whose layer or environment is stale: a new SDK
    (another layer artefact) or a changed setting makes new versions."""

    def versions(template: dict[str, Any]) -> set[str]:
        return set(resources_of(sam_transform(template), "AWS::Lambda::Version"))

    base = versions(sam)
    layer = json.loads(json.dumps(sam))
    layer["Resources"]["RitornelloLayer"]["Properties"]["ContentUri"] = "s3://artifacts/sdk-2.zip"
    assert versions(layer).isdisjoint(base)
    env = json.loads(json.dumps(sam))
    env["Resources"]["GreeterFunction"]["Properties"]["Environment"]["Variables"]["X"] = "1"
    assert len(versions(env) - base) == 1


# ------------------------------------------------------------------------------ functions


def test_functions_run_python_on_arm64(cfn: dict[str, Any]) -> None:
    for name, fn in resources_of(cfn, "AWS::Lambda::Function").items():
        props = fn["Properties"]
        assert props["Runtime"] in {"python3.11", "python3.12"}, name
        assert props["Architectures"] == ["arm64"], name
        assert props["LoggingConfig"]["LogFormat"] == "JSON", name
        assert "LogGroup" in props["LoggingConfig"], f"{name}: logs kept forever"


def test_code_uris_hold_their_handler_modules(sam: dict[str, Any]) -> None:
    """Lambda imports Handler ``a.b.fn`` as module ``a.b`` from the function's code (CodeUri)
    or from a layer (``ContentUri``, which ``sam build`` puts under python/)."""
    layers = resources_of(sam, "AWS::Serverless::LayerVersion")
    for name, fn in resources_of(sam, "AWS::Serverless::Function").items():
        props = fn["Properties"]
        module, _, attr = props["Handler"].rpartition(".")
        code = SAM_TEMPLATE.parent / props["CodeUri"]
        path = code / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{name}: Handler {props['Handler']} but no {path}"
        assert re.search(rf"^{attr}\b\s*=|^def {attr}\(", path.read_text(), re.M), (
            f"{name}: {path} defines no {attr}"
        )
        for layer in props.get("Layers", []):
            for ref in if_branches(layer):
                if ref.get("Ref") in layers:
                    meta = layers[ref["Ref"]]["Metadata"]
                    assert meta["BuildMethod"].startswith("python3."), ref
    sdk = SAM_TEMPLATE.parent / layers["RitornelloLayer"]["Properties"]["ContentUri"]
    assert (sdk / "ritornello" / "sdk" / "__init__.py").is_file()


def test_handler_functions_split_the_examples_without_overlap(sam: dict[str, Any]) -> None:
    """Every example service is served by exactly one function (EXAMPLE_SERVICES), and
    lambda_app builds each function's endpoint from those names."""
    before = set(sys.modules)
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import lambda_app
    finally:
        sys.path.remove(str(ROOT / "examples"))
        for name in set(sys.modules) - before:  # app, greeter, ...: top-level example modules
            if str(getattr(sys.modules[name], "__file__", "")).startswith(str(ROOT / "examples")):
                del sys.modules[name]
    assert callable(lambda_app.handler)
    served: list[str] = []
    for name, fn in handler_functions(sam).items():
        props = fn["Properties"]
        assert (
            props["CodeUri"].strip("/") == "examples" and props["Handler"] == "lambda_app.handler"
        )
        names = props["Environment"]["Variables"]["EXAMPLE_SERVICES"]
        services = lambda_app.selected_services(names)
        assert [s.name for s in services] == names.split(","), name
        served += names.split(",")
    everything = sorted(s.name for s in lambda_app.selected_services(""))
    assert sorted(served) == everything
    with pytest.raises(RuntimeError, match="Nope"):
        lambda_app.selected_services("Greeter,Nope")


def test_handler_function_names_fall_under_the_orchestrators_arn_pattern(
    sam: dict[str, Any], infra: dict[str, Any]
) -> None:
    pattern = sub_sample(sam["Outputs"]["HandlerFunctionArnPattern"]["Value"], **SAMPLE)
    allowed = infra["Parameters"]["HandlerFunctionArnPattern"]["AllowedPattern"]
    assert re.fullmatch(allowed, pattern), (pattern, allowed)
    prefix = "arn:aws:lambda:eu-west-1:123456789012:function:"
    for name, fn in resources_of(sam, "AWS::Serverless::Function").items():
        arn = prefix + sub_sample(fn["Properties"]["FunctionName"], **SAMPLE)
        is_handler = name in handler_functions(sam)
        assert fnmatch.fnmatchcase(arn, pattern) == is_handler, (name, arn, pattern)
        # The log permissions of the shared handler role cover each handler's log group.
        logs = sub_sample(
            sam["Resources"][f"{name[: -len('Function')]}LogGroup"]["Properties"]["LogGroupName"],
            **SAMPLE,
        )
        assert logs == "/aws/lambda/" + arn.rpartition(":")[2]


# ------------------------------------------------------------------------------ store


def test_journal_table_follows_the_store_design(sam: dict[str, Any]) -> None:
    table = sam["Resources"]["JournalTable"]
    props = table["Properties"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TableName"] == {"Fn::Sub": "${AWS::StackName}-journal"}


class _RecordingDynamo:
    """Enough of DynamoClient for ``_dynamo_schema.init``: records each request it is sent."""

    table = "t"
    settings = SimpleNamespace(bucket=None)

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        self.requests[operation] = kwargs
        if operation == "DescribeTable":
            return {"Table": {"TableStatus": "ACTIVE"}}
        return {}


def test_journal_table_is_the_table_store_init_creates(sam: dict[str, Any]) -> None:
    """template.yaml's JournalTable and `ritornello store init` make the same table: attributes,
    keys, indexes with their projections, billing and the TTL attribute."""

    def attributes(defs: list[dict[str, str]]) -> dict[str, str]:
        return {a["AttributeName"]: a["AttributeType"] for a in defs}

    def indexes(gsis: list[dict[str, Any]]) -> dict[str, Any]:
        def projection(p: dict[str, Any]) -> tuple[str, set[str]]:
            return p["ProjectionType"], set(p.get("NonKeyAttributes", []))

        return {g["IndexName"]: (g["KeySchema"], projection(g["Projection"])) for g in gsis}

    dynamo = _RecordingDynamo()
    _dynamo_schema.init(cast(DynamoClient, dynamo), partitions=4)
    created = dynamo.requests["CreateTable"]
    # Every field init sends is compared below: a new one fails here until the template has it.
    assert set(created) == {
        "AttributeDefinitions",
        "KeySchema",
        "BillingMode",
        "GlobalSecondaryIndexes",
    }
    props = sam["Resources"]["JournalTable"]["Properties"]
    assert attributes(props["AttributeDefinitions"]) == attributes(created["AttributeDefinitions"])
    assert props["KeySchema"] == created["KeySchema"]
    assert props["BillingMode"] == created["BillingMode"]
    template_indexes = indexes(props["GlobalSecondaryIndexes"])
    assert template_indexes == indexes(created["GlobalSecondaryIndexes"])
    assert set(template_indexes) == {SEQ_INDEX, DONE_INDEX}
    ttl = dynamo.requests["UpdateTimeToLive"]["TimeToLiveSpecification"]
    assert props["TimeToLiveSpecification"] == ttl == {"AttributeName": "ttl", "Enabled": True}


def test_payload_bucket_is_encrypted_private_tls_only_and_has_a_lifecycle(
    sam: dict[str, Any],
) -> None:
    bucket = sam["Resources"]["PayloadBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    ids = [r["Id"] for item in props["LifecycleConfiguration"]["Rules"] for r in if_branches(item)]
    assert "abort-incomplete-uploads" in ids and "expire-payloads" in ids
    policy = sam["Resources"]["PayloadBucketPolicy"]["Properties"]["PolicyDocument"]
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# ------------------------------------------------------------------------------ outputs


def test_outputs_give_what_the_orchestrator_needs(cfn: dict[str, Any], sam: dict[str, Any]) -> None:
    outputs = cfn["Outputs"]
    assert outputs["JournalTableName"]["Value"] == {"Ref": "JournalTable"}
    assert outputs["PayloadBucketName"]["Value"] == {"Ref": "PayloadBucket"}
    store = sub_sample(
        outputs["StoreUrl"]["Value"], JournalTable="t", PayloadBucket="b", AWS__Region="eu-west-1"
    )
    assert store == "dynamodb://t?region=eu-west-1&bucket=b"
    assert outputs["AdminFunctionUrl"]["Value"] == {
        "Fn::GetAtt": ["AdminFunctionUrl", "FunctionUrl"]
    }
    resources = cfn["Resources"]
    handlers = handler_functions(sam)
    assert len(handlers) == 4
    for fn in handlers:
        group = fn[: -len("Function")]
        alias = outputs[f"{fn}AliasArn"]["Value"]["Ref"]
        version = outputs[f"{fn}VersionArn"]["Value"]["Ref"]
        assert resources[alias]["Type"] == "AWS::Lambda::Alias"
        assert resources[alias]["Properties"]["FunctionName"] == {"Ref": fn}
        assert resources[version]["Type"] == "AWS::Lambda::Version"
        assert resources[version]["Properties"]["FunctionName"] == {"Ref": fn}
        # The POST /deployments body registers the version: invocations stay on their code.
        body, args = outputs[f"{group}DeploymentBody"]["Value"]["Fn::Sub"]
        assert args == {"arn": {"Ref": version}}
        arn = "arn:aws:lambda:eu-west-1:123456789012:function:x:3"
        assert json.loads(body.replace("${arn}", arn)) == {"arn": arn}
        assert outputs[f"{fn}Url"]["Value"] == {"Fn::GetAtt": [f"{fn}Url", "FunctionUrl"]}


# ------------------------------------------------------------------------------ IAM


def iam_statements() -> list[tuple[str, str, dict[str, Any]]]:
    sam = sam_transform(load_cfn(SAM_TEMPLATE))
    out = [(SAM_TEMPLATE.name, name, s) for name, s in policy_statements(sam)]
    for path in INFRA_TEMPLATES:
        out += [(path.name, name, s) for name, s in policy_statements(load_cfn(path))]
    return out


def test_no_iam_wildcards_beyond_what_aws_requires() -> None:
    """No Action "*" anywhere; no Allow of a whole service ("s3:*"); Resource "*" only where
    AWS has no narrower resource (RESOURCE_STAR_REQUIRED_BY_AWS); Principal "*" only in Deny."""
    statements = iam_statements()
    assert len(statements) > 10
    for file, name, stmt in statements:
        where = f"{file}:{name}: {stmt}"
        actions = as_list(stmt.get("Action", []))
        assert "*" not in actions, where
        if stmt["Effect"] == "Allow":
            assert not [a for a in actions if a.endswith(":*")], where
            assert stmt.get("Principal") != "*", where
            if "*" in as_list(stmt.get("Resource", [])):
                assert {(name, a) for a in actions} <= RESOURCE_STAR_REQUIRED_BY_AWS, where


def test_no_managed_policies_and_handlers_get_only_their_logs(cfn: dict[str, Any]) -> None:
    """Managed policies (AWSLambdaBasicExecutionRole...) grant Resource "*": none are attached;
    every function uses a role of this template."""
    roles = resources_of(cfn, "AWS::IAM::Role")
    assert set(roles) == {"HandlerRole", "AdminRole"}
    for name, role in roles.items():
        assert "ManagedPolicyArns" not in role["Properties"], name
    handler_actions = {
        a
        for name, s in policy_statements(cfn)
        if name == "HandlerRole" and "Resource" in s
        for a in as_list(s["Action"])
    }
    assert handler_actions == {"logs:CreateLogStream", "logs:PutLogEvents"}
    admin = [s for name, s in policy_statements(cfn) if name == "AdminRole" and "Resource" in s]
    admin_actions = {a for s in admin for a in as_list(s["Action"])}
    assert {"dynamodb:PutItem", "dynamodb:Query", "s3:GetObject", "s3:PutObject"} <= admin_actions
    for fn in resources_of(cfn, "AWS::Lambda::Function").values():
        assert fn["Properties"]["Role"]["Fn::GetAtt"][0] in roles


def test_orchestrator_task_role_invokes_handlers_and_uses_table_and_bucket(
    infra: dict[str, Any],
) -> None:
    statements = {s.get("Sid"): s for name, s in policy_statements(infra) if name == "TaskRole"}
    invoke = statements["InvokeHandlers"]
    assert set(as_list(invoke["Action"])) == {"lambda:InvokeFunction", "lambda:InvokeFunctionUrl"}
    assert invoke["Resource"] == [
        {"Ref": "HandlerFunctionArnPattern"},
        {"Fn::Sub": "${HandlerFunctionArnPattern}:*"},  # versions and aliases
    ]
    table = [
        sub_sample(r, JournalTableName="t", **SAMPLE)
        for r in statements["JournalTable"]["Resource"]
    ]
    assert table[0] == "arn:aws:dynamodb:eu-west-1:123456789012:table/t"
    assert "dynamodb:ConditionCheckItem" in statements["JournalTable"]["Action"]
    objects = sub_sample(statements["PayloadObjects"]["Resource"], PayloadBucketName="b", **SAMPLE)
    assert objects == "arn:aws:s3:::b/*"


# ------------------------------------------------------------------------------ orchestrator


def test_orchestrator_runs_ritornello_serve_on_the_dynamodb_store(infra: dict[str, Any]) -> None:
    (task,) = resources_of(infra, "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    command = container["Command"]
    assert command[:2] == ["ritornello", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    store = sub_sample(
        command[command.index("--store") + 1],
        JournalTableName="t",
        PayloadBucketName="b",
        AWS__Region="eu-west-1",
    )
    assert store == "dynamodb://t?region=eu-west-1&bucket=b"
    assert {p["ContainerPort"] for p in container["PortMappings"]} == {8080, 9070}
    assert task["Properties"]["RequiresCompatibilities"] == ["FARGATE"]
    assert task["Properties"]["TaskRoleArn"] == {"Fn::GetAtt": ["TaskRole", "Arn"]}
    (service,) = resources_of(infra, "AWS::ECS::Service").values()
    vpc = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert vpc["Subnets"] == {"Ref": "SubnetIds"}
    assert infra["Parameters"]["Image"]["Type"] == "String"
    assert container["Image"] == {"Ref": "Image"}


# What only the server process (`ritornello serve`) and the CLI import: not in the admin layer.
NOT_IN_ADMIN_LAYER = {"uvicorn", "uvloop", "typer", "rich", "httpx"}


def test_admin_layer_requirements_are_the_server_extra() -> None:
    """The admin Lambda imports the server side of ritornello (Mangum, the DynamoDB store...):
    its layer holds pyproject's `server` extra, with the same version bounds, less what only
    the server process and the CLI import."""

    def requirements(lines: list[str]) -> dict[str, str]:
        reqs = [Requirement(line) for line in lines]
        by_name = {canonicalize_name(r.name): str(r.specifier) for r in reqs}
        assert len(by_name) == len(reqs), f"a library listed twice: {lines}"
        return by_name

    with (ROOT / "pyproject.toml").open("rb") as fh:
        server = requirements(tomllib.load(fh)["project"]["optional-dependencies"]["server"])
    text = (ROOT / "infra" / "admin-layer" / "requirements.txt").read_text()
    layer = requirements(
        [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    )
    assert layer == {name: spec for name, spec in server.items() if name not in NOT_IN_ADMIN_LAYER}
    assert {"fastapi", "mangum", "pynamodb", "boto3"} <= set(layer)


def test_the_admin_lambda_imports_nothing_its_layer_leaves_out() -> None:
    """Every module the admin Lambda may load (all of src/ritornello but cli/ and testing/)
    imports none of the libraries left out of its layer."""
    src = ROOT / "src" / "ritornello"
    for path in src.rglob("*.py"):
        if path.relative_to(src).parts[0] in ("cli", "testing"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = canonicalize_name(name.split(".")[0])
                assert top not in NOT_IN_ADMIN_LAYER, f"{path} imports {name}"
