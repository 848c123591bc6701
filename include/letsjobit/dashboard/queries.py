"""Every query the dashboard runs, as functions over a read-only DuckDB connection to the warehouse.

The pages only format what these functions return, and the tests call the same functions, so what
is on screen is what is tested. The queries read the marts only (schema ``marts``).

The dashboard spells no KPI formula. Ratios over a date range or a group are never averages of daily
ratios: each query sums the warehouse's additive measures (visits, closed_visits, rated_visits,
promoters, ...) and applies the warehouse's own KPI macros to the sums (``marts.nps(promoters,
detractors, rated_visits)`` and the rest, from ``sql/macros/kpis.sql``). Which measures and KPIs
there are is ``letsjobit.warehouse.kpis``; how the warehouse file being read defines them (the
measures' types, each macro's parameters) is read from that file itself (``kpi_definitions``), so a
formula changed in the SQL reaches the pages with the next build.

Where the measures come from depends on the filters. The KPI tables are the source when one answers
the filter exactly (no filter: ``kpi_daily``; territory only: ``kpi_territory_daily``; driver only:
``kpi_driver_daily``); a customer filter, or territory and driver together, need visit grain, so the
measures are then summed from ``fct_visit_measures``, the relation the KPI tables are summed from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from letsjobit import config
from letsjobit.warehouse import kpis

log = logging.getLogger(__name__)

Dimension = Literal["territory", "driver"]
Grain = Literal["day", "week"]
IssueBreakdown = Literal["check_name", "action"]

# The warehouse's one relation at visit grain with the additive KPI measures; VISIT_KEYS are its
# columns that are not measures (the filters use them).
VISIT_MEASURES = "marts.fct_visit_measures"
VISIT_KEYS = kpis.VISIT_KEYS
INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}


@dataclass(frozen=True)
class KpiDefinitions:
    """The warehouse's additive measures (name -> holds whole numbers) and KPI macros (name -> the
    measures it takes, in order)."""

    measures: dict[str, bool]
    macros: dict[str, tuple[str, ...]]

    def sums(self, prefix: str = "") -> str:
        """``sum(m) as m`` for every measure; whole-number sums as BIGINT (DuckDB sums to HUGEINT)."""
        return ", ".join(
            f"sum({prefix}{name}){'::bigint' if whole else ''} as {name}"
            for name, whole in self.measures.items()
        )

    def ratios(self) -> str:
        """Every KPI as the warehouse's macro over the measure columns of the same names."""
        return ", ".join(
            f"marts.{name}({', '.join(params)}) as {name}" for name, params in self.macros.items()
        )


# Definitions by the models digest of the build that holds them: the same SQL defines the same KPIs,
# and listing the catalog's functions costs more than a page's KPI queries.
_DEFINITIONS: dict[str, KpiDefinitions] = {}


def kpi_definitions(con: duckdb.DuckDBPyConnection) -> KpiDefinitions:
    """The measures and KPI macros (those of letsjobit.warehouse.kpis) as the warehouse ``con`` reads
    holds them: the measures' types and each macro's parameters, from its catalog."""
    (digest,) = con.execute("select models_digest from marts.build_info").fetchone() or (None,)
    if digest is not None and digest in _DEFINITIONS:
        return _DEFINITIONS[digest]
    schema_name, table_name = VISIT_MEASURES.split(".")
    columns = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema_name, table_name],
    ).fetchall()
    measures = {name: data_type in INTEGER_TYPES for name, data_type in columns if name in kpis.MEASURES}
    macros = con.execute(
        "select function_name, parameters from duckdb_functions() "
        "where database_name = current_database() and schema_name = 'marts' and function_type = 'macro' "
        "order by function_name"
    ).fetchall()
    found = {name: tuple(params) for name, params in macros if name in kpis.KPIS}
    if not measures or not found:
        raise WarehouseUnavailable(
            f"the warehouse has no KPI measures ({VISIT_MEASURES}) or macros: built by older SQL"
        )
    definitions = KpiDefinitions(measures, found)
    if digest is not None:
        _DEFINITIONS[digest] = definitions
    return definitions


# The key a KPI table groups by.
DIMENSION_KEYS: dict[str, str] = {"territory": "territory", "driver": "driver_id"}


class WarehouseUnavailable(RuntimeError):
    """The warehouse file is missing or cannot be read (not built yet, or not a finished build)."""


@dataclass(frozen=True)
class Filters:
    """What the user chose in the sidebar. Empty tuples mean "all"."""

    start: date
    end: date
    territories: tuple[str, ...] = field(default_factory=tuple)
    driver_ids: tuple[str, ...] = field(default_factory=tuple)
    site_ids: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"date range ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The same filters over the period of equal length just before this one."""
        return Filters(
            start=self.start - timedelta(days=self.days),
            end=self.start - timedelta(days=1),
            territories=self.territories,
            driver_ids=self.driver_ids,
            site_ids=self.site_ids,
        )


