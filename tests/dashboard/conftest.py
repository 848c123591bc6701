"""Fixtures of the dashboard tests: a data directory holding a warehouse built by the real
`warehouse.build()` over a small lake (fixture_lake.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from letsjobit import config

from tests.dashboard import fixture_lake

APP = Path(__file__).resolve().parents[2] / "include" / "letsjobit" / "dashboard" / "app.py"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "browser: drives a real headless Chromium (installed from Debian when missing); runs in make test",
    )


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> config.DataLayout:
    """An empty data directory that config.layout() (and so the dashboard) points at."""
    monkeypatch.setenv("LETSJOBIT_DATA_DIR", str(tmp_path / "data"))
    return config.layout()


def _build_once(tmp_path_factory, run_id: str) -> Path:
    layout = config.DataLayout(tmp_path_factory.mktemp(run_id))
    fixture_lake.build(layout, run_id=run_id, **fixture_lake.DATA_SETS[run_id])
    return layout.warehouse


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory) -> Path:
    """One lake and one real build per test session (data set build-a); tests get copies of the file."""
    return _build_once(tmp_path_factory, "build-a")


@pytest.fixture(scope="session")
def second_build(tmp_path_factory) -> Path:
    """The real build of the other data set (build-b), for tests that swap builds under the dashboard."""
    return _build_once(tmp_path_factory, "build-b")


@pytest.fixture
def warehouse(data_dir, built_warehouse) -> config.DataLayout:
    """The data directory with a built warehouse."""
    data_dir.root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built_warehouse, data_dir.warehouse)
    return data_dir


@pytest.fixture
def marts(warehouse):
    """A read-only connection for the tests' own, independent SQL over the marts."""
    with duckdb.connect(str(warehouse.warehouse), read_only=True) as con:
        yield con
