"""The dbt project keeps its contract: every model documented, keyed and tested, the docs equal to the
columns the SQL builds, and the marts' column names and types enforced."""

from __future__ import annotations

import re

import duckdb
import pytest
import yaml
from letsjobit import config
from letsjobit.lake import snapshot
from letsjobit.warehouse import build as warehouse
from letsjobit.warehouse import dbt_runner, documentation, kpis, project

from tests.warehouse import lakes

MODELS = list(project.models().values())
MODEL_FILES = sorted((config.SQL_DIR / "models").rglob("*.sql"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A built warehouse, and beside it a file holding the staging models as views (they are
    ephemeral: dbt inlines them where they are used), made from the SQL dbt compiled for them over
    the same lake."""
    root = tmp_path_factory.mktemp("project")
    layout = config.DataLayout(root / "data")
    lakes.publish_sample(layout, visits=40, days=5)
    warehouse.build(layout)
    staging = duckdb.connect(str(root / "warehouse.duckdb"))  # the catalog name dbt compiled for
    staging.execute("create schema lake")
    lake = snapshot.take(layout, root / "snapshot")
    for table, sql in warehouse._source_sql(lake, root / "sources").items():
        staging.execute(f"create view lake.{table} as select * from {sql}")
    compiled = layout.state / "dbt" / "target" / "compiled" / "letsjobit" / "models" / "staging"
    staging.execute("create schema staging")
    for model in MODELS:
        if model.layer == "staging":
            staging.execute(f"create view {model.relation} as {(compiled / f'{model.name}.sql').read_text()}")
    connections = {"warehouse": duckdb.connect(str(layout.warehouse), read_only=True), "staging": staging}
    yield connections
    for connection in connections.values():
        connection.close()


def test_every_model_file_is_documented_and_every_documented_model_has_a_file():
    assert sorted(path.stem for path in MODEL_FILES) == sorted(model.name for model in MODELS)
    for model in MODELS:
        assert model.path.exists(), f"{model.name} is documented in {model.layer}/ but its SQL is elsewhere"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.relation)
def test_documented_columns_are_the_columns_the_model_builds(built, model):
    connection = built["staging" if model.layer == "staging" else "warehouse"]
    actual = [row[0] for row in connection.execute(f"describe {model.relation}").fetchall()]

    assert actual == list(model.columns), f"{model.name}: the yml's columns differ from what the SQL builds"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.relation)
def test_every_model_and_column_has_a_description(model):
    undocumented = [column for column, text in model.columns.items() if not text.strip()]

    assert model.description.strip(), f"{model.name} has no description"
    assert undocumented == [], f"{model.name}: no description for {undocumented}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.relation)
def test_every_model_declares_its_grain_and_its_key(model):
    assert "Grain: " in model.description, model.name
    assert model.key, f"{model.name} has no unique or unique_key test and no meta.key"


def test_every_mart_key_is_tested_and_not_null_is_an_enforced_constraint():
    """The marts' keys are tested (unique, or unique_key), and a key column that must not be null
    carries a not_null constraint, which DuckDB enforces on every insert, rather than a test."""
    marts = yaml.safe_load((config.SQL_DIR / "models" / "marts" / "_marts.yml").read_text())["models"]
    for entry in marts:
        assert not (entry.get("meta") or {}).get("key"), f"{entry['name']}: a mart's key must be tested"
        tests = [test for test in entry.get("data_tests") or () if isinstance(test, dict)]
        single = [column for column in entry["columns"] if "unique" in (column.get("data_tests") or ())]
        assert single or any("unique_key" in test for test in tests), entry["name"]
        for column in single:
            assert {"type": "not_null"} in (column.get("constraints") or []), (entry["name"], column["name"])
            assert "not_null" not in column["data_tests"], (entry["name"], column["name"])


def test_every_mart_has_an_enforced_contract_with_a_type_for_every_column():
    marts = yaml.safe_load((config.SQL_DIR / "models" / "marts" / "_marts.yml").read_text())["models"]
    for entry in marts:
        assert entry["config"]["contract"]["enforced"] is True, entry["name"]
        untyped = [column["name"] for column in entry["columns"] if not column.get("data_type")]
        assert untyped == [], f"{entry['name']}: no data_type for {untyped}"


def test_build_info_counts_every_mart():
    marts = {model.name for model in MODELS if model.layer == "marts" and model.name != "build_info"}

    assert {f"{name}_rows" for name in marts} <= set(project.model("build_info").columns)


def test_every_kpi_table_documents_every_measure_and_kpi_in_the_same_order():
    for name, key in kpis.KPI_TABLES.items():
        model = project.model(name)
        assert model.key == key
        assert [column for column in model.columns if column in kpis.KPI_COLUMNS] == list(kpis.KPI_COLUMNS), (
            name
        )


def test_models_refer_to_each_other_with_ref_and_to_the_lake_with_source():
    """A schema-qualified name in a model's SQL would hide a dependency from dbt's graph. The one
    exception is an incremental model's predicates (config values are fixed before ref() resolves),
    which is why such a model also names what it reads in a ``-- depends_on: {{ ref(...) }}`` line."""
    relation = re.compile(r"\b(staging|intermediate|marts|build|lake)\.[a-z_]+\b(?!\s*\()")
    for path in MODEL_FILES:
        text = path.read_text()
        config_block = re.match(r"\{\{\s*config\(.*?\)\s*\}\}", text, re.DOTALL)
        body = text[config_block.end() :] if config_block else text
        assert relation.findall(body) == [], f"{path.name} names a relation without ref() or source()"
        if config_block and "intermediate.int_touched_visits" in config_block.group(0):
            assert "-- depends_on: {{ ref('int_touched_visits') }}" in body, path.name


def test_a_model_reading_the_rows_another_model_replaces_runs_after_it():
    """``build.replaced_*`` are filled while the model whose ``keep_replaced`` names them builds; dbt
    only knows that order from a ref(), so every other model reading one must ref() its writer (or it
    may run first and read an empty table: the next visit in an equipment history kept its stale
    repeat-visit measures)."""
    writers = {
        match.group(1): path.stem
        for path in MODEL_FILES
        if (match := re.search(r"keep_replaced=\{\"into\": \"(\w+)\"", path.read_text()))
    }
    assert set(writers) == {"replaced_visits", "replaced_equipment"}, writers
    readers = 0
    for path in MODEL_FILES:
        text = path.read_text()
        for table, writer in writers.items():
            if path.stem != writer and f"source('build', '{table}')" in text:
                readers += 1
                assert f"ref('{writer}')" in text, f"{path.name} reads build.{table} before {writer} fills it"
    assert readers >= 3


def test_the_docs_are_one_html_file_with_every_mart(tmp_path):
    layout = config.DataLayout(tmp_path / "data")

    page = documentation.docs(layout).read_text()

    assert page.lstrip().lower().startswith("<!doctype html>")
    for model in MODELS:
        assert f"model.letsjobit.{model.name}" in page


def test_a_process_that_parsed_the_project_for_another_file_name_still_builds(tmp_path):
    # dbt's parse names every relation after the database file's stem; the runner keeps the parse
    # for the next build in this process, which must not reuse one made for another name.
    (tmp_path / "elsewhere").mkdir()
    dbt_runner.run(tmp_path / "elsewhere" / "other.duckdb", tmp_path / "other-state", command="parse")
    layout = config.DataLayout(tmp_path / "data")
    lakes.publish_sample(layout, visits=10, days=2)

    warehouse.build(layout)

    connection = warehouse.connect_read_only(layout.warehouse)
    try:
        assert connection.execute("select count(*) from marts.fct_visits").fetchone()[0] == 10
    finally:
        connection.close()
