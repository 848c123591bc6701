"""KPI tables with the same formatting as the tiles."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from letsjobit.dashboard import formatting as fmt

PERCENT = "%.1f%%"
KPI_TABLE_COLUMNS = {
    "visits": st.column_config.NumberColumn("Visits", format="localized"),
    "close_rate": st.column_config.NumberColumn("Close rate", format=PERCENT),
    "skip_rate": st.column_config.NumberColumn("Skip rate", format=PERCENT),
    "rated_visits": st.column_config.NumberColumn("Ratings", format="localized"),
    "nps": st.column_config.TextColumn("NPS"),
    "csat": st.column_config.NumberColumn("CSAT", format=PERCENT),
    "avg_rating": st.column_config.NumberColumn("Avg rating", format="%.2f"),
}
RATES = ("close_rate", "skip_rate", "csat")


def display_frame(frame: pd.DataFrame, leading: list[str]) -> pd.DataFrame:
    """The columns shown: rates in percent, NPS as text so that "n/a" (no ratings) is not mistaken for 0."""
    shown = frame[[*leading, *KPI_TABLE_COLUMNS]].copy()
    for rate in RATES:
        shown[rate] = 100 * shown[rate]
    shown["nps"] = [
        fmt.nps(value, rated) for value, rated in zip(frame["nps"], frame["rated_visits"], strict=True)
    ]
    return shown


def kpi_table(frame: pd.DataFrame, leading: list[str], key: str, **column_config) -> None:
    st.dataframe(
        display_frame(frame, leading),
        hide_index=True,
        column_config={**KPI_TABLE_COLUMNS, **column_config},
        key=key,
    )
