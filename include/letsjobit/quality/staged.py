"""The staged tables of a run as the validation gate reads them, and the files it writes from its verdict.

Reading: ``scan`` lists a staged table's parquet files and checks each file's schema and partition folder
from its footer; ``load`` reads the columns the checks need, one file after the other with
pyarrow.parquet (pyarrow.dataset would import pandas), which also tells which file holds each row.

Writing, for a run that passes: ``write_quarantine`` puts the removed rows, with the checks they failed
and the values those checks read, at ``layout.quarantine_dir(run_id) / <table>.parquet``;
``write_audited`` builds the run's audited output aside (files without a change hard-linked from the
staging area, the others rewritten) and swaps it in as ``layout.audited(run_id)``. The staging area is
never changed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from letsjobit import config, files
from letsjobit.config import DataLayout
from letsjobit.lake import schema
from letsjobit.quality import reports, suites

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
ISSUES = schema.DATA_ISSUES_TABLE

# Columns a quarantine file adds to the table's own.
QUARANTINE_FIELDS = (
    pa.field("failed_checks", pa.list_(pa.string())),  # the row's own failed checks; empty when cascaded
    pa.field("failed_values", pa.string()),  # JSON: {check: {column: value}} of the values the checks read
    pa.field("quarantined_with", pa.string()),  # parent table whose row took this one along, else NULL
)

GATE_ISSUES_FILE = "audit-00000.parquet"  # the gate's issues of a partition, beside the flattener's files


@dataclass
class StagedTable:
    """One staged table of the run: its files, their schema problems, and the loaded check columns."""

    name: str
    root: Path
    files: list[Path]
    problems: dict[str, list[str]]  # problem -> files (relative) that have it
    loaded: pa.Table | None = None  # the checked columns and fetched_at, as read (integers widened)
    frame: pd.DataFrame | None = None  # the checked columns in pandas, plus derived ones: what GX validates
    key: pa.Array | None = None  # each row's key as one string (key_strings)
    parent_key: pa.Array | None = None  # each row's parent key, for child tables
    file_starts: list[int] = field(default_factory=list)  # row of each file's first row, then the total

    @property
    def keys(self) -> list[str]:
        return list(schema.KEYS[self.name])

    @property
    def staged_rows(self) -> int:
        return 0 if self.frame is None else len(self.frame)


# --- reading the staging area ---------------------------------------------------------------------


def _data_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    # Like pyarrow.dataset: names starting with "." or "_" are temporary or metadata files.
    return sorted(
        path
        for path in root.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)
    )


def scan(name: str, root: Path) -> StagedTable:
    """List a staged table's files and check each file's schema and partition folder (footers only)."""
    table = StagedTable(name=name, root=root, files=_data_files(root), problems={})
    for path in table.files:
        relative = str(path.relative_to(root))
        problems = []
        folder = path.relative_to(root).parts[:-1]
        if len(folder) != 1 or not _is_partition_folder(folder[0]):
            problems.append(f"not directly under a {schema.PARTITION_COLUMN}=YYYY-MM-DD folder")
        try:
            problems.extend(schema_problems(pq.read_schema(path), name))
        except (pa.ArrowInvalid, OSError) as error:
            problems.append(f"unreadable parquet ({error})")
        for problem in problems:
            table.problems.setdefault(problem, []).append(relative)
    return table


def _partition_value(path: Path) -> dt.date | None | str:
    """The visit_date of a staged file's folder: a date, None (hive NULL), or the raw text if malformed."""
    key, _, value = path.parent.name.partition("=")
    if key != schema.PARTITION_COLUMN:
        return path.parent.name
    if value == HIVE_NULL_PARTITION:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return value


def _is_partition_folder(folder: str) -> bool:
    return not isinstance(_partition_value(Path(folder) / "f"), str)


def _read_file(name: str, path: Path, columns: list[str] | None = None) -> pa.Table:
    """One staged file typed as schema.py, with visit_date from its folder when the file leaves it out."""
    table_schema = schema.LAKE_TABLES[name]
    wanted = columns or table_schema.names
    target = pa.schema([table_schema.field(c) for c in wanted])
    stored = set(pq.read_schema(path).names)
    content = pq.ParquetFile(path).read(columns=[c for c in wanted if c in stored])
    return _with_visit_date(content, path).select(wanted).cast(target)


def _with_visit_date(content: pa.Table, path: Path) -> pa.Table:
    if schema.PARTITION_COLUMN in content.column_names:
        return content
    day = pa.scalar(_partition_value(path), pa.date32())
    return content.append_column(schema.PARTITION_COLUMN, pa.repeat(day, content.num_rows))


