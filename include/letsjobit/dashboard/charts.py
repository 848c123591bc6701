"""The dashboard's charts (Altair/Vega-Lite), built from the query functions' data frames."""

from __future__ import annotations

import altair as alt
import pandas as pd

PERCENT_AXIS = alt.Axis(format="%")


def over_time(frame: pd.DataFrame, column: str, title: str, percent: bool = False) -> alt.Chart:
    """A line per period; periods with a NULL value (no visits, no ratings) leave a gap."""
    value = alt.Y(f"{column}:Q", title=title, axis=PERCENT_AXIS if percent else alt.Axis())
    return (
        alt.Chart(frame, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("period:T", title=None),
            y=value,
            tooltip=[
                alt.Tooltip("period:T", title="period"),
                alt.Tooltip(f"{column}:Q", title=title, format=".1%" if percent else ".1f"),
                alt.Tooltip("visits:Q"),
                alt.Tooltip("rated_visits:Q", title="ratings"),
            ],
        )
        .properties(height=260)
    )


def bars(
    frame: pd.DataFrame,
    category: str,
    column: str,
    title: str,
    percent: bool = False,
    sort: str | None = "-x",
) -> alt.Chart:
    """Horizontal bars, largest first (``sort=None``: in the frame's order)."""
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{column}:Q", title=title, axis=PERCENT_AXIS if percent else alt.Axis()),
            y=alt.Y(f"{category}:N", title=None, sort=sort),
            tooltip=[
                alt.Tooltip(f"{category}:N"),
                alt.Tooltip(f"{column}:Q", title=title, format=".1%" if percent else ".1f"),
            ],
        )
        .properties(height=alt.Step(22))
    )


def stacked_over_time(frame: pd.DataFrame, category: str, column: str, title: str) -> alt.Chart:
    """Bars per day, stacked by ``category`` (a day without rows has no bar)."""
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X("visit_date:T", title=None),
            y=alt.Y(f"sum({column}):Q", title=title),
            color=alt.Color(f"{category}:N", title=category.replace("_", " ")),
            tooltip=[
                alt.Tooltip("visit_date:T", title="day"),
                alt.Tooltip(f"{category}:N"),
                alt.Tooltip(f"{column}:Q"),
            ],
        )
        .properties(height=280)
    )
