"""Hostile pages through the extractor and the lake: what the client accepted is written and staged.

The client parses answers with orjson, which reads 1,024 levels of nesting but writes only 254; the
simulator cannot serve such a page (it writes with orjson too), so the pages come from a stand-in for
`LetsJobItClient.iter_pages` holding what a hostile API could answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from letsjobit.api.pages import Page
from letsjobit.config import DataLayout
from letsjobit.lake import extract, parquet, stage

from tests.lake.conftest import reference_visit
from tests.reliability.hostile import nested

RUN_ID = "hostile-extract"


class AnsweredPages:
    """Stands in for the client: yields the given pages as `iter_pages` would."""

    def __init__(self, pages: list[Page]) -> None:
        self.pages = pages

    def iter_pages(self, stats=None, **filters):
        yield from self.pages


def page(offset: int, visits: list[dict]) -> Page:
    meta = {"totalRecords": 3, "returnedRecords": len(visits), "remainingRecords": 0, "nextStart": offset + 1}
    return Page(
        offset=offset,
        filters={},
        fetched_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
        body={"meta": meta, "data": visits},
        new_data=list(visits),
    )


@pytest.mark.parametrize("depth", [251, 300, 1000])
def test_a_page_nested_deeper_than_orjson_writes_is_extracted_and_staged_with_its_neighbours(tmp_path, depth):
    layout = DataLayout(tmp_path)
    deep = reference_visit(_id="deep", geocoding=nested(depth))
    pages = [
        page(0, [reference_visit(_id="before")]),
        page(1, [deep]),
        page(2, [reference_visit(_id="after")]),
    ]

    extract.extract_to_raw(AnsweredPages(pages), RUN_ID, "all", {}, layout)
    staged = stage.stage_run(RUN_ID, layout, workers=1, pseudonymise_key=None)

    visits = parquet.read_table(layout.staging_run(RUN_ID) / "visits")
    assert sorted(visits.column("visit_id").to_pylist()) == ["after", "before", "deep"]
    assert staged.pages == 3
    geocoding = {row["visit_id"]: row["geocoding"] for row in visits.to_pylist()}["deep"]
    assert geocoding.startswith('[{"k":') or geocoding.startswith('{"k":'), "kept as JSON text"
    assert geocoding.count('{"k":') == (depth + 1) // 2, "every level kept"
