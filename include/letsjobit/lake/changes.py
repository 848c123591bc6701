"""What a run changed in the published lake: visits added, updated and removed, by ``visit_id``.

A visit's fingerprint is an MD5 over its ``visits`` row and its ``visit_lines`` and ``line_extra_data``
rows, every column but ``run_id`` and ``fetched_at`` (which change on every re-read although the visit
did not). ``modifieddAt`` alone was not enough: a source may change a record without stamping it (the
simulator's own tests do), and it would not say whether the change reached the lake. A visit whose date
moved is *updated* (and counted as moved); one that left the lake is *removed*: deleted at the source,
or rescheduled to a date the run did not re-read (it comes back with the run that reads its new date).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import duckdb

from letsjobit import config
from letsjobit.lake import schema, tables

# Bookkeeping columns of every lake table: a re-read sets them anew without the visit changing.
RUN_COLUMNS = ("run_id", "fetched_at")


@dataclass(frozen=True)
class VisitState:
    visit_date: date
    fingerprint: str


def snapshot(layout: config.DataLayout) -> dict[str, VisitState]:
    """Every published visit's date and content fingerprint (the three tables at one publication)."""
    versions = tables.published_versions(layout)
    if versions["visits"] is None:
        return {}
    children = [
        f"{table} as (select visit_id, string_agg(r::varchar, '|' order by {order}) as rows_text "
        f"from (select * exclude ({', '.join(RUN_COLUMNS)}) from lake_{table}) r group by visit_id)"
        for table, order in (("visit_lines", "line_index"), ("line_extra_data", "line_index, extra_index"))
    ]
    query = f"""
        with visits as (
            select visit_id, visit_date, v::varchar as row_text
            from (select * exclude ({", ".join(RUN_COLUMNS)}) from lake_visits) v
        ),
        {", ".join(children)}
        select visit_id, visit_date, md5(
            row_text
            || '|' || coalesce(visit_lines.rows_text, '')
            || '|' || coalesce(line_extra_data.rows_text, '')
        )
        from visits
        left join visit_lines using (visit_id)
        left join line_extra_data using (visit_id)
    """
    with duckdb.connect() as con:
        for table in schema.TABLES:
            con.register(f"lake_{table}", tables.dataset(layout, table, versions))
        rows = con.execute(query).fetchall()
    return {visit_id: VisitState(visit_date, fingerprint) for visit_id, visit_date, fingerprint in rows}


@dataclass
class LakeChanges:
    """Visits added, updated (``moved``: their date changed) and removed between two snapshots."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    # (visit date, "added" | "updated" | "removed") -> visits; a moved visit counts on its new date.
    by_date: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return len(self.added) + len(self.updated) + len(self.removed)

    def dates(self) -> list[date]:
        return sorted({day for day, _ in self.by_date})


def compare(before: dict[str, VisitState], after: dict[str, VisitState]) -> LakeChanges:
    changes = LakeChanges()
    for visit_id, state in after.items():
        old = before.get(visit_id)
        if old is None:
            changes.added.append(visit_id)
            changes.by_date[state.visit_date, "added"] += 1
        elif old.fingerprint != state.fingerprint:
            changes.updated.append(visit_id)
            changes.by_date[state.visit_date, "updated"] += 1
            if old.visit_date != state.visit_date:
                changes.moved.append(visit_id)
        else:
            changes.unchanged += 1
    for visit_id, state in before.items():
        if visit_id not in after:
            changes.removed.append(visit_id)
            changes.by_date[state.visit_date, "removed"] += 1
    for ids in (changes.added, changes.updated, changes.moved, changes.removed):
        ids.sort()
    return changes
