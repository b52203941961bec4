"""psycopg errors stop at the db package: callers see hamsrv errors with one-line messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from hamsrv.errors import DatabaseError


class UniqueViolation(DatabaseError):
    """A row with the same unique key exists already."""


class RefusedData(DatabaseError):
    """PostgreSQL refused the data itself (bad value, constraint): retrying cannot help."""


def describe(exc: BaseException) -> str:
    """One line for a user: psycopg messages can run over several lines."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def translate(exc: psycopg.Error) -> DatabaseError:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return UniqueViolation(describe(exc))
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError | psycopg.ProgrammingError):
        return RefusedData(describe(exc))
    return DatabaseError(describe(exc))


@contextmanager
def translated() -> Iterator[None]:
    """Run a block of psycopg calls with their errors translated to hamsrv's."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc) from None