def load(table: StagedTable) -> None:
    """Load the columns the checks read, fetched_at (for the issue rows), and where each file starts."""
    import numpy as np

    columns = [*suites.columns_to_load(table.name), "fetched_at"]
    parts = [_read_file(table.name, path, columns) for path in table.files]
    loaded = pa.concat_tables(
        [pa.schema([schema.TABLES[table.name].field(c) for c in columns]).empty_table(), *parts]
    )
    table.file_starts = [0, *np.cumsum([p.num_rows for p in parts]).tolist()]
    table.key = key_strings(loaded, table.keys)
    if table.name in suites.PARENTS:
        table.parent_key = key_strings(loaded, schema.KEYS[suites.PARENTS[table.name]])
    # GX checks ranges vectorised only on 64-bit numpy dtypes (int8 and int32 go through a Python loop).
    table.loaded = loaded.cast(
        pa.schema([f.with_type(pa.int64()) if pa.types.is_integer(f.type) else f for f in loaded.schema])
    )


def read_issues(table: StagedTable) -> pa.Table:
    """The issues the flattener staged (none when their files are broken: the schema check says so)."""
    if table.problems or not table.files:
        return schema.DATA_ISSUES.empty_table()
    return pa.concat_tables([_read_file(ISSUES, path) for path in table.files])


