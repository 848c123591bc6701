"""The LetsJobIt API v2 simulator: a real HTTP/1.1 server (stdlib, one thread per connection).

It implements the reference (../shared/letsjobit-api-v2.md): ``GET/POST /api/v2/visits``,
``GET/PUT/DELETE /api/v2/visits/{ID}`` (ID is the internal ``_id`` or the ERP ``id``; ``/v2/...`` works
too), offset paging, every documented filter, auth by ``Authorization: Bearer KEY`` or a query parameter
(``api_key``, ``API_KEY``, ``apiKey``, ``key``), or only one of the two (``key_placement``, to play an
account that takes the key one way only), the per-key rate limit with its headers, errors as
``{"meta": {"error": ...}, "data": null}``, and on top: latency, faults, drift and counters.

Admin endpoints for tests and other processes (no key; loopback clients only):
``GET /_sim/health``, ``GET /_sim/counters``, ``POST /_sim/reset``, ``GET|POST /_sim/faults``,
``GET|POST /_sim/config``, ``GET /_sim/truth`` (every visit as served, with ``meta.bad_records``),
``GET /_sim/bad_records`` (each deliberately bad record's kind and expected outcome), ``POST /_sim/mutate``,
``GET /_sim/changes?since=N`` (every version visits took after store version N: what a reader paging
meanwhile may have seen).

The API key never reaches a log line: requests are logged (DEBUG) without their query string's key.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

import orjson

from letsjobit import config as project_config

from . import data
from .faults import FaultConfig, FaultInjector
from .ratelimit import MODES, RateLimiter, WindowMeter
from .store import FLAG_FILTERS, INSERT_POSITIONS, VisitStore

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/v2", "/v2")
KEY_PARAMS = ("api_key", "API_KEY", "apiKey", "key")
PAGINATION_PARAM = "pagination"
FILTER_PARAMS = (
    "_id",
    "id",
    "date",
    "driverId",
    "docNo",
    "closed",
    "confirmClose",
    "inProgress",
    "priority",
    "skipped",
)
REQUIRED_VISIT_FIELDS = ("driverId", "date", "id", "docNo", "customer", "address", "city", "companyId")
REQUIRED_LINE_FIELDS = ("actionItem", "description")
REQUIRED_EXTRA_FIELDS = ("type", "caption", "name")
SINGLE_VISIT_SHAPES = ("list", "object")
# Where an account takes its key: either way (the reference shows both), only the header, only the query.
KEY_PLACEMENTS = ("any", "header", "query")
MAX_BODY_BYTES = 64 * 1024 * 1024
ADMIN_ENDPOINTS = (
    "health",
    "counters",
    "reset",
    "faults",
    "config",
    "truth",
    "bad_records",
    "mutate",
    "changes",
)


@dataclass
class SimulatorConfig:
    """Everything the simulator can be told at start; all but the data can change at run time."""

    visits: int = 500
    seed: int = 7
    anchor_date: date | None = None  # None: today (UTC), so scheduled windows find data
    days: int = data.DEFAULT_DAYS  # history before the anchor date
    days_ahead: int = data.DEFAULT_DAYS_AHEAD  # schedule after it
    bad_record_rate: float = 0.0  # share of visits with one deliberately bad value (data-quality tests)
    bad_record_kinds: tuple[str, ...] | None = None  # names of data.BAD_RECORD_KINDS to draw from; None: all
    unknown_field_rate: float = 0.0  # share of visits, lines, extraData entries with an undocumented field
    api_keys: tuple[str, ...] = (project_config.SIMULATOR_DEFAULT_KEY,)
    host: str = "127.0.0.1"
    port: int = 0
    page_size: int = project_config.PAGE_SIZE
    rate_limit: int = project_config.RATE_LIMIT_REQUESTS  # per key per window; 0 disables
    rate_window_seconds: float = project_config.RATE_LIMIT_WINDOW_SECONDS
    rate_limit_mode: str = "fixed"  # or "sliding"
    count_rejected: bool = False  # do 429 answers of the limiter count toward the window?
    fractional_reset: bool = False  # X-Rate-Limit-Reset as "2.315" instead of the integer ceiling
    latency_ms: float = 0.0  # added to every API answer; requests in flight overlap
    insert_position: str = "end"  # where new visits go: end, start, random
    single_visit_shape: str = "list"  # GET /visits/{ID}: "data": [visit] (like the list) or the object
    key_placement: str = "any"  # "header" ignores a key in the query string; "query" ignores the header
    admin_from_anywhere: bool = False  # admin endpoints answer non-loopback clients too
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if isinstance(self.api_keys, str):
            self.api_keys = (self.api_keys,)
        self.api_keys = tuple(self.api_keys)
        if not self.api_keys or not all(self.api_keys):
            raise ValueError("api_keys must hold at least one non-empty key")
        if self.rate_limit_mode not in MODES:
            raise ValueError(f"rate_limit_mode must be one of {MODES}, got {self.rate_limit_mode!r}")
        if self.insert_position not in INSERT_POSITIONS:
            raise ValueError(
                f"insert_position must be one of {INSERT_POSITIONS}, got {self.insert_position!r}"
            )
        if self.single_visit_shape not in SINGLE_VISIT_SHAPES:
            raise ValueError(
                f"single_visit_shape must be one of {SINGLE_VISIT_SHAPES}, got {self.single_visit_shape!r}"
            )
        if self.key_placement not in KEY_PLACEMENTS:
            raise ValueError(f"key_placement must be one of {KEY_PLACEMENTS}, got {self.key_placement!r}")
        if self.page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {self.page_size}")
        if isinstance(self.faults, dict):
            self.faults = FaultConfig.from_dict(self.faults)
        for name in ("bad_record_rate", "unknown_field_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.bad_record_kinds is not None:
            self.bad_record_kinds = tuple(kind.name for kind in data.select_kinds(self.bad_record_kinds))


# Settings that POST /_sim/config and SimulatorServer.configure() may change at run time.
RUNTIME_SETTINGS = (
    "rate_limit",
    "rate_window_seconds",
    "rate_limit_mode",
    "count_rejected",
    "fractional_reset",
    "latency_ms",
    "insert_position",
    "single_visit_shape",
    "page_size",
    "key_placement",
)


class ApiError(Exception):
    """An answer in the API's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(message: str) -> bytes:
    return orjson.dumps({"meta": {"error": message}, "data": None})


