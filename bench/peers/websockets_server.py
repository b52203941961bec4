"""Peer: Python `websockets` broadcast server, written the way that library's docs recommend.

Subscribers connect to ws://HOST:WS_PORT/ (any path); spots arrive as JSON lines on a plain TCP
socket (HOST:INGRESS_PORT) and each line goes out with `websockets.broadcast` as its own text
message. asyncio runs on uvloop. Nothing here is tuned away from the library's defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import resource

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS: set[ServerConnection] = set()


async def subscriber(websocket: ServerConnection) -> None:
    """Register the client until it goes away; it never sends anything we need."""
    CLIENTS.add(websocket)
    try:
        await websocket.wait_closed()
    finally:
        CLIENTS.remove(websocket)


async def ingress(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One spot per line, relayed as-is."""
    async for line in reader:
        spot = line.rstrip(b"\r\n")
        if spot:
            broadcast(CLIENTS, spot.decode())
    writer.close()


async def main(host: str, ws_port: int, ingress_port: int) -> None:
    async with serve(subscriber, host, ws_port):
        ingress_server = await asyncio.start_server(ingress, host, ingress_port)
        async with ingress_server:
            print(f"websockets peer ready ws={ws_port} ingress={ingress_port}", flush=True)
            await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ws-port", type=int, required=True)
    parser.add_argument("--ingress-port", type=int, required=True)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(main(args.host, args.ws_port, args.ingress_port))