def warehouse_path() -> Path:
    return config.layout().warehouse


@contextlib.contextmanager
def connect(path: Path | None = None, attempts: int = 3) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection for one page load, closed afterwards.

    The pipeline publishes a build by renaming a new file over the old one, so a connection opened at
    any moment sees one whole build, and holding it for one page load never blocks the next build.
    """
    path = path or warehouse_path()
    if not path.exists():
        raise WarehouseUnavailable(f"no warehouse at {path}: it has not been built yet")
    for attempt in range(1, attempts + 1):
        try:
            con = duckdb.connect(str(path), read_only=True)
            break
        except (duckdb.IOException, duckdb.InvalidInputException) as error:
            # A writer holding the file (a build not using the atomic swap) locks readers out briefly.
            if attempt == attempts:
                raise WarehouseUnavailable(f"cannot open the warehouse {path} read-only: {error}") from error
            log.warning("Opening %s read-only failed (attempt %d): %s", path, attempt, error)
            time.sleep(0.2 * attempt)
    try:
        missing = {"build_info", "fct_visits", "kpi_daily"} - _mart_tables(con)
        if missing:
            raise WarehouseUnavailable(
                f"the warehouse {path} has no marts {sorted(missing)}: not a finished build"
            )
        yield con
    finally:
        con.close()


def _mart_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = 'marts'"
    ).fetchall()
    return {name for (name,) in rows}


# ---------------------------------------------------------------------------------------------------
# Where clauses and measure sources


def _where(filters: Filters, prefix: str = "") -> tuple[str, dict]:
    """Filters as a where clause. The marts already label an empty key '(unknown)' (the warehouse's
    marts.unknown_member), at visit grain as in the KPI tables, so the same values select."""
    clauses = [f"{prefix}visit_date between $start and $end"]
    params: dict = {"start": filters.start, "end": filters.end}
    for column, name, values in (
        ("territory", "territories", filters.territories),
        ("driver_id", "driver_ids", filters.driver_ids),
        ("site_id", "site_ids", filters.site_ids),
    ):
        if values:
            clauses.append(f"list_contains(${name}, {prefix}{column})")
            params[name] = list(values)
    return " and ".join(clauses), params


def measure_source(
    filters: Filters, definitions: KpiDefinitions, by: Dimension | None = None
) -> tuple[str, dict, str]:
    """SQL for daily measures: visit_date, the dimension's key (if ``by``), every additive measure.

    Returns (sql, parameters, name of the mart it reads), choosing the KPI table that answers the
    filters exactly, or fct_visit_measures when none does.
    """
    wants_territory = bool(filters.territories) or by == "territory"
    wants_driver = bool(filters.driver_ids) or by == "driver"
    keys = ", ".join(("visit_date", *([DIMENSION_KEYS[by]] if by else [])))
    where, params = _where(filters)
    if not filters.site_ids and not (wants_territory and wants_driver):
        if wants_territory:
            table = "kpi_territory_daily"
        elif wants_driver:
            table = "kpi_driver_daily"
        else:
            table = "kpi_daily"
        sql = f"select {keys}, {', '.join(definitions.measures)} from marts.{table} where {where}"
        return sql, params, table
    sql = f"select {keys}, {definitions.sums()} from {VISIT_MEASURES} where {where} group by all"
    return sql, params, VISIT_MEASURES.split(".")[1]


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> pd.DataFrame:
    return con.execute(sql, params).df()


# ---------------------------------------------------------------------------------------------------
# Headline tiles and time series


def headline(con: duckdb.DuckDBPyConnection, filters: Filters) -> dict:
    """The KPIs of the whole period: the summed measures and the KPI macros over them."""
    definitions = kpi_definitions(con)
    source, params, _ = measure_source(filters, definitions)
    sql = f"""
        with daily as ({source}), summed as (select {definitions.sums()} from daily)
        select *, {definitions.ratios()} from summed
    """
    row = _records(con, sql, params).iloc[0].to_dict()
    row = {key: (None if pd.isna(value) else value) for key, value in row.items()}
    for measure, whole in definitions.measures.items():
        row[measure] = int(row[measure] or 0) if whole else (row[measure] or 0.0)
    return row


def headline_with_previous(con: duckdb.DuckDBPyConnection, filters: Filters) -> tuple[dict, dict]:
    return headline(con, filters), headline(con, filters.previous())


def kpi_series(con: duckdb.DuckDBPyConnection, filters: Filters, grain: Grain = "day") -> pd.DataFrame:
    """KPIs per day or per ISO week (Monday start) over the period, one row per period even when empty.

    A day without visits is a row with zero measures and NULL ratios, so charts show a gap, not a
    line drawn through it. Weeks are clipped to the chosen range: the first and last may be partial.
    """
    definitions = kpi_definitions(con)
    source, params, _ = measure_source(filters, definitions)
    bucket = "visit_date" if grain == "day" else "date_trunc('week', visit_date)::date"
    zero_filled = ", ".join(f"coalesce(daily.{m}, 0) as {m}" for m in definitions.measures)
    sql = f"""
        with daily as ({source}),
        calendar as (
            select unnest(generate_series($start::date, $end::date, interval 1 day))::date as visit_date
        ),
        every_day as (
            select calendar.visit_date, {zero_filled}
            from calendar left join daily using (visit_date)
        ),
        summed as (select {bucket} as period, {definitions.sums()} from every_day group by all)
        select *, {definitions.ratios()} from summed order by period
    """
    return _records(con, sql, params)


def kpi_by(con: duckdb.DuckDBPyConnection, filters: Filters, by: Dimension) -> pd.DataFrame:
    """KPIs per territory or per driver (with driver_name from dim_drivers) over the period.

    Only groups that had visits in the period are listed.
    """
    definitions = kpi_definitions(con)
    source, params, _ = measure_source(filters, definitions, by=by)
    key = DIMENSION_KEYS[by]
    sql = f"""
        with daily as ({source}),
        summed as (select {key}, {definitions.sums()} from daily group by {key}),
        grouped as (select *, {definitions.ratios()} from summed)
        select {"grouped.driver_id, drivers.driver_name," if by == "driver" else "grouped.territory,"}
               grouped.* exclude ({key})
        from grouped
        {"left join marts.dim_drivers as drivers using (driver_id)" if by == "driver" else ""}
        order by visits desc, {key}
    """
    return _records(con, sql, params)


def driver_leaderboard(con: duckdb.DuckDBPyConnection, filters: Filters, min_ratings: int) -> pd.DataFrame:
    """Drivers ranked by NPS, then close rate; a driver with fewer than ``min_ratings`` ratings is not ranked.

    Columns: rank (NULL when unranked), driver_id, driver_name, visits, close_rate, rated_visits, nps,
    csat, avg_rating, ranked.
    """
    drivers = kpi_by(con, filters, "driver")
    drivers["ranked"] = drivers["rated_visits"] >= max(min_ratings, 1)
    ranked = drivers[drivers["ranked"]].sort_values(
        ["nps", "close_rate", "rated_visits", "driver_id"], ascending=[False, False, False, True]
    )
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    unranked = drivers[~drivers["ranked"]].sort_values(["rated_visits", "visits"], ascending=False)
    unranked.insert(0, "rank", None)
    board = (
        pd.concat([ranked, unranked], ignore_index=True) if len(unranked) else ranked.reset_index(drop=True)
    )
    board["rank"] = board["rank"].astype("Int64")
    return board


# ---------------------------------------------------------------------------------------------------
# Operations: visit grain


def skip_reasons(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Skipped visits per skip reason id ('(unknown)' when none was given), most frequent first."""
    if filters.territories or filters.driver_ids or filters.site_ids:
        where, params = _where(filters, "visits.")
        source = f"""
            select marts.unknown_member(visits.skipped_reason_id) as skipped_reason_id, count(*) as skipped_visits
            from marts.fct_visits as visits where {where} and visits.skipped group by all
        """
    else:
        where, params = _where(filters)
        source = f"select skipped_reason_id, skipped_visits from marts.kpi_skip_reasons_daily where {where}"
    sql = f"""
        with counts as ({source})
        select skipped_reason_id as skip_reason,
               sum(skipped_visits)::bigint as skipped_visits,
               sum(skipped_visits) / sum(sum(skipped_visits)) over () as share
        from counts
        group by all
        order by skipped_visits desc, skip_reason
    """
    return _records(con, sql, params)


