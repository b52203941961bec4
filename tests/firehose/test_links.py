"""Outbound links against a fake upstream node on 127.0.0.1 that speaks like DXSpider / CC Cluster."""

from __future__ import annotations

import contextlib
import socket
from datetime import UTC, datetime
from functools import partial

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.errors import ConfigError
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.links import (
    Backoff,
    LinkConfig,
    LinkState,
    parse_commands,
    parse_links,
    run_link,
    serve_links,
)
from hamsrv.firehose.node import serve_cluster
from hamsrv.metrics import Registry
from tests import testdata

TESTDATA = testdata.TESTDATA / "dxcluster"
RBN_LINES = (TESTDATA / "rbn_telnet_lines_20200705.txt").read_bytes().splitlines()
SAFETY = 20  # seconds; only guards against a hung test
FAST = Backoff(initial=0.01, maximum=0.05, stable_after=0.0)


class FakeUpstream:
    """Sends an issue text and a prompt without newline, checks the call, streams spots, hangs up."""

    def __init__(self, prompt: bytes = b"login: ", password: bytes | None = None):
        self.prompt, self.password = prompt, password
        self.logins: list[bytes] = []
        self.commands: list[bytes] = []
        self.sessions = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.sessions += 1
        async with stream:
            await stream.send_all(b"Greetings from the TEST cluster\r\n\r\nPlease login with your call\r\n"
                                  + self.prompt)
            buffer = b""
            buffer, call = await self._line(stream, buffer)
            self.logins.append(call)
            if self.password is not None:
                await stream.send_all(b"\r\npassword: ")
                buffer, given = await self._line(stream, buffer)
                if given != self.password:
                    return
            await stream.send_all(b"Hello " + call + b"\r\n" + call + b" de TEST  7-Feb-2022 1307Z dxspider >\r\n"
                                  + b"WWV de W0MU <18Z> :   SFI=93, A=4, K=2, No Storms -> No Storms\r\n")
            for line in RBN_LINES:
                await stream.send_all(line + b"\r\n")
            with trio.move_on_after(0.05):  # collect the set/dx commands the link sent after login
                while True:
                    data = await stream.receive_some(1024)
                    if not data:
                        break
                    buffer += data
            self.commands += [c for c in buffer.split(b"\r\n") if c]

    @staticmethod
    async def _line(stream: trio.SocketStream, buffer: bytes) -> tuple[bytes, bytes]:
        while b"\r\n" not in buffer:
            data = await stream.receive_some(1024)
            if not data:
                raise trio.BrokenResourceError("client left")
            buffer += data
        line, _, rest = buffer.partition(b"\r\n")
        return rest, line


async def start_upstream(nursery: trio.Nursery, upstream: FakeUpstream, port: int = 0) -> int:
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")

    async def handler(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError):  # the link hung up first
            await upstream.handle(stream)

    await nursery.start(trio.serve_listeners, handler, listeners)
    return listeners[0].socket.getsockname()[1]


async def wait_for(condition) -> None:
    with trio.fail_after(SAFETY):
        while not condition():
            await trio.sleep(0.01)


@pytest.mark.parametrize("prompt", [b"login: ", b"Please enter your call: ", b"Your call:"])
async def test_link_logs_in_streams_spots_and_reconnects(nursery, prompt):
    upstream = FakeUpstream(prompt)
    port = await start_upstream(nursery, upstream)
    hub, metrics = Hub(), Registry()
    cfg = LinkConfig.parse(f"127.0.0.1:{port}/n0call-2")
    states = await nursery.start(partial(serve_links, hub, [cfg], metrics=metrics, backoff=FAST,
                                         commands=["set/dx filter"]))
    [state] = states
    await wait_for(lambda: state.spots_received >= 2 * len(RBN_LINES))  # second session after the drop
    assert upstream.logins[:2] == [b"N0CALL-2", b"N0CALL-2"]
    assert state.reconnects >= 1 and state.failures == 0  # each session was stable (stable_after=0)
    assert state.last_error == "connection closed by the node"
    spots = [e.spot for e in hub.ring.after(0)]
    first = spots[0]
    assert (first.spotter, first.dx, first.freq) == ("KM3T-2-#", "CS3B", 14100.0)
    assert first.source == "link:127.0.0.1" and first.skimmer
    assert [s.dx for s in spots[:len(RBN_LINES)]] == [s.dx for s in spots[len(RBN_LINES):2 * len(RBN_LINES)]]
    assert state.lines_ignored >= 2  # greeting, prompt line and WWV are not spots
    assert b"set/dx filter" in upstream.commands
    assert f'hamsrv_cluster_link_spots{{link="127.0.0.1:{port}"}}' in metrics.render()


async def test_link_answers_password_prompt(nursery):
    upstream = FakeUpstream(password=b"s3cret")
    port = await start_upstream(nursery, upstream)
    hub, state = Hub(), LinkState("test")
    cfg = LinkConfig.parse(f"127.0.0.1:{port}/G0ABC:s3cret")
    nursery.start_soon(partial(run_link, hub, cfg, state, backoff=FAST, commands=["set/dx filter"]))
    await wait_for(lambda: state.spots_received >= len(RBN_LINES) and upstream.commands)
    assert upstream.logins[0] == b"G0ABC"
    assert upstream.commands[0] == b"set/dx filter"  # sent after the password, not as the password


