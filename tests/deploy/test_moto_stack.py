"""The SAM template's resources create under moto: moto's server on 127.0.0.1 over real HTTP
stands in for CloudFormation, S3, DynamoDB, IAM, Lambda and Logs; the stack is the template
as `sam package` + the SAM transform would hand it to CloudFormation."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.deploy._templates import SAM_TEMPLATE, load_cfn, resources_of, sam_transform


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }.items():
        monkeypatch.setenv(name, value)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"}
    finally:
        server.stop()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("lambda_app.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


#: Resource types moto's CloudFormation does not implement (checked by cfn-lint and the SAM
#: translator instead); they, and outputs naming them, are left out of the moto stack.
MOTO_UNSUPPORTED = {"AWS::Lambda::Url"}


def _mentions(value: Any, names: set[str]) -> bool:
    text = json.dumps(value)
    return any(f'"{n}"' in text or f"{n}." in text for n in names)


def _for_moto(template: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(template))
    dropped = {k for k, r in out["Resources"].items() if r["Type"] in MOTO_UNSUPPORTED}
    assert dropped, "the template was expected to have Function URLs"
    for name in dropped:
        del out["Resources"][name]
    leftover = [k for k, r in out["Resources"].items() if _mentions(r, dropped)]
    assert not leftover, f"resources depend on a dropped one: {leftover}"
    out["Outputs"] = {k: v for k, v in out.get("Outputs", {}).items() if not _mentions(v, dropped)}
    return out


# moto also has no CloudFormation model for AWS::Lambda::Alias and AWS::S3::BucketPolicy: it
# warns ("Tried to parse ...") and skips them, so those warnings are expected here.
@pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")
def test_template_resources_create_under_moto(aws: dict[str, Any]) -> None:
    template = _for_moto(sam_transform(load_cfn(SAM_TEMPLATE)))
    s3 = boto3.client("s3", **aws)
    s3.create_bucket(Bucket="artifacts")
    for res in template["Resources"].values():
        props = res.get("Properties", {})
        for code in (props.get("Code"), props.get("Content")):
            if isinstance(code, dict) and code.get("S3Bucket") == "artifacts":
                s3.put_object(Bucket="artifacts", Key=code["S3Key"], Body=_zip())
    cfn = boto3.client("cloudformation", **aws)
    cfn.create_stack(
        StackName="ritornello",
        TemplateBody=json.dumps(template),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cfn.describe_stacks(StackName="ritornello")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    created = {
        r["LogicalResourceId"]: r
        for r in cfn.list_stack_resources(StackName="ritornello")["StackResourceSummaries"]
        if "LogicalResourceId" in r
    }
    (table_id,) = resources_of(template, "AWS::DynamoDB::Table")
    table = created[table_id]["PhysicalResourceId"]
    keys = boto3.client("dynamodb", **aws).describe_table(TableName=table)["Table"]["KeySchema"]
    assert {k["AttributeName"] for k in keys} == {"pk", "sk"}
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for bucket_id in resources_of(template, "AWS::S3::Bucket"):
        assert created[bucket_id]["PhysicalResourceId"] in buckets
    functions = {
        f["FunctionName"] for f in boto3.client("lambda", **aws).list_functions()["Functions"]
    }
    for fn_id in resources_of(template, "AWS::Lambda::Function"):
        assert created[fn_id]["PhysicalResourceId"] in functions
    roles = {r["RoleName"] for r in boto3.client("iam", **aws).list_roles()["Roles"]}
    for role_id in resources_of(template, "AWS::IAM::Role"):
        assert created[role_id]["PhysicalResourceId"] in roles
