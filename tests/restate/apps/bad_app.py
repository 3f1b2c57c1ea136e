"""A Restate endpoint that answers badly, for the frame tests: its manifest is valid, its
answers are not. The handler's name says how (``Bad/{how}``)."""

from __future__ import annotations

import json
import struct
from typing import Any

CT = "application/vnd.restate.invocation.v6"
MANIFEST = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "services": [
        {
            "name": "Bad",
            "ty": "SERVICE",
            "handlers": [
                {"name": n}
                for n in (
                    "garbage",
                    "truncated",
                    "no_end",
                    "huge_length",
                    "unknown_type",
                    "not_json_output",
                    "bad_payload",
                    "after_end",
                    "status_500",
                )
            ],
        }
    ],
}


def frame(t: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", t, 0, len(payload)) + payload


OUTPUT_OK = frame(0x0401, b"\x72\x04\x0a\x02\x22\x22")  # OutputCommand value=Value('""')
END = frame(0x0003, b"")
ANSWERS = {
    "garbage": b"\xde\xad\xbe\xef" * 5,
    "truncated": (OUTPUT_OK + END)[:-3] + b"\x00\x00\x00\x09",
    "no_end": OUTPUT_OK,
    "huge_length": struct.pack(">HHI", 0x0401, 0, 0xFFFFFFF0) + b"x",
    "unknown_type": frame(0x0999, b"") + END,
    "not_json_output": frame(0x0401, b"\x72\x05\x0a\x03abc") + END,
    "bad_payload": frame(0x0401, b"\xff\xff\xff") + END,
    "after_end": OUTPUT_OK + END + END,
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    more = True
    while more:  # read the whole request
        message = await receive()
        more = message.get("more_body", False)
    if path == "/discover":
        body = json.dumps(MANIFEST).encode()
        ct = "application/vnd.restate.endpointmanifest.v2+json"
    else:
        how = path.rsplit("/", 1)[-1]
        if how == "status_500":
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"boom"})
            return
        body, ct = ANSWERS[how], CT
    headers = [(b"content-type", ct.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
