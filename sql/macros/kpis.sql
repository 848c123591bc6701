{#- Called by on-run-start (dbt_project.yml): DuckDB macros stored in the warehouse file, so a
    read-only reader calls them exactly as the models do. -#}
{% macro create_kpi_macros() %}
create schema if not exists marts;

-- The KPI formulas, each defined once here and persisted in the warehouse file (schema marts).
--
-- Every KPI is a ratio of additive measures, and each macro's parameters are named after the
-- measure columns it reads (marts.fct_visit_measures and the kpi_* tables carry them), so over any
-- period or group a reader sums the measures and calls the macro on the sums:
--     select marts.nps(sum(promoters), sum(detractors), sum(rated_visits)) from marts.kpi_daily
-- The KPI models and the dashboard call these; nobody spells a formula again. A ratio is null
-- when its denominator is zero.

-- marts.nps(promoters, detractors, rated_visits): 100 * (promoters - detractors) / rated_visits,
-- from -100 to 100; null when no visit is rated.
create or replace macro marts.nps(promoters, detractors, rated_visits) as (
    100.0 * (promoters - detractors) / nullif(rated_visits, 0)
);

-- marts.close_rate(closed_visits, visits): the share of visits that are closed.
create or replace macro marts.close_rate(closed_visits, visits) as (
    closed_visits / nullif(visits, 0)
);

-- marts.skip_rate(skipped_visits, visits): the share of visits that were skipped.
create or replace macro marts.skip_rate(skipped_visits, visits) as (
    skipped_visits / nullif(visits, 0)
);

-- marts.avg_rating(rating_sum, rated_visits): the mean rating over rated visits; null when none.
create or replace macro marts.avg_rating(rating_sum, rated_visits) as (
    rating_sum / nullif(rated_visits, 0)
);

-- marts.csat(promoters, passives, rated_visits): the share of rated visits rated 4 or 5; null when
-- none is rated.
create or replace macro marts.csat(promoters, passives, rated_visits) as (
    (promoters + passives) / nullif(rated_visits, 0)
);

-- marts.jobs_per_visit(jobs, visits): job (action-item) lines per visit.
create or replace macro marts.jobs_per_visit(jobs, visits) as (
    jobs / nullif(visits, 0)
);

-- marts.closed_within_window_rate(closed_within_window_visits, window_checked_visits): the share of
-- closed visits with a close time and a customer time window that were closed inside a window.
create or replace macro marts.closed_within_window_rate(closed_within_window_visits, window_checked_visits) as (
    closed_within_window_visits / nullif(window_checked_visits, 0)
);

-- marts.avg_hours_to_close(hours_to_close_sum, timed_closed_visits): the mean hours from creation
-- to close over closed visits where both times are known.
create or replace macro marts.avg_hours_to_close(hours_to_close_sum, timed_closed_visits) as (
    hours_to_close_sum / nullif(timed_closed_visits, 0)
);

-- marts.repeat_visit_rate(repeat_visits, equipment_visits): the share of closed equipment visits
-- that repeat a closed visit to the same site and serial number within 30 days.
create or replace macro marts.repeat_visit_rate(repeat_visits, equipment_visits) as (
    repeat_visits / nullif(equipment_visits, 0)
);
{% endmacro %}
