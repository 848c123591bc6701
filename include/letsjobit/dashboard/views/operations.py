"""Operations: jobs per visit, closes inside the customer's time windows, repeat visits, time to close,
skip reasons."""

from __future__ import annotations

import streamlit as st

from letsjobit.dashboard import charts, context, queries
from letsjobit.dashboard import formatting as fmt

page = context.current()
filters = page.filters
current, previous = queries.headline_with_previous(page.con, filters)
median_hours = queries.median_hours_to_close(page.con, filters)

st.title("Operations")
jobs_tile, window_tile, repeat_tile, hours_tile = st.columns(4)
jobs_tile.metric(
    "Jobs per visit",
    fmt.rating(current["jobs_per_visit"]),
    fmt.rating_delta(current["jobs_per_visit"], previous["jobs_per_visit"]),
    delta_color="off",
    border=True,
    help="Action-item lines per visit.",
)
window_tile.metric(
    "Closed within customer window",
    fmt.percent(current["closed_within_window_rate"]),
    fmt.rate_delta(current["closed_within_window_rate"], previous["closed_within_window_rate"]),
    border=True,
    help="Closed visits whose close time fell inside one of the customer's time windows, "
    "over closed visits with a close time and at least one window.",
)
window_tile.caption(f"of {fmt.count(current['window_checked_visits'])} closed visits with time windows")
repeat_tile.metric(
    "Repeat-visit rate",
    fmt.percent(current["repeat_visit_rate"]),
    fmt.rate_delta(current["repeat_visit_rate"], previous["repeat_visit_rate"]),
    delta_color="inverse",
    border=True,
    help="Closed visits to a site and serial number that had a closed visit in the 30 days before "
    "(a first-time-fix proxy), over closed visits with serviced equipment.",
)
repeat_tile.caption(f"of {fmt.count(current['equipment_visits'])} equipment visits")
hours_tile.metric(
    "Hours to close",
    fmt.hours(current["avg_hours_to_close"]),
    fmt.hours_delta(current["avg_hours_to_close"], previous["avg_hours_to_close"]),
    delta_color="inverse",
    border=True,
    help="Mean hours from creation to close over the closed visits where both are known.",
)
hours_tile.caption(f"median {fmt.hours(median_hours)}")

if current["visits"] == 0:
    st.info("No visits in this period with these filters.")
else:
    left, right = st.columns(2)
    reasons = queries.skip_reasons(page.con, filters)
    with left:
        st.subheader("Skip reasons")
        if reasons.empty:
            st.caption("No skipped visits in this period.")
        else:
            st.altair_chart(
                charts.bars(reasons, "skip_reason", "skipped_visits", "Skipped visits"), width="stretch"
            )
    with right:
        st.subheader("Jobs per visit")
        jobs = queries.jobs_per_visit(page.con, filters)
        jobs["jobs"] = jobs["jobs"].astype(str)
        st.altair_chart(charts.bars(jobs, "jobs", "visits", "Visits", sort=None), width="stretch")
    weekly = queries.kpi_series(page.con, filters, "week")
    st.altair_chart(
        charts.over_time(
            weekly, "closed_within_window_rate", "Closed within customer window, by week", percent=True
        ),
        width="stretch",
    )
