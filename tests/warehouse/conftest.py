"""Fixtures for warehouse tests: a data directory of their own and a way to read the built marts."""

from __future__ import annotations

import duckdb
import pytest
from letsjobit import config


@pytest.fixture
def layout(tmp_path) -> config.DataLayout:
    return config.DataLayout(tmp_path / "data")


def query(layout: config.DataLayout, sql: str, parameters=None) -> list[tuple]:
    """Rows of ``sql`` from the published warehouse, on a read-only connection closed afterwards."""
    connection = duckdb.connect(str(layout.warehouse), read_only=True)
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


def query_dicts(layout: config.DataLayout, sql: str, parameters=None) -> list[dict]:
    connection = duckdb.connect(str(layout.warehouse), read_only=True)
    try:
        cursor = connection.execute(sql, parameters)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()
