"""Reading the deployment artefacts: CloudFormation/SAM templates (with their short-form tags),
the SAM transform (offline), the compose file and the Dockerfile."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SAM_TEMPLATE = ROOT / "template.yaml"
INFRA_TEMPLATES = sorted((ROOT / "infra").glob("*.yaml"))
DOCKERFILE = ROOT / "local" / "Dockerfile"
COMPOSE = ROOT / "local" / "compose.yaml"


def load_cfn(path: Path) -> dict[str, Any]:
    """A template as plain JSON data: ``!Ref X`` becomes ``{"Ref": "X"}`` and so on (cfn-lint's
    own YAML loader, which knows CloudFormation's tags)."""
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(path))))  # type: ignore[no-any-return]


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """``template`` as ``sam package`` leaves it: local CodeUri/ContentUri become S3 URIs. Each
    local path must exist (relative to the template)."""
    out = json.loads(json.dumps(template))
    for name, res in out["Resources"].items():
        props = res.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            uri = props.get(key)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                assert (SAM_TEMPLATE.parent / uri).is_dir(), f"{name}.{key}: no directory {uri}"
                props[key] = f"s3://artifacts/{uri.strip('/').replace('/', '-')}.zip"
    return out


def sam_transform(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation that AWS::Serverless-2016-10-31 makes of ``template``, computed by
    aws-sam-translator with no AWS call (a stub instead of IAM's managed-policy list)."""
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class NoManagedPolicies(ManagedPolicyLoader):
        def __init__(self) -> None:  # no IAM client: nothing is looked up
            self._policy_map = {}

        def load(self) -> dict[str, str]:
            return {}

    with pytest.MonkeyPatch.context() as mp:
        # The translator asks a boto3 session for the region; give it one and no AWS config.
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        return transform(packaged(template), {}, NoManagedPolicies())


def resources_of(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def if_branches(value: Any) -> Iterator[Any]:
    """Every value ``value`` can take through ``Fn::If`` (both branches, recursively)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        yield from if_branches(yes)
        yield from if_branches(no)
    elif value != {"Ref": "AWS::NoValue"}:
        yield value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource logical id, statement) for every statement of every policy document anywhere
    in the template's resources: roles (trust and inline), policies, bucket policies..."""

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if "Statement" in node:
                for item in as_list(node["Statement"]):
                    yield from if_branches(item)
                return
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for name, res in template["Resources"].items():
        for stmt in walk(res.get("Properties", {})):
            yield name, stmt


def sub_sample(value: Any, **names: str) -> str:
    """A ``Fn::Sub`` string (or a plain string) with ``${Name}`` replaced from ``names``."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    assert isinstance(text, str), value
    for key, sample in names.items():
        text = text.replace("${" + key.replace("__", "::") + "}", sample)
    assert "${" not in text, f"unresolved in {text!r}"
    return text


def load_compose() -> dict[str, Any]:
    with COMPOSE.open() as fh:
        data = yaml.safe_load(fh)  # plain YAML; merge keys (<<) resolved
    assert isinstance(data, dict)
    return data


def command_of(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(x) for x in cmd]


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out
