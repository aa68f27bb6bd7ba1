"""A small Connect (JSON) client for tests: unary calls and server streams with httpx."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from google.protobuf import json_format
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)
END_STREAM = 0x02


@dataclass
class ConnectFailure(Exception):
    status: int
    code: str
    message: str


def envelope(payload: dict[str, Any], flags: int = 0) -> bytes:
    data = json.dumps(payload).encode()
    return struct.pack(">BI", flags, len(data)) + data


def split_envelopes(buffer: bytearray) -> list[tuple[int, dict[str, Any]]]:
    """Take every complete envelope off the front of `buffer`."""
    out = []
    while len(buffer) >= 5:
        flags, size = struct.unpack(">BI", bytes(buffer[:5]))
        if len(buffer) < 5 + size:
            break
        out.append((flags, json.loads(bytes(buffer[5 : 5 + size]))))
        del buffer[: 5 + size]
    return out


async def unary(
    http: httpx.AsyncClient,
    base: str,
    method: str,
    request: Message,
    response_type: type[M],
    *,
    token: str | None = None,
) -> M:
    """POST the request as JSON; the response message, or ConnectFailure."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    reply = await http.post(
        f"{base}/accolade.v1.{method}",
        content=json_format.MessageToJson(request),
        headers=headers,
    )
    if reply.status_code != 200:
        body = reply.json()
        raise ConnectFailure(reply.status_code, body["code"], body.get("message", ""))
    return json_format.Parse(reply.text, response_type())


async def server_stream(
    http: httpx.AsyncClient, base: str, method: str, request: Message
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """The (flags, JSON) envelopes of a Connect server stream, the end-of-stream one last."""
    body = envelope(json_format.MessageToDict(request))
    async with http.stream(
        "POST",
        f"{base}/accolade.v1.{method}",
        content=body,
        headers={"content-type": "application/connect+json"},
    ) as reply:
        assert reply.status_code == 200, reply.status_code
        buffer = bytearray()
        async for chunk in reply.aiter_bytes():
            buffer += chunk
            for item in split_envelopes(buffer):
                yield item
