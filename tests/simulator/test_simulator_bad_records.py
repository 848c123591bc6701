"""Deliberately bad records: each kind is served as described, the ground truth stays true, filters cope."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import requests
from letsjobit.simulator import SimulatorConfig, data
from letsjobit.simulator.bad_record_kinds import (
    BAD_RECORD_KIND_NAMES,
    BAD_RECORD_KINDS,
    MISSING,
    bad_record_kind,
    locate,
)
from letsjobit.simulator.data import UNKNOWN_FIELDS, generate_visits

from tests.conftest import TEST_ANCHOR_DATE
from tests.simulator.helpers import fetch_all, get

# Fields a kind may change besides its own and its context, to keep to one contradiction per visit.
SETTLED_WITH = {"closed_and_skipped": {"closeDate"}, "closed_without_close_date": {"skipped"}}


def strictly(value, expected) -> bool:
    return type(value) is type(expected) and value == expected


def without(items: list, predicate) -> list:
    """``items`` less its first element matching ``predicate`` (the list must hold one)."""
    position = next(i for i, item in enumerate(items) if predicate(item))
    return items[:position] + items[position + 1 :]


def assert_lines_carry(kind, served_lines: list, clean_lines: list) -> None:
    """The served lines are the clean ones plus exactly the kind's change (a line of its own if none)."""
    if kind.placement == "line":
        assert without(served_lines, lambda line: strictly(line, kind.value)) == clean_lines
        return
    if not clean_lines:  # the kind brought a line of its own, no action item, so totalJobs still holds
        assert len(served_lines) == 1 and served_lines[0]["actionItem"] is False
        line = served_lines[0]
        if kind.placement == "line_field":
            assert strictly(line[kind.field], kind.value)
        elif kind.placement == "extra":
            assert line["extraData"] == [kind.value]
        else:
            assert len(line["extraData"]) == 1 and strictly(line["extraData"][0][kind.field], kind.value)
        return
    changed = [i for i, (a, b) in enumerate(zip(served_lines, clean_lines, strict=True)) if a != b]
    assert len(changed) == 1
    served, clean = served_lines[changed[0]], clean_lines[changed[0]]
    if kind.placement == "line_field":
        assert {name for name in served.keys() | clean.keys() if served.get(name) != clean.get(name)} == {
            kind.field
        }
        assert strictly(served[kind.field], kind.value)
        return
    assert {name for name in served.keys() | clean.keys() if served.get(name) != clean.get(name)} == {
        "extraData"
    }
    if kind.placement == "extra":
        assert without(served["extraData"], lambda entry: strictly(entry, kind.value)) == (
            clean["extraData"] or []
        )
    else:  # extra_field: one more entry, at the end, carrying the bad field
        assert served["extraData"][:-1] == (clean["extraData"] or [])
        assert strictly(served["extraData"][-1][kind.field], kind.value)


@pytest.mark.parametrize("kind", BAD_RECORD_KINDS, ids=lambda kind: kind.name)
def test_each_kind_is_served_as_described_and_changes_nothing_else(simulator_factory, kind):
    sim = simulator_factory(visits=60, bad_record_rate=1.0, bad_record_kinds=(kind.name,))
    clean = generate_visits(60, seed=7, anchor_date=TEST_ANCHOR_DATE)

    served, _ = fetch_all(sim)

    assert sim.store.bad_records == {data.record_key(visit): kind.name for visit in served}
    for visit, twin in zip(served, clean, strict=True):
        if kind.placement == "visit":
            for name, value in ((kind.field, kind.value), *kind.context):
                assert (name not in visit) if value is MISSING else strictly(visit[name], value)
            changed = {name for name in visit.keys() | twin.keys() if visit.get(name) != twin.get(name)}
            allowed = {kind.field, *(name for name, _ in kind.context), *SETTLED_WITH.get(kind.name, ())}
            assert changed <= allowed, (visit.get("_id"), changed)
        else:
            assert {n: v for n, v in visit.items() if n != "lines"} == {
                n: v for n, v in twin.items() if n != "lines"
            }
            assert_lines_carry(kind, visit["lines"], twin.get("lines", []))


