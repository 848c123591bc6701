"""docs/quality.md's policy table says what suites.py does: every check, its severity, action and threshold."""

from __future__ import annotations

import re

from letsjobit import config
from letsjobit.quality import suites

DOC = config.PROJECT_ROOT / "docs" / "quality.md"


def policy_rows() -> dict[str, list[str]]:
    """The policy table's rows by the check each names first."""
    text = DOC.read_text()
    table = text[text.index("## The policy table") : text.index("## Where each check runs")]
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        rows[re.match(r"`([^`]+)`", cells[0]).group(1)] = cells
    return rows


def threshold_text(threshold: float | None) -> str:
    return "none" if threshold is None else f"{threshold:.0%}"


def test_every_field_and_record_check_is_in_the_policy_table_as_the_code_has_it():
    rows = policy_rows()

    for name, check in suites.ISSUE_CHECKS.items():
        key = "<table>.<column>_parses" if name in {c.name for c in suites.PARSE_CHECKS.values()} else name
        assert key in rows, f"{name} is not in {DOC.name}"
        _, severity, value, _, threshold = rows[key]
        assert severity == check.severity.value, name
        assert threshold == threshold_text(check.threshold), name
        if check.severity is suites.Severity.FIELD:
            assert f"(`{check.action.value}`)" in value, name


def test_every_check_the_table_names_exists():
    named = set(policy_rows())

    assert {name for name in named if "<" not in name} <= set(suites.ALL_CHECKS)
    assert {name for name in named if "<" in name} == {
        "<table>.<column>_parses", "schema.<table>", "<table>.quarantine_share",
    }  # fmt: skip
