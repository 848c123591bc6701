"""Data quality: what the warehouse was built from, and the last validation's verdict and report."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import context, queries

REPORT_HEIGHT = 900

page = context.current()
validation = queries.latest_validation(page.layout)
build = page.build

st.title("Data quality")
left, right = st.columns(2)
with left:
    st.subheader("Warehouse build")
    st.json({key: str(value) for key, value in build.items()}, expanded=True)
with right:
    st.subheader("Last validation")
    if not validation:
        st.info(f"No validation summary yet ({page.layout.reports / 'latest.json'}).")
    else:
        verdict = str(validation.get("verdict", "unknown"))
        (st.success if verdict.lower() in {"passed", "pass", "success", "ok"} else st.warning)(
            f"Verdict: {verdict}"
        )
        st.json(validation, expanded=False)

report = validation.get("report_html") or build.get("report_path")
if report:
    path = Path(str(report))
    if not path.is_absolute():
        path = page.layout.root / path
    if path.is_file():
        st.subheader("Validation report")
        st.caption(str(path))
        st.download_button("Download the report", path.read_bytes(), file_name=path.name, mime="text/html")
        # The report is our own pipeline's output (Great Expectations data docs), not user input.
        st.iframe(path, height=REPORT_HEIGHT, alt="Validation report")
    else:
        st.caption(f"The report {path} is not there any more.")
