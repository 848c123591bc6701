"""The test oracle: published visits, lake row counts, issue rows and extra fields from the ground truth."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
import requests
from letsjobit.simulator import data
from letsjobit.simulator.bad_record_kinds import bad_record_kind
from letsjobit.simulator.expectations import (
    StaleGroundTruth,
    expected_kpis,
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
        kind = bad_record_kind(bad[issue.key])
        assert (issue.table_name, issue.field, issue.check_name) == (kind.table, kind.field, kind.check)
        assert (issue.severity, issue.action) == (kind.severity, kind.action)
    whole = {key for key, kind in bad.items() if bad_record_kind(kind).drops == "visit"}
    assert expected.quarantined.keys() == whole
    assert len(expected.published) + len(whole) == len(truth) == len(expected.listed)
    assert expected.row_counts["visits"] == len(expected.published)
    unknown = {name for fields in data.UNKNOWN_FIELDS.values() for name, _ in fields}
    assert expected.extra_fields and all(
        fields.keys() <= unknown for fields in expected.extra_fields.values()
    )


def kpi_record(visit_id: str, day: str = "2026-11-02", **fields) -> dict:
    return {"_id": visit_id, "id": visit_id, "date": day, "driverId": "D1", "territory": "T1", **fields}


def test_the_kpi_contract_counts_every_rating_and_flag_encoding_and_contradictions_as_sent():
    records = [
        kpi_record("a", closed=1, signeeRating="5"),
        kpi_record("b", closed=True, signeeRating=4),
        kpi_record("c", closed="true", signeeRating="3"),
        kpi_record("d", closed="1", signeeRating=1),
        kpi_record("e", closed=0, skipped=True, signeeRating="0"),
        kpi_record("f", closed=False, skipped="1", signeeRating=""),
        kpi_record("g", closed="0", skipped=0, signeeRating=None),
        kpi_record("h"),  # rating and flags missing
        kpi_record("i", closed=1, signeeRating="9"),  # out of contract: unrated
        kpi_record("j", closed=1, signeeRating="4.0"),
        kpi_record("k", closed="maybe", signeeRating=4.5),  # neither a flag nor a rating
        kpi_record("l", closed=True, skipped=True, closeDate="2026-11-02 17:00"),  # counts in both
    ]

    day = expected_kpis(records, {"i": "rating_out_of_range_text"})["kpi_daily"][(date(2026, 11, 2),)]

    assert day["visits"] == 12
    assert day["closed_visits"] == 7  # a, b, c, d, i, j, l; not e, f, g, h, k ("maybe")
    assert day["skipped_visits"] == 3  # e, f, l
    assert day["rated_visits"] == 5  # a, b, c, d, j
    assert (day["promoters"], day["passives"], day["detractors"]) == (1, 2, 2)
    assert day["nps"] == pytest.approx(100 * (1 - 2) / 5)
    assert day["avg_rating"] == pytest.approx((5 + 4 + 3 + 1 + 4) / 5)
    assert day["csat"] == pytest.approx(3 / 5)
    assert (day["close_rate"], day["skip_rate"]) == (pytest.approx(7 / 12), pytest.approx(3 / 12))


def test_the_kpi_contract_times_closes_in_windows_counts_jobs_and_repeat_visits():
    equipment = [{"actionItem": True, "serialNr": " SN1 "}, {"actionItem": 0, "serialNr": ""}, "a note"]
    night = [{"earliest": 22 * 3600, "latest": 6 * 3600}]  # a window past midnight
    records = [
        kpi_record(
            "a", "2026-11-02", closed=1, siteId=100, createdAt="2026-11-01 08:00:00",
            closeDate="2026-11-02 10:00", time_windows=[{"earliest": 8 * 3600, "latest": 9 * 3600}],
            lines=equipment,
        ),
        kpi_record(
            "b", "2026-11-12", closed=1, siteId="100", createdAt="2026-11-12 08:00:00",
            closeDate="2026-11-12 23:00", time_windows=night, lines=equipment,
        ),  # the same site and serial number 10 days later: a repeat
        kpi_record("c", "2026-12-30", closed=1, siteId="100", lines=equipment),  # 48 days later: none
        kpi_record("d", "2026-11-12", closed=1, siteId=" ", lines=equipment, driverId=""),  # no site
        kpi_record("e", "2026-11-12", closed=1, closeDate=None, time_windows=night),  # no close time
        kpi_record("f", "2026-11-12", closed=0, siteId="100", lines=equipment),  # open: no equipment visit
    ]  # fmt: skip

    kpis = expected_kpis(records, {})
    first, tenth = kpis["kpi_daily"][(date(2026, 11, 2),)], kpis["kpi_daily"][(date(2026, 11, 12),)]

    assert (first["jobs"], first["jobs_per_visit"]) == (1, 1.0)  # one action line; the note is no line
    assert (first["timed_closed_visits"], first["hours_to_close_sum"]) == (1, 26.0)
    assert (first["window_checked_visits"], first["closed_within_window_visits"]) == (1, 0)  # 10:00 > 9:00
    assert (tenth["window_checked_visits"], tenth["closed_within_window_visits"]) == (1, 1)  # b at 23:00
    assert (tenth["equipment_visits"], tenth["repeat_visits"]) == (1, 1)  # b; d has no site, f is open
    assert kpis["kpi_daily"][(date(2026, 12, 30),)]["repeat_visits"] == 0
    assert first["repeat_visit_rate"] == 0.0 and tenth["repeat_visit_rate"] == 1.0
    drivers = {key[1] for key in kpis["kpi_driver_daily"]}
    assert drivers == {"D1", "(unknown)"}
    assert sum(row["visits"] for row in kpis["kpi_territory_daily"].values()) == len(records)
