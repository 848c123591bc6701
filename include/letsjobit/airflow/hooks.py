"""LetsJobItHook: the Airflow face of the LetsJobIt API client.

Reads the ``letsjobit`` connection (host = base URL, password = API key, extras = client settings),
masks the key in task logs, and hands out one :class:`~letsjobit.api.client.LetsJobItClient`.
Settings come from call arguments first, then the connection's extras, then the client's defaults.
All the paging, rate-limit and retry logic lives in the client, which does not need Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from letsjobit import config
from letsjobit.api.client import LetsJobItClient
from letsjobit.api.errors import LetsJobItConfigError
from letsjobit.api.pages import Page
from letsjobit.api.paging import ScanStats
from letsjobit.api.settings import DEFAULT_API_PATH, ClientSettings, RetryPolicy, url_secrets

# Extras a user may type for a setting, besides the setting's own name.
EXTRA_ALIASES = {
    "timeout": "timeout_seconds",
    "connect_timeout": "connect_timeout_seconds",
    "rate_limit_requests": "requests_per_window",
    "rate_limit_window_seconds": "window_seconds",
    "concurrency": "max_concurrency",
}
SETTING_NAMES = {f.name for f in fields(ClientSettings)} - {"base_url", "api_key"}
# Retry budgets an operator may tune per connection, e.g. {"fault_budget_seconds": 60}.
RETRY_NAMES = {f.name for f in fields(RetryPolicy)}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class LetsJobItHook(BaseHook):
    """Interact with the LetsJobIt API v2 (visits) within the API key's rate limit.

    :param letsjobit_conn_id: the ``letsjobit`` connection: host = base URL such as
        ``https://app.letsjobit.com/api/v2``, password = API key, extras = client settings
        (``key_placement`` auto|header|query, ``query_key_param``, ``requests_per_window``,
        ``window_seconds``, ``timeout``, ``max_concurrency``, ``allow_insecure_http``, ``rate_budget_url``
        (default ``LETSJOBIT_RATE_BUDGET_URL``), ...).
    :param retry_policy: override the client's retry policy.
    :param settings: override any client setting (beats the connection's extras), e.g.
        ``max_concurrency=4``, ``rate_state_dir=Path(...)``.
    """

    conn_name_attr = "letsjobit_conn_id"
    default_conn_name = config.CONN_ID
    conn_type = config.CONN_TYPE
    hook_name = "LetsJobIt"

    def __init__(
        self,
        letsjobit_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        unknown = set(settings) - SETTING_NAMES - set(EXTRA_ALIASES) - {"base_url", "api_key"}
        if unknown:
            raise TypeError(f"LetsJobItHook got unknown settings: {', '.join(sorted(unknown))}")
        self.letsjobit_conn_id = letsjobit_conn_id
        self.retry_policy = retry_policy
        self.overrides = settings
        self._client: LetsJobItClient | None = None

    # -- connection -> client ------------------------------------------------------------------

    def client_settings(self) -> ClientSettings:
        """The client's settings from this hook's arguments, the connection and the defaults."""
        conn = self.get_connection(self.letsjobit_conn_id)
        extras = conn.extra_dejson or {}
        api_key = self.overrides.get("api_key") or conn.password or extras.get("api_key")
        if not api_key:
            raise LetsJobItConfigError(
                f"connection {self.letsjobit_conn_id!r} has no API key: put it in the password field"
            )
        _mask(api_key)
        base_url = self.overrides.get("base_url") or extras.get("base_url") or base_url_from_connection(conn)
        values: dict[str, Any] = {
            "rate_state_dir": config.layout().state,
            "rate_budget_url": config.rate_budget_url(),
        }
        for source in (extras, self.overrides):
            for name, value in source.items():
                setting = EXTRA_ALIASES.get(name, name)
                if setting in SETTING_NAMES and value is not None and value != "":
                    values[setting] = _coerce(setting, value, self.letsjobit_conn_id)
        for secret in url_secrets(values["rate_budget_url"]):
            _mask(secret)
        return ClientSettings(base_url=base_url, api_key=api_key, **values)

    def connection_retry_policy(self) -> RetryPolicy | None:
        """The retry policy: the hook's argument, else the connection extras' budgets, else the default."""
        if self.retry_policy is not None:
            return self.retry_policy
        extras = self.get_connection(self.letsjobit_conn_id).extra_dejson or {}
        tuned = {name: extras[name] for name in RETRY_NAMES & set(extras) if extras[name] not in (None, "")}
        try:
            return RetryPolicy(**{name: float(value) for name, value in tuned.items()}) if tuned else None
        except (TypeError, ValueError):
            raise LetsJobItConfigError(
                f"connection {self.letsjobit_conn_id!r}: retry extras need numbers of seconds, got {tuned!r}"
            ) from None

    def get_conn(self) -> LetsJobItClient:
        """The client for this connection, built once per hook."""
        if self._client is None:
            self._client = LetsJobItClient(
                self.client_settings(), retry_policy=self.connection_retry_policy()
            )
            self.log.info("Using %r", self._client)
        return self._client

    get_client = get_conn

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def test_connection(self) -> tuple[bool, str]:
        """One request with the connection's URL and key: ``(ok, message)`` for the UI's Test button."""
        try:
            client = LetsJobItClient(self.client_settings(), retry_policy=self.retry_policy)
        except LetsJobItConfigError as exc:
            return False, str(exc)
        with client:
            return client.check()

    # -- the API, delegated --------------------------------------------------------------------

    def iter_pages(self, stats: ScanStats | None = None, **filters: Any) -> Iterator[Page]:
        return self.get_conn().iter_pages(stats=stats, **filters)

    def iter_visits(self, stats: ScanStats | None = None, **filters: Any) -> Iterator[dict]:
        return self.get_conn().iter_visits(stats=stats, **filters)

    def get_visit(self, visit_id: str) -> dict:
        return self.get_conn().get_visit(visit_id)

    def upsert_visits(self, visits: Iterable[dict]) -> dict:
        return self.get_conn().upsert_visits(visits)

    def update_visit(self, visit_id: str, fields: dict) -> dict:
        return self.get_conn().update_visit(visit_id, fields)

    def delete_visit(self, visit_id: str) -> dict:
        return self.get_conn().delete_visit(visit_id)


def base_url_from_connection(conn) -> str:
    """The API base URL from the forms people type into a connection.

    ``host`` may be a full URL (``https://app.letsjobit.com/api/v2``), a bare host name
    (``app.letsjobit.com``), or host and path (``app.letsjobit.com/api/v2``). ``schema`` is read as the
    URL scheme when it is ``http``/``https`` (as HttpHook does) and as the path otherwise (what a
    ``letsjobit://:key@host/api%2Fv2`` URI leaves there); ``port`` is added when the host has none.
    """
    host = (conn.host or "").strip()
    if not host:
        raise LetsJobItConfigError(
            f"connection {conn.conn_id!r} has no host: set it to the API base URL, e.g. "
            "https://app.letsjobit.com/api/v2"
        )
    schema = (conn.schema or "").strip().strip("/")
    scheme = schema.lower() if schema.lower() in ("http", "https") else "https"
    if "://" not in host:
        host = f"{scheme}://{host.lstrip('/')}"
    parts = urlsplit(host)
    netloc = parts.netloc
    if conn.port and parts.port is None:
        netloc = f"{netloc}:{conn.port}"
    path = parts.path.rstrip("/")
    if not path:
        path = "/" + schema if schema and schema.lower() not in ("http", "https") else DEFAULT_API_PATH
    return f"{parts.scheme}://{netloc}{path}"


def _coerce(setting: str, value: Any, conn_id: str) -> Any:
    kind = {f.name: f.type for f in fields(ClientSettings)}[setting]
    try:
        if "bool" in kind:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError(value)
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if "Path" in kind:
            return Path(value)
        return str(value)
    except (TypeError, ValueError):
        raise LetsJobItConfigError(
            f"connection {conn_id!r}: extra {setting!r} has an unusable value {value!r} ({kind} expected)"
        ) from None


def _mask(secret: str) -> None:
    """Register the key with Airflow's secrets masker so no task log line can show it."""
    from airflow.sdk.log import mask_secret

    mask_secret(secret)