def key_fingerprint(key: str) -> str:
    """How a key appears in counters: never the key itself."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests_total = 0
            self.by_status: dict[str, int] = {}
            self.by_kind: dict[str, int] = {}
            self.rate_limited_429 = 0
            self.injected_429 = 0
            self.unauthorized = 0
            self.max_in_flight = 0
            self.faults: dict[str, int] = {}
            self.drift = {"events": 0, "inserted": 0, "deleted": 0, "updated": 0}
            self.admin_requests = 0
            self.started = time.monotonic()
        # in_flight is not reset: requests in progress stay in progress.
        if not hasattr(self, "in_flight"):
            self.in_flight = 0

    def begin(self, kind: str) -> None:
        with self._lock:
            self.requests_total += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, status: str) -> None:
        with self._lock:
            self.in_flight -= 1
            self.by_status[status] = self.by_status.get(status, 0) + 1

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def drifted(self, done: dict[str, list[str]]) -> None:
        with self._lock:
            self.drift["events"] += 1
            for name in ("inserted", "deleted", "updated"):
                self.drift[name] += len(done[name])


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()
    request_queue_size = 256
    allow_reuse_address = True
    sim: SimulatorServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LetsJobItSimulator/2"
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: _HTTPServer

    # -- connection plumbing ---------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sim._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sim._track(self.connection, False)

    def log_request(self, code="-", size="-") -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s", self.command, redact_path(getattr(self, "path", "")), code)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests: the API's error shape, never echoing the request line (it may hold the key)."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        self._write(code, error_body(f"{_phrase(code)}: malformed request"))

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
        self._write(
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
            self._write(error.status, error_body(error.message))
            return
        if split.path.startswith("/_sim/") or split.path == "/_sim":
            self._admin(method, split.path, body, split.query)
            return
        sim._handle_api(self, method, split.path, split.query, body)

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
        host = self.client_address[0]
        if not sim.config.admin_from_anywhere and not (
            host.startswith("127.") or host in ("::1", "localhost")
        ):
            self._write(403, error_body("admin endpoints answer loopback clients only"))
            return
        try:
            status, payload = sim._admin(method, path, body, query)
        except ApiError as error:
            status, payload = error.status, {"meta": {"error": error.message}, "data": None}
        except (ValueError, TypeError) as error:
            status, payload = 400, {"meta": {"error": str(error)}, "data": None}
        self._write(status, payload if isinstance(payload, bytes) else orjson.dumps(payload))

    def _write(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        announce_length: int | None = None,
    ) -> None:
        """Status line, headers and body in one send (no Nagle stalls on keep-alive connections)."""
        reason = _phrase(status)
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


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def redact_path(path: str) -> str:
    """A request path with the values of key-bearing query parameters replaced."""
    if "?" not in path:
        return path
    base, _, query = path.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    return (
        base
        + "?"
        + "&".join(f"{quote(name)}={'***' if name in KEY_PARAMS else quote(value)}" for name, value in pairs)
    )


def _parse_flag(name: str, value: str) -> int:
    text = value.strip().lower()
    if text in ("1", "true"):
        return 1
    if text in ("0", "false"):
        return 0
    raise ApiError(400, f"invalid value for {name}: expected 0 or 1, got {value!r}")


def parse_filters(params: dict[str, str]) -> tuple[tuple[str, object], ...]:
    """Validated filters in a canonical order (the filter cache key)."""
    filters: list[tuple[str, object]] = []
    for name in FILTER_PARAMS:
        if name not in params:
            continue
        value = params[name]
        if name in FLAG_FILTERS:
            filters.append((name, _parse_flag(name, value)))
        elif name == "priority":
            try:
                filters.append((name, float(value.strip())))
            except ValueError:
                raise ApiError(400, f"invalid value for priority: expected a number, got {value!r}") from None
        elif name == "date":
            try:
                day = date.fromisoformat(value.strip())
            except ValueError:
                raise ApiError(400, f"invalid value for date: expected YYYY-MM-DD, got {value!r}") from None
            if len(value.strip()) != 10:
                raise ApiError(400, f"invalid value for date: expected YYYY-MM-DD, got {value!r}")
            filters.append((name, day.isoformat()))
        else:
            filters.append((name, value))
    return tuple(filters)


def parse_pagination(value: str | None) -> int:
    if value is None or value.strip() == "":
        return 0
    text = value.strip()
    try:
        start = int(text)
    except ValueError:
        raise ApiError(400, f"invalid pagination {value!r}: expected a non-negative integer offset") from None
    if start < 0:
        raise ApiError(400, f"invalid pagination {value!r}: expected a non-negative integer offset")
    return start


def _is_date(value) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _missing(record: dict, name: str) -> bool:
    value = record.get(name)
    return value is None or (isinstance(value, str) and not value.strip())


def validate_posted_visit(record) -> list[str]:
    """The problems of one POSTed visit per the reference's POST table (empty: fine)."""
    if not isinstance(record, dict):
        return [f"expected a visit object, got {type(record).__name__}"]
    problems = [
        f"missing required field '{name}'" for name in REQUIRED_VISIT_FIELDS if _missing(record, name)
    ]
    if not _missing(record, "date") and not _is_date(record["date"]):
        problems.append(f"invalid date {record['date']!r}: expected YYYY-MM-DD")
    if not _missing(record, "id") and (isinstance(record["id"], bool | dict | list | float)):
        problems.append(f"invalid id {record['id']!r}: expected a number or a reference string")
    lines = record.get("lines")
    if lines is not None and not isinstance(lines, list):
        problems.append(f"invalid lines: expected an array, got {type(lines).__name__}")
    for line_index, line in enumerate(lines if isinstance(lines, list) else []):
        if not isinstance(line, dict):
            problems.append(f"lines[{line_index}]: expected an object")
            continue
        problems += [
            f"lines[{line_index}]: missing required field '{name}'"
            for name in REQUIRED_LINE_FIELDS
            if _missing(line, name)
        ]
        extras = line.get("extraData")
        if extras is not None and not isinstance(extras, list):
            problems.append(f"lines[{line_index}].extraData: expected an array")
            continue
        for extra_index, extra in enumerate(extras or []):
            where = f"lines[{line_index}].extraData[{extra_index}]"
            if not isinstance(extra, dict):
                problems.append(f"{where}: expected an object")
                continue
            problems += [
                f"{where}: missing required field '{name}'"
                for name in REQUIRED_EXTRA_FIELDS
                if _missing(extra, name)
            ]
            if not _missing(extra, "type") and extra["type"] not in data._EXTRA_TYPES:
                problems.append(f"{where}: invalid type {extra['type']!r}")
    return problems


