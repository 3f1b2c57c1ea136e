"""A Restate-SDK service on DynamoDB (moto as a server over real HTTP on loopback): the
Restate Python SDK's handlers, unchanged, on a serverless store — steps, state, a sleep, a call,
an awakeable — across two orchestrators sharing the table, one of them killed with -9."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import http, moto_process, orchestrators, store_init, wait_until
from tests.restate.conftest import py_app


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[dict[str, str]]:
    with moto_process(tmp_path) as env:
        yield env


def test_restate_sdk_handlers_on_dynamodb(tmp_path: Path, moto: dict[str, str]) -> None:
    url = "dynamodb://ritornello-restate?region=us-east-1&partitions=4"
    store_init(url, moto)
    with py_app(tmp_path) as app:
        one, two = orchestrators(tmp_path, url, moto, ["one", "two"])
        try:
            status, body, _ = http("POST", f"{one.admin}/deployments", {"uri": app.url})
            assert status == 201, body
            ingress = [one.ingress, two.ingress]
            for i in range(6):  # through both orchestrators
                status, out, _ = http("POST", f"{ingress[i % 2]}/Greeter/ten", f"d{i}")
                assert (status, out) == (200, 10), out
            assert http("POST", f"{two.ingress}/Counter/k/add", 3)[1] == 3
            assert http("POST", f"{one.ingress}/Counter/k/add", 4)[1] == 7
            assert http("POST", f"{two.ingress}/Sleeper/sleep", 100)[1] == "before 100 ms after"
            assert http("POST", f"{one.ingress}/Caller/call_greet", "Dy")[1] == "Hello Dy!"

            status, sent, _ = http("POST", f"{one.ingress}/Awaiter/wait_awakeable/send")
            assert status == 202
            found: list[str] = []

            def published() -> bool:
                aid = http("POST", f"{two.ingress}/AwakeableBox/box/get")[1]
                if aid:
                    found.append(aid)
                return bool(aid)

            wait_until(published, 30, "an awakeable id published")
            one.kill9()  # the other takes its partitions over when its lease ends
            url_resolve = f"{two.ingress}/restate/awakeables/{found[0]}/resolve"
            wait_until(lambda: http("POST", url_resolve, "dyn")[0] == 202, 30, "resolved")
            attach = f"{two.ingress}/restate/invocation/{sent['invocationId']}/attach"
            assert http("GET", attach, timeout=60)[:2] == (200, "dyn")
            counts = app.all_counts()
            assert counts and all(n == 1 for n in counts.values()), counts  # none in flight
        finally:
            for orch in (one, two):
                orch.terminate()
