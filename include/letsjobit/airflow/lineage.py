"""What each task reads and writes, told to Airflow's hook-lineage collector for OpenLineage.

The datasets are known only while a task runs (the API's host comes from the connection, the lake from
the data dir), so the steps report them through the hook-level lineage API
(``airflow.sdk.lineage.get_hook_lineage_collector``) rather than static inlets/outlets. The OpenLineage
provider reads the collector when a task ends and puts the datasets in its events. Without an
OpenLineage transport configured the provider registers no reader, Airflow hands out a no-op collector
and all of this costs nothing.

Datasets, as OpenLineage sees them:

| what | namespace | name |
|---|---|---|
| the API's visits | `letsjobit://<api host[:port]>` | `/api/v2/visits` (the base URL's path) |
| raw zone, staging | `file` | absolute folder, e.g. `/data/lake/raw` |
| lake tables | `file`, or the object store's `s3://<bucket>` | the table's folder, e.g. `/data/lake/visits` |
| warehouse tables | `duckdb://<absolute warehouse file>` | `marts.<table>` |

Never the key: the base URL is the client's normalised one (the key travels in a header or is added to
each request's query string, never to the base URL), and Airflow drops any user info from asset URIs.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from letsjobit import config
from letsjobit.lake import schema

log = logging.getLogger(__name__)

API_SCHEME = "letsjobit"
WAREHOUSE_SCHEME = "duckdb"

# The task instance whose lineage the collector holds (see _collector).
_collecting_for: tuple | None = None


def api_visits(base_url: str) -> str:
    """The API's visits listing as an asset URI: `letsjobit://host[:port]/api/v2/visits`."""
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{API_SCHEME}://{netloc}{parts.path.rstrip('/')}/visits"


def folder(path: Path) -> str:
    return Path(path).resolve().as_uri()


def lake_tables(layout: config.DataLayout) -> list[str]:
    """The lake's Delta tables: folders of a local lake, object URLs (no credentials) of a remote one."""
    location = layout.lake_location
    if location.is_local:
        return [folder(Path(layout.table_uri(name))) for name in schema.LAKE_TABLES]
    return [config.LakeLocation(layout.table_uri(name)).redacted for name in schema.LAKE_TABLES]


def warehouse_table(layout: config.DataLayout, table: str) -> str:
    return f"{WAREHOUSE_SCHEME}://{layout.warehouse.resolve()}?table={urllib.parse.quote(table)}"


def warehouse_marts(layout: config.DataLayout) -> list[str]:
    """Every table and view of the built warehouse's `marts` schema (read from the file, so the list
    follows the SQL models)."""
    import duckdb

    if not layout.warehouse.exists():
        return []
    with duckdb.connect(str(layout.warehouse), read_only=True) as connection:
        names = connection.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
        ).fetchall()
    return [warehouse_table(layout, f"marts.{name}") for (name,) in names]


def record(context: Any, inputs: Iterable[str] = (), outputs: Iterable[str] = ()) -> None:
    """Report a step's datasets (asset URIs) to the hook-lineage collector; a no-op when lineage is off.

    ``context`` is the hook (or other object) doing the I/O, as the collector expects.
    """
    collector = _collector()
    if collector is None:
        return
    for uri in inputs:
        collector.add_input_asset(context=context, uri=uri)
    for uri in outputs:
        collector.add_output_asset(context=context, uri=uri)


def _collector():
    """The process's collector, emptied when a new task instance starts reporting.

    Airflow makes one collector per process. A worker runs each task in a process of its own, but
    `airflow dags test` runs every task in one, where the next task's events would otherwise also
    carry the datasets of the tasks before it.
    """
    global _collecting_for
    try:
        from airflow.sdk import get_current_context
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:  # pragma: no cover - Airflow is a dependency; this keeps the steps usable without it
        return None
    try:
        ti = get_current_context()["ti"]
    except RuntimeError:  # outside a running task (a test, a script): nothing to report to
        return None
    key = (ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number)
    if key != _collecting_for:
        get_hook_lineage_collector.cache_clear()
        _collecting_for = key
    return get_hook_lineage_collector()


# --- OpenLineage converters, registered for our schemes by the provider info (provider.py) ----------


def api_to_openlineage(asset, lineage_context=None):
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urllib.parse.urlsplit(asset.uri)
    return Dataset(namespace=f"{API_SCHEME}://{parts.netloc}", name=parts.path)


def warehouse_to_openlineage(asset, lineage_context=None):
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urllib.parse.urlsplit(asset.uri)
    table = dict(urllib.parse.parse_qsl(parts.query)).get("table", "")
    return Dataset(namespace=f"{WAREHOUSE_SCHEME}://{parts.path}", name=table)
