"""The three dependency sets, each where it runs: runtime (the Airflow image), dashboard (its own image,
no Airflow), dev (tests, lint, benchmarks). Checked without the network: whether a lock is what uv
compiles from its .in today is `make lock`'s business; that the files agree with each other is ours.
"""

from __future__ import annotations

import re
import subprocess

from .requirement_sets import DASHBOARD, DEV, PROJECT_ROOT, RUNTIME, SETS


def make(*arguments: str) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout


def test_every_direct_pin_is_in_its_own_lock_at_the_same_version():
    mismatched = {
        (requirement_set.name, name): (version, requirement_set.locked().get(name))
        for requirement_set in SETS
        for name, version in requirement_set.direct_pins().items()
        if requirement_set.locked().get(name) != version
    }
    assert mismatched == {}


def test_a_package_in_two_sets_has_one_version():
    versions: dict[str, dict[str, str]] = {}
    for requirement_set in SETS:
        for name, version in requirement_set.locked().items():
            versions.setdefault(name, {})[requirement_set.name] = version
    assert {name: found for name, found in versions.items() if len(set(found.values())) > 1} == {}
    # The sets do overlap (the dashboard and the Airflow image both read DuckDB files with pandas).
    assert {"duckdb", "pandas", "pyarrow"} <= set(RUNTIME.locked()) & set(DASHBOARD.locked())


def test_each_set_is_constrained_to_the_locks_compiled_before_it():
    assert RUNTIME.constraints() == []
    assert DASHBOARD.constraints() == ["requirements.txt"]
    # A developer installs all three, so the dev set agrees with the dashboard's too.
    assert DEV.constraints() == ["requirements.txt", "requirements-dashboard.txt"]
    for requirement_set in SETS:
        assert f"-r {requirement_set.source.name}" in requirement_set.lock.read_text(), requirement_set.name


def test_each_set_holds_what_runs_where_it_is_installed():
    runtime, dashboard, dev = (set(requirement_set.direct_pins()) for requirement_set in SETS)
    assert {"apache-airflow", "great-expectations", "pyarrow", "duckdb", "requests", "orjson"} <= runtime
    assert {"streamlit", "altair", "duckdb", "pandas"} <= dashboard
    assert {"pytest", "ruff", "aiosmtpd", "dlt", "duckdb-cli"} <= dev
    # The Airflow image carries no Streamlit, the dashboard image no Airflow, neither the dev tools.
    assert "streamlit" not in RUNTIME.locked()
    assert not [name for name in DASHBOARD.locked() if name.startswith("apache-airflow")]
    assert not {"pytest", "ruff", "dlt"} & (set(RUNTIME.locked()) | set(DASHBOARD.locked()))
    assert "streamlit[auth]==" in DASHBOARD.source.read_text()  # Authlib, for the OIDC sign-in


def test_make_install_installs_all_three_sets_and_reinstalls_when_any_lock_changes():
    database = make("-pRrq")
    stamp = re.search(r"^\.venv/\.installed: (.*)$", database, re.M)
    assert stamp, "the Makefile has no .venv/.installed rule"
    prerequisites = stamp[1].split()
    assert {requirement_set.lock.name for requirement_set in SETS} <= set(prerequisites)

    recipe = make("-n", "-B", "install")
    install = next(line for line in recipe.splitlines() if "uv pip install" in line and " -r " in line)
    assert re.findall(r"-r (\S+)", install) == [requirement_set.lock.name for requirement_set in SETS]


def test_make_lock_compiles_each_set_in_constraint_order_with_one_command_style():
    recipe = make("-n", "-B", "lock")
    compiled = re.findall(r"uv pip compile (\S+)\.in -p 3\.11 -q --no-header -o (\S+)\.txt$", recipe, re.M)
    assert compiled == [(requirement_set.stem, requirement_set.stem) for requirement_set in SETS]
