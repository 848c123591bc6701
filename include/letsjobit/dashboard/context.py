"""What the entry point hands to the page it runs: the page load's connection and the chosen filters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import duckdb

from letsjobit import config
from letsjobit.dashboard.queries import Filters


@dataclass(frozen=True)
class PageContext:
    con: duckdb.DuckDBPyConnection  # read-only, open for this page load only
    filters: Filters
    build: dict  # marts.build_info
    layout: config.DataLayout


# Set by app.py around running the page, in the script thread of that page load: nothing outlives it.
_current: ContextVar[PageContext | None] = ContextVar("letsjobit_page_context", default=None)


@contextlib.contextmanager
def provide(page_context: PageContext) -> Iterator[None]:
    token = _current.set(page_context)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> PageContext:
    page_context = _current.get()
    if page_context is None:
        raise RuntimeError("a dashboard page runs through dashboard/app.py (streamlit run dashboard/app.py)")
    return page_context
