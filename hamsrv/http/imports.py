"""ADIF import jobs and export over HTTP, and import progress over a (low-volume) WebSocket.

`POST /api/imports` first receives the whole body into a spool file (data dir `uploads/`), with a
size limit and a timeout for a client that stalls, and only then takes a database connection: a slow
client never holds one. It stores the upload in 1 MiB rows and commits before it answers 202, so a job
survives a crash of the server; the job runner does the work. The body is never held whole in memory,
whether it comes raw or as a multipart/form-data file field.
"""

from __future__ import annotations

import errno
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import trio
from quart import Response, jsonify, request, websocket
from quart_trio import QuartTrio
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, File, MultipartDecoder, NeedData

from hamsrv.db.database import Row
from hamsrv.db.import_jobs import add_chunk, create_job, finish_upload, get_job, list_jobs
from hamsrv.http.common import (
    KEY_REUSED,
    ApiError,
    AppState,
    authenticated,
    body_chunks,
    error,
    idempotency_key,
    parse_time,
    request_digest,
    streams_body,
    websocket_user,
)
from hamsrv.ingest.adif import SNIFF_BYTES, looks_like_adif, sniff_format
from hamsrv.ingest.export import export_qsos
from hamsrv.ingest.jobs import CHUNK_BYTES, job_summary

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_CONTENT_TYPES = {"adi": "application/octet-stream", "adx": "application/xml"}


