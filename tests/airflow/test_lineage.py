"""Lineage datasets: what OpenLineage names for the API, the lake and the warehouse, and never the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from letsjobit import config
from letsjobit.airflow import lineage


@pytest.fixture(scope="module")
def to_openlineage():
    """The converter Airflow picks for an asset URI, through the provider registry (as OpenLineage does)."""
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset
    from airflow.sdk import Asset

    def convert(uri: str) -> tuple[str, str]:
        dataset = translate_airflow_asset(Asset(uri=uri), None)
        assert dataset is not None, f"no OpenLineage converter for {uri}"
        return dataset.namespace, dataset.name

    return convert


def test_the_api_dataset_is_named_by_the_apis_host_and_path(to_openlineage):
    assert to_openlineage(lineage.api_visits("https://app.letsjobit.com/api/v2")) == (
        "letsjobit://app.letsjobit.com",
        "/api/v2/visits",
    )
    assert to_openlineage(lineage.api_visits("http://127.0.0.1:8123/v2")) == (
        "letsjobit://127.0.0.1:8123",
        "/v2/visits",
    )


def test_the_api_dataset_never_holds_user_info_or_a_query(to_openlineage):
    uri = lineage.api_visits("https://user:secret-key@app.letsjobit.com/api/v2?api_key=secret-key")
    assert "secret-key" not in uri and "secret-key" not in "".join(to_openlineage(uri))


def test_lake_and_warehouse_datasets_are_absolute_files_and_tables(tmp_path, to_openlineage):
    layout = config.DataLayout(tmp_path / "data")
    assert [to_openlineage(uri) for uri in lineage.lake_tables(layout)] == [
        ("file", str(Path(tmp_path / "data" / "lake" / name).resolve()))
        for name in ("visits", "visit_lines", "line_extra_data", "data_issues")
    ]
    assert to_openlineage(lineage.warehouse_table(layout, "marts.fct_visits")) == (
        f"duckdb://{layout.warehouse.resolve()}",
        "marts.fct_visits",
    )


def test_recording_outside_a_task_does_nothing():
    lineage.record(object(), inputs=["file:///x"], outputs=["file:///y"])
