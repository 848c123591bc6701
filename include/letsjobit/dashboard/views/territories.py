"""Territories: close rate and NPS per territory over the chosen period."""

from __future__ import annotations

import streamlit as st

from letsjobit.dashboard import charts, context, queries
from letsjobit.dashboard.views import tables

page = context.current()
by_territory = queries.kpi_by(page.con, page.filters, "territory")

st.title("Territories")
if by_territory.empty:
    st.info("No visits in this period with these filters.")
else:
    left, right = st.columns(2)
    left.altair_chart(
        charts.bars(by_territory, "territory", "close_rate", "Close rate", percent=True), width="stretch"
    )
    rated = by_territory[by_territory["rated_visits"] > 0]
    right.altair_chart(charts.bars(rated, "territory", "nps", "NPS"), width="stretch")
    if len(rated) < len(by_territory):
        right.caption(
            "No ratings (NPS n/a): "
            + ", ".join(by_territory.loc[by_territory["rated_visits"] == 0, "territory"].astype(str))
        )
    tables.kpi_table(by_territory, ["territory"], key="territory_table")
