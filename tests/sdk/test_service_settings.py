"""Settings declared in code: checked where declared, carried by discovery (ours, and a
Restate manifest's), and the humantime durations they are written in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ritornello import Context, Service, VirtualObject, Workflow
from ritornello.orchestrator.core import retention_of
from ritornello.orchestrator.protocols.restate._manifest import read_manifest
from ritornello.protocol import (
    DiscoveryResponse,
    ProtocolError,
    Settings,
    format_duration,
    parse_duration,
)
from ritornello.store import InvocationRecord


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("30d", 30 * 86_400_000),
        ("1h 30m", 5_400_000),
        ("1h30m", 5_400_000),
        ("500ms", 500),
        ("2days", 172_800_000),
        ("1min", 60_000),
        ("10 sec", 10_000),
        ("1.5s", 1_500),
        ("1w", 604_800_000),
        ("PT10S", 10_000),
        ("P1DT2H", 93_600_000),
        ("pt1m", 60_000),
        ("0s", 0),
    ],
)
def test_humantime_and_iso_durations_parse(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    "text", ["", " ", "10", "s", "-1s", "1x", "1.2.3s", "P", "PT", "P1H", "1s garbage", "9" * 70]
)
def test_bad_durations_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match="30d, 1h 30m"):
        parse_duration(text, "journal_retention")


def test_durations_longer_than_1000_years_are_refused() -> None:
    with pytest.raises(ValueError, match="1000 years"):
        parse_duration("1001y")


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (500, "500ms"), (86_400_000, "1day"), (2_592_000_000, "30days"),
     (5_400_000, "1h 30m"), (90_061_001, "1day 1h 1m 1s 1ms")],
)  # fmt: skip
def test_durations_print_as_humantime(ms: int, text: str) -> None:
    assert format_duration(ms) == text
    assert parse_duration(text) == ms


def test_a_service_and_its_handlers_declare_settings_that_discovery_carries() -> None:
    svc = VirtualObject(
        "Cart",
        journal_retention=timedelta(days=7),
        idempotency_retention="1h",
        inactivity_timeout=30,
        ingress_private=True,
        description="a cart",
        metadata={"team": "shop", "tier": "1"},
    )

    @svc.handler(abort_timeout="2m", ingress_private=False, description="adds")
    async def add(ctx: Context, item: str) -> None: ...

    @svc.handler(kind="shared")
    async def peek(ctx: Context) -> None: ...

    info = svc.info()
    assert info.settings == Settings(
        journal_retention_ms=7 * 86_400_000,
        idempotency_retention_ms=3_600_000,
        inactivity_timeout_ms=30_000,
        ingress_private=True,
        description="a cart",
        metadata=(("team", "shop"), ("tier", "1")),
    )
    assert info.handler("add").settings == Settings(  # type: ignore[union-attr]
        abort_timeout_ms=120_000, ingress_private=False, description="adds"
    )
    assert info.handler("peek").settings is None  # type: ignore[union-attr]
    wire = DiscoveryResponse((info,)).to_dict()["services"][0]
    assert wire["settings"]["metadata"] == {"team": "shop", "tier": "1"}
    assert "settings" not in wire["handlers"][1]
    assert DiscoveryResponse.decode(DiscoveryResponse((info,)).encode()).services == (info,)


def test_a_workflow_main_takes_settings_too() -> None:
    wf = Workflow("Signup", workflow_retention="30d")

    @wf.main(workflow_retention="1d", inactivity_timeout=timedelta(seconds=5))
    async def run(ctx: Context) -> None: ...

    h = wf.info().handler("run")
    assert h is not None and h.settings == Settings(
        workflow_retention_ms=86_400_000, inactivity_timeout_ms=5_000
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"journal_retention": "soon"}, ValueError, "service S: journal_retention"),
        ({"abort_timeout": timedelta(seconds=-1)}, ValueError, "negative"),
        ({"inactivity_timeout": -3}, ValueError, "negative"),
        ({"inactivity_timeout": float("nan")}, ValueError, "finite"),
        ({"idempotency_retention": [1]}, TypeError, "timedelta, a duration string or seconds"),
        ({"ingress_private": "yes"}, TypeError, "ingress_private"),
        ({"description": 3}, TypeError, "description"),
        ({"metadata": {"a": 1}}, TypeError, "metadata"),
        ({"metadata": ["a"]}, TypeError, "metadata"),
    ],
)
def test_bad_settings_raise_where_they_are_declared(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Service("S", **kwargs)
    svc = Service("T")
    with pytest.raises(error):
        svc.handler(**kwargs)


@pytest.mark.parametrize(
    "settings",
    [
        {"journal_retention_ms": -1},
        {"journal_retention_ms": "1d"},
        {"ingress_private": "yes"},
        {"metadata": {"a": 1}},
        {"metadata": "x"},
        {"colour": "red"},
        [],
    ],
)
def test_malformed_settings_in_discovery_are_a_protocol_error(settings: Any) -> None:
    raw = {
        "version": 1,
        "services": [
            {"name": "S", "kind": "service", "handlers": [{"name": "h", "settings": settings}]}
        ],
    }
    with pytest.raises(ProtocolError, match="S/h"):
        DiscoveryResponse.decode(raw)


def test_a_restate_manifests_settings_map_to_ours() -> None:
    manifest = {
        "protocolMode": "REQUEST_RESPONSE",
        "minProtocolVersion": 5,
        "maxProtocolVersion": 6,
        "services": [
            {
                "name": "Signup",
                "ty": "WORKFLOW",
                "documentation": "sign up",
                "metadata": {"team": "growth"},
                "journalRetention": 86_400_000,
                "idempotencyRetention": 3_600_000,
                "inactivityTimeout": 60_000,
                "abortTimeout": 600_000,
                "ingressPrivate": True,
                "handlers": [
                    {"name": "run", "ty": "WORKFLOW", "workflowCompletionRetention": 5_000},
                    {"name": "peek", "ty": "SHARED"},
                ],
            }
        ],
    }
    (svc,) = read_manifest(manifest).services
    assert svc.settings == Settings(
        journal_retention_ms=86_400_000,
        idempotency_retention_ms=3_600_000,
        inactivity_timeout_ms=60_000,
        abort_timeout_ms=600_000,
        ingress_private=True,
        description="sign up",
        metadata=(("team", "growth"),),
    )
    assert svc.handler("run").settings == Settings(workflow_retention_ms=5_000)  # type: ignore[union-attr]
    assert svc.handler("peek").settings is None  # type: ignore[union-attr]
    bad = {**manifest, "services": [{**manifest["services"][0], "abortTimeout": -1}]}  # type: ignore[dict-item]
    with pytest.raises(ProtocolError, match="service Signup"):
        read_manifest(bad)


def _rec(**fields: Any) -> InvocationRecord:
    values: dict[str, Any] = dict(
        id="inv_1", service="S", handler="h", key=None, handler_kind="exclusive",
        status="completed", deployment_id="dp_1", seq=1, created_at=0, modified_at=0,
    )  # fmt: skip
    values.update(fields)
    return InvocationRecord(**values)


def test_retention_is_the_longest_that_applies_and_is_set() -> None:
    s = Settings(journal_retention_ms=10, idempotency_retention_ms=50, workflow_retention_ms=99)
    assert retention_of(s, _rec(), 1000) == 10
    assert retention_of(s, _rec(idempotency_key="k"), 1000) == 50
    assert retention_of(s, _rec(handler_kind="workflow"), 1000) == 99
    only_workflow = Settings(workflow_retention_ms=5)
    assert retention_of(only_workflow, _rec(), 1000) == 1000  # nothing that applies is set
    assert retention_of(only_workflow, _rec(handler_kind="workflow"), 1000) == 5
