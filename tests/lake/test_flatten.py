"""Flattening raw pages into the three lake tables and the issues the flattener records."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from datetime import date, datetime

import orjson
import pytest
from letsjobit.lake import coerce, flatten, schema
from letsjobit.quality import suites

from tests.lake.conftest import FETCHED_AT, REFERENCE_LINE, raw_page, reference_visit


def flat(*pages, key=None) -> flatten.FlatBatch:
    return flatten.flatten_pages(list(pages), "run-1", pseudonymise_key=key)


def issues_of(batch: flatten.FlatBatch) -> list[dict]:
    return batch.issues.to_pylist()


def issue_view(issue: dict) -> tuple:
    """What an issue row says about the problem: where, which field, what was sent, which check, what happened."""
    return (
        issue["table_name"], issue["visit_id"], issue["line_index"], issue["extra_index"], issue["field"],
        issue["raw_value"], issue["check_name"], issue["severity"], issue["action"],
    )  # fmt: skip


def test_the_reference_example_visit_lands_every_field_in_its_column_with_its_type():
    batch = flat(raw_page([reference_visit()], offset=200))

    assert batch.visits.schema == schema.VISITS
    (visit,) = batch.visits.to_pylist()
    assert visit == {
        "visit_id": "yKQhJZ9B7PTT85kWc",
        "erp_id": "10816703",
        "driver_id": "FEn9BJz93svSNPx7p",
        "driver_name": "Liam",
        "visit_date": date(2020, 3, 31),
        "total_jobs": 1,
        "doc_type": "CALL OUT",
        "doc_no": "H-017623",
        "service_order": 3,
        "customer": "The Green Sleeve",
        "site_id": "30101308",
        "lat": 57.0,
        "lng": -2.0,
        "site": "The Green Sleeve",
        "address": "999 West High Street",
        "post_code": "AB51 3QR",
        "city": "INVERURIE",
        "obs": "Contact Info: The Green Sleeve, John: 01999999999 \r\n AQUARIUS TONE7/3 2001 - Side of the shop"
        "\r\nAccess 9am - 5.30pm\r\nNo parking onsite ",
        "contact_person": "John",
        "contact_phone": "01999999999",
        "email_mandatory": True,
        "priority": 3,
        "show_items_on_order_section": True,
        "hide_equipment_details": False,
        "hide_delivery_items_section": False,
        "signee_name": "John",
        "signee_email": "john@email.com",
        "sub_contractor_ids": ["My Subcontractor"],
        "territory": "AB-Aberdeen",
        "use_start_pause_stop_style_buttons_in_jobs": True,
        "in_mobile_app": True,
        "nps_mandatory": True,
        "precedence_priority_visit": False,
        "close_visit_on_last_job_close": False,
        "country": "GB",
        "company_id": "LPeaJNaLQT6RqcFdt",
        "time_windows": [{"earliest": 30600, "latest": 64800}],
        "required_skills": ["Plumber", "Hot water technician", "Installer"],
        "allowed_vehicles": [],
        "confirm_close": True,
        "in_progress": False,
        "closed": True,
        "skipped": False,
        "geocoding": None,
        "show_discount_and_bonus_on_items_on_order": False,
        "duration": 2100,
        "created_at": datetime(2020, 3, 9, 15, 48, 17),
        "created_user": "API",
        "has_changes_to_sync": False,
        "modified_at": datetime(2020, 3, 24, 15, 45, 38),
        "modify_user": "2pjP3L3S8JtZhLPoN",
        "servicing": False,
        "signee_rating": 5,
        "app_client_version": "1.7.163",
        "close_date": datetime(2020, 3, 24, 15, 45),
        "skipped_reason_id": "",
        "has_signature": True,
        "line_count": 1,
        "extra_fields": None,
        "run_id": "run-1",
        "fetched_at": FETCHED_AT,
    }
    assert "signature" not in batch.visits.schema.names
    assert issues_of(batch) == []


def test_the_documented_line_and_extra_data_fields_land_typed():
    batch = flat(raw_page([reference_visit()]))

    assert batch.visit_lines.schema == schema.VISIT_LINES
    assert batch.line_extra_data.schema == schema.LINE_EXTRA_DATA
    (line,) = batch.visit_lines.to_pylist()
    assert line == {
        "visit_id": "yKQhJZ9B7PTT85kWc", "line_index": 0, "visit_date": date(2020, 3, 31),
        "action_item": True, "allow_rebrand": False, "brand": "Aquarius", "brand_id": "12",
        "description": "Annual service", "has_batch": False, "has_return": True, "line_erp_id": "555001",
        "item_id": "987", "job_type": "repair", "location": "bar 2nd floor", "model": "TONE7/3",
        "model_id": "2001", "qty": 2.0, "serial_nr": "SN-0001", "serial_nr_id": "77", "extra_data_count": 2,
        "extra_fields": None, "run_id": "run-1", "fetched_at": FETCHED_AT,
    }  # fmt: skip
    first, second = batch.line_extra_data.to_pylist()
    assert first == {
        "visit_id": "yKQhJZ9B7PTT85kWc", "line_index": 0, "extra_index": 0, "visit_date": date(2020, 3, 31),
        "name": "pressure", "caption": "Pressure (bar)", "type": "number", "description": "Read the gauge",
        "value": "1.5", "required": True, "readonly": False, "options_values": None, "options_default": None,
        "max": 10.0, "min": 0.0, "pattern": "[0-9]+([\\.,][0-9]+)?", "step": 0.1, "value_number": 1.5,
        "extra_fields": None, "run_id": "run-1", "fetched_at": FETCHED_AT,
    }  # fmt: skip
    assert (second["extra_index"], second["value"], second["value_number"]) == (1, "fixed", None)
    assert (second["options_values"], second["required"]) == ("fixed | not fixed", None)


def test_the_post_examples_string_encodings_give_the_same_values_as_native_json_types():
    native = reference_visit()
    stringly = reference_visit(
        emailMandatory="1", showItemsOnOrderSection="1", hideEquipmentDetails="0", closed="1",
        skipped="0", inProgress="0", confirmClose="1", priority=3, signeeRating=5, id="10816703",
        siteId=30101308, totalJobs="1", lat="57.000000", lng="-2", duration="2100",
    )  # fmt: skip
    native_row, stringly_row = flat(raw_page([native, stringly])).visits.to_pylist()
    assert native_row == stringly_row


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [(["A", "B"], ["A", "B"]), ("A, B", ["A", "B"]), ("A,B", ["A", "B"]), (None, None), ("", []), ([], [])],
)
def test_sub_contractors_as_a_list_or_a_comma_separated_string(encoding, expected):
    (visit,) = flat(raw_page([reference_visit(subContractorIds=encoding)])).visits.to_pylist()
    assert visit["sub_contractor_ids"] == expected


@pytest.mark.parametrize(
    ("rating", "expected"), [("5", 5), (4, 4), ("0", None), (0, None), ("", None), (9, 9)]
)
def test_signee_rating_encodings(rating, expected):
    (visit,) = flat(raw_page([reference_visit(signeeRating=rating)])).visits.to_pylist()
    assert visit["signee_rating"] == expected


def test_a_missing_signee_rating_is_null():
    visit = reference_visit()
    del visit["signeeRating"]
    (row,) = flat(raw_page([visit])).visits.to_pylist()
    assert row["signee_rating"] is None


def test_a_value_that_cannot_be_read_is_null_and_one_parses_issue_with_its_coordinates():
    line = dict(REFERENCE_LINE, qty="two", extraData=[{"name": "n", "max": "lots", "value": "3"}])
    batch = flat(raw_page([reference_visit(priority="urgent", closed="maybe", lines=[line])], offset=300))

    (visit,) = batch.visits.to_pylist()
    assert visit["priority"] is None and visit["closed"] is None
    assert (
        visit["visit_date"] == date(2020, 3, 31) and visit["customer"] == "The Green Sleeve"
    )  # the rest stays
    assert batch.visit_lines.column("qty").to_pylist() == [None]
    assert batch.line_extra_data.column("max").to_pylist() == [None]
    assert batch.line_extra_data.column("value_number").to_pylist() == [3.0]
    vid = "yKQhJZ9B7PTT85kWc"
    assert [issue_view(i) for i in issues_of(batch)] == [
        ("visits", vid, None, None, "priority", "urgent", "visits.priority_parses", "field", "nulled"),
        ("visits", vid, None, None, "closed", "maybe", "visits.closed_parses", "field", "nulled"),
        ("visit_lines", vid, 0, None, "qty", "two", "visit_lines.qty_parses", "field", "nulled"),
        ("line_extra_data", vid, 0, 0, "max", "lots", "line_extra_data.max_parses", "field", "nulled"),
    ]
    assert [i["reason"] for i in issues_of(batch)] == [
        coerce.REASON_NOT_INTEGER, coerce.REASON_NOT_BOOLEAN, coerce.REASON_NOT_NUMBER, coerce.REASON_NOT_NUMBER,
    ]  # fmt: skip
    assert all(i["page_offset"] == 300 and i["visit_date"] == date(2020, 3, 31) for i in issues_of(batch))
    assert all(i["run_id"] == "run-1" and i["fetched_at"] == FETCHED_AT for i in issues_of(batch))


@pytest.mark.parametrize(
    ("raw_date", "raw_value", "reason"),
    [
        ("2026-02-30", "2026-02-30", coerce.REASON_NOT_DATE),
        ("31/03/2020", "31/03/2020", coerce.REASON_NOT_DATE),
        ("", "", flatten.REASON_DATE_MISSING),
        (None, None, flatten.REASON_DATE_MISSING),
        ("missing", None, flatten.REASON_DATE_MISSING),
        (20200331, "20200331", coerce.REASON_NOT_DATE),
    ],
)
def test_a_visit_without_a_usable_date_is_one_date_valid_issue_and_staged_without_a_date(
    raw_date, raw_value, reason
):
    visit = reference_visit(_id="undated", date=raw_date)
    if raw_date == "missing":
        del visit["date"]
    batch = flat(raw_page([visit], offset=100))

    assert batch.visits.column("visit_date").to_pylist() == [None]
    assert batch.visit_lines.num_rows == 1  # its children land with it; the gate quarantines them together
    (issue,) = issues_of(batch)
    assert issue_view(issue) == (
        "visits", "undated", None, None, "date", raw_value, "visits.date_valid", "record", "quarantined",
    )  # fmt: skip
    assert issue["reason"] == reason


def test_an_issue_is_dated_by_its_record_else_its_listings_date_filter_else_null():
    window_page = raw_page(
        [reference_visit(_id="dated", priority="urgent", date="2026-11-02"), reference_visit(_id="bad", date="x"),
         "not a visit", reference_visit(_id=None, date="2026-11-04")],
        offset=0,
    )  # fmt: skip
    window_page["filters"] = {"date": "2026-11-03"}
    full_page = raw_page(["not a visit either"], offset=0)

    batch = flat(window_page, full_page)

    dates = {(i["check_name"], i["raw_value"][:20]): i["visit_date"] for i in issues_of(batch)}
    assert dates == {
        ("visits.priority_parses", "urgent"): date(2026, 11, 2),  # its visit's date
        ("visits.date_valid", "x"): date(2026, 11, 3),  # no date of its own: the listing's
        ("visits.is_object", "not a visit"): date(2026, 11, 3),
        ("visits.id_present", '{"NPSMandatory":true'): date(2026, 11, 4),  # the record's own date
        ("visits.is_object", "not a visit either"): None,  # a full listing has no date filter
    }


@pytest.mark.parametrize(
    ("field", "value"), [("signeeRating", 9), ("lat", 200.0), ("priority", 11), ("duration", -5)]
)
def test_coercion_keeps_out_of_domain_values_for_the_gate_to_judge(field, value):
    batch = flat(raw_page([reference_visit(**{field: value})]))
    column = {"signeeRating": "signee_rating", "lat": "lat", "priority": "priority", "duration": "duration"}[
        field
    ]
    assert batch.visits.column(column).to_pylist() == [value]
    assert issues_of(batch) == []


@pytest.mark.parametrize("lines", ["missing", None, []])
def test_a_visit_without_lines_has_a_visit_row_and_no_line_rows(lines):
    visit = (
        reference_visit()
        if lines != "missing"
        else {k: v for k, v in reference_visit().items() if k != "lines"}
    )
    if lines != "missing":
        visit["lines"] = lines
    batch = flat(raw_page([visit]))
    assert batch.visits.num_rows == 1 and batch.visits.column("line_count").to_pylist() == [0]
    assert batch.visit_lines.num_rows == 0 and batch.line_extra_data.num_rows == 0
    assert issues_of(batch) == []


@pytest.mark.parametrize("extra_data", ["missing", None, []])
def test_a_line_without_extra_data_has_a_line_row_and_no_extra_rows(extra_data):
    line = {k: v for k, v in REFERENCE_LINE.items() if k != "extraData"}
    if extra_data != "missing":
        line["extraData"] = extra_data
    batch = flat(raw_page([reference_visit(lines=[line])]))
    assert batch.visit_lines.column("extra_data_count").to_pylist() == [0]
    assert batch.line_extra_data.num_rows == 0 and issues_of(batch) == []


def test_broken_structures_are_rejected_by_page_offset_and_field_and_the_good_rows_stay():
    good = reference_visit(_id="good")
    no_id = reference_visit(_id=None)
    bad_lines = reference_visit(_id="bad-lines", lines="no lines")
    odd_line = reference_visit(_id="odd-line", lines=["not a line", dict(REFERENCE_LINE, extraData="x")])
    odd_entry = reference_visit(_id="odd-entry", lines=[dict(REFERENCE_LINE, extraData=[7, {"name": "ok"}])])
    pages = [
        raw_page([good, "not a visit", no_id, bad_lines, odd_line, odd_entry], offset=100),
        raw_page([], offset=200, data={"unexpected": "object"}),
    ]
    batch = flat(*pages)

    assert batch.visits.column("visit_id").to_pylist() == ["good", "bad-lines", "odd-line", "odd-entry"]
    assert batch.visits.column("line_count").to_pylist() == [1, 0, 1, 1]
    assert batch.visit_lines.column("visit_id").to_pylist() == ["good", "odd-line", "odd-entry"]
    assert batch.visit_lines.column("line_index").to_pylist() == [0, 1, 0]  # its position in the array
    assert batch.visit_lines.column("extra_data_count").to_pylist() == [2, 0, 1]
    assert batch.line_extra_data.column("extra_index").to_pylist() == [0, 1, 1]
    found = [(i["page_offset"], *issue_view(i)[:5], i["check_name"], i["action"]) for i in issues_of(batch)]
    assert found == [
        (100, "visits", None, None, None, "data", "visits.is_object", "quarantined"),
        (100, "visits", None, None, None, "_id", "visits.id_present", "quarantined"),
        (100, "visits", "bad-lines", None, None, "lines", "visits.lines_is_list", "quarantined"),
        (100, "visit_lines", "odd-line", 0, None, "lines", "visit_lines.is_object", "quarantined"),
        (
            100,
            "visit_lines",
            "odd-line",
            1,
            None,
            "extraData",
            "visit_lines.extra_data_is_list",
            "quarantined",
        ),
        (100, "line_extra_data", "odd-entry", 0, 0, "extraData", "line_extra_data.is_object", "quarantined"),
        (200, "visits", None, None, None, "data", "visits.data_is_list", "quarantined"),
    ]
    raw_values = [i["raw_value"] for i in issues_of(batch)]
    assert raw_values[0] == "not a visit" and raw_values[2] == "no lines" and raw_values[3] == "not a line"
    assert (raw_values[4], raw_values[5], raw_values[6]) == ("x", "7", '{"unexpected":"object"}')
    assert {i["severity"] for i in issues_of(batch)} == {"record"}
    assert [i["reason"] for i in issues_of(batch)] == [
        suites.ALL_CHECKS[i["check_name"]].description for i in issues_of(batch)
    ]
    without_id = json.loads(issues_of(batch)[1]["raw_value"])
    assert without_id["docNo"] == "H-017623" and "signature" not in without_id and "lines" not in without_id


def test_unknown_fields_are_kept_as_json_and_named_once():
    line = dict(REFERENCE_LINE, warranty={"months": 12})
    line["extraData"] = [{"name": "n", "colour": "red"}]
    visits = [reference_visit(_id=f"v{n}", newField=n, lines=[line]) for n in range(3)]
    batch = flat(raw_page(visits))

    assert batch.visits.column("extra_fields").to_pylist() == [
        '{"newField":0}',
        '{"newField":1}',
        '{"newField":2}',
    ]
    assert batch.visit_lines.column("extra_fields").to_pylist()[0] == '{"warranty":{"months":12}}'
    assert batch.line_extra_data.column("extra_fields").to_pylist()[0] == '{"colour":"red"}'
    assert batch.unknown_fields == {
        "visits": {"newField"},
        "visit_lines": {"warranty"},
        "line_extra_data": {"colour"},
    }


def test_unicode_and_crlf_survive_unchanged():
    text = "Déjà vu – Łukasz, Zoë 🙂\r\nline two\r\n"
    (visit,) = flat(raw_page([reference_visit(obs=text, customer="Crêperie ⚠")])).visits.to_pylist()
    assert (visit["obs"], visit["customer"]) == (text, "Crêperie ⚠")


def test_the_signature_blob_is_not_copied_only_flagged():
    no_signature = reference_visit(_id="a")
    del no_signature["signature"]
    batch = flat(raw_page([reference_visit(_id="s"), no_signature, reference_visit(_id="e", signature="")]))
    assert batch.visits.column("has_signature").to_pylist() == [True, False, False]
    assert all("9j" not in (value or "") for value in batch.visits.column("extra_fields").to_pylist())


def test_row_counts_agree_across_the_three_tables():
    rng = random.Random(3)
    visits = []
    for n in range(40):
        lines = [dict(REFERENCE_LINE, extraData=[{"name": f"f{k}"} for k in range(rng.randrange(5))])
                 for _ in range(rng.randrange(4))]  # fmt: skip
        visits.append(reference_visit(_id=f"v{n}", lines=lines))
    batch = flat(raw_page(visits[:25]), raw_page(visits[25:], offset=25))

    assert batch.visits.num_rows == 40
    assert sum(batch.visits.column("line_count").to_pylist()) == batch.visit_lines.num_rows
    assert sum(batch.visit_lines.column("extra_data_count").to_pylist()) == batch.line_extra_data.num_rows
    assert batch.visit_lines.num_rows == sum(len(visit["lines"]) for visit in visits)


def test_types_never_depend_on_which_record_comes_first():
    sparse = {"_id": "sparse", "date": None}  # every other field missing: nothing to infer from
    messy = reference_visit(
        _id="messy", priority="2", closed="0", siteId=123, signeeRating="", subContractorIds="A,B"
    )
    orders = [[sparse, messy, reference_visit()], [reference_visit(), messy, sparse], [sparse]]
    for visits in orders:
        batch = flat(raw_page(visits))
        assert batch.visits.schema == schema.VISITS
        assert batch.visit_lines.schema == schema.VISIT_LINES
        assert batch.line_extra_data.schema == schema.LINE_EXTRA_DATA
        assert batch.issues.schema == schema.DATA_ISSUES
    assert flatten.empty_batch("run-1").visits.schema == schema.VISITS


def test_contacts_are_pseudonymised_with_a_keyed_hash_of_the_normalised_value():
    visits = [
        reference_visit(_id="a", signeeEmail="John@Email.com ", contactPhone="01999 999-999"),
        reference_visit(
            _id="b", signeeEmail="john@email.com", contactPhone="01999999999", signeeRating={"x": 1}
        ),
        reference_visit(_id="c", signeeEmail={"not": "an email"}),
    ]
    batch = flat(raw_page(visits), key="secret-key")

    def expected(text):
        return hmac.new(b"secret-key", text.encode(), hashlib.sha256).hexdigest()

    emails = batch.visits.column("signee_email").to_pylist()
    phones = batch.visits.column("contact_phone").to_pylist()
    assert emails[:2] == [expected("john@email.com")] * 2 and emails[2] is None
    assert phones[:2] == [expected("01999999999")] * 2
    (email_issue,) = [r for r in issues_of(batch) if r["field"] == "signeeEmail"]
    assert email_issue["raw_value"] == expected('{"not":"an email"}')
    assert email_issue["check_name"] == "visits.signee_email_parses"
    everything = orjson.dumps([batch.visits.to_pylist(), issues_of(batch)], default=str).decode().lower()
    assert "john@email.com" not in everything
    assert batch.visits.column("contact_person").to_pylist()[0] == "John"  # not in PSEUDONYMISED_COLUMNS


def test_with_a_key_contacts_quoted_in_obs_are_masked_with_their_pseudonym():
    obs = (
        "Contact Info: The Green Sleeve, John: 01999 999-999 \r\n AQUARIUS TONE7/3 2001 - Side of the shop"
        "\r\nAccess 9am - 5.30pm, mail John@Email.com or +44 (0)1999 999999. Job 2020-03-24 15:45, qty 12"
    )
    visits = [
        reference_visit(_id="a", obs=obs, contactPhone="01999999999"),
        reference_visit(_id="b", obs={"n": obs}),
    ]
    batch = flat(raw_page(visits), key="secret-key")

    masked = batch.visits.column("obs").to_pylist()[0]
    phone_pseudonym = batch.visits.column("contact_phone").to_pylist()[0]
    assert f"[phone:{phone_pseudonym[:12]}]" in masked  # joinable with contact_phone
    assert masked.count("[phone:") == 2 and masked.count("[email:") == 1
    for kept in (
        "TONE7/3 2001",
        "9am - 5.30pm",
        "2020-03-24 15:45",
        "qty 12",
        "Contact Info: The Green Sleeve",
    ):
        assert kept in masked
    (obs_issue,) = [r for r in issues_of(batch) if r["field"] == "obs"]
    everything = orjson.dumps([batch.visits.to_pylist(), issues_of(batch)], default=str).decode()
    assert (
        "999-999" not in everything
        and "1999 999999" not in everything
        and "@email.com" not in everything.lower()
    )
    assert "[phone:" in obs_issue["raw_value"]


def test_with_a_key_a_visit_without_id_is_recorded_with_its_contacts_pseudonymised():
    batch = flat(raw_page([reference_visit(_id=None)]), key="secret-key")

    (issue,) = issues_of(batch)
    record = json.loads(issue["raw_value"])
    assert issue["check_name"] == "visits.id_present"
    assert record["signeeEmail"] == hmac.new(b"secret-key", b"john@email.com", hashlib.sha256).hexdigest()
    assert record["contactPhone"] == batch_of_contact("01999999999")
    assert "01999999999" not in issue["raw_value"] and "john@email.com" not in issue["raw_value"]
    assert record["docNo"] == "H-017623"  # the rest stays readable, to find the record


def batch_of_contact(phone: str) -> str:
    return hmac.new(b"secret-key", phone.encode(), hashlib.sha256).hexdigest()


def test_without_a_key_contacts_are_kept():
    (visit,) = flat(raw_page([reference_visit()])).visits.to_pylist()
    assert (visit["signee_email"], visit["contact_phone"]) == ("john@email.com", "01999999999")


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("1.5", 1.5),
        (3, 3.0),
        (2.25, 2.25),
        (" 12 ", 12.0),
        ("12,5", 12.5),
        ("1,234,5", None),
        ("fixed", None),
        (True, None),
        (None, None),
    ],
)
def test_value_number_is_the_value_when_it_parses_as_a_number(value, number):
    line = dict(REFERENCE_LINE, extraData=[{"name": "n", "value": value}])
    batch = flat(raw_page([reference_visit(lines=[line])]))
    assert batch.line_extra_data.column("value_number").to_pylist() == [number]
    assert issues_of(batch) == []


def test_a_raw_line_that_is_not_a_page_names_its_place():
    with pytest.raises(flatten.RawPageError, match=r"part-7\.jsonl\.gz:12: not JSON"):
        flatten.parse_page(b'{"offset": 0, "body": ', "part-7.jsonl.gz:12")
    with pytest.raises(flatten.RawPageError, match="fetched_at"):
        flatten.parse_page(b'{"offset": 0}', "part-7.jsonl.gz:13")
