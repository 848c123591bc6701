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

This module is the server object and its request pipeline (key, rate limit, faults, then the answer);
the pieces live beside it: ``settings`` (SimulatorConfig), ``handler`` (HTTP plumbing and routes),
``auth`` (keys and key placement), ``reads`` (listing and filters), ``writes`` (POST, PUT, DELETE),
``admin`` (the ``/_sim/`` endpoints), ``counters``, ``errors``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from . import admin, data
from .auth import authenticate, key_fingerprint
from .counters import Counters
from .errors import ApiError, error_body, status_phrase
from .faults import FaultConfig, FaultInjector
from .handler import RequestHandler, SimulatorHTTPServer, route
from .ratelimit import RateLimiter, WindowMeter
from .reads import PAGINATION_PARAM, list_page, parse_filters, parse_pagination, single_visit
from .settings import RUNTIME_SETTINGS, SimulatorConfig
from .store import VisitStore
from .writes import delete_visit, post_visits, put_visit

logger = logging.getLogger(__name__)


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
        self._counters = Counters()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._httpd: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._httpd = SimulatorHTTPServer((self.config.host, self.config.port), RequestHandler)
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

    def track_connection(self, connection: socket.socket, opened: bool) -> None:
        """The handler's note of a connection opening or closing: stop() wakes the open ones."""
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
        with c.lock:
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

    def answer_api(self, handler: RequestHandler, method: str, path: str, query: str, body: bytes) -> None:
        """One API request: the key, the rate limit, the faults, then the route's answer (always one)."""
        try:
            kind, visit_id = route(method, path)
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
                key = authenticate(
                    handler.headers.get("Authorization", ""), params, self._keys, self.config.key_placement
                )
            except ApiError as error:
                counters.add("unauthorized")
                self._sleep(config.latency_ms)
                status_label = str(error.status)
                handler.send_answer(error.status, error_body(error.message))
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
                    handler.send_answer(
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
                    handler.send_answer(429, error_body("Too Many Requests: slow down"), fault_headers)
                    return
                status = int(fault)
                status_label = str(status)
                handler.send_answer(
                    status, error_body(_FAULT_MESSAGES.get(status, status_phrase(status))), headers
                )
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
                handler.send_answer(
                    status, payload[: max(1, len(payload) // 2)], headers, announce_length=len(payload)
                )
                return
            status_label = str(status)
            handler.send_answer(status, payload, headers)
        except ApiError as error:
            status_label = str(error.status)
            handler.send_answer(error.status, error_body(error.message), headers)
        except Exception:  # a simulator bug must still answer, and show in the log
            logger.exception("simulator failed on %s %s", method, path)
            status_label = "500"
            handler.send_answer(500, error_body("Internal Server Error: simulator failure"), headers)
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
            start = parse_pagination(params.get(PAGINATION_PARAM))
            filters = parse_filters(params)
            self._drift_if_due()  # after the parameters passed: a refused request changes nothing
            return 200, list_page(self.store, filters, start, self.config.page_size)
        if kind == "get":
            return 200, single_visit(self.store, visit_id, self.config.single_visit_shape)
        if kind == "post":
            return 200, post_visits(self.store, body)
        if kind == "put":
            return 200, put_visit(self.store, visit_id, body)
        if kind == "delete":
            return 200, delete_visit(self.store, visit_id)
        raise ApiError(405, f"Method Not Allowed: {method}")

    def _drift_if_due(self) -> None:
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

    # -- admin -----------------------------------------------------------------------------------------

    def answer_admin(self, method: str, path: str, body: bytes, query: str = "") -> tuple[int, dict | bytes]:
        """One ``/_sim/`` request (the handler has checked the client may ask)."""
        self._counters.add("admin_requests")
        return admin.answer(self, method, path, body, query)


_FAULT_MESSAGES = {
    500: "Internal Server Error: we had a problem with our server. Try again later.",
    503: "Service Unavailable: we're temporarily offline for maintenance. Please try again later.",
}
