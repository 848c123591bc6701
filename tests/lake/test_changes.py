"""lake_changes: visits added, updated (moved), removed between two snapshots of a real parquet lake."""

from __future__ import annotations

from datetime import UTC, date, datetime

from letsjobit import config
from letsjobit.lake import changes as lake_changes

from tests.warehouse import lakes

DAY1, DAY2, DAY3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)


def _first_lake(layout):
    a, b, c, d = (lakes.visit(vid, DAY1) for vid in ("va", "vb", "vc", "vd"))
    e = lakes.visit("ve", DAY2)
    lines = [lakes.line(a, 0), lakes.line(b, 0)]
    extra = [lakes.extra_field(lines[1], 0)]
    lakes.publish(layout, [a, b, c, d, e], lines, extra)
    return a, b, c, d, e, lines, extra


def test_a_re_read_that_only_sets_new_run_bookkeeping_changes_nothing(tmp_path):
    layout = config.DataLayout(tmp_path)
    a, b, c, d, e, lines, extra = _first_lake(layout)
    before = lake_changes.snapshot(layout)

    again = {"run_id": "run-2", "fetched_at": datetime(2026, 11, 25, tzinfo=UTC)}
    rows = [{**row, **again} for row in (a, b, c, d)]
    lakes.publish(
        layout,
        rows,
        [{**line, **again} for line in lines],
        [{**row, **again} for row in extra],
        dates=[DAY1],
    )
    changes = lake_changes.compare(before, lake_changes.snapshot(layout))

    assert changes.total == 0 and changes.unchanged == 5


def test_added_updated_moved_and_removed_visits_are_told_apart(tmp_path):
    layout = config.DataLayout(tmp_path)
    a, b, c, d, e, lines, extra = _first_lake(layout)
    before = lake_changes.snapshot(layout)

    closed = {**a, "closed": True, "run_id": "run-2"}  # a column changed
    moved = {**d, "visit_date": DAY2}  # rescheduled to another re-read date
    new = lakes.visit("vn", DAY2)
    # Partitions DAY1 and DAY2 re-read: vc deleted at the source.
    lakes.publish(
        layout,
        [closed, b, moved, new, e],
        [lakes.line(closed, 0), lines[1]],
        [{**extra[0], "value": "2.5", "value_number": 2.5}],  # only vb's extraData changed
        dates=[DAY1, DAY2],
    )
    changes = lake_changes.compare(before, lake_changes.snapshot(layout))

    assert changes.added == ["vn"]
    assert changes.updated == ["va", "vb", "vd"]
    assert changes.moved == ["vd"]
    assert changes.removed == ["vc"]
    assert changes.unchanged == 1  # ve
    assert changes.by_date == {
        (DAY1, "updated"): 2,
        (DAY2, "updated"): 1,
        (DAY2, "added"): 1,
        (DAY1, "removed"): 1,
    }
    assert changes.dates() == [DAY1, DAY2]


def test_an_empty_lake_has_an_empty_snapshot_and_everything_after_it_is_added(tmp_path):
    layout = config.DataLayout(tmp_path)
    assert lake_changes.snapshot(layout) == {}

    lakes.publish(layout, [lakes.visit("va", DAY3)])
    changes = lake_changes.compare({}, lake_changes.snapshot(layout))

    assert changes.added == ["va"] and changes.total == 1