def jobs_per_visit(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """How many visits had 0, 1, 2, ... jobs (action-item lines)."""
    where, params = _where(filters, "visits.")
    sql = f"""
        select coalesce(visits.job_count, 0) as jobs, count(*) as visits
        from marts.fct_visits as visits
        where {where}
        group by all
        order by jobs
    """
    return _records(con, sql, params)


def median_hours_to_close(con: duckdb.DuckDBPyConnection, filters: Filters) -> float | None:
    """Median hours from creation to close over the closed visits where both are known (visit grain:
    a median does not add up from daily rows; the mean comes with the headline KPIs)."""
    where, params = _where(filters, "visits.")
    sql = f"select median(visits.hours_to_close) from marts.fct_visits as visits where {where}"
    (median,) = con.execute(sql, params).fetchone()
    return median


# ---------------------------------------------------------------------------------------------------
# Data issues (marts.kpi_data_issues_daily): the date range applies, the other filters do not (an
# issue belongs to a record, which may not have reached the marts)


def has_data_issues_mart(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse has the data issue marts (a build by older SQL has not)."""
    return "kpi_data_issues_daily" in _mart_tables(con)


def data_issues_over_time(
    con: duckdb.DuckDBPyConnection, filters: Filters, by: IssueBreakdown = "check_name"
) -> pd.DataFrame:
    """Issues per day of the period and per check (or action): visit_date, the breakdown, issues.

    Days without issues have no rows."""
    column = {"check_name": "check_name", "action": "action"}[by]
    where, params = _where(Filters(filters.start, filters.end))
    sql = f"""
        select visit_date, {column}, sum(issues)::bigint as issues
        from marts.kpi_data_issues_daily
        where {where}
        group by all
        order by visit_date, {column}
    """
    return _records(con, sql, params)


def data_issues_by_check(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """The period's issues per check (with its table, field, severity and action), most frequent
    first: issues, records affected, and the days they fell on."""
    where, params = _where(Filters(filters.start, filters.end))
    sql = f"""
        select check_name, table_name, field, severity, action,
               sum(issues)::bigint as issues, sum(records)::bigint as records,
               count(*) as days, min(visit_date) as first_day, max(visit_date) as last_day
        from marts.kpi_data_issues_daily
        where {where}
        group by all
        order by issues desc, check_name, action
    """
    return _records(con, sql, params)


def undated_data_issues(con: duckdb.DuckDBPyConnection) -> int:
    """Issues of records without a usable date (no day to chart them on)."""
    (issues,) = con.execute(
        "select coalesce(sum(issues), 0)::bigint from marts.kpi_data_issues_daily where visit_date is null"
    ).fetchone()
    return issues


# ---------------------------------------------------------------------------------------------------
# Filter choices and freshness


def date_bounds(con: duckdb.DuckDBPyConnection) -> tuple[date, date] | None:
    first, last = con.execute("select min(visit_date), max(visit_date) from marts.kpi_daily").fetchone()
    return (first, last) if first else None


def default_period(bounds: tuple[date, date], today: date, days: int = 28) -> tuple[date, date]:
    """The last ``days`` days of data, ending today when the data reaches past today (future visits)."""
    first, last = bounds
    end = min(last, today) if first <= today else last
    return max(first, end - timedelta(days=days - 1)), end


def territories(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("select territory from marts.dim_territories order by territory").fetchall()
    return [territory for (territory,) in rows if territory is not None]


def drivers(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """driver_id -> display name: the name, with the id when several drivers share the name."""
    rows = con.execute(
        "select driver_id, driver_name, count(*) over (partition by driver_name) > 1 as shared "
        "from marts.dim_drivers order by driver_name, driver_id"
    ).fetchall()
    return {
        driver_id: f"{name} ({driver_id})" if shared or not name else name for driver_id, name, shared in rows
    }


def customers(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """site_id -> "customer (site id)"."""
    rows = con.execute("select site_id, customer from marts.dim_customers order by customer, site_id")
    return {site_id: f"{name} ({site_id})" if name else site_id for site_id, name in rows.fetchall()}


def build_info(con: duckdb.DuckDBPyConnection) -> dict:
    """The one row of marts.build_info (when the warehouse was built, by which run, its verdict)."""
    frame = _records(con, "select * from marts.build_info", {})
    if frame.empty:
        return {}
    return {key: (None if _is_missing(value) else value) for key, value in frame.iloc[0].to_dict().items()}


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and dicts
        return False


GOOD_VERDICTS = {"pass", "passed"}
FAILED_VERDICTS = {"fail", "failed"}


def validation_verdict(validation: dict) -> str:
    return str(validation.get("verdict") or "unknown").lower()


def validation_report(validation: dict, layout: config.DataLayout) -> Path | None:
    """The HTML report of the last validation (``paths.report`` of the summary), or None."""
    paths = validation.get("paths") if isinstance(validation.get("paths"), dict) else {}
    report = validation.get("report_html") or paths.get("report")
    if not report:
        return None
    path = Path(str(report))
    return path if path.is_absolute() else layout.root / path


def latest_validation(layout: config.DataLayout | None = None) -> dict:
    """The validation summary of the last pipeline run (``reports/latest.json``), or {} when none."""
    path = (layout or config.layout()).reports / "latest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("Cannot read the validation summary %s: %s", path, error)
        return {"verdict": "unreadable", "error": str(error)}