def test_visits_without_bad_values_or_unknown_fields_are_those_of_the_clean_data():
    clean = generate_visits(3000, seed=7, anchor_date=TEST_ANCHOR_DATE)
    bad: dict[str, str] = {}
    spoiled = generate_visits(
        3000, seed=7, anchor_date=TEST_ANCHOR_DATE, bad_rate=0.1, unknown_field_rate=0.05, bad_log=bad
    )
    unknown = {level: {name for name, _ in fields} for level, fields in UNKNOWN_FIELDS.items()}

    def strip(visit: dict) -> dict:
        visit = {n: v for n, v in visit.items() if n not in unknown["visits"]}
        if "lines" in visit:
            visit["lines"] = [
                {
                    **{n: v for n, v in line.items() if n not in unknown["visit_lines"]},
                    "extraData": None
                    if line["extraData"] is None
                    else [
                        {n: v for n, v in e.items() if n not in unknown["line_extra_data"]}
                        for e in line["extraData"]
                    ],
                }
                for line in visit["lines"]
            ]
        return visit

    assert 200 < len(bad) < 400
    kept = [strip(v) for v in spoiled if data.record_key(v) not in bad]
    assert kept == [v for v, s in zip(clean, spoiled, strict=True) if data.record_key(s) not in bad]
    assert any(strip(v) != v for v in spoiled)  # the unknown fields were there to strip


def test_bad_values_and_unknown_fields_are_deterministic_and_prefix_stable():
    spoiling = {"bad_rate": 0.2, "unknown_field_rate": 0.1}
    whole_log: dict[str, str] = {}
    whole = generate_visits(3000, seed=7, anchor_date=TEST_ANCHOR_DATE, bad_log=whole_log, **spoiling)
    part_log: dict[str, str] = {}
    part = generate_visits(
        700, seed=7, anchor_date=TEST_ANCHOR_DATE, start=1900, bad_log=part_log, **spoiling
    )

    assert generate_visits(1200, seed=7, anchor_date=TEST_ANCHOR_DATE, **spoiling) == whole[:1200]
    assert part == whole[1900:2600]
    keys = {data.record_key(v) for v in part}
    assert part_log == {key: kind for key, kind in whole_log.items() if key in keys}


def test_a_subset_of_kinds_draws_only_those_and_all_kinds_occur_by_default():
    chosen = ("missing_id", "rating_six")
    subset: dict[str, str] = {}
    every: dict[str, str] = {}

    generate_visits(600, seed=7, anchor_date=TEST_ANCHOR_DATE, bad_rate=0.5, bad_kinds=chosen, bad_log=subset)
    generate_visits(3000, seed=7, anchor_date=TEST_ANCHOR_DATE, bad_rate=0.5, bad_log=every)

    assert set(subset.values()) == set(chosen)
    assert set(every.values()) == set(BAD_RECORD_KIND_NAMES)
    with pytest.raises(ValueError, match="unknown bad record kind 'nope'.*rating_six"):
        generate_visits(10, seed=7, anchor_date=TEST_ANCHOR_DATE, bad_rate=0.5, bad_kinds=["nope"])


def test_unknown_fields_come_at_every_level_at_about_their_rate():
    visits = generate_visits(3000, seed=7, anchor_date=TEST_ANCHOR_DATE, unknown_field_rate=0.1)
    names = {level: {name for name, _ in fields} for level, fields in UNKNOWN_FIELDS.items()}
    lines = [line for v in visits for line in v.get("lines", [])]
    entries = [e for line in lines for e in line["extraData"] or []]

    for level, records in (("visits", visits), ("visit_lines", lines), ("line_extra_data", entries)):
        share = sum(bool(names[level] & record.keys()) for record in records) / len(records)
        assert 0.07 < share < 0.13, (level, share)


def test_a_record_served_without_id_is_reachable_by_its_erp_id(simulator_factory):
    sim = simulator_factory(visits=80, bad_record_rate=0.3, bad_record_kinds=("missing_id",))
    erp_id = next(iter(sim.store.bad_records))

    listed, _ = fetch_all(sim)
    single = get(sim, f"/visits/{erp_id}")
    by_filter = get(sim, params={"id": erp_id}).json()["data"]
    put = requests.put(
        f"{sim.base_url}/visits/{erp_id}",
        json={"obs": "gate code changed"},
        headers={"Authorization": f"Bearer {sim.api_key}"},
        timeout=10,
    )
    after_put = sim.store.get(erp_id)
    deleted = requests.delete(
        f"{sim.base_url}/visits/{erp_id}", headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=10
    )

    without_id = [v for v in listed if "_id" not in v]
    assert {str(v["id"]) for v in without_id} == set(sim.store.bad_records) | {erp_id}
    assert single.status_code == 200 and "_id" not in single.json()["data"][0]
    assert [str(v["id"]) for v in by_filter] == [erp_id]
    assert put.status_code == 200 and after_put["obs"] == "gate code changed" and "_id" not in after_put
    assert deleted.status_code == 200
    assert erp_id not in sim.store.bad_records and sim.store.get(erp_id) is None


