"""Every error a route raises becomes a JSON answer (`{"error": ..., "field": ...}`), never a traceback."""

from __future__ import annotations

import logging

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from hamsrv.errors import DatabaseError, InputError
from hamsrv.http.common import ApiError, error

log = logging.getLogger(__name__)

BODY_LEFT_UNREAD = (408, 413, 507)  # refused while the client may still be sending its body


def install(app: QuartTrio) -> None:
    @app.errorhandler(ApiError)
    async def on_api_error(exc: ApiError) -> Response:
        response = error(exc.status, str(exc), exc.field)
        if exc.retry_after:
            response.headers["Retry-After"] = exc.retry_after
        if exc.status in BODY_LEFT_UNREAD:  # the rest of the body is never read: end the connection
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(InputError)
    async def on_input_error(exc: InputError) -> Response:
        return error(400, str(exc), exc.field)

    @app.errorhandler(DatabaseError)
    async def on_db_error(exc: DatabaseError) -> Response:
        log.warning("database error: %s", exc)
        return error(503, "the database is unavailable, try again shortly")

    @app.errorhandler(HTTPException)
    async def on_http_error(exc: HTTPException) -> Response:
        return error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    async def on_unexpected(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error(500, "internal error (logged on the server)")
