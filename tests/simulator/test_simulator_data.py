"""The generated visits: deterministic, realistic relationships, and every messy encoding the reference shows."""

from __future__ import annotations

import base64
from collections import Counter
from datetime import date, timedelta

import pytest
from letsjobit.simulator.bad_record_kinds import BAD_RECORD_KINDS
from letsjobit.simulator.data import generate_visits, iter_visit_chunks, record_key

from tests.simulator.helpers import is_true

ANCHOR = date(2026, 11, 1)


@pytest.fixture(scope="module")
def visits() -> list[dict]:
    return generate_visits(3000, seed=7, anchor_date=ANCHOR)


def test_same_inputs_give_the_same_visits_and_a_larger_set_extends_a_smaller_one(visits):
    assert generate_visits(1200, seed=7, anchor_date=ANCHOR) == visits[:1200]
    assert generate_visits(700, seed=7, anchor_date=ANCHOR, start=1900) == visits[1900:2600]
    assert generate_visits(50, seed=8, anchor_date=ANCHOR) != visits[:50]


def test_ids_are_unique(visits):
    assert len({v["_id"] for v in visits}) == len(visits)
    assert len({str(v["id"]) for v in visits}) == len(visits)


def test_dates_fall_in_the_configured_range_around_the_anchor(visits):
    days = {date.fromisoformat(v["date"]) for v in visits}
    assert min(days) >= ANCHOR - timedelta(days=60)
    assert max(days) <= ANCHOR + timedelta(days=14)
    assert len(days) == 75
    narrow = generate_visits(300, seed=7, anchor_date=ANCHOR, days=3, days_ahead=0)
    assert {v["date"] for v in narrow} <= {(ANCHOR - timedelta(days=d)).isoformat() for d in range(4)}


def test_statuses_are_consistent(visits):
    for visit in visits:
        closed, skipped = is_true(visit["closed"]), is_true(visit["skipped"])
        assert not (closed and skipped), visit["_id"]
        if closed:
            assert visit["closeDate"] >= visit["createdAt"][:16], visit["_id"]
            assert visit["signature"]
        else:
            assert "closeDate" not in visit
        if skipped:
            assert str(visit["skippedReasonId"]) in {"1", "2", "3", "4", "5", "6"}
        if date.fromisoformat(visit["date"]) > ANCHOR:
            assert not closed and not skipped and not is_true(visit["inProgress"])
        assert visit["modifieddAt"] >= visit["createdAt"]
        lines = visit.get("lines") or []
        assert visit["totalJobs"] == sum(1 for line in lines if is_true(line["actionItem"]))
    closed_share = sum(is_true(v["closed"]) for v in visits) / len(visits)
    assert 0.5 < closed_share < 0.85


def test_the_messy_encodings_of_the_reference_all_occur(visits):
    def kinds(field):
        return Counter(
            "missing" if field not in v else f"{type(v[field]).__name__}:{v[field]!r}"[:12] for v in visits
        )

    closed = kinds("closed")
    assert {"bool:True", "bool:False", "int:1", "int:0", "str:'1'", "str:'0'"} <= set(closed)
    assert {type(v["priority"]) for v in visits} == {str, int}
    ratings = {(type(v.get("signeeRating")).__name__, v.get("signeeRating")) for v in visits}
    assert {("str", "5"), ("int", 5), ("str", "0"), ("int", 0), ("str", ""), ("NoneType", None)} <= ratings
    assert {type(v["siteId"]) for v in visits} == {str, int}
    assert {type(v["subContractorIds"]).__name__ for v in visits} == {"list", "str", "NoneType"}
    assert any("," in v["subContractorIds"] for v in visits if isinstance(v["subContractorIds"], str))
    assert any("lines" not in v for v in visits)
    assert any(line["extraData"] is None for v in visits for line in v.get("lines", []))
    assert any("\r\n" in v["obs"] for v in visits)
    assert any(not v["obs"].isascii() for v in visits) and any(not v["name"].isascii() for v in visits)
    assert all("modifieddAt" in v for v in visits)
    assert {type(v["id"]) for v in visits} == {int, str}
    signature = next(v["signature"] for v in visits if v.get("signature"))
    assert base64.b64decode(signature, validate=True)
    assert all(v["territory"].split("-")[0].isupper() for v in visits)


def test_extra_data_uses_the_documented_types_and_some_values_parse_as_numbers(visits):
    extras = [e for v in visits for line in v.get("lines", []) for e in (line["extraData"] or [])]
    assert {e["type"] for e in extras} == {"text", "date", "number", "email", "color", "range", "select"}
    assert all(e["caption"] and e["name"] for e in extras)
    values = [e["value"] for e in extras if "value" in e]
    assert any(isinstance(value, str) and value.replace(".", "", 1).isdigit() for value in values)
    assert any(isinstance(value, float | int) for value in values)
    per_line = Counter(len(line["extraData"] or []) for v in visits for line in v.get("lines", []))
    assert set(per_line) == {0, 1, 2, 3, 4}
    assert set(Counter(len(v.get("lines", [])) for v in visits)) == {0, 1, 2, 3, 4, 5}


def test_bad_records_only_when_asked_and_logged(visits):
    bad: dict[str, str] = {}
    spoiled = generate_visits(3000, seed=7, anchor_date=ANCHOR, bad_rate=0.05, bad_log=bad)

    assert 80 < len(bad) < 230
    assert set(bad.values()) <= {kind.name for kind in BAD_RECORD_KINDS}
    by_key = {record_key(v): v for v in spoiled}
    rating_9 = [key for key, kind in bad.items() if kind == "rating_out_of_range"]
    assert rating_9 and all(by_key[key]["signeeRating"] == 9 for key in rating_9)
    good_ids = [v["_id"] for v in spoiled if record_key(v) not in bad]
    assert [by_key[vid] for vid in good_ids] == [v for v in visits if v["_id"] in set(good_ids)]
    assert generate_visits(3000, seed=7, anchor_date=ANCHOR, bad_rate=0.0, unknown_field_rate=0.0) == visits


def test_chunks_concatenate_to_the_whole_sequence(visits):
    chunks = list(iter_visit_chunks(2500, seed=7, anchor_date=ANCHOR, chunk=1000))

    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert [v for c in chunks for v in c] == visits[:2500]
