"""The lake schemas are the contract: keys exist, names are unique snake_case, mappings are complete."""

import re

import pytest
from letsjobit.lake import schema


@pytest.mark.parametrize("table", sorted(schema.TABLES))
def test_every_key_column_exists_and_is_not_nullable(table):
    table_schema = schema.TABLES[table]
    for column in schema.KEYS[table]:
        assert not table_schema.field(column).nullable


@pytest.mark.parametrize("table", sorted(schema.TABLES))
def test_column_names_are_unique_snake_case(table):
    names = schema.TABLES[table].names
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in names)


@pytest.mark.parametrize("fields", [schema.VISIT_FIELDS, schema.LINE_FIELDS, schema.EXTRA_DATA_FIELDS])
def test_each_api_field_maps_to_one_column(fields):
    api_names = [f.api_name for f in fields]
    assert len(api_names) == len(set(api_names))


def test_every_table_is_partitioned_by_visit_date():
    for table_schema in schema.TABLES.values():
        assert schema.PARTITION_COLUMN in table_schema.names
