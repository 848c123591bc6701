"""Overview: headline tiles against the previous period, NPS and close rate over time."""

from __future__ import annotations

import streamlit as st

from letsjobit.dashboard import charts, context, queries
from letsjobit.dashboard import formatting as fmt

page = context.current()
filters = page.filters
current, previous = queries.headline_with_previous(page.con, filters)
prior = filters.previous()

st.title("LetsJobIt KPIs")
st.caption(
    f"{filters.start:%d %b %Y} to {filters.end:%d %b %Y} ({filters.days} days), "
    f"compared with {prior.start:%d %b %Y} to {prior.end:%d %b %Y}"
)

visits, close_rate, skip_rate, nps, csat, avg_rating = st.columns(6)
visits.metric(
    "Visits",
    fmt.count(current["visits"]),
    fmt.count_delta(current["visits"], previous["visits"]),
    border=True,
)
close_rate.metric(
    "Close rate",
    fmt.percent(current["close_rate"]),
    fmt.rate_delta(current["close_rate"], previous["close_rate"]),
    border=True,
)
skip_rate.metric(
    "Skip rate",
    fmt.percent(current["skip_rate"]),
    fmt.rate_delta(current["skip_rate"], previous["skip_rate"]),
    delta_color="inverse",
    border=True,
)
nps.metric(
    "NPS",
    fmt.nps(current["nps"], current["rated_visits"]),
    fmt.nps_delta(current["nps"], previous["nps"]),
    border=True,
    help="100 x (promoters - detractors) / ratings; promoters rate 5, passives 4, detractors 1-3.",
)
nps.caption(f"from {fmt.count(current['rated_visits'])} ratings")
csat.metric(
    "CSAT",
    fmt.percent(current["csat"]),
    fmt.rate_delta(current["csat"], previous["csat"]),
    border=True,
    help="Share of ratings that are 4 or 5.",
)
avg_rating.metric(
    "Average rating",
    fmt.rating(current["avg_rating"]),
    fmt.rating_delta(current["avg_rating"], previous["avg_rating"]),
    border=True,
)

if current["visits"] == 0:
    st.info("No visits in this period with these filters.")
else:
    grain = st.segmented_control(
        "Granularity", ["day", "week"], default="day", format_func=str.title, key="grain", required=True
    )
    series = queries.kpi_series(page.con, filters, grain or "day")
    left, right = st.columns(2)
    left.altair_chart(charts.over_time(series, "nps", "NPS"), width="stretch")
    right.altair_chart(charts.over_time(series, "close_rate", "Close rate", percent=True), width="stretch")
    if series["rated_visits"].sum() == 0:
        st.caption("No ratings in this period: NPS has no points to draw.")
