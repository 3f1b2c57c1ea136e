"""A handler for the limit tests: one step, limited, that calls the downstream service.

``Limited/call`` takes ``{"tag": T, "limit": NAME}`` (``limit`` defaults to ``down``), calls
``GET $RITORNELLO_TEST_DOWNSTREAM/?tag=T`` inside ``ctx.run("call", ..., limit=NAME)`` and
returns what the downstream answered (``T``). The call is async, on one ``httpx.AsyncClient``
made once (a client costs ~25 ms of CPU to make) with no cap on its connections: the endpoint
itself neither caps nor delays the steps calling at once, the limit alone does.
"""

import os

import httpx

from ritornello import Context, Endpoint, Service

DOWNSTREAM = os.environ.get("RITORNELLO_TEST_DOWNSTREAM", "")

limited = Service("Limited")
_client: list[httpx.AsyncClient] = []  # made on the endpoint's event loop, on first use


async def _get(tag: str) -> str:
    if not _client:
        _client.append(httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=None)))
    answer = await _client[0].get(DOWNSTREAM, params={"tag": tag})
    answer.raise_for_status()  # a plain exception: the attempt fails and is retried
    return answer.text


@limited.handler()
async def call(ctx: Context, req: dict[str, str]) -> str:
    return await ctx.run("call", _get, req["tag"], limit=req.get("limit", "down"))


app = Endpoint([limited]).asgi()
