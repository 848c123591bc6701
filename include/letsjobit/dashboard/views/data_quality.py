"""Data quality: what the warehouse was built from, the data issues of the published lake over time,
and the last validation's verdict, checks and report."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from letsjobit.dashboard import charts, context, queries

REPORT_HEIGHT = 900
CHECK_COLUMNS = ["table", "name", "status", "unexpected_count", "detail"]
BREAKDOWNS = {"check_name": "Check", "action": "Action"}

page = context.current()
validation = queries.latest_validation(page.layout)
build = page.build

st.title("Data quality")
left, right = st.columns(2)
with left:
    st.subheader("Warehouse build")
    st.table(
        pd.DataFrame(
            {"": list(build), "value": ["" if value is None else str(value) for value in build.values()]}
        ).set_index("")
    )
with right:
    st.subheader("Last validation")
    if not validation:
        st.info(f"No validation summary yet ({page.layout.reports / 'latest.json'}).")
    else:
        verdict = queries.validation_verdict(validation)
        message = f"Verdict: {verdict} (run {validation.get('run_id', '?')})"
        if verdict in queries.GOOD_VERDICTS:
            st.success(message)
        elif verdict in queries.FAILED_VERDICTS:
            st.error(
                message + ". Nothing of that run was published: the warehouse shows the build before it."
            )
        else:
            st.warning(message)
        if validation.get("failed_checks"):
            st.markdown("Failed checks: " + ", ".join(f"`{check}`" for check in validation["failed_checks"]))
        tables = validation.get("tables")
        if isinstance(tables, dict) and tables:
            st.dataframe(pd.DataFrame(tables).T.rename_axis("table").reset_index(), hide_index=True)

st.subheader("Data issues")
if not queries.has_data_issues_mart(page.con):
    st.info(
        "This warehouse has no data issues mart: it was built by an older version; the next build adds it."
    )
else:
    filters = page.filters
    st.caption(
        f"Values nulled or kept as sent, and records quarantined, by the day of the record, "
        f"{filters.start:%d %b %Y} to {filters.end:%d %b %Y} (marts.kpi_data_issues_daily). "
        "The date range applies; territory, driver and customer do not."
    )
    by = st.segmented_control(
        "Break down by", list(BREAKDOWNS), default="check_name", format_func=BREAKDOWNS.get,
        key="issues_by", required=True,
    )  # fmt: skip
    over_time = queries.data_issues_over_time(page.con, filters, by or "check_name")
    if over_time.empty:
        st.info("No data issues in this period.")
    else:
        st.altair_chart(
            charts.stacked_over_time(over_time, by or "check_name", "issues", "Data issues per day"),
            width="stretch",
        )
        st.dataframe(
            queries.data_issues_by_check(page.con, filters),
            hide_index=True,
            key="issues_by_check",
            column_config={
                "first_day": st.column_config.DateColumn("first day", format="YYYY-MM-DD"),
                "last_day": st.column_config.DateColumn("last day", format="YYYY-MM-DD"),
            },
        )
    undated = queries.undated_data_issues(page.con)
    if undated:
        st.caption(
            f"{undated:,} more issues belong to records without a usable date (in marts.fct_data_issues, "
            "visit_date null)."
        )

checks = validation.get("checks")
if isinstance(checks, list) and checks:
    st.subheader("Checks")
    frame = pd.DataFrame(checks)
    st.dataframe(frame[[c for c in CHECK_COLUMNS if c in frame]], hide_index=True)

report = queries.validation_report(validation, page.layout)
if report is not None:
    st.subheader("Validation report")
    if report.is_file():
        st.caption(str(report))
        st.download_button(
            "Download the report", report.read_bytes(), file_name=report.name, mime="text/html"
        )
        # The report is our own pipeline's output (self-contained HTML), not user input.
        st.iframe(report, height=REPORT_HEIGHT, alt="Validation report")
    else:
        st.caption(f"The report {report} is not there any more.")
