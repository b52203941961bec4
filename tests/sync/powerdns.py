"""A real PowerDNS Authoritative server (gsqlite3 backend) for one test: its own temp dir, free ports,
the config of FACTS 8; `dig` asks it real DNS questions."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
API_KEY = "testkey123"


def free_port_both() -> int:
    """A port free for TCP and UDP on 127.0.0.1 (DNS listens on both)."""
    for _ in range(100):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no port free for both TCP and UDP")


@dataclass
class PowerDns:
    directory: Path
    dns_port: int = 0
    api_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        for tool in ("pdns_server", "dig"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (scripts/install-test-deps installs it)")
        if not SCHEMA.is_file():
            raise RuntimeError(f"{SCHEMA} is missing: install pdns-backend-sqlite3")
        database = self.directory / "pdns.sqlite3"
        with sqlite3.connect(database) as conn:
            conn.executescript(SCHEMA.read_text())
        self.dns_port, self.api_port = free_port_both(), free_port_both()
        (self.directory / "pdns.conf").write_text(
            f"launch=gsqlite3\ngsqlite3-database={database}\nlocal-address=127.0.0.1\nlocal-port={self.dns_port}\n"
            f"api=yes\napi-key={API_KEY}\nwebserver=yes\nwebserver-address=127.0.0.1\n"
            f"webserver-port={self.api_port}\nwebserver-allow-from=127.0.0.1/32\nsocket-dir={self.directory}\n"
            "guardian=no\ndaemon=no\ndisable-syslog=yes\n"
            "default-soa-content=ns1.@ hostmaster.@ 0 10800 3600 604800 3600\n")
        self.process = subprocess.Popen(["pdns_server", f"--config-dir={self.directory}"],
                                        stdout=open(self.directory / "pdns.log", "wb"),  # noqa: SIM115
                                        stderr=subprocess.STDOUT)

    async def wait_ready(self) -> None:
        with trio.fail_after(20):
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError("pdns_server exited: " + (self.directory / "pdns.log").read_text()[-2000:])
                try:
                    async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}) as http:
                        if (await http.get(f"{self.api_url}/api/v1/servers/localhost")).status_code == 200:
                            return
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.1)

    async def create_zone(self, zone: str) -> None:
        async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}) as http:
            r = await http.post(f"{self.api_url}/api/v1/servers/localhost/zones",
                                json={"name": zone, "kind": "Native", "nameservers": [f"ns1.{zone}"]})
            assert r.status_code == 201, r.text

    async def patch(self, zone: str, rrsets: list[dict[str, object]]) -> None:
        """A change made by hand, behind hamsrv's back (drift)."""
        async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}) as http:
            r = await http.patch(f"{self.api_url}/api/v1/servers/localhost/zones/{zone}", json={"rrsets": rrsets})
            assert r.status_code == 204, r.text

    async def dig(self, name: str, rtype: str) -> list[str]:
        """The answer to a real DNS query (`dig +short`), sorted."""
        done = await trio.run_process(["dig", "@127.0.0.1", "-p", str(self.dns_port), "+short", "+tries=3",
                                       "+time=2", name, rtype], capture_stdout=True, capture_stderr=True)
        return sorted(line for line in done.stdout.decode().splitlines() if line)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
