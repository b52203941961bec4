"""What a cluster session asks its server to do (session.py and commands.py produce these; node.py acts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hamsrv.firehose.bulletins import Bulletin
from hamsrv.model import Spot


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    """Put this spot on the hub; `by_user` says a logged-in user typed it (else a feed pushed it)."""

    spot: Spot
    by_user: bool


@dataclass(frozen=True, slots=True)
class ShowDx:
    """The server answers with `format_show_dx` of the `count` spots passing `matches` that are
    newest by spot time; `query` is the user's words for DXSpider's "not found" line."""

    count: int
    matches: Callable[[Spot], bool]
    query: str = ""
    real: bool = False  # sh/fdx: in the `DX de` layout


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """Login finished: users start receiving spots from now on; feeds never do."""

    call: str
    feed: bool


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: str


@dataclass(frozen=True, slots=True)
class Post:
    """Put a user's announcement or talk on the bulletin board (rate-limited by the server)."""

    item: Bulletin


@dataclass(frozen=True, slots=True)
class ShowBulletins:
    """sh/ann, sh/wwv, sh/wcy: the server answers with `format_bulletins` of the newest `count`."""

    kind: str  # announce, wwv, wcy
    count: int


@dataclass(frozen=True, slots=True)
class ShowUsers:
    """who / sh/users: the server answers with `format_users` of the users logged in."""

    kind: str  # who, users


@dataclass(frozen=True, slots=True)
class CheckSecret:
    """`login: CALL SECRET` on a node with accounts: the server checks the account's cluster password or
    API token and answers with `secret_checked` (identity/cluster_login.py)."""

    call: str
    secret: str


Event = Send | Publish | ShowDx | LoggedIn | Disconnect | Post | ShowBulletins | ShowUsers | CheckSecret
