"""Every query the dashboard runs, as functions over a read-only DuckDB connection to the warehouse.

The pages only format what these functions return, and the tests call the same functions, so what
is on screen is what is tested. The queries read the marts only (schema ``marts``).

Ratios over a date range or a group are never averages of daily ratios: each query sums the
additive counts (visits, closed_visits, rated_visits, promoters, ...) and recomputes the ratios from
the sums with the formulas in ``KPI_FROM_COUNTS``, the warehouse's own definitions (issue 6).

Where the counts come from depends on the filters. The KPI tables are the source when one answers
the filter exactly (no filter: ``kpi_daily``; territory only: ``kpi_territory_daily``; driver only:
``kpi_driver_daily``); a customer filter, or territory and driver together, need visit grain, so the
counts are then aggregated from ``fct_visits`` with the same flags the KPI tables are built from.
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

from include.letsjobit import config

log = logging.getLogger(__name__)

Dimension = Literal["territory", "driver"]
Grain = Literal["day", "week"]

# The additive counts the KPI tables carry (the contract's names), summed over any period or group.
COUNT_COLUMNS = (
    "visits",
    "closed_visits",
    "skipped_visits",
    "rated_visits",
    "promoters",
    "passives",
    "detractors",
    "rating_sum",
    "jobs",
    "window_checked_visits",
    "closed_within_window_visits",
    "timed_closed_visits",
    "hours_to_close_sum",
    "equipment_visits",
    "repeat_visits",
)
FRACTIONAL_SUMS = ("hours_to_close_sum",)


def member(column: str) -> str:
    """The warehouse's unknown_member(): an empty key counts under '(unknown)' in the KPI tables and dims."""
    return f"coalesce(nullif(trim({column}::varchar), ''), '(unknown)')"


# The same counts from visit grain (fct_visits, one row per visit), as int_kpi_measures counts them.
FACT_COUNTS = """
    count(*) as visits,
    count(*) filter (where visits.closed) as closed_visits,
    count(*) filter (where visits.skipped) as skipped_visits,
    count(*) filter (where visits.is_rated) as rated_visits,
    count(*) filter (where visits.nps_category = 'promoter') as promoters,
    count(*) filter (where visits.nps_category = 'passive') as passives,
    count(*) filter (where visits.nps_category = 'detractor') as detractors,
    coalesce(sum(visits.job_count), 0) as jobs,
    count(visits.closed_within_time_window) as window_checked_visits,
    count(*) filter (where visits.closed_within_time_window) as closed_within_window_visits,
    count(visits.hours_to_close) as timed_closed_visits,
    coalesce(sum(visits.hours_to_close), 0) as hours_to_close_sum,
    count(repeats.is_repeat_visit) as equipment_visits,
    count(*) filter (where repeats.is_repeat_visit) as repeat_visits,
    coalesce(sum(visits.signee_rating) filter (where visits.is_rated), 0) as rating_sum
"""
FACT_FROM = """
    marts.fct_visits as visits
    left join (
        select visit_id, bool_or(is_repeat_visit) as is_repeat_visit
        from marts.fct_equipment_visits
        group by visit_id
    ) as repeats on visits.visit_id = repeats.visit_id
"""

# The KPI definitions of issue 6 (as int_kpi_measures writes them), over summed counts; NULL when the
# denominator is zero.
KPI_FROM_COUNTS = """
    sum(visits)::bigint as visits,
    sum(closed_visits)::bigint as closed_visits,
    sum(skipped_visits)::bigint as skipped_visits,
    sum(rated_visits)::bigint as rated_visits,
    sum(promoters)::bigint as promoters,
    sum(passives)::bigint as passives,
    sum(detractors)::bigint as detractors,
    sum(rating_sum)::bigint as rating_sum,
    sum(jobs)::bigint as jobs,
    sum(window_checked_visits)::bigint as window_checked_visits,
    sum(closed_within_window_visits)::bigint as closed_within_window_visits,
    sum(timed_closed_visits)::bigint as timed_closed_visits,
    sum(hours_to_close_sum) as hours_to_close_sum,
    sum(equipment_visits)::bigint as equipment_visits,
    sum(repeat_visits)::bigint as repeat_visits,
    100.0 * (sum(promoters) - sum(detractors)) / nullif(sum(rated_visits), 0) as nps,
    sum(closed_visits) / nullif(sum(visits), 0) as close_rate,
    sum(skipped_visits) / nullif(sum(visits), 0) as skip_rate,
    sum(rating_sum) / nullif(sum(rated_visits), 0) as avg_rating,
    (sum(promoters) + sum(passives)) / nullif(sum(rated_visits), 0) as csat,
    sum(jobs) / nullif(sum(visits), 0) as jobs_per_visit,
    sum(closed_within_window_visits) / nullif(sum(window_checked_visits), 0) as closed_within_window_rate,
    sum(hours_to_close_sum) / nullif(sum(timed_closed_visits), 0) as avg_hours_to_close,
    sum(repeat_visits) / nullif(sum(equipment_visits), 0) as repeat_visit_rate
"""

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
# Where clauses and count sources


