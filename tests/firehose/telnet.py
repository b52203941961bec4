"""A telnet user of a DX-cluster node, for the tests: login, commands, and lines as they come."""

from __future__ import annotations

import trio

SAFETY = 30.0  # seconds; only guards against a hung test


class Telnet:
    """A user on either node: login, commands, and lines as they come."""

    def __init__(self, stream: trio.SocketStream, prompt: bytes):
        self.stream, self.prompt, self.buffer = stream, prompt, b""

    @classmethod
    async def login(cls, port: int, call: str, prompt: bytes) -> Telnet:
        me = cls(await trio.open_tcp_stream("127.0.0.1", port), prompt)
        await me.read_until(b"login: ")
        await me.stream.send_all(call.encode() + b"\r\n")
        await me.read_until(prompt)
        return me

    async def read_until(self, marker: bytes) -> bytes:
        with trio.fail_after(SAFETY):
            while marker not in self.buffer:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise EOFError(self.buffer[-300:])
                self.buffer += data
        head, _, self.buffer = self.buffer.partition(marker)
        return head + marker

    async def command(self, line: str) -> bytes:
        await self.stream.send_all(line.encode() + b"\r\n")
        return await self.read_until(self.prompt)

    async def line_with(self, needle: bytes) -> bytes:
        """The next whole line holding `needle` (other lines are skipped)."""
        while True:
            line = await self.read_until(b"\r\n")
            if needle in line:
                return line.rstrip(b"\r\n")
