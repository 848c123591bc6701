"""The published lake: its Delta tables, and the one published state every reader reads.

The four lake tables (`schema.LAKE_TABLES`) are Delta tables at `layout.table_uri(name)`, on a local
folder or an object store (`config.LakeLocation`), partitioned by `visit_date`. A publication commits
one Delta version per table (`publish.py`), so a table alone is always one whole version; what makes
the four of them one state is the lake's publication record, the one-row Delta table `_publication`
beside them, whose row holds (as JSON text):

    {"published":  {"run_id", "partitions", "at", "versions": {table: version}},
     "publishing": {"run_id", "partitions", "at", "versions": {}} or null}

Readers open each table at the version `published` names (`published_versions`, `dataset`,
`read_table`), never at its latest: a publication under way, or killed between two table commits, has
moved some tables on already, and a reader still sees the previous publication of all four. The record
is replaced by a Delta commit like the tables (so it is old or new, local or on an object store, with
the same code); a plain JSON file would need a second way to write atomically to each kind of store.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
from deltalake import DeltaTable, write_deltalake

from letsjobit import config
from letsjobit.lake import schema

log = logging.getLogger(__name__)

PUBLICATION_RECORD = "_publication"  # the record's Delta table, beside the lake tables
_RECORD_SCHEMA = pa.schema([pa.field("state", pa.string(), nullable=False)])


@dataclass(frozen=True)
class Publication:
    """One publication: the run, the dates it replaced (None: the whole tables) and the versions."""

    run_id: str
    partitions: list[str | None] | None
    at: str
    # table -> Delta version holding this publication (for the one under way: empty until it is done)
    versions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LakeState:
    published: Publication | None = None  # what readers read
    publishing: Publication | None = None  # started and not finished (under way, or killed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> LakeState:
        return cls(**{key: Publication(**value) if value else None for key, value in payload.items()})


def storage_options(location: config.LakeLocation) -> dict[str, str] | None:
    """The location's options as deltalake takes them (None for a local lake)."""
    return dict(location.storage_options) or None


def filesystem(location: config.LakeLocation) -> tuple[pa_fs.FileSystem, str]:
    """The lake's files as pyarrow sees them: a file system and the lake's root path in it.

    pyarrow writes a publication's data files and copies a remote version's files to the local cache;
    an S3 lake gets the same settings as deltalake (the storage options, from the AWS variables)."""
    if location.is_local:
        return pa_fs.LocalFileSystem(), str(location.local_root)
    if not location.url.startswith("s3://"):  # other object stores: pyarrow's own settings from the URL
        return pa_fs.FileSystem.from_uri(location.url)
    options = location.storage_options
    endpoint = urllib.parse.urlsplit(options.get("AWS_ENDPOINT_URL") or "")
    s3 = pa_fs.S3FileSystem(
        access_key=options.get("AWS_ACCESS_KEY_ID"),
        secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
        session_token=options.get("AWS_SESSION_TOKEN"),
        region=options.get("AWS_REGION"),
        endpoint_override=endpoint.netloc or None,
        scheme=endpoint.scheme or "https",
    )
    return s3, location.url.removeprefix("s3://").rstrip("/")


def read_state(location: config.LakeLocation) -> LakeState:
    """The lake's publication record; an empty state for a lake nothing was published to."""
    uri = location.table_uri(PUBLICATION_RECORD)
    options = storage_options(location)
    if not DeltaTable.is_deltatable(uri, options):
        return LakeState()
    (state,) = DeltaTable(uri, storage_options=options).to_pyarrow_table().column("state").to_pylist()
    return LakeState.from_dict(json.loads(state))


def write_state(location: config.LakeLocation, state: LakeState) -> None:
    """Replace the publication record in one Delta commit: readers see the old record or the new one."""
    row = pa.table({"state": [json.dumps(state.as_dict())]}, schema=_RECORD_SCHEMA)
    write_deltalake(
        location.table_uri(PUBLICATION_RECORD),
        row,
        mode="overwrite",
        storage_options=storage_options(location),
    )


def published_versions(layout: config.DataLayout) -> dict[str, int | None]:
    """The Delta version of each lake table that readers read (None: the table was never published)."""
    return versions_of(read_state(layout.lake_location).published)


def versions_of(publication: Publication | None) -> dict[str, int | None]:
    """The Delta version of each lake table in ``publication`` (None: the table is not in it)."""
    versions = publication.versions if publication else {}
    return {table: versions.get(table) for table in schema.LAKE_TABLES}


def open_table(layout: config.DataLayout, name: str, version: int | None = None) -> DeltaTable:
    """A lake table at ``version`` (None: its latest commit, which only publishing should want)."""
    return DeltaTable(
        layout.table_uri(name), version=version, storage_options=storage_options(layout.lake_location)
    )


def exists(layout: config.DataLayout, name: str) -> bool:
    """Whether the lake table has a first commit (published or not)."""
    return DeltaTable.is_deltatable(layout.table_uri(name), storage_options(layout.lake_location))


def dataset(
    layout: config.DataLayout, name: str, versions: dict[str, int | None] | None = None
) -> ds.Dataset:
    """A lake table at its published version as a pyarrow dataset with the exact lake schema.

    Pass one ``published_versions(layout)`` to every table a reader joins, so that they are one state.
    DuckDB queries the dataset directly (``connection.register(name, dataset)``).
    """
    version = (versions if versions is not None else published_versions(layout))[name]
    table_schema = schema.LAKE_TABLES[name]
    if version is None:
        return ds.dataset(table_schema.empty_table())
    return open_table(layout, name, version).to_pyarrow_dataset(schema=table_schema)


def read_table(layout: config.DataLayout, name: str) -> pa.Table:
    """A whole lake table at its published version (small tables and tests; use DuckDB for analysis)."""
    return dataset(layout, name).to_table()
