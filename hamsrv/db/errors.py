"""psycopg errors stop at the db package: callers see hamsrv errors with one-line messages."""

from __future__ import annotations

import psycopg

from hamsrv.errors import DatabaseError


class UniqueViolation(DatabaseError):
    """A row with the same unique key exists already."""


def describe(exc: BaseException) -> str:
    """One line for a user: psycopg messages can run over several lines."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def translate(exc: psycopg.Error) -> DatabaseError:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return UniqueViolation(describe(exc))
    return DatabaseError(describe(exc))
