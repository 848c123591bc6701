"""The lake and the warehouse against the simulator's ground truth: every difference, named.

The truth is what the simulator serves (``GET /_sim/truth``: its visits and their bad records), and the
test oracle (``letsjobit.simulator.expectations``) says what a run over it must publish and what the KPI
marts must hold. ``kpi_mismatches`` and ``lake_mismatches`` return one line per difference (an empty
list: equal); the end-to-end tests, ``make scale-out`` and its test use them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import requests

from letsjobit import config
from letsjobit.devtools import summary
from letsjobit.lake import schema, tables
from letsjobit.simulator.expectations import expected_kpis, expected_outcome
from letsjobit.warehouse.kpis import KPI_COLUMNS, KPI_TABLES

# One snapshot of the published warehouse as a reader sees it: a whole build has the same visit count in
# the fact table and each KPI mart (make scale-out's reader and the soak's readers run it).
WAREHOUSE_SNAPSHOT_QUERY = """
select
    (select run_id from marts.build_info) as run_id,
    (select count(*) from marts.fct_visits) as visits,
    (select count(distinct visit_id) from marts.fct_visits) as distinct_visits,
    (select coalesce(sum(visits), 0) from marts.kpi_daily) as daily,
    (select coalesce(sum(visits), 0) from marts.kpi_territory_daily) as territory,
    (select coalesce(sum(visits), 0) from marts.kpi_driver_daily) as driver
"""


@dataclass(frozen=True)
class Truth:
    """The simulator's visits as served and its bad records, at one moment."""

    visits: list[dict]
    bad_records: dict[str, str | dict]


def simulator_truth(simulator_root: str) -> Truth:
    """``GET /_sim/truth`` of the simulator at ``simulator_root`` (its URL without ``/api/v2``)."""
    answer = requests.get(f"{simulator_root}/_sim/truth", timeout=120)
    answer.raise_for_status()
    payload = answer.json()
    return Truth(visits=payload["data"], bad_records=payload["meta"]["bad_records"])


def same(actual, wanted) -> bool:
    """Equal, as numbers up to rounding (the warehouse sums hours in another order), or both NULL."""
    if actual is None or wanted is None:
        return actual is None and wanted is None
    return math.isclose(float(actual), float(wanted), rel_tol=1e-9, abs_tol=1e-9)


def kpi_mismatches(
    warehouse: Path,
    visits: Iterable[Mapping],
    bad_records: Mapping[str, str | Mapping],
    dates: Collection[date] | None = None,
) -> list[str]:
    """Every cell of kpi_daily, kpi_driver_daily and kpi_territory_daily (of ``dates`` only, when given)
    that differs from the KPI contract recomputed from the served ``visits``; a missing or extra row too."""
    wanted = expected_kpis(visits, bad_records)
    problems = []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table, keys in KPI_TABLES.items():
            rows = con.execute(f"select {', '.join(keys + KPI_COLUMNS)} from marts.{table}").fetchall()
            actual = {row[: len(keys)]: dict(zip(KPI_COLUMNS, row[len(keys) :], strict=True)) for row in rows}
            for key in sorted(actual.keys() | wanted[table].keys(), key=str):
                if dates is not None and key[0] not in dates:
                    continue
                got, want = actual.get(key), wanted[table].get(key)
                if got is None or want is None:
                    problems.append(f"{table} {key}: warehouse {got}, expected {want}")
                    continue
                problems += [
                    f"{table} {key} {column}: warehouse {got[column]}, expected {want[column]}"
                    for column in KPI_COLUMNS
                    if not same(got[column], want[column])
                ]
    return problems


def lake_mismatches(
    layout: config.DataLayout, visits: Iterable[Mapping], bad_records: Mapping[str, str | Mapping]
) -> list[str]:
    """How the published lake differs from a full run over the served ``visits``: the visit ids it lacks
    or has in excess, duplicated ids, and each table's row count against the oracle's."""
    wanted = expected_outcome(list(visits), bad_records)
    versions = tables.published_versions(layout)
    ids = tables.dataset(layout, "visits", versions).to_table(columns=["visit_id"]).column("visit_id")
    found = ids.to_pylist()
    problems = []
    missing, extra = wanted.published - set(found), set(found) - wanted.published
    if missing:
        problems.append(f"visits missing from the lake: {len(missing)}, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(
            f"visits in the lake the simulator does not serve: {len(extra)}, e.g. {sorted(extra)[:3]}"
        )
    if len(found) != len(set(found)):
        problems.append(f"visit ids published more than once: {len(found) - len(set(found))}")
    counts = summary.lake_counts(layout)
    problems += [
        f"{table}: lake {counts[table]} rows, expected {wanted.row_counts[table]}"
        for table in schema.TABLES
        if counts[table] != wanted.row_counts[table]
    ]
    return problems
