"""The KPIs and their measures, named once for the Python side, read from the SQL that defines them.

The warehouse defines every KPI as a DuckDB macro (sql/macros/kpis.sql, created by the dbt project's
on-run-start) whose parameters are named after the additive measure columns it is a ratio of
(``marts.nps(promoters, detractors, rated_visits)``). This module reads those definitions, not a copy
of them: ``KPIS`` from the macros file, ``MEASURES`` and ``VISIT_KEYS`` from the documented columns of
marts.fct_visit_measures (where a visit is counted), ``KPI_COLUMNS`` from those of
intermediate.int_kpi_measures (the columns every kpi_* table carries), and ``KPI_TABLES`` from the KPI
tables' keys, all in the project's yml (``project.py``). The marts' contracts are enforced by dbt, so
a name here is a name in the warehouse.

The run summary, the dashboard and the tests take KPI names from here. The test oracle
(letsjobit.simulator.expectations) keeps its own list on purpose: it shares no code with the pipeline,
and the tests compare the two.
"""

from __future__ import annotations

import re
from pathlib import Path

from letsjobit import config
from letsjobit.warehouse import project

MACROS_FILE = config.SQL_DIR / "macros" / "kpis.sql"
_MACRO = re.compile(r"^create or replace macro marts\.([a-z_]+)\(([^)]*)\)", re.MULTILINE)


def read_kpis(path: Path = MACROS_FILE) -> dict[str, tuple[str, ...]]:
    """Each KPI macro of ``path`` -> the measure columns it takes, in the file's order."""
    kpis = {
        name: tuple(parameter.strip() for parameter in parameters.split(","))
        for name, parameters in _MACRO.findall(path.read_text())
    }
    if not kpis:
        raise ValueError(f"{path}: no `create or replace macro marts.<kpi>(...)` found")
    return kpis


# KPI name -> the measures it is a ratio of: the macro marts.<name>(<measures>).
KPIS: dict[str, tuple[str, ...]] = read_kpis()

_visit_measures = project.model("fct_visit_measures")
_taken = {measure for measures in KPIS.values() for measure in measures}
if not _taken <= _visit_measures.columns.keys():
    raise ValueError(
        f"{MACROS_FILE}: KPI parameters {sorted(_taken - _visit_measures.columns.keys())} are not "
        f"measure columns of {_visit_measures.path}"
    )
# The additive measures, in the order of marts.fct_visit_measures: summed over any group, then a
# KPI's macro over the sums gives its value for the group.
MEASURES: tuple[str, ...] = tuple(column for column in _visit_measures.columns if column in _taken)
# marts.fct_visit_measures' other columns: the visit and the keys a reader groups or filters by.
VISIT_KEYS: tuple[str, ...] = tuple(column for column in _visit_measures.columns if column not in _taken)

# The measures and KPIs of every kpi_* table, in their column order (they come from int_kpi_measures).
KPI_COLUMNS: tuple[str, ...] = tuple(
    column for column in project.model("int_kpi_measures").columns if column in _taken or column in KPIS
)
# Each KPI table -> its key (visit_date, then the group it is per).
KPI_TABLES: dict[str, tuple[str, ...]] = {
    name: project.model(name).key for name in ("kpi_daily", "kpi_driver_daily", "kpi_territory_daily")
}

# What a short summary shows of a day or a group: the volume, the close and skip rates, and NPS,
# CSAT and the mean rating with the ratings they rest on.
HEADLINE: tuple[str, ...] = (
    "visits",
    "closed_visits",
    "close_rate",
    "skip_rate",
    "rated_visits",
    "nps",
    "csat",
    "avg_rating",
)
if not set(HEADLINE) <= set(KPI_COLUMNS):
    raise ValueError(f"HEADLINE names {sorted(set(HEADLINE) - set(KPI_COLUMNS))}, which no KPI table has")
