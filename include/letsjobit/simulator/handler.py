"""The simulator's HTTP/1.1 plumbing: the threading server, the request handler and the API's routes.

The handler reads the request (no chunked bodies, a size limit), sends ``/_sim/`` requests to the admin
endpoints and everything else to ``SimulatorServer.answer_api``, and writes each answer in one send. Its
log lines never carry the request line whole: a key in the query string would be in it.
"""

from __future__ import annotations

import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

from . import admin
from .auth import redact_path
from .errors import ApiError, error_body, status_phrase

if TYPE_CHECKING:
    from .server import SimulatorServer

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/v2", "/v2")
MAX_BODY_BYTES = 64 * 1024 * 1024


def route(method: str, path: str) -> tuple[str, str | None]:
    """(path kind, visit ID or None); raises 404/405."""
    for prefix in API_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            rest = path[len(prefix) :].strip("/")
            break
    else:
        raise ApiError(404, f"Not Found: no resource at {path}")
    parts = rest.split("/") if rest else []
    if not parts or parts[0] != "visits" or len(parts) > 2:
        raise ApiError(404, f"Not Found: no resource at {path}")
    visit_id = parts[1] if len(parts) == 2 else None
    if visit_id is None:
        if method in ("GET", "HEAD"):
            return "list", None
        if method == "POST":
            return "post", None
    else:
        if method in ("GET", "HEAD"):
            return "get", visit_id
        if method in ("PUT", "DELETE"):
            return method.lower(), visit_id
        if method == "POST":  # the reference's example POSTs to /visits/1: same as /visits
            return "post", visit_id
    raise ApiError(405, f"Method Not Allowed: {method} {path}")


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()
    request_queue_size = 256
    allow_reuse_address = True
    sim: SimulatorServer


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LetsJobItSimulator/2"
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: SimulatorHTTPServer

    # -- connection plumbing ---------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sim.track_connection(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sim.track_connection(self.connection, False)

    def log_request(self, code="-", size="-") -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s", self.command, redact_path(getattr(self, "path", "")), code)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests: the API's error shape, never echoing the request line (it may hold the key)."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        self.send_answer(code, error_body(f"{status_phrase(code)}: malformed request"))

    def log_error(self, format, *args) -> None:  # noqa: A002 - the stdlib's signature
        # The stdlib passes the raw request line in some messages; never log it whole.
        logger.info(
            "simulator connection error from %s: %s",
            self.client_address[0],
            format % tuple(redact_path(a) if isinstance(a, str) else a for a in args),
        )

    def log_message(self, format, *args) -> None:  # noqa: A002
        logger.debug("simulator: %s", format % args)

    def _dispatch_command(self) -> None:
        self._dispatch(self.command)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch_command

    def do_OPTIONS(self) -> None:
        self._read_body()
        self.send_answer(
            204,
            b"",
            {
                "Allow": "GET, POST, PUT, DELETE, OPTIONS",
                "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
            },
        )

    # -- request handling ------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        sim = self.server.sim
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except ApiError as error:
            self.close_connection = True
            self.send_answer(error.status, error_body(error.message))
            return
        if split.path.startswith("/_sim/") or split.path == "/_sim":
            self._admin(method, split.path, body, split.query)
            return
        sim.answer_api(self, method, split.path, split.query, body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(400, "chunked request bodies are not supported; send Content-Length")
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise ApiError(400, f"invalid Content-Length {length_text!r}") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise ApiError(400, f"request body of {length} bytes refused (limit {MAX_BODY_BYTES})")
        return self.rfile.read(length)

    def _admin(self, method: str, path: str, body: bytes, query: str = "") -> None:
        sim = self.server.sim
        if not admin.admits(self.client_address[0], sim.config.admin_from_anywhere):
            self.send_answer(403, error_body("admin endpoints answer loopback clients only"))
            return
        try:
            status, payload = sim.answer_admin(method, path, body, query)
        except ApiError as error:
            status, payload = error.status, {"meta": {"error": error.message}, "data": None}
        except (ValueError, TypeError) as error:
            status, payload = 400, {"meta": {"error": str(error)}, "data": None}
        self.send_answer(status, payload if isinstance(payload, bytes) else orjson.dumps(payload))

    def send_answer(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        announce_length: int | None = None,
    ) -> None:
        """Status line, headers and body in one send (no Nagle stalls on keep-alive connections)."""
        reason = status_phrase(status)
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Server: {self.server_version}",
            f"Content-Length: {len(body) if announce_length is None else announce_length}",
            "Access-Control-Allow-Origin: *",
        ]
        if body:
            lines.append("Content-Type: application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if getattr(self, "command", None) == "HEAD":
            body = b""
        try:
            self.wfile.write(head + body)
        except OSError:
            self.close_connection = True
        self.log_request(status, len(body))
