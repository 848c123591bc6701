"""Operations: skip reasons, jobs per visit, closes inside the customer's time windows, time to close."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, context, queries
from dashboard import formatting as fmt

page = context.current()
summary = queries.operations_summary(page.con, page.filters)

st.title("Operations")
jobs_tile, window_tile, hours_tile = st.columns(3)
jobs_tile.metric(
    "Jobs per visit",
    fmt.rating(summary["avg_jobs_per_visit"]),
    border=True,
    help="Action-item lines per visit, averaged over the visits in the period.",
)
window_tile.metric(
    "Closed within customer window",
    fmt.percent(summary["closed_within_window_rate"]),
    border=True,
    help="Closed visits whose close time fell inside one of the site's time windows, "
    "over closed visits whose site has time windows.",
)
window_tile.caption(f"of {fmt.count(summary['judged_closed_visits'])} closed visits with time windows")
hours_tile.metric("Median hours to close", fmt.hours(summary["median_hours_to_close"]), border=True)

if not summary["visits"]:
    st.info("No visits in this period with these filters.")
else:
    left, right = st.columns(2)
    reasons = queries.skip_reasons(page.con, page.filters)
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
        jobs = queries.jobs_per_visit(page.con, page.filters)
        jobs["jobs"] = jobs["jobs"].astype(str)
        st.altair_chart(charts.bars(jobs, "jobs", "visits", "Visits"), width="stretch")
