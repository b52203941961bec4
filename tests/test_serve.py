"""`hamsrv serve` as a user runs it: a real subprocess, configuration errors, health, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import testdata

REPO = testdata.REPO


_handed_out: set[int] = set()


def free_port() -> int:
    """A free port below the ephemeral range (DESIGN: client sockets collide with listeners there)."""
    for port in range(20000 + os.getpid() % 5000, 32000, 7):
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def hamsrv(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "hamsrv.cli", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAMSRV_")}
    env.update(HAMSRV_DATA_DIR=str(tmp_path / "var"), **extra)
    return env


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.communicate()}")
        try:
            r = httpx.get(url + "/healthz", timeout=2)
            if r.status_code == 200:
                return dict(r.json())
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("server not healthy in time")


def test_serve_on_embedded_database_then_sigterm_exits_zero(tmp_path: Path) -> None:
    """The quick start's `make run` path: no database URL, so a private PostgreSQL in the data dir."""
    http, cluster = free_port(), free_port()
    env = clean_env(tmp_path, HAMSRV_HTTP_BIND=f"127.0.0.1:{http}", HAMSRV_CLUSTER_BIND=f"127.0.0.1:{cluster}")
    proc = hamsrv("serve", env=env)
    try:
        health = wait_healthy(f"http://127.0.0.1:{http}", proc)
        assert health["database"] == "ok"
        assert (tmp_path / "var" / "pg" / "PG_VERSION").exists()
        with socket.create_connection(("127.0.0.1", cluster), timeout=5) as telnet:
            assert b"login:" in telnet.recv(4096) or b"login:" in telnet.recv(4096)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(("env_extra", "message"), [
    ({"HAMSRV_HTTP_BIND": "127.0.0.1:99999"}, "HAMSRV_HTTP_BIND: port '99999'"),
    ({"HAMSRV_DATABASE_URL": "mysql://localhost/x"}, "HAMSRV_DATABASE_URL"),
    ({"HAMSRV_TLS_CERT": "/nonexistent.pem"}, "no such file"),
    ({"HAMSRV_CLUSTER_FEEDS": "not-an-address"}, "HAMSRV_CLUSTER_FEEDS"),
    ({"HAMSRV_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x?connect_timeout=2"}, "cannot connect"),
    ({"HAMSRV_TLS_CERT": str(REPO / "README.md"), "HAMSRV_TLS_KEY": str(REPO / "README.md")}, "cannot load"),
])
def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path, env_extra: dict[str, str],
                                                  message: str) -> None:
    proc = hamsrv("serve", env=clean_env(tmp_path, **env_extra))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    lines = [line for line in err.splitlines() if line.startswith("hamsrv:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_bad_flag_value_is_exit_2(tmp_path: Path) -> None:
    proc = hamsrv("serve", "--tick-ms", "zero", env=clean_env(tmp_path))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "--tick-ms" in err and "Traceback" not in err


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = hamsrv("serve", "--http", f"127.0.0.1:{port}", "--cluster", f"127.0.0.1:{free_port()}",
                      env=clean_env(tmp_path))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert f"hamsrv: cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_cty_update_installs_a_valid_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    good = testdata.TESTDATA / "cty" / "cty_regular_rhgndf.dat"
    proc = hamsrv("cty", "update", str(good), env=clean_env(tmp_path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "entities" in out and (tmp_path / "var" / "cty.dat").read_bytes() == good.read_bytes()

    bad = tmp_path / "bad.dat"
    bad.write_text("<html>not a cty file</html>\n")
    proc = hamsrv("cty", "update", str(bad), env=clean_env(tmp_path))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.startswith("hamsrv: ") and "Traceback" not in err
    assert (tmp_path / "var" / "cty.dat").read_bytes() == good.read_bytes()  # the old file stays


def test_db_migrate_reports_what_it_applied(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    first = hamsrv("db", "migrate", env=env)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert out.startswith("applied: 0001_initial.sql"), out
    again = hamsrv("db", "migrate", env=env)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and "up to date" in out, (out, err)