def test_filters_treat_bad_values_as_the_stored_text_and_numbers(simulator_factory):
    kinds = ("impossible_date", "missing_date", "flag_not_a_flag", "priority_out_of_range", "priority_zero")
    sim = simulator_factory(visits=400, bad_record_rate=0.3, bad_record_kinds=kinds, rate_limit=0)
    by_kind: dict[str, set[str]] = {}
    for key, kind in sim.store.bad_records.items():
        by_kind.setdefault(kind, set()).add(key)
    first = TEST_ANCHOR_DATE - timedelta(days=sim.config.days)
    days = [first + timedelta(days=n) for n in range(sim.config.days + sim.config.days_ahead + 1)]

    def keys(params) -> set[str]:
        return {data.record_key(v) for v in fetch_all(sim, params)[0]}

    dated = set().union(*(keys({"date": day.isoformat()}) for day in days))

    undated = by_kind["impossible_date"] | by_kind["missing_date"]
    assert dated == set(sim.store.ids()) - undated  # no date= listing returns them: only a full run sees them
    assert not by_kind["flag_not_a_flag"] & keys({"closed": 1})
    assert by_kind["flag_not_a_flag"] <= keys({"closed": 0})  # "maybe" is not 1
    assert by_kind["priority_out_of_range"] <= keys({"priority": 42})
    assert by_kind["priority_zero"] <= keys({"priority": 0})


def test_drift_on_bad_records_does_not_crash_and_keeps_the_ground_truth_true(simulator_factory):
    sim = simulator_factory(visits=300, bad_record_rate=1.0, unknown_field_rate=0.2)
    generated = dict(sim.store.bad_records)

    done = sim.store.mutate(updates=400, deletes=30, inserts=20)

    assert not set(done["deleted"]) & set(sim.store.bad_records)
    for key in sim.store.ids():
        visit = sim.store.get(key)
        carries = key in generated and locate(bad_record_kind(generated[key]), visit) is not None
        assert (key in sim.store.bad_records) == carries, (key, generated.get(key))
    repaired = set(generated) - set(sim.store.bad_records) - set(done["deleted"])
    # Drift closes open visits (with a rating), re-rates closed ones and reschedules: only these repair.
    repairable = {kind.name for kind in BAD_RECORD_KINDS if kind.field in ("signeeRating", "date", "closed")}
    assert repaired and {generated[key] for key in repaired} <= repairable


def test_bad_records_endpoint_and_truth_carry_the_ground_truth_with_outcomes(simulator_factory):
    sim = simulator_factory(visits=300, bad_record_rate=0.2)
    admin = sim.root_url + "/_sim/"

    listed = requests.get(admin + "bad_records", timeout=10).json()
    truth = requests.get(admin + "truth", timeout=10).json()

    assert listed["data"] == {
        key: bad_record_kind(kind).outcome() for key, kind in sim.store.bad_records.items()
    }
    assert listed["meta"]["totalRecords"] == len(sim.store.bad_records) > 0
    assert listed["meta"]["kinds"] == dict(Counter(sim.store.bad_records.values()))
    assert truth["meta"]["bad_records"] == sim.store.bad_records
    assert truth["meta"]["version"] == listed["meta"]["version"] == sim.store.version
    assert truth["data"] == sim.store.snapshot()
    outcome = next(iter(listed["data"].values()))
    assert outcome["check"] == bad_record_kind(outcome["kind"]).check


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bad_record_rate": 1.5}, "bad_record_rate must be between 0 and 1"),
        ({"unknown_field_rate": -0.1}, "unknown_field_rate must be between 0 and 1"),
        ({"bad_record_kinds": ("rating_six", "nope")}, "unknown bad record kind 'nope'"),
        ({"bad_record_kinds": ()}, "at least one kind"),
    ],
)
def test_invalid_bad_record_settings_are_refused_naming_them(settings, message):
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(**settings)
