"""LetsJobIt KPI dashboard over the DuckDB warehouse: `make dashboard` (streamlit run dashboard/app.py).

Each page load opens the warehouse read-only, draws the sidebar (filters and freshness) and runs the
chosen page with the same connection, then closes it: a build that swaps the file meanwhile is seen
whole on the next load, and the dashboard never holds the file between loads.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import streamlit as st

from letsjobit import config
from letsjobit.dashboard import access, context, queries

VIEWS = "views"
DEFAULT_PERIOD_DAYS = 28

st.set_page_config(page_title="LetsJobIt KPIs", page_icon=":material/insights:", layout="wide")

PAGES = {
    "overview": st.Page(f"{VIEWS}/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    "territories": st.Page(f"{VIEWS}/territories.py", title="Territories", icon=":material/map:"),
    "drivers": st.Page(f"{VIEWS}/drivers.py", title="Drivers", icon=":material/leaderboard:"),
    "operations": st.Page(f"{VIEWS}/operations.py", title="Operations", icon=":material/build:"),
    "data_quality": st.Page(f"{VIEWS}/data_quality.py", title="Data quality", icon=":material/verified:"),
}


def period_filter(bounds: tuple[date, date] | None) -> tuple[date, date]:
    today = date.today()
    default = queries.default_period(bounds, today, DEFAULT_PERIOD_DAYS) if bounds else (today, today)
    chosen = st.sidebar.date_input(
        "Date range",
        value=default,
        min_value=bounds[0] if bounds else None,
        max_value=bounds[1] if bounds else None,
        key="period",
        bind="query-params",
        help="Visit dates, both ends included. Changes are against the period of equal length before it.",
    )
    # While a range is being picked the widget briefly returns one date.
    if isinstance(chosen, tuple | list):
        chosen = tuple(chosen) or default
        return chosen[0], chosen[-1]
    return chosen, chosen


def sidebar_filters(con) -> queries.Filters:
    start, end = period_filter(queries.date_bounds(con))
    # Bound to the URL, so a filtered view is a link to share: ?territories=AB-Aberdeen&period=2026-10-01&...
    territories = st.sidebar.multiselect(
        "Territory", queries.territories(con), key="territories", bind="query-params"
    )
    driver_names = queries.drivers(con)
    driver_ids = st.sidebar.multiselect(
        "Driver",
        list(driver_names),
        format_func=lambda d: driver_names.get(d, d),
        key="drivers",
        bind="query-params",
    )
    customer_names = queries.customers(con)
    site_ids = st.sidebar.multiselect(
        "Customer",
        list(customer_names),
        format_func=lambda s: customer_names.get(s, s),
        key="customers",
        bind="query-params",
    )
    return queries.Filters(start, end, tuple(territories), tuple(driver_ids), tuple(site_ids))


def _ago(moment) -> str:
    if not isinstance(moment, datetime):
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    minutes = int((datetime.now(UTC) - aware).total_seconds() // 60)
    if minutes < 1:
        return " (just now)"
    if minutes < 120:
        return f" ({minutes} min ago)"
    return f" ({minutes // 60} h ago)" if minutes < 48 * 60 else f" ({minutes // 1440} days ago)"


def freshness(build: dict, validation: dict) -> None:
    built_at = build.get("built_at")
    st.sidebar.caption(
        f"Warehouse built {built_at:%Y-%m-%d %H:%M}{_ago(built_at)}"
        if isinstance(built_at, datetime)
        else "Warehouse build time unknown"
    )
    if validation:
        note = f" (run {validation.get('run_id', '?')})"
        if validation.get("run_id") and build.get("run_id") and validation["run_id"] != build["run_id"]:
            note = f" (run {validation['run_id']}; the warehouse is from run {build['run_id']})"
        st.sidebar.caption(f"Last validation: **{queries.validation_verdict(validation)}**{note}")
    else:
        st.sidebar.caption("Last validation: none yet")
    st.sidebar.page_link(PAGES["data_quality"], label="Validation report", icon=":material/description:")


def not_built(error: queries.WarehouseUnavailable) -> None:
    st.title("LetsJobIt KPIs")
    st.info(
        "The warehouse is not available yet, so there is nothing to show.\n\n"
        f"{error}.\n\n"
        "Build it with `make run` (the whole pipeline on the embedded simulator); this page picks it up "
        "on the next reload."
    )


def signed_in_viewer() -> bool:
    """With the OIDC sign-in configured ([auth] in .streamlit/secrets.toml), only a signed-in viewer on
    the `[dashboard] viewers` list (when there is one) sees anything; see dashboard/access.py."""
    settings = st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}
    sign_in = access.sign_in(settings.get("auth"))
    if sign_in is None:
        return True
    if not st.user.is_logged_in:
        st.title("LetsJobIt KPIs")
        st.write("This dashboard shows driver, customer and site names: sign in to see it.")
        st.button("Sign in", on_click=st.login, args=(sign_in.provider,), type="primary")
        return False
    email = st.user.get("email")
    if not access.may_view(email, (settings.get("dashboard") or {}).get("viewers")):
        st.title("LetsJobIt KPIs")
        st.error(f"{email or 'This account'} is not on this dashboard's list of viewers.")
        st.button("Sign out", on_click=st.logout)
        return False
    st.sidebar.caption(f"Signed in as {email or st.user.get('name') or 'unknown'}")
    st.sidebar.button("Sign out", on_click=st.logout)
    return True


def main() -> None:
    if not signed_in_viewer():
        return
    page = st.navigation(list(PAGES.values()))
    layout = config.layout()
    try:
        with queries.connect(layout.warehouse) as con:
            filters = sidebar_filters(con)
            build = queries.build_info(con)
            freshness(build, queries.latest_validation(layout))
            with context.provide(context.PageContext(con, filters, build, layout)):
                page.run()
    except queries.WarehouseUnavailable as error:
        not_built(error)


main()
