from __future__ import annotations

import email.message
import mailbox
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from hamsrv import config as config_mod
from tests.test_serve import free_port
from tests.tls import LotwCA


@dataclass
class Served:
    """A whole hamsrv app over HTTPS with the certificate sign-in listener on."""

    main: str  # https://127.0.0.1:PORT
    auth_port: int
    ca: LotwCA
    running: Any

    def main_client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.main, verify=self.ca.client_context(), timeout=30, **options)

    def auth_client(self, context: ssl.SSLContext) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"https://127.0.0.1:{self.auth_port}", verify=context, timeout=30)


@pytest.fixture
def lotw(tmp_path: Path) -> LotwCA:
    return LotwCA(tmp_path / "ca")


@pytest.fixture
async def served(app_config: config_mod.Config, lotw: LotwCA, nursery: trio.Nursery) -> AsyncIterator[Served]:
    from hamsrv.app import run

    cert, key = lotw.server_files()
    crl = lotw.folder / "crl.pem"
    crl.write_bytes(lotw.crl([]))
    config = replace(app_config, tls_cert=cert, tls_key=key, client_ca=lotw.bundle, client_crl=crl,
                     auth=config_mod.Bind("127.0.0.1", 0))
    handle = await nursery.start(lambda task_status: run(config, handle_signals=False, task_status=task_status))
    yield Served(f"https://127.0.0.1:{handle.http_port}", handle.auth_port, lotw, handle)
    handle.shutdown.set()


async def raw_https_get(port: int, context: ssl.SSLContext, path: str = "/",
                        headers: dict[str, str] | None = None) -> bytes:
    """One GET over a real TLS connection; a refused handshake raises ssl.SSLError (the TLS alert)."""
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=context, https_compatible=True)
    lines = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    try:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{lines}"
                              "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
        return data
    except trio.BrokenResourceError as exc:
        if isinstance(exc.__cause__, ssl.SSLError):
            raise exc.__cause__ from None
        raise
    finally:
        await trio.aclose_forcefully(stream)


@dataclass
class MailServer:
    """A real SMTP server (aiosmtpd in its own process) storing what it receives in a Maildir."""

    url: str
    maildir: Path
    process: subprocess.Popen[bytes]

    def messages(self) -> list[email.message.Message]:
        if not self.maildir.exists():
            return []
        return [m for _, m in sorted(mailbox.Maildir(self.maildir, create=False).items())]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[email.message.Message]:
        with trio.fail_after(timeout):
            while len(found := self.messages()) < count:
                await trio.sleep(0.02)
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[MailServer]:
    port = free_port()
    maildir = tmp_path / "maildir"
    process = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                                "-c", "aiosmtpd.handlers.Mailbox", str(maildir)])
    server = MailServer(f"smtp://127.0.0.1:{port}", maildir, process)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("aiosmtpd did not start (is it installed? pip install aiosmtpd)") from None
                time.sleep(0.05)
        yield server
    finally:
        server.stop()
