"""The durable-execution API behind an ingress token: the execution operations (get, history,
list, stop) need the token as every other ingress path does; the function's own calls carry a
checkpoint token and callbacks a callback id, so they do not (docs/aws-durable.md)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from ritornello.orchestrator import Engine
from ritornello.orchestrator.ingress import IngressApp
from ritornello.orchestrator.protocols.aws_durable._adapter import execution_arn
from ritornello.store.memory import MemoryStore
from tests.asgi_call import asgi_call

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:orders:1"
ARN = quote(execution_arn(FUNCTION, "inv_" + "a" * 26), safe="")
OPERATIONS = [
    ("GET", f"/2025-12-01/durable-executions/{ARN}"),
    ("GET", f"/2025-12-01/durable-executions/{ARN}/history"),
    ("POST", f"/2025-12-01/durable-executions/{ARN}/stop"),
    ("GET", "/2025-12-01/functions/orders/durable-executions"),
]


def test_execution_operations_need_the_ingress_token_when_one_is_set() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        engine = Engine(store)
        await engine.start()
        try:
            guarded = IngressApp(engine, token="s3cret")
            for method, path in OPERATIONS:
                status, headers, body = await asgi_call(guarded, method, path)
                assert status == 403, (path, body)
                assert headers["x-amzn-errortype"] == "AccessDeniedException"
                assert "Authorization: Bearer" in json.loads(body)["message"]
                wrong = {"authorization": "Bearer nope"}
                assert (await asgi_call(guarded, method, path, headers=wrong))[0] == 403
                right = {"authorization": "Bearer s3cret"}
                status, _, body = await asgi_call(guarded, method, path, headers=right)
                assert status in (200, 404), (path, status, body)  # past the gate
                open_ = await asgi_call(IngressApp(engine), method, path)
                assert open_[0] == status, (path, open_)  # no token set: as before
            # the function's checkpoint carries its own capability: refused for a bad token,
            # not for the missing ingress token
            status, headers, body = await asgi_call(
                guarded,
                "POST",
                f"/2025-12-01/durable-executions/{ARN}/checkpoint",
                json.dumps({"CheckpointToken": "forged", "Updates": []}).encode(),
            )
            assert status in (400, 404) and headers["x-amzn-errortype"] != "AccessDeniedException"
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())
