"""Data quality: what the warehouse was built from, and the last validation's verdict, checks and report."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import context, queries

REPORT_HEIGHT = 900
CHECK_COLUMNS = ["table", "name", "status", "unexpected_count", "detail"]

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
