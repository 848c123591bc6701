"""One place for the pipeline's configuration: environment variables, their defaults, and the data layout.

Every module reads paths and settings from here; nothing else calls ``os.environ`` for these names.
``api_connection()`` is the one way every entry point (`make run`, `make distributed`, compose's bootstrap,
the tests) turns them into the `letsjobit_default` connection.

| variable              | default                      | meaning                                              |
|-----------------------|------------------------------|------------------------------------------------------|
| LETSJOBIT_API_URL     | unset: embedded simulator    | base URL of the API, e.g. https://app.letsjobit.com/api/v2 |
| LETSJOBIT_API_KEY     | unset: the simulator's key   | API key (where the account takes it: see key_placement) |
| LETSJOBIT_CONN_EXTRA  | unset: no extras             | JSON object of connection extras, e.g. {"key_placement": "query"} |
| LETSJOBIT_DATA_DIR    | <project>/data               | the worker's scratch (lake/raw, lake/_staging), warehouse.duckdb, reports/ |
| LETSJOBIT_LAKE_URL    | $LETSJOBIT_DATA_DIR/lake     | where the lake's Delta tables are: a path or s3://bucket/prefix (see LakeLocation) |
| LETSJOBIT_RATE_BUDGET_URL | unset: budget file per host | Redis URL of the API key's budget shared by every host (the extra rate_budget_url beats it) |
| LETSJOBIT_PUBLISH_QUEUE | default                    | Celery queue of the tasks that stage, publish and write warehouse.duckdb (one host's workers) |
| LETSJOBIT_PSEUDONYMISE_KEY | unset: contacts kept as is | key for hashing contact emails and phones            |
| LETSJOBIT_TASK_RETRY_DELAY_SECONDS | 60             | wait before a failed task's first retry (then doubles) |
| LETSJOBIT_KEEP_RUNS   | 30                           | runs whose raw pages and staging area are kept       |
| LETSJOBIT_GATE_MIN_ROWS | 100                        | the gate's shares are taken over at least this many rows |
| LETSJOBIT_ALERT_EMAILS | unset: no mail             | comma-separated recipients of failure and quality mails |

An object-store lake takes the usual AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP): `lake_location()` reads them here, once.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"

CONN_ID = "letsjobit_default"
CONN_TYPE = "letsjobit"
# The environment variable Airflow reads the connection from (its JSON form).
CONN_ENV_VAR = f"AIRFLOW_CONN_{CONN_ID.upper()}"
DAG_ID = "letsjobit_visits"
# Airflow pool of the tasks that call the API: its slots bound concurrent use of the key across workers.
API_POOL = "letsjobit_api"
# Its slots, and the extract tasks one run runs at once: they share the key's budget, more would only queue.
API_POOL_SLOTS = 4

# The API's documented limits.
PAGE_SIZE = 100
RATE_LIMIT_REQUESTS = 100
RATE_LIMIT_WINDOW_SECONDS = 10.0

# Key the embedded simulator accepts when LETSJOBIT_API_KEY is not set. Not a secret: it only opens
# the local simulator.
SIMULATOR_DEFAULT_KEY = "sim-local-key"


# The validation gate builds a run's audited output beside it under this prefix, then swaps it in.
AUDIT_SCRATCH_PREFIX = ".audited-"

# What a run id or chunk may be where it names a raw file: Airflow's run ids pass, paths do not.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+:\-]*$")


def _file_name(what: str, value: str) -> str:
    if not value or not _SAFE_NAME.match(value) or ".." in value:
        raise ValueError(f"{what} {value!r} cannot be used in a file name (letters, digits, ._=+:- only)")
    return value


# Delta vacuum keeps the files a table version no longer references this long: longer than any reader
# holds a version (a warehouse build runs within its task's 2-hour timeout), and Delta's own default.
LAKE_RETENTION = timedelta(days=7)

# The AWS variables an object-store lake reads, passed to delta-rs as its storage options (same names).
AWS_STORAGE_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
)


@dataclass(frozen=True)
class LakeLocation:
    """Where the lake's Delta tables are: a local folder or an object-store URL, and its storage options.

    Every reader and writer of the lake takes the tables' URIs and the options from here. The options
    hold credentials, and so may a URL's user info: ``repr`` and ``str`` show `redacted`, the URL as it
    may be logged (user info dropped), never the options.
    """

    url: str
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_local(self) -> bool:
        return "://" not in self.url or self.url.startswith("file://")

    @property
    def local_root(self) -> Path:
        """The folder of a local lake (an error for an object-store one)."""
        if not self.is_local:
            raise ValueError(f"the lake at {self.redacted} is not a local folder")
        return Path(self.url.removeprefix("file://"))

    def table_uri(self, name: str) -> str:
        """The URI deltalake opens for a lake table (visits, visit_lines, line_extra_data, data_issues)."""
        if self.is_local:
            return str(self.local_root / name)
        return f"{self.url.rstrip('/')}/{name}"

    @property
    def redacted(self) -> str:
        if self.is_local:
            return self.url
        parts = urllib.parse.urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]  # the bucket (or host:port) without any user info
        return urllib.parse.urlunsplit(parts._replace(netloc=host))

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"LakeLocation({self.redacted!r})"


@dataclass(frozen=True)
class DataLayout:
    """Where everything lives: the worker's data directory (scratch, warehouse, reports) and the lake.

    ``lake_location`` defaults to the folder ``lake/`` of the data directory (as LETSJOBIT_LAKE_URL does).
    """

    root: Path
    lake_location: LakeLocation = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.lake_location is None:
            object.__setattr__(self, "lake_location", LakeLocation(str(Path(self.root) / "lake")))

    @property
    def lake(self) -> Path:
        """The worker's local lake folder: the raw zone, staging and quarantine (and, by default, the tables)."""
        return self.root / "lake"

    @property
    def raw(self) -> Path:
        """Raw API pages, gzip JSON lines, one folder per extraction run."""
        return self.lake / "raw"

    def raw_run(self, run_id: str) -> Path:
        """A run's raw pages: its parts and their manifests."""
        return self.raw / f"run_id={run_id}"

    def raw_part(self, run_id: str, chunk: str | int) -> Path:
        """The pages of one chunk of a run as fetched (`part-<chunk>.jsonl.gz`); the names are checked."""
        return self._raw_file(run_id, f"part-{_file_name('chunk', str(chunk))}.jsonl.gz")

    def raw_manifest(self, run_id: str, chunk: str | int) -> Path:
        """The extraction report of one chunk of a run, beside its part; the names are checked."""
        return self._raw_file(run_id, f"manifest-{_file_name('chunk', str(chunk))}.json")

    def _raw_file(self, run_id: str, name: str) -> Path:
        return self.raw_run(_file_name("run_id", run_id)) / name

    @property
    def staging(self) -> Path:
        """Write area of write-audit-publish: a run's tables before validation."""
        return self.lake / "_staging"

    def staging_run(self, run_id: str) -> Path:
        """A run's staged tables (`<table>/visit_date=.../`), what the validation gate audits."""
        return self.staging / run_id

    @property
    def quarantine(self) -> Path:
        """Records the validation gate kept out of the lake: `run_id=<run>/<table>.parquet`."""
        return self.lake / "quarantine"

    def audited(self, run_id: str) -> Path:
        """The validation gate's output for a staged run: what publishing takes (the staging stays as it is)."""
        return self.staging_run(run_id) / "_audited"

    @property
    def publish_lock_file(self) -> Path:
        """The lock file held while a publication changes the lake (one publisher at a time on this host)."""
        return self.state / "lake-publish.lock"

    @property
    def lake_cache(self) -> Path:
        """Local copies of an object-store lake's files for the warehouse build (lake.snapshot)."""
        return self.root / ".cache" / "lake"

    @property
    def last_publication(self) -> Path:
        """The latest publication (run, partitions, validation) the warehouse is rebuilt from."""
        return self.lake / "_last_publication.json"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def reports(self) -> Path:
        """Validation reports (HTML and JSON) and run summaries."""
        return self.root / "reports"

    @property
    def state(self) -> Path:
        """Small shared state: the API key's rate budget, locks."""
        return self.root / ".state"

    def table_uri(self, name: str) -> str:
        """The Delta table of a lake table (visits, visit_lines, line_extra_data, data_issues)."""
        return self.lake_location.table_uri(name)

    def quarantine_dir(self, run_id: str) -> Path:
        """The records the validation gate kept out of one run, one `<table>.parquet` per table."""
        return self.quarantine / f"run_id={run_id}"

    def report_dir(self, run_id: str) -> Path:
        """One run's validation reports: summary.json, index.html, data_docs/ (and the alerts' failures/)."""
        return self.reports / run_id