class SimulatorServer:
    """The simulator in this process: ``with SimulatorServer(SimulatorConfig(...)) as sim: sim.base_url``."""

    def __init__(self, config: SimulatorConfig | None = None, **overrides) -> None:
        config = replace(config or SimulatorConfig(), **overrides)
        self.config = config
        anchor = config.anchor_date or datetime.now(UTC).date()
        self.anchor_date = anchor
        bad: dict[str, str] = {}
        visits = data.generate_visits(
            config.visits,
            config.seed,
            anchor,
            config.days,
            config.days_ahead,
            bad_rate=config.bad_record_rate,
            bad_kinds=config.bad_record_kinds,
            unknown_field_rate=config.unknown_field_rate,
            bad_log=bad,
        )
        self.store = VisitStore(
            visits,
            seed=config.seed,
            anchor_date=anchor,
            days=config.days,
            days_ahead=config.days_ahead,
            insert_position=config.insert_position,
        )
        self.store.bad_records.update(bad)
        self._keys = set(config.api_keys)
        self._fingerprints = {key: key_fingerprint(key) for key in config.api_keys}
        self._limiter = self._make_limiter(config)
        self._meter = WindowMeter(config.rate_window_seconds)
        self._injector = FaultInjector(config.faults)
        self._counters = _Counters()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.config.host, self.config.port), _Handler)
        self._httpd.sim = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"letsjobit-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("LetsJobIt simulator serving %d visits at %s", len(self.store), self.base_url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` is called from another thread or a signal."""
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.2)

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:  # wake idle keep-alive threads so they end now
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _track(self, connection: socket.socket, opened: bool) -> None:
        with self._connections_lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # -- what callers use ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (admin endpoints live under ``/_sim``)."""
        host = self.config.host if self.config.host not in ("0.0.0.0", "") else "127.0.0.1"  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v2``: what the hook's connection host is set to."""
        return self.root_url + "/api/v2"

    @property
    def api_key(self) -> str:
        return self.config.api_keys[0]

    def counters(self) -> dict:
        c = self._counters
        with c._lock:
            by_key = {self._fingerprints.get(k, k): v for k, v in self._meter.max_by_key.items()}
            return {
                "requests_total": c.requests_total,
                "by_status": dict(c.by_status),
                "by_kind": dict(c.by_kind),
                "rate_limited_429": c.rate_limited_429,
                "injected_429": c.injected_429,
                "unauthorized": c.unauthorized,
                "max_requests_in_window": max(by_key.values(), default=0),
                "max_requests_in_window_by_key": by_key,
                "max_in_flight": c.max_in_flight,
                "in_flight": c.in_flight,
                "faults": dict(c.faults),
                "drift": dict(c.drift),
                "admin_requests": c.admin_requests,
                "visits": len(self.store),
                "store_version": self.store.version,
                "seconds_since_reset": round(time.monotonic() - c.started, 3),
                "rate_limit": {
                    "limit": self._limiter.limit,
                    "window_seconds": self._limiter.window,
                    "mode": self._limiter.mode,
                    "count_rejected": self._limiter.count_rejected,
                },
            }

    def reset_counters(self) -> None:
        self._counters.reset()
        self._meter.reset()

    def reset_rate_limit(self) -> None:
        self._limiter.reset()

    @property
    def faults(self) -> FaultConfig:
        return self._injector.config

    def set_faults(self, faults: FaultConfig | None = None, **settings) -> FaultConfig:
        """Replace the fault settings: ``set_faults()`` clears them, ``set_faults(error_rate=0.1)`` ..."""
        config = faults if faults is not None else FaultConfig(**settings)
        if faults is not None and settings:
            config = replace(faults, **settings)
        self._injector.set(config)
        return self._injector.config

    def fail_next(self, *kinds) -> None:
        """Queue deterministic faults for the next requests: ``sim.fail_next(500, 429, "drop")``."""
        self._injector.push(*kinds)

    def configure(self, **settings) -> dict:
        """Change run-time settings (RUNTIME_SETTINGS); a rate-limit change starts fresh windows."""
        unknown = sorted(set(settings) - set(RUNTIME_SETTINGS))
        if unknown:
            raise ValueError(f"unknown settings {unknown}; run-time settings: {list(RUNTIME_SETTINGS)}")
        config = replace(self.config, **settings)
        if any(name.startswith("rate_") or name == "count_rejected" for name in settings):
            self._limiter = self._make_limiter(config)
            self._meter = WindowMeter(config.rate_window_seconds)
        self.store.insert_position = config.insert_position
        self.config = config
        return {name: getattr(config, name) for name in RUNTIME_SETTINGS}

    @staticmethod
    def _make_limiter(config: SimulatorConfig) -> RateLimiter:
        return RateLimiter(
            config.rate_limit, config.rate_window_seconds, config.rate_limit_mode, config.count_rejected
        )

    # -- the API ---------------------------------------------------------------------------------------

    def _authenticate(self, handler: _Handler, params: dict[str, str]) -> str:
        placement = self.config.key_placement
        # An account that takes the key one way only does not look at the other: it is as if it were absent.
        authorization = handler.headers.get("Authorization", "") if placement != "query" else ""
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else ""
            if key in self._keys:
                return key
            raise ApiError(401, "Unauthorized: invalid API key in the Authorization header")
        if placement != "header":
            for name in KEY_PARAMS:
                if name in params:
                    if params[name] in self._keys:
                        return params[name]
                    raise ApiError(401, f"Unauthorized: invalid API key in the {name} query parameter")
        expected = {
            "any": "send Authorization: Bearer KEY or ?api_key=KEY",
            "header": "this account takes it as Authorization: Bearer KEY",
            "query": "this account takes it in the query string, ?api_key=KEY",
        }[placement]
        raise ApiError(401, f"Unauthorized: no API key ({expected})")

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, str | None]:
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

    def _handle_api(self, handler: _Handler, method: str, path: str, query: str, body: bytes) -> None:
        try:
            kind, visit_id = self._route(method, path)
        except ApiError as error:
            kind, visit_id, route_error = "other", None, error
        else:
            route_error = None
        counters = self._counters
        counters.begin(kind)
        status_label = "?"
        config = self.config
        headers: dict[str, str] = {}
        try:
            params = dict(parse_qsl(query, keep_blank_values=True))
            try:
                key = self._authenticate(handler, params)
            except ApiError as error:
                counters.add("unauthorized")
                self._sleep(config.latency_ms)
                status_label = str(error.status)
                handler._write(error.status, error_body(error.message))
                return
            limiter = self._limiter
            self._meter.record(key)
            if limiter.enabled:
                decision = limiter.acquire(key)
                headers = decision.headers(config.fractional_reset)
                if not decision.allowed:
                    counters.add("rate_limited_429")
                    self._sleep(config.latency_ms)
                    status_label = "429"
                    handler._write(
                        429,
                        error_body(
                            f"Too Many Requests: limit of {limiter.limit} requests per {limiter.window:g} seconds "
                            f"exceeded; retry in {headers['X-Rate-Limit-Reset']} s"
                        ),
                        headers,
                    )
                    return
            fault, slow = self._injector.decide()
            self._sleep(config.latency_ms + (self._injector.config.slow_ms if slow else 0))
            if slow:
                counters.fault("slow")
            if fault is not None and fault not in ("truncate", "short", "drop"):
                counters.fault(fault)
                if fault.startswith("429"):
                    counters.add("injected_429")
                    fault_headers = (
                        {}
                        if fault == "429-no-headers"
                        else {
                            "X-RateLimit-Remaining": "0",
                            "X-Rate-Limit-Reset": str(
                                max(1, round(self._injector.config.spurious_429_reset_seconds))
                            ),
                        }
                    )
                    status_label = "429"
                    handler._write(429, error_body("Too Many Requests: slow down"), fault_headers)
                    return
                status = int(fault)
                status_label = str(status)
                handler._write(status, error_body(_FAULT_MESSAGES.get(status, _phrase(status))), headers)
                return
            if route_error is not None:
                raise route_error
            status, payload = self._serve(kind, method, visit_id, params, body)
            if fault == "drop":
                counters.fault("drop")
                status_label = "dropped"
                handler.close_connection = True
                return  # the server closes the socket without a byte of answer
            if fault == "truncate":
                counters.fault("truncate")
                payload = payload[: max(1, len(payload) // 2)]
            if fault == "short":
                counters.fault("short")
                handler.close_connection = True
                status_label = str(status)
                handler._write(
                    status, payload[: max(1, len(payload) // 2)], headers, announce_length=len(payload)
                )
                return
            status_label = str(status)
            handler._write(status, payload, headers)
        except ApiError as error:
            status_label = str(error.status)
            handler._write(error.status, error_body(error.message), headers)
        except Exception:  # a simulator bug must still answer, and show in the log
            logger.exception("simulator failed on %s %s", method, path)
            status_label = "500"
            handler._write(500, error_body("Internal Server Error: simulator failure"), headers)
        finally:
            counters.end(status_label)

    @staticmethod
    def _sleep(ms: float) -> None:
        if ms > 0:
            time.sleep(ms / 1000.0)

    def _serve(
        self, kind: str, method: str, visit_id: str | None, params: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        if kind == "list":
            return 200, self._list(params)
        if kind == "get":
            raw = self.store.get_bytes(visit_id)
            if raw is None:
                raise ApiError(404, f"Not Found: no visit with ID {visit_id!r}")
            if self.config.single_visit_shape == "object":
                return 200, b'{"meta":{},"data":' + raw + b"}"
            return 200, (
                b'{"meta":{"totalRecords":1,"returnedRecords":1,"remainingRecords":0,"nextStart":1},'
                b'"data":[' + raw + b"]}"
            )
        if kind == "post":
            return 200, self._post(body)
        if kind == "put":
            return 200, self._put(visit_id, body)
        if kind == "delete":
            if not self.store.delete(visit_id):
                raise ApiError(404, f"Not Found: no visit with ID {visit_id!r}")
            return 200, orjson.dumps({"meta": {"deletedRecords": 1}, "data": None})
        raise ApiError(405, f"Method Not Allowed: {method}")

    def _list(self, params: dict[str, str]) -> bytes:
        start = parse_pagination(params.get(PAGINATION_PARAM))
        filters = parse_filters(params)
        drift = self._injector.drift_due()
        if drift is not None:
            rng = drift.pop("rng")
            done = self.store.mutate(rng=rng, **drift)
            self._counters.drifted(done)
            logger.debug(
                "simulator drift: %s inserted, %s deleted, %s updated",
                len(done["inserted"]),
                len(done["deleted"]),
                len(done["updated"]),
            )
        size = self.config.page_size
        total, page = self.store.page(filters, start, size)
        returned = len(page)
        meta = orjson.dumps(
            {
                "totalRecords": total,
                "returnedRecords": returned,
                "remainingRecords": max(0, total - start - returned),
                "nextStart": start + returned,
            }
        )
        return b'{"meta":' + meta + b',"data":[' + b",".join(page) + b"]}"

    @staticmethod
    def _json(body: bytes):
        if not body.strip():
            raise ApiError(400, "Bad Request: a JSON body is required (Content-Type: application/json)")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise ApiError(400, f"Bad Request: the body is not valid JSON ({error})") from None

    def _post(self, body: bytes) -> bytes:
        records = self._json(body)
        if isinstance(records, dict):
            records = [records]
        if not isinstance(records, list):
            raise ApiError(400, "Bad Request: expected an array of visit objects")
        inserted = updated = 0
        errors = []
        for index, record in enumerate(records):
            problems = validate_posted_visit(record)
            if problems:
                erp_id = record.get("id") if isinstance(record, dict) else None
                errors.append(
                    {
                        "error": 400,
                        "index": index,
                        "id": erp_id,
                        "message": f"visit at index {index} (id {erp_id!r}): " + "; ".join(problems),
                    }
                )
                continue
            _, was_inserted = self.store.upsert(record)
            inserted += was_inserted
            updated += not was_inserted
        meta: dict = {"recordsUpdated": updated, "recordsInserted": inserted}
        if errors:
            meta["errors"] = errors
        return orjson.dumps({"meta": meta, "data": None})

    def _put(self, visit_id: str | None, body: bytes) -> bytes:
        fields_ = self._json(body)
        if not isinstance(fields_, dict) or not fields_:
            raise ApiError(400, "Bad Request: expected a JSON object with the fields to update")
        if "date" in fields_ and not _is_date(fields_["date"]):
            raise ApiError(400, f"Bad Request: invalid date {fields_['date']!r}: expected YYYY-MM-DD")
        for name in REQUIRED_VISIT_FIELDS:
            if name in fields_ and _missing(fields_, name):
                raise ApiError(400, f"Bad Request: required field '{name}' cannot be emptied")
        with self.store._lock:
            key = self.store.key_of(visit_id)  # a visit served without _id is still reachable by ERP id
            if key is None:
                raise ApiError(404, f"Not Found: no visit with ID {visit_id!r}")
            if "id" in fields_:
                owner = self.store.key_of(str(fields_["id"]))
                if owner is not None and owner != key:
                    raise ApiError(400, f"Bad Request: ERP id {fields_['id']!r} belongs to another visit")
            self.store.update(key, {**fields_, "modifyUser": "API"})
        return orjson.dumps({"meta": {"updatedRecords": 1}, "data": None})

    # -- admin -----------------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes, query: str = "") -> tuple[int, dict | bytes]:
        self._counters.add("admin_requests")
        name = path.rstrip("/").removeprefix("/_sim/")
        payload = orjson.loads(body) if body.strip() else {}
        if not isinstance(payload, dict):
            raise ApiError(400, "admin endpoints take a JSON object")
        if name == "health" and method == "GET":
            return 200, {"ok": True, "visits": len(self.store), "base_url": self.base_url}
        if name == "counters" and method == "GET":
            return 200, self.counters()
        if name == "reset" and method == "POST":
            if payload.get("counters", True):
                self.reset_counters()
            if payload.get("rate_limit", False):
                self.reset_rate_limit()
            if payload.get("faults", False):
                self.set_faults()
            return 200, {"ok": True}
        if name == "faults" and method == "GET":
            return 200, self.faults.to_dict()
        if name == "faults" and method == "POST":
            merge = payload.pop("merge", False)
            base = self.faults.to_dict() if merge else {}
            if merge and "fail_next" in payload:
                payload["fail_next"] = base["fail_next"] + list(payload["fail_next"])
            return 200, self.set_faults(FaultConfig.from_dict({**base, **payload})).to_dict()
        if name == "config" and method == "GET":
            return 200, {n: getattr(self.config, n) for n in RUNTIME_SETTINGS}
        if name == "config" and method == "POST":
            return 200, self.configure(**payload)
        if name == "truth" and method == "GET":
            truth, total, version, bad_records = self.store.truth_with_bad_records()
            meta = {"totalRecords": total, "version": version, "bad_records": bad_records}
            return 200, (b'{"meta":' + orjson.dumps(meta) + b',"data":' + truth + b"}")
        if name == "bad_records" and method == "GET":
            version, bad_records = self.store.bad_records_snapshot()
            kinds: dict[str, int] = {}
            for kind in bad_records.values():
                kinds[kind] = kinds.get(kind, 0) + 1
            return 200, {
                "meta": {"totalRecords": len(bad_records), "version": version, "kinds": kinds},
                "data": {key: data.bad_record_kind(kind).outcome() for key, kind in bad_records.items()},
            }
        if name == "mutate" and method == "POST":
            return 200, self._mutate(payload)
        if name == "changes" and method == "GET":
            since = dict(parse_qsl(query)).get("since", "0")
            if not since.isdigit():
                raise ApiError(400, f"Bad Request: since must be a version number, got {since!r}")
            return 200, (
                b'{"meta":'
                + orjson.dumps({"since": int(since), "version": self.store.version})
                + b',"data":'
                + self.store.changes_bytes(int(since))
                + b"}"
            )
        if name in ADMIN_ENDPOINTS:
            raise ApiError(405, f"Method Not Allowed: {method} {path}")
        raise ApiError(404, f"Not Found: no admin endpoint {path}")

    def _mutate(self, payload: dict) -> dict:
        """Explicit ``ops`` ([{"op": "insert"|"update"|"delete", ...}]) then random inserts/deletes/updates."""
        done: dict[str, list[str]] = {"inserted": [], "deleted": [], "updated": []}
        for op in payload.get("ops", []):
            kind = op.get("op")
            if kind == "insert":
                visit = op.get("visit") or self.store.new_visit()
                done["inserted"].append(self.store.insert(visit, op.get("position")))
            elif kind == "update":
                if self.store.update(str(op["id"]), op.get("fields", {})) is None:
                    raise ApiError(404, f"no visit with ID {op['id']!r}")
                done["updated"].append(str(op["id"]))
            elif kind == "delete":
                if not self.store.delete(str(op["id"])):
                    raise ApiError(404, f"no visit with ID {op['id']!r}")
                done["deleted"].append(str(op["id"]))
            else:
                raise ApiError(400, f"unknown mutate op {kind!r}: use insert, update or delete")
        random_done = self.store.mutate(
            inserts=int(payload.get("inserts", 0)),
            deletes=int(payload.get("deletes", 0)),
            updates=int(payload.get("updates", 0)),
            position=payload.get("position"),
        )
        for name in done:
            done[name] += random_done[name]
        return {**done, "visits": len(self.store), "version": self.store.version}


_FAULT_MESSAGES = {
    500: "Internal Server Error: we had a problem with our server. Try again later.",
    503: "Service Unavailable: we're temporarily offline for maintenance. Please try again later.",
}