def _where(filters: Filters, *, visit_grain: bool) -> tuple[str, dict]:
    """Filters as a where clause; at visit grain the keys get the KPI tables' '(unknown)' label first."""
    clauses = ["visit_date between $start and $end"]
    params: dict = {"start": filters.start, "end": filters.end}
    for column, name, values in (
        ("territory", "territories", filters.territories),
        ("driver_id", "driver_ids", filters.driver_ids),
        ("site_id", "site_ids", filters.site_ids),
    ):
        if values:
            key = member(f"visits.{column}") if visit_grain else column
            clauses.append(f"list_contains(${name}, {key})")
            params[name] = list(values)
    return " and ".join(clauses), params


def count_source(filters: Filters, by: Dimension | None = None) -> tuple[str, dict, str]:
    """SQL for daily counts: visit_date, the dimension's key (if ``by``), COUNT_COLUMNS.

    Returns (sql, parameters, name of the mart it reads), choosing the KPI table that answers the
    filters exactly, or fct_visits when none does.
    """
    wants_territory = bool(filters.territories) or by == "territory"
    wants_driver = bool(filters.driver_ids) or by == "driver"
    if not filters.site_ids and not (wants_territory and wants_driver):
        if wants_territory:
            table = "kpi_territory_daily"
        elif wants_driver:
            table = "kpi_driver_daily"
        else:
            table = "kpi_daily"
        where, params = _where(filters, visit_grain=False)
        columns = ", ".join(("visit_date", *([DIMENSION_KEYS[by]] if by else []), *COUNT_COLUMNS))
        return f"select {columns} from marts.{table} where {where}", params, table
    where, params = _where(filters, visit_grain=True)
    keys = ["visits.visit_date"] + (
        [f"{member('visits.' + DIMENSION_KEYS[by])} as {DIMENSION_KEYS[by]}"] if by else []
    )
    sql = f"select {', '.join(keys)}, {FACT_COUNTS} from {FACT_FROM} where {where} group by all"
    return sql, params, "fct_visits"


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> pd.DataFrame:
    return con.execute(sql, params).df()


# ---------------------------------------------------------------------------------------------------
# Headline tiles and time series


def headline(con: duckdb.DuckDBPyConnection, filters: Filters) -> dict:
    """The KPIs of the whole period: counts and ratios recomputed from the summed counts."""
    source, params, _ = count_source(filters)
    sql = f"with counts as ({source}) select {KPI_FROM_COUNTS} from counts"
    row = _records(con, sql, params).iloc[0].to_dict()
    row = {key: (None if pd.isna(value) else value) for key, value in row.items()}
    for column in COUNT_COLUMNS:
        row[column] = row[column] or 0
        if column not in FRACTIONAL_SUMS:
            row[column] = int(row[column])
    return row


def headline_with_previous(con: duckdb.DuckDBPyConnection, filters: Filters) -> tuple[dict, dict]:
    return headline(con, filters), headline(con, filters.previous())


def kpi_series(con: duckdb.DuckDBPyConnection, filters: Filters, grain: Grain = "day") -> pd.DataFrame:
    """KPIs per day or per ISO week (Monday start) over the period, one row per period even when empty.

    A day without visits is a row with zero counts and NULL ratios, so charts show a gap, not a
    line drawn through it. Weeks are clipped to the chosen range: the first and last may be partial.
    """
    source, params, _ = count_source(filters)
    bucket = "visit_date" if grain == "day" else "date_trunc('week', visit_date)::date"
    zero_filled = ", ".join(f"coalesce(counts.{c}, 0) as {c}" for c in COUNT_COLUMNS)
    sql = f"""
        with counts as ({source}),
        calendar as (
            select unnest(generate_series($start::date, $end::date, interval 1 day))::date as visit_date
        ),
        daily as (
            select calendar.visit_date, {zero_filled}
            from calendar left join counts using (visit_date)
        )
        select {bucket} as period, {KPI_FROM_COUNTS}
        from daily
        group by all
        order by period
    """
    return _records(con, sql, params)


def kpi_by(con: duckdb.DuckDBPyConnection, filters: Filters, by: Dimension) -> pd.DataFrame:
    """KPIs per territory or per driver (with driver_name from dim_drivers) over the period.

    Only groups that had visits in the period are listed.
    """
    source, params, _ = count_source(filters, by=by)
    key = DIMENSION_KEYS[by]
    sql = f"""
        with counts as ({source}),
        grouped as (select {key}, {KPI_FROM_COUNTS} from counts group by {key})
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
        where, params = _where(filters, visit_grain=True)
        source = f"""
            select {member("visits.skipped_reason_id")} as skipped_reason_id, count(*) as skipped_visits
            from marts.fct_visits as visits where {where} and visits.skipped group by all
        """
    else:
        where, params = _where(filters, visit_grain=False)
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
    where, params = _where(filters, visit_grain=True)
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
    where, params = _where(filters, visit_grain=True)
    sql = f"select median(visits.hours_to_close) from marts.fct_visits as visits where {where}"
    (median,) = con.execute(sql, params).fetchone()
    return median


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