def data_dir() -> Path:
    return Path(os.environ.get("LETSJOBIT_DATA_DIR") or PROJECT_ROOT / "data").resolve()


def lake_location(root: Path | None = None) -> LakeLocation:
    """LETSJOBIT_LAKE_URL (default: the data directory's `lake/`), with the AWS variables for an object store."""
    url = os.environ.get("LETSJOBIT_LAKE_URL") or str((root or data_dir()) / "lake")
    location = LakeLocation(url)
    if location.is_local:
        return LakeLocation(str(location.local_root.resolve()))
    options = {name: os.environ[name] for name in AWS_STORAGE_VARIABLES if os.environ.get(name)}
    if "AWS_REGION" not in options and os.environ.get("AWS_DEFAULT_REGION"):
        options["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"]
    return LakeLocation(url, options)


def layout() -> DataLayout:
    root = data_dir()
    return DataLayout(root, lake_location(root))


def api_url() -> str | None:
    """The API base URL, or None when the embedded simulator should be used."""
    return os.environ.get("LETSJOBIT_API_URL") or None


def api_key() -> str:
    return os.environ.get("LETSJOBIT_API_KEY") or SIMULATOR_DEFAULT_KEY


class ConfigError(ValueError):
    """A configuration variable holds something the pipeline cannot use; the message names it."""


