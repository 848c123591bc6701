"""The test oracle: published visits, lake row counts, issue rows and extra fields from the ground truth."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
import requests

from include.letsjobit.simulator import data
from include.letsjobit.simulator.expectations import (
    StaleGroundTruth,
    expected_outcome,
    issue_sort_key,
)

LINE = {"actionItem": True, "description": "Repair - Baxi Duo-tec 28", "qty": 1, "extraData": None}
ENTRY = {"type": "number", "caption": "Pressure", "name": "pressure", "value": "2.5"}
VISITS = [
    {
        "_id": "A",
        "id": 1,
        "date": "2026-11-02",
        "signeeRating": "5",
        "travelTime": 1260,
        "lines": [{**LINE, "extraData": [ENTRY, {**ENTRY, "unit": "bar"}]}, LINE],
    },
    {"_id": "B", "id": 2, "date": "2026-11-02", "signeeRating": "9", "lines": [LINE]},
    {"id": 3, "date": "2026-11-03", "closed": True, "signature": "/9j/4AAQ", "lines": [LINE]},
    {
        "_id": "D",
        "id": 4,
        "date": "2026-11-03",
        "lines": [LINE, "Service boiler - see notes", {**LINE, "extraData": [ENTRY]}],
    },
    {"_id": "E", "id": 5, "date": "2026-02-30", "lines": [LINE]},
    {
        "_id": "F",
        "id": 6,
        "date": "2026-11-02",
        "closed": True,
        "skipped": True,
        "closeDate": "2026-11-02 17:00",
    },
    {
        "_id": "G",
        "id": 7,
        "date": "2026-11-03",
        "lines": [
            {**LINE, "extraData": [ENTRY, {"type": "signature-pad", "caption": "Sign", "name": "sign"}]}
        ],
    },
]
BAD = {
    "B": "rating_out_of_range_text",
    "3": "missing_id",
    "D": "line_not_an_object",
    "E": "impossible_date",
    "F": "closed_and_skipped",
    "G": "new_extra_data_type",
}
ROW_G = (
    "line_extra_data",
    "G",
    0,
    1,
    "type",
    "signature-pad",
    "line_extra_data.type_documented",
    "field",
    "kept",
)
ROW_D = (
    "visit_lines",
    "D",
    1,
    None,
    "lines",
    "Service boiler - see notes",
    "visit_lines.is_object",
    "record",
)
ROW_D += ("quarantined",)
ROW_3 = ("visits", None, None, None, "_id", '{"closed":true,"date":"2026-11-03","id":3}', "visits.id_present")
ROW_3 += ("record", "quarantined")


def test_a_full_run_publishes_all_but_unplaceable_visits_and_expects_one_issue_row_per_bad_record():
    expected = expected_outcome(VISITS, BAD)

    assert expected.listed == ("A", "B", "3", "D", "E", "F", "G")
    assert expected.published == {"A", "B", "D", "F", "G"}
    assert expected.quarantined == {"3": "visits.id_present", "E": "visits.date_valid"}
    # lines: A 2, B 1, D 2 (the text line is no line), G 1; entries: A 2, D 1, G 2
    assert expected.row_counts == {"visits": 5, "visit_lines": 6, "line_extra_data": 5}
    assert expected.issue_rows() == [
        ROW_G,
        ROW_D,
        ROW_3,
        ("visits", "B", None, None, "signeeRating", "9", "visits.signee_rating_in_range", "field", "nulled"),
        ("visits", "E", None, None, "date", "2026-02-30", "visits.date_valid", "record", "quarantined"),
        (
            "visits",
            "F",
            None,
            None,
            "skipped",
            '{"closed":true,"skipped":true}',
            "visits.not_closed_and_skipped",
            "field",
            "kept",
        ),
    ]
    dates = {issue.key: issue.visit_date for issue in expected.issues}
    assert dates == {
        "G": date(2026, 11, 3),
        "D": date(2026, 11, 3),
        "3": date(2026, 11, 3),
        "B": date(2026, 11, 2),
        "E": None,  # no real date: the issue lands in the null partition
        "F": date(2026, 11, 2),
    }
    assert expected.extra_fields == {
        ("visits", "A", None, None): {"travelTime": 1260},
        ("line_extra_data", "A", 0, 1): {"unit": "bar"},
    }


def test_a_window_run_never_lists_a_visit_without_a_real_date():
    expected = expected_outcome(VISITS, BAD, dates=[date(2026, 11, 3), "2026-11-04"])

    assert expected.listed == ("3", "D", "G")
    assert expected.published == {"D", "G"}
    assert expected.row_counts == {"visits": 2, "visit_lines": 3, "line_extra_data": 3}
    assert expected.issue_rows() == [ROW_G, ROW_D, ROW_3]
    with pytest.raises(ValueError, match="refuses date='2026-02-30'"):
        expected_outcome(VISITS, BAD, dates=["2026-02-30"])


def test_the_oracle_refuses_ground_truth_that_no_longer_matches_the_visits():
    repaired = [{**v, "signeeRating": "4"} if v.get("_id") == "B" else v for v in VISITS]

    with pytest.raises(StaleGroundTruth, match="visit B no longer carries .*rating_out_of_range_text"):
        expected_outcome(repaired, BAD)
    with pytest.raises(StaleGroundTruth, match="visit 3 is served without _id"):
        expected_outcome(VISITS, {k: v for k, v in BAD.items() if k != "3"})


def test_actual_rows_sort_like_the_expected_ones_with_nulls_first():
    rows = [ROW_3, ROW_D, ROW_G, ("visits", "B", *ROW_3[2:])]

    assert sorted(rows, key=issue_sort_key) == [ROW_G, ROW_D, ROW_3, ("visits", "B", *ROW_3[2:])]


def test_on_served_data_every_bad_record_has_its_kinds_outcome_and_clean_visits_none(simulator_factory):
    sim = simulator_factory(visits=1000, bad_record_rate=0.4, unknown_field_rate=0.1)
    answer = requests.get(sim.root_url + "/_sim/truth", timeout=10).json()
    outcomes = requests.get(sim.root_url + "/_sim/bad_records", timeout=10).json()["data"]
    truth, bad = answer["data"], answer["meta"]["bad_records"]

    expected = expected_outcome(truth, bad)

    assert expected_outcome(truth, outcomes) == expected  # the endpoint's outcomes work as ground truth
    assert Counter(issue.key for issue in expected.issues) == Counter(set(bad))  # one row each, none else
    for issue in expected.issues:
        kind = data.bad_record_kind(bad[issue.key])
        assert (issue.table_name, issue.field, issue.check_name) == (kind.table, kind.field, kind.check)
        assert (issue.severity, issue.action) == (kind.severity, kind.action)
    whole = {key for key, kind in bad.items() if data.bad_record_kind(kind).drops == "visit"}
    assert expected.quarantined.keys() == whole
    assert len(expected.published) + len(whole) == len(truth) == len(expected.listed)
    assert expected.row_counts["visits"] == len(expected.published)
    unknown = {name for fields in data.UNKNOWN_FIELDS.values() for name, _ in fields}
    assert expected.extra_fields and all(
        fields.keys() <= unknown for fields in expected.extra_fields.values()
    )
