"""Reading a run's scratch parquet: a staged or audited table as a typed dataset, and partition names.

What staging, the gate and publishing share about the tables of a run before they are published
(`layout.staging_run(run)`, `layout.audited(run)`). Such a table is a folder of `visit_date=YYYY-MM-DD/`
partitions; rows with no date are in the null partition `visit_date=__HIVE_DEFAULT_PARTITION__` (that of
Hive, pyarrow, DuckDB and Delta). `visit_date` is also stored inside the files, so a file is typed on its
own. The published lake is Delta tables: read it with `letsjobit.lake.tables`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from letsjobit.lake import schema

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def partition_name(day: date | str | None) -> str:
    """`visit_date=YYYY-MM-DD`, or the null partition."""
    if day is None or day == NULL_PARTITION:
        return f"{schema.PARTITION_COLUMN}={NULL_PARTITION}"
    return f"{schema.PARTITION_COLUMN}={day.isoformat() if isinstance(day, date) else day}"


def partition_value(directory_name: str) -> str:
    """The ISO date (or NULL_PARTITION) of a partition directory name."""
    return directory_name.split("=", 1)[1]


def dataset(path: Path) -> ds.Dataset:
    """A staged or audited table directory as a pyarrow dataset with the exact lake schema."""
    name = path.name
    table_schema = schema.LAKE_TABLES[name]
    partitioning = ds.partitioning(pa.schema([table_schema.field(schema.PARTITION_COLUMN)]), flavor="hive")
    return ds.dataset(path, schema=table_schema, format="parquet", partitioning=partitioning)


def read_table(path: Path) -> pa.Table:
    """A whole staged or audited table (small tables and tests; use DuckDB for analysis)."""
    if not path.exists():
        return schema.LAKE_TABLES[path.name].empty_table()
    return dataset(path).to_table()
