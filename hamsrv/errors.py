"""Errors that cross module boundaries. Each carries a message fit to show a user as-is."""


class HamsrvError(Exception):
    """Base class: anything hamsrv raises on purpose."""


class ConfigError(HamsrvError):
    """Bad configuration: the CLI prints it on one line and exits with code 2."""


class DatabaseError(HamsrvError):
    """The database is unreachable or refused an operation."""


class PoolTimeout(DatabaseError):
    """No pooled connection became free within the acquire timeout."""


class InputError(HamsrvError):
    """Bad user input; `field` names the offending field when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