async def test_link_without_password_reports_why(nursery):
    upstream = FakeUpstream(password=b"s3cret")
    port = await start_upstream(nursery, upstream)
    state = LinkState("test")
    cfg = LinkConfig.parse(f"127.0.0.1:{port}", default_call="GB7HAM")
    nursery.start_soon(partial(run_link, Hub(), cfg, state, backoff=FAST))
    await wait_for(lambda: state.last_error is not None and "password" in state.last_error)
    assert state.spots_received == 0


async def test_refused_connection_is_retried_with_backoff(nursery):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: connections are refused
    hub, state = Hub(), LinkState("test")
    nursery.start_soon(partial(run_link, hub, LinkConfig("127.0.0.1", port, "G0ABC"), state,
                               backoff=Backoff(initial=0.01, maximum=0.02, stable_after=60)))
    await wait_for(lambda: state.reconnects >= 3)
    assert not state.connected and state.failures >= 3 and state.spots_received == 0
    assert state.last_error
    upstream = FakeUpstream()  # the node comes back on the same port: the link finds it
    await start_upstream(nursery, upstream, port)
    await wait_for(lambda: state.spots_received >= len(RBN_LINES))


async def test_silent_upstream_times_out(nursery):
    async def mute(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(trio.serve_listeners, mute, listeners)
    state = LinkState("test")
    cfg = LinkConfig("127.0.0.1", listeners[0].socket.getsockname()[1], "G0ABC")
    nursery.start_soon(partial(run_link, Hub(), cfg, state, backoff=FAST, login_timeout=0.05))
    await wait_for(lambda: state.last_error is not None)
    assert state.last_error == "no login prompt within 0.05 s"


def test_backoff_full_jitter_and_cap():
    backoff = Backoff(initial=1.0, maximum=300.0)
    assert [backoff.delay(n, 1.0) for n in (0, 1, 2, 3, 9, 10, 500)] == [1, 1, 2, 4, 256, 300, 300]
    assert backoff.delay(5, 0.0) == 0.0
    assert backoff.delay(5, 0.5) == 8.0


def test_link_config_parse():
    assert LinkConfig.parse("dx.example.org:7300", "gb7ham") == LinkConfig("dx.example.org", 7300, "GB7HAM")
    with pytest.raises(ConfigError, match="give the login call: dx.example.org:7300/CALL"):
        LinkConfig.parse("dx.example.org:7300", "HAMSRV")
    assert LinkConfig.parse("10.0.0.1:23/g0abc-5:pw", "X") == LinkConfig("10.0.0.1", 23, "G0ABC-5", "pw")
    assert LinkConfig.parse("[::1]:7300/G0ABC").name == "[::1]:7300"
    assert [c.port for c in parse_links("a.example:1, b.example:2,", "G0ABC")] == [1, 2]
    for bad in ("nohost", "host:0", "host:99999", ":7300", "host:7300/!!!", "host:port"):
        with pytest.raises(ConfigError, match="HAMSRV_CLUSTER_LINKS"):
            LinkConfig.parse(bad)


@settings(max_examples=200)
@given(text=st.text(max_size=40))
def test_link_config_parse_raises_only_config_error(text):
    try:
        LinkConfig.parse(text, "G0ABC")
    except ConfigError as exc:
        assert str(exc).startswith("HAMSRV_CLUSTER_LINKS")


class EchoingUpstream:
    """A node that takes `dx` commands from the link's user and sends the spot back as `DX de`."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(b"login: ")
            buffer = b""
            call = b""
            while True:
                data = await stream.receive_some(1024)
                if not data:
                    return
                buffer += data
                while b"\r\n" in buffer:
                    line, _, buffer = buffer.partition(b"\r\n")
                    self.received.append(line)
                    if not call:
                        call = line
                        await stream.send_all(b"\r\nHello " + call + b"\r\n")
                        continue
                    if line.startswith(b"dx "):
                        _, freq, dx, *comment = line.decode().split()
                        now = datetime.now(UTC)
                        back = f"DX de {call.decode()}:  {freq}  {dx}  {' '.join(comment)}  {now:%H%M}Z\r\n"
                        await stream.send_all(back.encode())


async def test_link_sends_commands_and_local_users_spots_up_without_echo(nursery):
    """Links send the configured commands after login, then every spot typed by a user of this node
    as a `dx` command; the node's echo of it (spotter = the link's login call) is not taken in again."""
    upstream = EchoingUpstream()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(trio.serve_listeners, upstream.handle, listeners)
    port = listeners[0].socket.getsockname()[1]
    hub = Hub(tick=0.01)
    await nursery.start(hub.run)
    cluster_port = await nursery.start(partial(serve_cluster, hub, "127.0.0.1", 0))
    [state] = await nursery.start(partial(serve_links, hub, [LinkConfig.parse(f"127.0.0.1:{port}/N0CALL")],
                                          backoff=FAST, commands=parse_commands("set/skimmer CW; set/dxgrid")))
    await wait_for(lambda: upstream.received[:3] == [b"N0CALL", b"set/skimmer CW", b"set/dxgrid"])
    user = await trio.open_tcp_stream("127.0.0.1", cluster_port)
    await user.send_all(b"G4ABC\r\ndx 14025.0 JA1XYZ up it goes\r\n")
    await wait_for(lambda: b"dx 14025.0 JA1XYZ up it goes" in upstream.received)
    await wait_for(lambda: state.echoes_dropped == 1)
    assert [e.spot.spotter for e in hub.ring.after(0)] == ["G4ABC"] and state.spots_sent == 1
    await user.aclose()
