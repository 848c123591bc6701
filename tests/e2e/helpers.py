"""Helpers of the end-to-end tests: one `airflow dags test` with its own log, and the KPI marts against
the test oracle's recomputation from the served records (include/letsjobit/simulator/expectations.py)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from datetime import date
from pathlib import Path

import duckdb
from letsjobit.devtools.airflow_runner import AirflowHome
from letsjobit.simulator.expectations import expected_kpis
from letsjobit.warehouse.kpis import KPI_COLUMNS, KPI_TABLES

from tests.conftest import TEST_API_KEY


def dags_test(airflow: AirflowHome, **kwargs) -> tuple[int, str]:
    """One `airflow dags test`: its exit code and the log it wrote (which must not hold the API key)."""
    offset = airflow.log_file.stat().st_size if airflow.log_file.exists() else 0
    code = airflow.dags_test(**kwargs)
    with airflow.log_file.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    assert TEST_API_KEY not in text, "the API key leaked into the Airflow log"
    return code, text


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
