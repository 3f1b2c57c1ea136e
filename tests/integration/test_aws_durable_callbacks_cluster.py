"""AWS durable callbacks across orchestrators sharing one DynamoDB table (moto's server over
HTTP on loopback; docs/aws-durable.md): a heartbeat or a completion reaching an orchestrator
that does not drive the execution acts through the store, as it does on the one that does."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration._durable import execution_arn, register
from tests.integration._lambda_pair import lambda_client, wait_for
from tests.procs import (
    LambdaEmulatorProcess,
    Orchestrator,
    aws_env,
    cluster_view,
    http,
    store_init,
    wait_until,
)


@pytest.mark.timeout(120)
def test_heartbeats_through_another_orchestrator_keep_a_callback_alive(
    tmp_path: Path, moto: dict[str, str]
) -> None:
    """The function runs against A (it leads the one partition); heartbeats and the success
    go to B. One callback heartbeated every 1.5 s outlives its 3 s heartbeat timeout twice
    over and is approved; one heartbeated once times out 3 s after that heartbeat."""
    url = "dynamodb://ritornello-heartbeats?region=us-east-1&partitions=1"
    store_init(url, moto)
    homes = [tmp_path / n for n in ("a", "b")]
    for home in homes:
        home.mkdir()
    a, b = (Orchestrator(home, store=url, RITORNELLO_NODE_ID=home.name, **moto) for home in homes)
    emulator = LambdaEmulatorProcess(
        tmp_path,
        "tests/apps/durable_app.py",
        **aws_env(a.ingress_port, tmp_path),
        DURABLE_LEDGER=str(tmp_path / "ledger.txt"),
    )
    try:
        emulator.start()
        for orch in (a, b):
            orch.env.update(aws_env(emulator.port, tmp_path))
            orch.env.update(moto)  # its DynamoDB endpoint over aws_env's
        a.start()
        wait_until(lambda: cluster_view(a)["leading"] == [0], 20, "A leads the partition")
        b.start()
        register(a)
        invs, ids = [], []
        for name in ("kept", "left"):
            publish = tmp_path / f"{name}.txt"
            event = {"mode": "callback", "publish_to": str(publish), "heartbeat_s": 3}
            status, answer, _ = http("POST", f"{a.ingress}/restate/send/Orders/run", event)
            assert status == 202, answer
            invs.append(answer["invocationId"])
            ids.append(wait_for(publish))
        client = lambda_client(b.ingress)
        client.send_durable_execution_callback_heartbeat(CallbackId=ids[1])
        beat = time.time()
        for _ in range(4):  # 6 s of heartbeats through B
            client.send_durable_execution_callback_heartbeat(CallbackId=ids[0])
            time.sleep(1.5)
        client.send_durable_execution_callback_success(CallbackId=ids[0], Result=b'"via b"')
        status, answer, _ = http("GET", f"{a.ingress}/restate/attach/{invs[0]}")
        assert (status, answer) == (200, {"approved": '"via b"'}), (a.output(), b.output())
        status, answer, _ = http("GET", f"{a.ingress}/restate/attach/{invs[1]}")
        assert status == 200 and "heartbeat timed out" in answer["timed_out"], answer
        arn = execution_arn(invs[1])
        events = client.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
        (timed_out,) = [e for e in events if e["EventType"] == "CallbackTimedOut"]
        assert timed_out["EventTimestamp"].timestamp() >= beat + 3 - 0.05, (beat, timed_out)
        # and a late heartbeat through B is refused, as through A
        with pytest.raises(client.exceptions.InvalidParameterValueException, match="timed out"):
            client.send_durable_execution_callback_heartbeat(CallbackId=ids[1])
    finally:
        for proc in (b, a, emulator):
            proc.terminate()