def key_strings(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """One string per row that identifies it by `columns` (joined with a separator no id contains)."""
    if len(columns) == 1:
        return table.column(columns[0]).combine_chunks().cast(pa.string())
    parts = [table.column(c).combine_chunks().cast(pa.string()) for c in columns]
    return pc.binary_join_element_wise(*parts, "\x1f")


def schema_problems(file_schema: pa.Schema, table: str) -> list[str]:
    """What differs between one staged file's schema and the table's (column order and nullability aside)."""
    expected = schema.LAKE_TABLES[table]
    problems = []
    for name in expected.names:
        if name == schema.PARTITION_COLUMN and name not in file_schema.names:
            continue  # held by the hive partition folder
        if name not in file_schema.names:
            problems.append(f"missing column {name}")
            continue
        want, got = expected.field(name).type, file_schema.field(name).type
        if not _same_type(want, got):
            problems.append(f"column {name} is {got}, expected {want}")
    problems.extend(f"unexpected column {name}" for name in file_schema.names if name not in expected.names)
    return problems


def _same_type(want: pa.DataType, got: pa.DataType) -> bool:
    # Parquet names list items "element" where pyarrow says "item": compare value types, not names.
    if pa.types.is_list(want) and pa.types.is_list(got):
        return _same_type(want.value_type, got.value_type)
    if pa.types.is_struct(want) and pa.types.is_struct(got):
        return [f.name for f in want] == [f.name for f in got] and all(
            _same_type(a.type, b.type) for a, b in zip(want, got, strict=True)
        )
    return want.equals(got)


# --- quarantine and the audited output ------------------------------------------------------------


def write_quarantine(
    run_id: str,
    layout: DataLayout,
    tables: Mapping[str, StagedTable],
    own: Mapping[str, Mapping[int, list[str]]],
    removed: Mapping[str, Any],
) -> dict[str, Path]:
    """The run's quarantine files: every removed row as staged, with the checks it failed (or the parent
    table that took it along). Tables with nothing removed have none (an earlier audit's is removed)."""
    target = layout.quarantine_dir(run_id)
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        path = target / f"{name}.parquet"
        mask = removed[name]
        if not mask.any():
            path.unlink(missing_ok=True)
            continue
        parts = []
        for index, file in enumerate(table.files):
            start, end = table.file_starts[index], table.file_starts[index + 1]
            if mask[start:end].any():
                content = _read_file(name, file)
                parts.append(content.filter(pa.array(mask[start:end])))
        rows = pa.concat_tables([schema.TABLES[name].empty_table(), *parts])
        with files.atomic_path(path) as temporary:
            pq.write_table(_annotate(table, rows, mask, own[name]), temporary)
        paths[name] = path
        log.info("Quarantined %d %s rows of %s to %s", int(mask.sum()), name, table.root, path)
    return paths


def _annotate(table: StagedTable, rows: pa.Table, mask, own_failures: Mapping[int, list[str]]) -> pa.Table:
    """Add to the removed rows (in row order) the checks each failed and the values those checks read."""
    quarantine_schema = pa.schema([*schema.TABLES[table.name], *QUARANTINE_FIELDS])
    positions = [int(p) for p in mask.nonzero()[0]]
    checked = sorted(
        {c for p in positions for check in own_failures.get(p, []) for c in suites.ALL_CHECKS[check].columns}
    )
    stored = {c: rows.column(c).to_pylist() for c in checked if c in rows.column_names}
    # Derived columns (an orphan's lookup) are not stored: the frame holds them.
    derived = {c: table.frame[c].to_numpy()[positions].tolist() for c in checked if c not in stored}
    values_of = {**stored, **derived}
    parent = suites.PARENTS.get(table.name)
    failed_checks, failed_values, quarantined_with = [], [], []
    for i, position in enumerate(positions):
        own = own_failures.get(position, [])
        failed_checks.append(own)
        values = {
            check: {c: reports.jsonable(values_of[c][i]) for c in suites.ALL_CHECKS[check].columns}
            for check in own
        }
        failed_values.append(json.dumps(values, sort_keys=True) if own else None)
        # A row removed without failing a check of its own was taken along by its parent table's row.
        quarantined_with.append(None if own else parent)
    for column, values in zip(
        QUARANTINE_FIELDS, (failed_checks, failed_values, quarantined_with), strict=True
    ):
        rows = rows.append_column(column, pa.array(values, column.type))
    return rows.select(quarantine_schema.names).cast(quarantine_schema)


def write_audited(
    run_id: str,
    layout: DataLayout,
    tables: Mapping[str, StagedTable],
    staged_issues: StagedTable,
    gate_issues: pa.Table,
    nulled: Mapping[str, Mapping[str, Any]],
    removed: Mapping[str, Any],
) -> Path:
    """Build the run's audited output aside, then swap it in as ``layout.audited(run_id)``.

    A staged file without quarantined rows or NULLed values is hard-linked (copied across file systems);
    one with either is rewritten without the quarantined rows and with the values NULLed, in the codec
    it was written with. The flattener's issue files are linked, and the gate's issues of each partition
    are written beside them.
    """
    final = layout.audited(run_id)
    building = final.parent / f"{config.AUDIT_SCRATCH_PREFIX}{uuid.uuid4().hex[:8]}"
    building.mkdir()
    rewritten = 0
    try:
        for name, table in tables.items():
            (building / name).mkdir()
            for index, file in enumerate(table.files):
                start, end = table.file_starts[index], table.file_starts[index + 1]
                gone = removed[name][start:end]
                nulls = {c: m[start:end] for c, m in nulled[name].items() if m[start:end].any()}
                target = building / name / file.relative_to(table.root)
                if not gone.any() and not nulls:
                    target.parent.mkdir(exist_ok=True)
                    files.link_or_copy(file, target)
                    continue
                rewritten += 1
                _rewrite(file, target, gone, nulls)
        (building / ISSUES).mkdir()
        for file in staged_issues.files:
            target = building / ISSUES / file.relative_to(staged_issues.root)
            target.parent.mkdir(exist_ok=True)
            files.link_or_copy(file, target)
        _write_partitioned(gate_issues, building / ISSUES, GATE_ISSUES_FILE)
        files.replace_dir(building, final)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info(
        "Audited output of run %s at %s (%d staged file(s) rewritten, the rest linked)",
        run_id,
        final,
        rewritten,
    )
    return final


def _rewrite(file: Path, target: Path, gone, nulls: Mapping[str, Any]) -> None:
    """A staged file without its quarantined rows and with its out-of-domain values NULLed."""
    staged = pq.ParquetFile(file)
    content = staged.read()
    for column, mask in nulls.items():
        index = content.schema.get_field_index(column)
        values = content.column(index)
        empty = pa.scalar(None, values.type)
        content = content.set_column(index, column, pc.if_else(pa.array(mask), empty, values))
    if gone.any():
        content = content.filter(pa.array(~gone))
    if content.num_rows:  # a partition left without rows is no folder at all
        target.parent.mkdir(exist_ok=True)
        pq.write_table(content, target, compression=_codec(staged))


def _write_partitioned(issues: pa.Table, root: Path, file_name: str) -> None:
    """Issue rows as one file per visit_date partition (the null partition for those without a date)."""
    if not issues.num_rows:
        return
    days = issues.column(schema.PARTITION_COLUMN)
    for day in pc.unique(days).to_pylist():
        rows = issues.filter(pc.is_null(days) if day is None else pc.equal(days, day))
        folder = root / f"{schema.PARTITION_COLUMN}={HIVE_NULL_PARTITION if day is None else day.isoformat()}"
        folder.mkdir(exist_ok=True)
        pq.write_table(rows, folder / file_name, compression=schema.LAKE_COMPRESSION)


def _codec(staged: pq.ParquetFile) -> str:
    """The compression the lake wrote a file with, so that a rewrite keeps it."""
    metadata = staged.metadata
    if metadata.num_row_groups and metadata.num_columns:
        return metadata.row_group(0).column(0).compression.lower()
    return schema.LAKE_COMPRESSION
