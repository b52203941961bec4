"""Configuration: defaults < TOML file < environment (HAMSRV_*) < command-line flags.

Everything is validated up front, so a bad value stops `hamsrv serve` with one clear line (exit 2)
instead of failing later inside a service.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hamsrv.errors import ConfigError


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(text: str) -> Bind:
    """`HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces are never implied: `:PORT` means 127.0.0.1)."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r} is not HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdecimal() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a number from 0 to 65535")
    return Bind(host, int(port_text))


def parse_url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def check(text: str) -> str:
        parts = urlsplit(text)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ValueError(f"{text!r} is not a {'/'.join(schemes)} URL")
        return text
    return check


def parse_positive(kind: type) -> Callable[[str], Any]:
    def check(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if value <= 0:
            raise ValueError(f"{text!r} must be positive")
        return value
    return check


def parse_workers(text: str) -> int:
    """A number of worker processes, or `auto` for one per core."""
    if text.strip().lower() == "auto":
        return os.cpu_count() or 1
    return int(parse_positive(int)(text))


def _redis_url(text: str) -> str:
    from hamsrv.firehose.resp import parse_url as parse_redis_url  # the one place that reads these URLs

    parse_redis_url(text)
    return text
def parse_switch(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{text!r} is not on or off")
    return value in ("on", "true", "1", "yes")


def _optional_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"no such file: {text}")
    return path


@dataclass(frozen=True)
class Config:
    http: Bind = field(default=Bind("127.0.0.1", 8080), metadata={
        "env": "HAMSRV_HTTP_BIND", "parse": parse_bind, "help": "HTTP API, page and /ws/firehose"})
    cluster: Bind = field(default=Bind("127.0.0.1", 7300), metadata={
        "env": "HAMSRV_CLUSTER_BIND", "parse": parse_bind, "help": "DX cluster node port (telnet)"})
    database_url: str | None = field(default=None, metadata={
        "env": "HAMSRV_DATABASE_URL", "parse": parse_url(("postgresql", "postgres")),
        "help": "PostgreSQL URL (default: embedded server in the data dir)"})
    data_dir: Path = field(default=Path("var"), metadata={
        "env": "HAMSRV_DATA_DIR", "parse": Path, "help": "data directory"})
    web_dir: Path = field(default=Path(__file__).resolve().parents[1] / "web", metadata={
        "env": "HAMSRV_WEB_DIR", "parse": Path, "help": "folder holding the web page"})
    tls_cert: Path | None = field(default=None, metadata={
        "env": "HAMSRV_TLS_CERT", "parse": _optional_file, "help": "server certificate (PEM) for HTTPS"})
    tls_key: Path | None = field(default=None, metadata={
        "env": "HAMSRV_TLS_KEY", "parse": _optional_file, "help": "server private key (PEM)"})
    node_call: str = field(default="HAMSRV", metadata={
        "env": "HAMSRV_NODE_CALL", "parse": str.upper, "help": "this node's callsign on the cluster port"})
    cluster_feeds: str = field(default="", metadata={
        "env": "HAMSRV_CLUSTER_FEEDS", "parse": str,
        "help": "peers allowed to push raw spots: addresses/networks and token:SECRET, comma separated"})
    cluster_links: str = field(default="", metadata={
        "env": "HAMSRV_CLUSTER_LINKS", "parse": str,
        "help": "upstream cluster nodes host:port[/CALL], comma separated"})
    cluster_max_connections: int = field(default=5000, metadata={
        "env": "HAMSRV_CLUSTER_MAX_CONNECTIONS", "parse": parse_positive(int),
        "help": "connections the cluster port holds in all (trusted feeds exempt)"})
    cluster_per_ip: int = field(default=20, metadata={
        "env": "HAMSRV_CLUSTER_PER_IP", "parse": parse_positive(int),
        "help": "cluster port connections from one address (trusted feeds exempt)"})
    cluster_idle_hours: float = field(default=24.0, metadata={
        "env": "HAMSRV_CLUSTER_IDLE_HOURS", "parse": parse_positive(float),
        "help": "hours a cluster user may send nothing before being let go"})
    cluster_spot_rate: int = field(default=10, metadata={
        "env": "HAMSRV_CLUSTER_SPOT_RATE", "parse": parse_positive(int),
        "help": "DX spots a minute one cluster user may send (feeds exempt)"})
    tick_ms: float = field(default=50.0, metadata={
        "env": "HAMSRV_TICK_MS", "parse": parse_positive(float), "help": "firehose batching tick (ms)"})
    ring_hours: float = field(default=4.0, metadata={
        "env": "HAMSRV_RING_HOURS", "parse": parse_positive(float), "help": "hours of spot history kept"})
    db_pool_size: int = field(default=10, metadata={
        "env": "HAMSRV_DB_POOL_SIZE", "parse": parse_positive(int), "help": "database connections"})
    max_upload_mb: int = field(default=512, metadata={
        "env": "HAMSRV_MAX_UPLOAD_MB", "parse": parse_positive(int), "help": "largest ADIF upload (MiB)"})
    import_batch: int = field(default=20_000, metadata={
        "env": "HAMSRV_IMPORT_BATCH", "parse": parse_positive(int),
        "help": "QSOs an import stores per commit (one progress event each)"})
    max_json_kb: int = field(default=1024, metadata={
        "env": "HAMSRV_MAX_JSON_KB", "parse": parse_positive(int), "help": "largest JSON request body (KiB)"})
    body_timeout: float = field(default=60.0, metadata={
        "env": "HAMSRV_BODY_TIMEOUT", "parse": parse_positive(float),
        "help": "seconds a client may pause while sending a request body"})
    ws_per_ip: int = field(default=200, metadata={
        "env": "HAMSRV_WS_PER_IP", "parse": parse_positive(int), "help": "firehose connections per IP"})
    workers: int = field(default=1, metadata={
        "env": "HAMSRV_WORKERS", "parse": parse_workers,
        "help": "worker processes sharing the public port and one spot ring (a number, or auto)"})
    redis_url: str | None = field(default=None, metadata={
        "env": "HAMSRV_REDIS_URL", "parse": _redis_url,
        "help": "Redis for cross-node spot fan-out: redis://[:PASSWORD@]HOST[:PORT][/DB], unix:///PATH, "
                "redis+sentinel://HOST[:PORT][,HOST...]/MASTER[/DB] or redis+cluster://HOST[:PORT][,HOST...]"})
    node_id: str | None = field(default=None, metadata={
        "env": "HAMSRV_NODE_ID", "parse": str,
        "help": "this node's id among nodes sharing Redis (default: random at each start)"})
    shutdown_grace: float = field(default=4.0, metadata={
        "env": "HAMSRV_SHUTDOWN_GRACE", "parse": parse_positive(float),
        "help": "seconds in-flight work gets to finish on SIGTERM"})
    syncs: str = field(default="fcc,noaa,pdns", metadata={
        "env": "HAMSRV_SYNCS", "parse": str,
        "help": "timed syncs `hamsrv serve` runs: fcc, noaa, pdns, comma separated (empty: none)"})
    fcc_url: str = field(default="https://data.fcc.gov/download/pub/uls", metadata={
        "env": "HAMSRV_FCC_URL", "parse": parse_url(("http", "https")),
        "help": "FCC ULS folder holding complete/l_amat.zip and daily/l_am_*.zip"})
    noaa_url: str = field(default="https://services.swpc.noaa.gov", metadata={
        "env": "HAMSRV_NOAA_URL", "parse": parse_url(("http", "https")),
        "help": "NOAA SWPC base URL (holding products/... and json/...)"})
    dns_zone: str | None = field(default=None, metadata={
        "env": "HAMSRV_DNS_ZONE", "parse": str,
        "help": "member DNS zone, e.g. hams.example. (K1ABC owns k1abc.hams.example.)"})
    pdns_url: str | None = field(default=None, metadata={
        "env": "HAMSRV_PDNS_URL", "parse": parse_url(("http", "https")),
        "help": "PowerDNS HTTP API, e.g. http://127.0.0.1:8081 (off when unset)"})
    pdns_key: str | None = field(default=None, metadata={
        "env": "HAMSRV_PDNS_KEY", "parse": str, "help": "PowerDNS API key (X-API-Key)"})
    pdns_server: str = field(default="localhost", metadata={
        "env": "HAMSRV_PDNS_SERVER", "parse": str, "help": "PowerDNS server id in the API path"})
    dns_quota: int = field(default=20, metadata={
        "env": "HAMSRV_DNS_QUOTA", "parse": parse_positive(int), "help": "member DNS records per user"})
    auth: Bind = field(default=Bind("127.0.0.1", 8444), metadata={
        "env": "HAMSRV_AUTH_BIND", "parse": parse_bind,
        "help": "LoTW certificate sign-in listener (mTLS; on only with HAMSRV_CLIENT_CA)"})
    client_ca: Path | None = field(default=None, metadata={
        "env": "HAMSRV_CLIENT_CA", "parse": _optional_file,
        "help": "CA bundle (PEM) that issues client certificates: ARRL's LoTW root and production CA"})
    client_crl: Path | None = field(default=None, metadata={
        "env": "HAMSRV_CLIENT_CRL", "parse": _optional_file,
        "help": "certificate revocation list(s) for client certificates (PEM or DER; re-read when changed)"})
    session_days: float = field(default=30.0, metadata={
        "env": "HAMSRV_SESSION_DAYS", "parse": parse_positive(float), "help": "days a sign-in lasts"})
    smtp_url: str | None = field(default=None, metadata={
        "env": "HAMSRV_SMTP_URL", "parse": parse_url(("smtp", "smtps", "smtp+starttls")),
        "help": "mail server for e-mail sign-in codes: smtp[s|+starttls]://[USER:PASS@]HOST[:PORT]"})
    mail_from: str = field(default="hamsrv@localhost", metadata={
        "env": "HAMSRV_MAIL_FROM", "parse": str, "help": "sender address of sign-in mails"})
    qrz_url: str = field(default="https://www.qrz.com/db/", metadata={
        "env": "HAMSRV_QRZ_URL", "parse": parse_url(("http", "https")),
        "help": "QRZ callsign pages (the callsign is appended) for QRZ biography sign-in"})
    rate_api: float = field(default=50.0, metadata={
        "env": "HAMSRV_RATE_API", "parse": parse_positive(float),
        "help": "API requests a second per IP address and per user (bursts of 10 s worth)"})
    rate_signin: float = field(default=10.0, metadata={
        "env": "HAMSRV_RATE_SIGNIN", "parse": parse_positive(float),
        "help": "sign-in attempts a minute per IP address"})
    spot_history_seconds: float = field(default=60.0, metadata={
        "env": "HAMSRV_SPOT_HISTORY_SECONDS", "parse": parse_positive(float),
        "help": "seconds between saves of the spot ring to the data dir (it is saved at shutdown too)"})
    access_log: bool = field(default=False, metadata={
        "env": "HAMSRV_ACCESS_LOG", "parse": parse_switch,
        "help": "log one line per HTTP request (on/off)"})
    cluster_peers: str = field(default="", metadata={
        "env": "HAMSRV_CLUSTER_PEERS", "parse": str,
        "help": "peer nodes spoken to in the PC protocol, host:port/OURCALL, comma separated"})
    cluster_link_commands: str = field(default="", metadata={
        "env": "HAMSRV_CLUSTER_LINK_COMMANDS", "parse": str,
        "help": "commands every upstream link sends after login, separated by ';'"})
    secret_key: str | None = field(default=None, repr=False, metadata={
        "env": "HAMSRV_SECRET_KEY", "parse": str,
        "help": "keys sealing stored passwords, base64, comma separated, first one current "
                "(default: secret.key in the data dir)"})
    lotw_url: str = field(default="https://lotw.arrl.org", metadata={
        "env": "HAMSRV_LOTW_URL", "parse": parse_url(("http", "https")),
        "help": "LoTW site root (hamsrv asks for /lotwuser/lotwreport.adi under it)"})
    eqsl_url: str = field(default="https://www.eqsl.cc", metadata={
        "env": "HAMSRV_EQSL_URL", "parse": parse_url(("http", "https")),
        "help": "eQSL site root (hamsrv asks for /qslcard/DownloadInBox.cfm under it)"})
    qsl_sync_hours: float = field(default=6.0, metadata={
        "env": "HAMSRV_QSL_SYNC_HOURS", "parse": parse_positive(float),
        "help": "hours between two LoTW/eQSL downloads of one user"})
    qsl_timeout: float = field(default=120.0, metadata={
        "env": "HAMSRV_QSL_TIMEOUT", "parse": parse_positive(float),
        "help": "seconds one LoTW/eQSL download may take"})

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def _convert(name: str, source: str, value: Any) -> Any:
    spec = next(f for f in fields(Config) if f.name == name)
    try:
        return spec.metadata["parse"](str(value))
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
         file: Path | None = None) -> Config:
    """Build the configuration; raises ConfigError naming the setting and where it came from."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    file = file or (Path(env["HAMSRV_CONFIG"]) if env.get("HAMSRV_CONFIG") else None)
    known = {f.name for f in fields(Config)}
    if file is not None:
        try:
            table = tomllib.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file}: {exc}") from None
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"config file {file}: unknown setting {key!r}")
            values[key] = _convert(key, f"config file {file}, {key}", value)
    for f in fields(Config):
        if env.get(f.metadata["env"]):
            values[f.name] = _convert(f.name, f.metadata["env"], env[f.metadata["env"]])
    for key, value in (flags or {}).items():
        if value is not None:
            values[key] = _convert(key, f"--{key.replace('_', '-')}", value)
    config = replace(Config(), **values)
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("HAMSRV_TLS_CERT and HAMSRV_TLS_KEY must be given together")
    if config.client_ca is not None and not config.tls:
        raise ConfigError("HAMSRV_CLIENT_CA needs HAMSRV_TLS_CERT and HAMSRV_TLS_KEY (the mTLS listener's "
                          "own certificate)")
    return config