def conn_extra() -> dict:
    """LETSJOBIT_CONN_EXTRA: the connection's extras as a JSON object; ``{}`` when unset or blank."""
    raw = os.environ.get("LETSJOBIT_CONN_EXTRA") or ""
    if not raw.strip():
        return {}
    # The value is never echoed: extras may hold secrets.
    try:
        extra = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"LETSJOBIT_CONN_EXTRA is not valid JSON ({exc.msg} at character {exc.pos}); it takes a JSON "
            """object of connection extras, e.g. '{"key_placement": "query"}'"""
        ) from None
    if not isinstance(extra, dict):
        raise ConfigError(
            f"LETSJOBIT_CONN_EXTRA must be a JSON object of connection extras, got a JSON "
            f'{type(extra).__name__}, e.g. \'{{"key_placement": "query"}}\''
        )
    return extra


def api_connection(url: str | None = None, key: str | None = None, extra: dict | None = None) -> dict:
    """The `letsjobit_default` connection in Airflow's JSON form (``conn_type``, ``host``, ``password``,
    ``extra``): what AIRFLOW_CONN_LETSJOBIT_DEFAULT holds and what letsjobit.devtools.bootstrap stores.

    From LETSJOBIT_API_URL, LETSJOBIT_API_KEY and LETSJOBIT_CONN_EXTRA; ``url`` and ``key`` replace the
    variables (a simulator started for the run), ``extra`` is merged over LETSJOBIT_CONN_EXTRA.
    """
    host = url or api_url()
    if not host:
        raise ConfigError("LETSJOBIT_API_URL is not set: the connection needs the API base URL")
    return {
        "conn_type": CONN_TYPE,
        "host": host,
        "password": key or api_key(),
        "extra": {**conn_extra(), **(extra or {})},
    }


def rate_budget_url() -> str | None:
    """LETSJOBIT_RATE_BUDGET_URL: the Redis URL of the key's shared rate budget; None keeps the file budget.

    Checked, and shown redacted, by ``letsjobit.api.settings.normalize_rate_budget_url``: it may hold a
    password.
    """
    return (os.environ.get("LETSJOBIT_RATE_BUDGET_URL") or "").strip() or None


def pseudonymise_key() -> str | None:
    return os.environ.get("LETSJOBIT_PSEUDONYMISE_KEY") or None


def task_retry_delay() -> timedelta:
    """Wait before a failed task's first retry.

    Set explicitly on the DAG rather than through Airflow's [core] default_task_retry_delay: Airflow 3.3
    serialises a mapped task without a retry_delay equal to that default, and the scheduler then uses a
    hard-coded 300 s for it.
    """
    return timedelta(seconds=float(os.environ.get("LETSJOBIT_TASK_RETRY_DELAY_SECONDS") or 60))


def gate_min_rows() -> int:
    """The validation gate's shares are taken over at least this many rows (see audit.Thresholds).

    Unset: `suites.DEFAULT_MIN_ROWS`, the one default (imported here, not at module level: the DAG
    imports this module at parse time, and suites imports pyarrow).
    """
    from letsjobit.quality.suites import DEFAULT_MIN_ROWS

    value = os.environ.get("LETSJOBIT_GATE_MIN_ROWS")
    return max(0, int(value)) if value else DEFAULT_MIN_ROWS


def publish_queue(environ: Mapping[str, str] | None = None) -> str:
    """LETSJOBIT_PUBLISH_QUEUE: the Celery queue of stage, audit, publish and the warehouse builds.

    Those tasks use the worker's own disk (staging, warehouse.duckdb), so only the workers of the one
    host that owns the warehouse may take them; extraction stays on the default queue, which all take.
    Read when the DAG file is parsed: the scheduler and every worker must see the same value.
    ``environ``: another process's environment (default: this one's).
    """
    environ = os.environ if environ is None else environ
    return (environ.get("LETSJOBIT_PUBLISH_QUEUE") or "").strip() or "default"


def keep_runs() -> int:
    """How many of the newest runs keep their raw pages and staging area (for replay and audit)."""
    return max(1, int(os.environ.get("LETSJOBIT_KEEP_RUNS") or 30))


def alert_emails() -> list[str]:
    """Recipients of the pipeline's failure and data-quality mails (include/letsjobit/airflow/alerts.py)."""
    raw = os.environ.get("LETSJOBIT_ALERT_EMAILS") or ""
    return [address.strip() for address in raw.replace(";", ",").split(",") if address.strip()]
