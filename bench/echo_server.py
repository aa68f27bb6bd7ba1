"""The ceiling: a trivial grpc.aio unary handler with TrackEvent's request message.

Usage: python -m bench.echo_server PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

from accolade.v1 import tracker_pb2 as pb

METHOD = "/bench.Echo/Track"


async def track(_request: pb.TrackEventRequest, _context: Any) -> pb.TrackEventResponse:
    return pb.TrackEventResponse(tracked=True)


async def main(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        track,
        request_deserializer=pb.TrackEventRequest.FromString,
        response_serializer=pb.TrackEventResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Track": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main(int(sys.argv[1])))
    except ImportError:
        asyncio.run(main(int(sys.argv[1])))
