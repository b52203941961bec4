"""Bytes on the wire per delivered spot: hamsrv's frames (JSON and msgpack, plain and with the shared
permessage-deflate) against the bare trio prototype's, for the same spots in the same run.

    python -m bench.wire_bytes [--spots 3000] [--rate 1000]

Each server gets one client per encoding; the publisher sends the bench's spot mix (bench.loadgen) through
the server's own ingress. Every byte a client receives after its handshake counts (frame headers, pings,
control messages), divided by the spots it received. Writes bench/results/wire-bytes.{json,md,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

from bench.loadgen import SPOTTER, encode_for_ingress
from bench.servers import RunningServer, ServerOptions, start_server
from hamsrv.firehose import ws

RESULTS = Path(__file__).resolve().parent / "results"
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"  # as browsers send
VARIANTS = {  # name: (extra request headers, msgpack)
    "JSON": ("", False),
    "JSON + deflate": (DEFLATE_OFFER, False),
    "msgpack": ("Sec-WebSocket-Protocol: hamsrv.msgpack\r\n", True),
    "msgpack + deflate": ("Sec-WebSocket-Protocol: hamsrv.msgpack\r\n" + DEFLATE_OFFER, True),
}


class Counter:
    """One client: counts the bytes after the handshake and the spots in the frames they make."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deflate: bool):
        self.reader, self.writer = reader, writer
        self.frames = ws.FrameReader(expect_masked=False, max_message_size=1 << 24, deflate=deflate)
        self.bytes = 0
        self.spots = 0

    async def run(self, want: int) -> None:
        while self.spots < want:
            data = await self.reader.read(1 << 16)
            if not data:
                raise ConnectionError(f"closed after {self.spots} of {want} spots")
            self.bytes += len(data)
            self.frames.receive_data(data)
            while (event := self.frames.next_event()) is not None:
                if isinstance(event, ws.Ping):
                    self.writer.write(ws.encode_frame(ws.OP_PONG, event.payload, mask=b"\0\0\0\0"))
                elif isinstance(event, ws.TextMessage | ws.BinaryMessage):
                    body = json.loads(event.text) if isinstance(event, ws.TextMessage) else msgpack.unpackb(event.data)
                    self.spots += len(body) if isinstance(body, list) else int("dx" in body)


async def connect(server: RunningServer, headers: str) -> Counter:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.ws_port)
    writer.write((f"GET {server.ws_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{headers}\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise ConnectionError(f"upgrade refused: {head[:200]!r}")
    return Counter(reader, writer, b"permessage-deflate" in head.lower())


async def publish(server: RunningServer, count: int, rate: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.ingress_port)
    if server.ingress == "cluster":
        seen = b""
        while b"login:" not in seen.lower():
            seen += await asyncio.wait_for(reader.read(1024), 30)
        writer.write(f"{SPOTTER}\r\n".encode())
        await asyncio.sleep(0.5)
    drain = asyncio.create_task(reader.read(-1))
    start = time.time()
    for seq in range(count):
        writer.write(encode_for_ingress(server.ingress, server.ingress_path, seq, "t", time.time()))
        await asyncio.sleep(max(0.0, start + (seq + 1) / rate - time.time()))
    await writer.drain()
    await asyncio.sleep(1)
    drain.cancel()
    writer.close()


async def measure(name: str, variants: dict[str, tuple[str, bool]], args: argparse.Namespace,
                  workdir: Path) -> dict[str, dict[str, Any]]:
    (workdir / name).mkdir()
    server = await start_server(name, ServerOptions(cpus=args.server_cpus), workdir / name)
    try:
        counters = {v: await connect(server, headers) for v, (headers, _) in variants.items()}
        await asyncio.sleep(0.5)
        readers = [asyncio.create_task(c.run(args.spots)) for c in counters.values()]
        await publish(server, args.spots, args.rate)
        await asyncio.wait_for(asyncio.gather(*readers), 60)
    finally:
        await server.stop()
    return {v: {"bytes": c.bytes, "spots": c.spots, "bytes_per_spot": round(c.bytes / c.spots, 1),
                "deflate": c.frames.deflate} for v, c in counters.items()}


def markdown(report: dict[str, Any]) -> str:
    floor = report["prototype"]["JSON"]["bytes_per_spot"]
    lines = [f"# Bytes per delivered spot ({report['spots']} spots at {report['rate']:g}/s, the bench's spot mix)",
             "", "| server | encoding | bytes per spot | vs prototype | deflate negotiated |", "|---|---|---|---|---|"]
    for server in ("hamsrv", "prototype"):
        for variant, row in report[server].items():
            lines.append(f"| {server} | {variant} | {row['bytes_per_spot']:.1f} | {row['bytes_per_spot'] / floor:.2f}x"
                         f" | {'yes' if row['deflate'] else 'no'} |")
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"hamsrv\n{v}" for v in report["hamsrv"]] + ["prototype\nJSON"]
    values = [r["bytes_per_spot"] for r in report["hamsrv"].values()] + [report["prototype"]["JSON"]["bytes_per_spot"]]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(labels, values, color=["#4477aa"] * (len(values) - 1) + ["#999999"])
    ax.set_ylabel("bytes on the wire per delivered spot")
    for x, v in enumerate(values):
        ax.text(x, v, f"{v:.0f}", ha="center", va="bottom")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hamsrv-wire-") as tmp:
        workdir = Path(tmp)
        hamsrv = await measure("hamsrv", VARIANTS, args, workdir)
        prototype = await measure("prototype", {"JSON": VARIANTS["JSON"]}, args, workdir)
    return {"spots": args.spots, "rate": args.rate, "hamsrv": hamsrv, "prototype": prototype}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wire_bytes", description=__doc__.splitlines()[0])
    parser.add_argument("--spots", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "wire-bytes.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "wire-bytes.md").write_text(markdown(report))
    chart(report, args.out / "wire-bytes.png")
    print(markdown(report))


if __name__ == "__main__":
    main()
