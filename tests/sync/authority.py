"""A local stand-in for an external authority (FCC, NOAA): a real HTTP/1.1 server on a free port
that serves given files, and can misbehave the ways real servers do: an error status, an HTML error
page, the wrong content type, a body cut short, 304 for a matching ETag/Last-Modified, and Range."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio


@dataclass
class Route:
    body: bytes
    content_type: str = "application/json"
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None  # an HTTP date
    cut_after: int | None = None  # close the connection after this many body bytes (Content-Length says all)
    cut_times: int = 1_000_000  # ... in this many responses (then the whole body again)
    ranges: bool = True  # honour "Range: bytes=N-"


REASONS = {200: "OK", 206: "Partial Content", 304: "Not Modified", 404: "Not Found", 500: "Internal Server Error",
           503: "Service Unavailable"}


@dataclass
class Authority:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, headers) as received
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_file(self, path: str, body: bytes, **options: object) -> Route:
        route = self.routes[path] = Route(body, **options)  # type: ignore[arg-type]
        return route

    async def run(self, *, task_status: trio.TaskStatus[Authority] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = await stream.receive_some(65536)
                if not data:
                    return
                head += data
            lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            _method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            path = target.split("?")[0]
            self.requests.append((path, headers))
            await self._respond(stream, self.routes.get(path), headers)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    async def _respond(self, stream: trio.SocketStream, route: Route | None, headers: dict[str, str]) -> None:
        if route is None:
            route = Route(b"<html><body><h1>404 Not Found</h1></body></html>", "text/html", 404)
        extra = {}
        if route.etag:
            extra["ETag"] = route.etag
        if route.last_modified:
            extra["Last-Modified"] = route.last_modified
        status, body = route.status, route.body
        fresh = status == 200 and (
            (route.etag is not None and headers.get("if-none-match") == route.etag)
            or (route.etag is None and route.last_modified is not None
                and headers.get("if-modified-since") == route.last_modified))
        if fresh:
            status, body = 304, b""
        elif status == 200 and route.ranges and headers.get("range", "").startswith("bytes="):
            start = int(headers["range"][6:].split("-")[0])
            if_range = headers.get("if-range")
            if if_range is None or if_range in (route.etag, route.last_modified):
                status, body = 206, body[start:]
                extra["Content-Range"] = f"bytes {start}-{len(route.body) - 1}/{len(route.body)}"
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Connection: close"]
        if status != 304:
            head += [f"Content-Type: {route.content_type}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        await stream.send_all(("\r\n".join(head) + "\r\n\r\n").encode())
        if status == 304:
            return
        if route.cut_after is not None and status in (200, 206) and route.cut_times > 0:
            route.cut_times -= 1
            await stream.send_all(body[:route.cut_after])
            return
        view = memoryview(body)
        for i in range(0, len(body), 1 << 16):
            await stream.send_all(view[i:i + (1 << 16)])
