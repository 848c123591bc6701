"""The validation gate's thresholds have one default: the library, the DAG's config and the docs agree."""

from __future__ import annotations

from letsjobit import config
from letsjobit.quality import audit, suites


def test_the_dag_and_the_library_take_shares_over_the_same_default_floor(monkeypatch):
    monkeypatch.delenv("LETSJOBIT_GATE_MIN_ROWS", raising=False)

    assert config.gate_min_rows() == audit.Thresholds().min_rows == suites.DEFAULT_MIN_ROWS


def test_the_floor_can_be_set_or_turned_off_from_the_environment(monkeypatch):
    monkeypatch.setenv("LETSJOBIT_GATE_MIN_ROWS", "250")
    assert config.gate_min_rows() == 250
    monkeypatch.setenv("LETSJOBIT_GATE_MIN_ROWS", "0")
    assert config.gate_min_rows() == 0


def test_every_field_and_record_check_has_an_action_and_only_unknown_values_never_fail():
    never_fail = {name for name, check in suites.ISSUE_CHECKS.items() if check.threshold is None}

    assert never_fail == set(suites.UNKNOWN_VALUE_CHECKS)
    for check in suites.ISSUE_CHECKS.values():
        assert check.severity in (suites.Severity.FIELD, suites.Severity.RECORD), check.name
        assert check.api_field, check.name
        assert check.action is not suites.Action.QUARANTINED or check.severity is suites.Severity.RECORD
    assert all(c.action is None for c in suites.ALL_CHECKS.values() if c.severity is suites.Severity.CONTRACT)


def test_every_schema_field_has_a_parses_check_except_the_visit_date():
    from letsjobit.lake import schema

    expected = {
        f"{table}.{f.column}_parses"
        for table, fields in (
            ("visits", schema.VISIT_FIELDS),
            ("visit_lines", schema.LINE_FIELDS),
            ("line_extra_data", schema.EXTRA_DATA_FIELDS),
        )
        for f in fields
    } - {"visits.visit_date_parses"}

    assert {name for name in suites.ALL_CHECKS if name.endswith("_parses")} == expected
    assert "visits.date_valid" in suites.ALL_CHECKS
