-- kpi_territory_daily: the KPIs of each territory on each day.
--
-- grain: one row per visit_date and territory
-- key: visit_date, territory
-- materialized: table
--
-- Each ratio is a KPI macro of the measures on its row (sql/macros/kpis.sql): nps =
-- marts.nps(promoters, detractors, rated_visits), close_rate = marts.close_rate(closed_visits,
-- visits), and so on; over several rows, sum the measures and call the macro on the sums. A visit
-- is rated when its signeeRating is an integer 1..5. Computed in int_kpi_measures.
--
-- columns:
--   visit_date: the day: the date of the visits counted.
--   territory: the territory; '(unknown)' for visits without one.
--   visits:
--   closed_visits:
--   skipped_visits:
--   rated_visits:
--   promoters:
--   passives:
--   detractors:
--   nps:
--   close_rate:
--   skip_rate:
--   avg_rating:
--   csat:
--   rating_sum:
--   jobs:
--   jobs_per_visit:
--   window_checked_visits:
--   closed_within_window_visits:
--   closed_within_window_rate:
--   avg_hours_to_close:
--   timed_closed_visits:
--   hours_to_close_sum:
--   equipment_visits:
--   repeat_visits:
--   repeat_visit_rate:

with

measures as (
    select * from intermediate.int_kpi_measures where grouping = 'territory'
),

final as (
    -- every measure and KPI of int_kpi_measures, in its order, without the other grains' keys
    select * exclude (grouping, driver_id) from measures
)

select * from final
