"""The SQL models keep their contract: headers complete, documentation equal to the real columns."""

from __future__ import annotations

import duckdb
import pytest
from letsjobit import config
from letsjobit.lake import snapshot
from letsjobit.warehouse import build as warehouse
from letsjobit.warehouse import dictionary, kpis
from letsjobit.warehouse.models import ModelError, column_docs, load_models, parse_model

from tests.warehouse import lakes

MODELS = load_models(config.SQL_DIR)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A built warehouse plus a connection on which the staging views exist again (they are not published)."""
    layout = config.DataLayout(tmp_path_factory.mktemp("models") / "data")
    lakes.publish_sample(layout, visits=40, days=5)
    warehouse.build(layout)
    connection = duckdb.connect(str(layout.warehouse), read_only=True)
    scratch = duckdb.connect()
    warehouse.create_macros(scratch)
    lake = snapshot.take(layout, tmp_path_factory.mktemp("snapshot"))
    sources = warehouse._source_sql(lake, tmp_path_factory.mktemp("sources"))
    for model in MODELS:
        if model.layer == "staging":
            scratch.execute(f"create view {model.relation} as {model.render(sources)}")
    yield {"warehouse": connection, "staging": scratch}
    connection.close()
    scratch.close()


@pytest.mark.parametrize("model", MODELS, ids=[model.relation for model in MODELS])
def test_documented_columns_are_the_columns_the_model_builds(built, model):
    connection = built["staging" if model.layer == "staging" else "warehouse"]
    actual = [row[0] for row in connection.execute(f"describe {model.relation}").fetchall()]

    assert actual == list(model.columns), f"{model.path}: header columns differ from what the SQL builds"


@pytest.mark.parametrize("model", MODELS, ids=[model.relation for model in MODELS])
def test_every_column_has_a_description(model):
    undocumented = [column for column, text in column_docs(model, MODELS).items() if not text]

    assert undocumented == [], f"{model.path}: no description (here or upstream) for {undocumented}"


def test_the_data_dictionary_is_generated_from_the_current_models():
    expected = dictionary.render_data_dictionary()

    assert dictionary.DATA_DICTIONARY.read_text() == expected, (
        "docs/data_dictionary.md is stale: run `python -m letsjobit.warehouse.build dictionary`"
    )


def test_build_info_counts_every_mart():
    build_info = next(model for model in MODELS if model.name == "build_info")
    marts = {model.name for model in MODELS if model.layer == "marts" and model.name != "build_info"}

    assert {f"{name}_rows" for name in marts} <= set(build_info.columns)


def test_every_kpi_table_documents_every_measure_and_kpi_in_the_same_order():
    for name, key in kpis.KPI_TABLES.items():
        model = next(model for model in MODELS if model.name == name)
        assert model.key == key
        assert [column for column in model.columns if column in kpis.KPI_COLUMNS] == list(kpis.KPI_COLUMNS), (
            name
        )


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        (
            "-- other_name: x\n-- grain: g\n-- key: a\n-- materialized: table\n-- columns:\n--   a: x\n",
            "header names",
        ),
        ("-- bad: x\n-- key: a\n-- materialized: table\n-- columns:\n--   a: x\n", "grain"),
        (
            "-- bad: x\n-- grain: g\n-- key: b\n-- materialized: table\n-- columns:\n--   a: x\n",
            "key columns",
        ),
        (
            "-- bad: x\n-- grain: g\n-- key: a\n-- materialized: incremental\n-- columns:\n--   a: x\n",
            "replace_where",
        ),
    ],
)
def test_a_model_header_that_breaks_the_conventions_is_refused(tmp_path, header, complaint):
    path = tmp_path / "bad.sql"
    path.write_text(header + "\nselect 1 as a\n")

    with pytest.raises(ModelError, match=complaint):
        parse_model(path, "marts")