def _flag(name: str, text: str | None) -> bool:
    value = (text or "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise ApiError(400, f"{name} must be true or false", name)
    return value in _TRUE


MULTIPART_SLICE = 32 * 1024  # werkzeug checks its memory limit per receive_data() call, so feed it slices


async def _multipart_file(boundary: bytes, body: AsyncIterator[bytes], meta: dict[str, str]) -> AsyncIterator[bytes]:
    """The bytes of the first file part, streamed; other parts are skipped. The part's filename goes
    into `meta["filename"]`."""
    decoder = MultipartDecoder(boundary, max_form_memory_size=64 * 1024)
    in_file = seen_file = False
    done = False
    pending = b""  # read from the client, not yet given to the decoder
    while not done:
        try:
            event = decoder.next_event()
            if isinstance(event, NeedData):
                if not pending:
                    try:
                        pending = await body.__anext__()
                    except StopAsyncIteration:
                        decoder.receive_data(None)
                        continue
                decoder.receive_data(pending[:MULTIPART_SLICE])
                pending = pending[MULTIPART_SLICE:]
                continue
        except ValueError as exc:  # werkzeug's word for a body that is not valid multipart
            raise ApiError(400, f"malformed multipart/form-data body: {exc}") from None
        if isinstance(event, File):
            in_file = not seen_file
            if in_file and event.filename:
                meta["filename"] = event.filename
            seen_file = True
        elif isinstance(event, Data):
            if in_file and event.data:
                yield bytes(event.data)
            if not event.more_data:
                in_file = False
        elif isinstance(event, Epilogue):
            done = True
        else:
            in_file = False
    if not seen_file:
        raise ApiError(400, "the multipart upload has no file part", "file")


class _Upload:
    """Spools the body to a file and checks, early, that it is ADIF at all. `fingerprint` (SHA-256 of
    method, path, query and the file as spooled, not its multipart wrapping, whose boundary a retry
    changes) tells a retry from another upload under the same Idempotency-Key."""

    def __init__(self, spool: IO[bytes], limit: int):
        self.spool, self.limit = spool, limit
        self.fingerprint = request_digest()
        self.size = 0
        self.pending = bytearray()
        self.head = b""
        self.checked = False

    async def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ApiError(413, f"the upload is larger than {self.limit} bytes")
        if not self.checked:
            self.head += data[:SNIFF_BYTES]
            if len(self.head) >= SNIFF_BYTES:
                self.check()
        self.pending += data
        self.fingerprint.update(data)
        if len(self.pending) >= CHUNK_BYTES:
            await self._write()

    def check(self) -> None:
        self.checked = True
        if not self.head:
            raise ApiError(400, "the upload is empty")
        if not looks_like_adif(self.head):
            raise ApiError(400, "not an ADIF file: no ADIF tag (<CALL:4>..., <EOR>, <EOH>) or <ADX> element "
                                f"in the first {SNIFF_BYTES // 1024} KiB")

    async def finish(self) -> str:
        """Write the rest; returns the format, 'adi' or 'adx'."""
        if not self.checked:
            self.check()
        await self._write()
        return sniff_format(self.head)

    async def _write(self) -> None:
        data, self.pending = bytes(self.pending), bytearray()
        await trio.to_thread.run_sync(self.spool.write, data)

    async def pieces(self) -> AsyncIterator[bytes]:
        """The spooled upload again, in CHUNK_BYTES pieces."""
        await trio.to_thread.run_sync(self.spool.seek, 0)
        while data := await trio.to_thread.run_sync(self.spool.read, CHUNK_BYTES):
            yield data


@contextmanager
def _spool_file(folder: Path | None) -> Iterator[IO[bytes]]:
    """An anonymous file for one upload (gone when closed, even after a crash); a full disk is a 507."""
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as spool:
            yield spool
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ApiError(507, "the server has no room for this upload now; try again later") from None
        raise


def register(app: QuartTrio, state: AppState) -> None:
    """Add the import/export routes, the export and the progress WebSocket."""
    runner = state.imports

    @app.post("/api/imports")
    @authenticated
    @streams_body
    async def create_import(user: Row) -> Response:
        """The upload is spooled before a job is made (see _Upload). An Idempotency-Key is kept with the
        job: a retry of the same upload gets the job again, another upload under the key a 422
        (`authenticated` answers a retry while the first upload runs, see streams_body)."""
        key = idempotency_key()
        merge = _flag("merge", request.args.get("merge"))
        if request.content_length is not None and request.content_length > state.max_upload_bytes:
            raise ApiError(413, f"the upload is larger than {state.max_upload_bytes} bytes")
        mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
        meta: dict[str, str] = {}
        chunks = body_chunks(state.body_timeout)
        if mimetype == "multipart/form-data":
            if not options.get("boundary"):
                raise ApiError(400, "multipart/form-data without a boundary")
            chunks = _multipart_file(options["boundary"].encode("latin-1"), chunks, meta)
        with _spool_file(state.spool_dir) as spool:
            upload = _Upload(spool, state.max_upload_bytes)
            async for data in chunks:  # no database connection is held while the client sends
                await upload.add(data)
            fmt = await upload.finish()
            async with state.db.transaction() as conn:
                fingerprint = upload.fingerprint.digest()
                job_id, created = await create_job(conn, user["id"], filename=request.args.get("filename")
                                                   or meta.get("filename"), options={"merge": merge},
                                                   idempotency_key=key, fingerprint=fingerprint)
                if created:
                    seq = 0
                    async for piece in upload.pieces():
                        await add_chunk(conn, job_id, seq, piece)
                        seq += 1
                    await finish_upload(conn, job_id, upload.size, fmt)
        if created:
            runner.wake()
            return _accepted(job_id, "queued")  # as committed (the runner may have claimed it since)
        job = await get_job(state.db, user["id"], job_id)
        assert job is not None
        if job["upload_sha256"] not in (None, fingerprint):
            raise ApiError(422, KEY_REUSED, "Idempotency-Key")
        response = _accepted(job_id, job["status"])
        response.headers["Idempotent-Replayed"] = "true"
        return response

    def _accepted(job_id: int, status: str) -> Response:
        response = jsonify({"id": job_id, "status": status})
        response.status_code = 202
        response.headers["Location"] = f"/api/imports/{job_id}"
        return response

    @app.get("/api/imports")
    @authenticated
    async def list_imports(user: Row) -> Response:
        return jsonify({"imports": [job_summary(j) for j in await list_jobs(state.db, user["id"])]})

    @app.get("/api/imports/<int:job_id>")
    @authenticated
    async def get_import(user: Row, job_id: int) -> Response:
        job = await get_job(state.db, user["id"], job_id)
        if job is None:
            raise ApiError(404, f"no import {job_id}")
        return jsonify(job_summary(job, details=True))

    async def export(user: Row, fmt: str) -> Response:
        since = parse_time("since", request.args.get("since"))
        body = export_qsos(state.db, user["id"], user["callsign"], fmt=fmt, since=since)
        response = Response(body, content_type=_CONTENT_TYPES[fmt])
        response.headers["Content-Disposition"] = f'attachment; filename="{user["callsign"]}.{fmt}"'
        response.timeout = None  # type: ignore[assignment]  # a big logbook takes longer than quart's default
        return response

    @app.get("/api/export.adi")
    @authenticated
    async def export_adi(user: Row) -> Response:
        return await export(user, "adi")

    @app.get("/api/export.adx")
    @authenticated
    async def export_adx(user: Row) -> Response:
        return await export(user, "adx")

    @app.websocket("/ws/imports")
    async def imports_ws() -> Response | None:
        """Progress of the user's imports: first the active jobs, then an event per stored batch."""
        user = await websocket_user(websocket)
        if user is None:  # refused before the upgrade, with the JSON body every refusal has
            response = error(401, "sign in, or send a valid token (?token= or Authorization: Bearer)")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        await websocket.accept()
        with runner.subscribe(user["id"]) as events:
            for job in reversed(await list_jobs(state.db, user["id"], active_only=True)):
                await websocket.send_json({"type": "progress", **job_summary(job)})
            async for event in events:
                await websocket.send_json(event)
        return None
