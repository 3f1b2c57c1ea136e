"""The vendored SAM templates (vendor/sdk_handlers/template_<suite>.yaml) read as data: which
handler module each function runs, its environment, and which requirement ids it serves.

Pure: no I/O beyond reading the templates. CloudFormation's intrinsic functions are kept as
plain values (``!Sub`` of ``${X.Arn}`` becomes X's ARN as registered with Ritornello; other
tags their raw node value), which is all the templates need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

VENDOR = Path(__file__).resolve().parent / "vendor"
HANDLERS = VENDOR / "sdk_handlers"
REQUIREMENTS = VENDOR / "runner" / "test-requirements"
ACCOUNT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:"
SUITES = (
    "step",
    "wait",
    "child",
    "callback",
    "invoke",
    "wait_for_condition",
    "wait_for_callback",
    "parallel",
    "map",
)


def function_arn(logical_id: str) -> str:
    """The unqualified ARN a template function has here (its logical id is its name)."""
    return ACCOUNT_ARN + logical_id


@dataclass(frozen=True)
class Function:
    """One ``AWS::Serverless::Function`` of a template."""

    logical_id: str
    handler: str  # "suite.module.handler"
    requirements: tuple[str, ...]
    environment: dict[str, str] = field(default_factory=dict)


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "Sub":
            return re.sub(r"\$\{(\w+)\.Arn\}", lambda m: function_arn(m[1]), str(value))
        return value
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_Loader.add_multi_constructor("!", _tag)


def functions(suites: tuple[str, ...] = SUITES) -> dict[str, Function]:
    """Every durable function of the given suites' templates, by logical id."""
    found: dict[str, Function] = {}
    for suite in suites:
        doc = yaml.load((HANDLERS / f"template_{suite}.yaml").read_text(), Loader=_Loader)
        for logical_id, resource in doc["Resources"].items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            props = resource.get("Properties", {})
            env = props.get("Environment", {}).get("Variables", {})
            found[logical_id] = Function(
                logical_id=logical_id,
                handler=props["Handler"],
                requirements=tuple(resource.get("TestingMetadata", {}).get("TestDescription", [])),
                environment={k: _ref(v) for k, v in env.items()},
            )
    return found


def _ref(value: Any) -> str:
    """An environment value: ``{"Ref": ID}`` (a table's name) is the resource's logical id,
    the name it is given here."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    return str(value)
