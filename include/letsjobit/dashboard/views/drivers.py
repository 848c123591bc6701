"""Drivers: a leaderboard by NPS with a minimum number of ratings, so one rating does not top it."""

from __future__ import annotations

import streamlit as st

from letsjobit.dashboard import context, queries
from letsjobit.dashboard.views import tables

DEFAULT_MIN_RATINGS = 5

page = context.current()
st.title("Driver leaderboard")
min_ratings = st.number_input(
    "Minimum ratings to be ranked",
    min_value=1,
    value=DEFAULT_MIN_RATINGS,
    step=1,
    key="min_ratings",
    help="Drivers with fewer ratings in the period are listed below the board, unranked.",
)
board = queries.driver_leaderboard(page.con, page.filters, int(min_ratings))
ranked = board[board["ranked"]]
unranked = board[~board["ranked"]]

if board.empty:
    st.info("No visits in this period with these filters.")
else:
    if ranked.empty:
        st.info(f"No driver has {min_ratings} or more ratings in this period: nobody is ranked.")
    else:
        tables.kpi_table(
            ranked,
            ["rank", "driver_name"],
            key="leaderboard",
            rank=st.column_config.NumberColumn("#"),
            driver_name=st.column_config.TextColumn("Driver"),
        )
    if not unranked.empty:
        st.subheader(f"Not ranked: fewer than {min_ratings} ratings")
        tables.kpi_table(
            unranked, ["driver_name"], key="unranked", driver_name=st.column_config.TextColumn("Driver")
        )
