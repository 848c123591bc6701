-- kpi_daily: the KPIs of each day: visits, close and skip rates, NPS, CSAT, rating, jobs, time windows, hours to close, repeat visits.
--
-- grain: one row per visit_date
-- key: visit_date
-- materialized: table
--
-- Each ratio is a KPI macro of the measures on its row (sql/macros/kpis.sql): nps =
-- marts.nps(promoters, detractors, rated_visits), close_rate = marts.close_rate(closed_visits,
-- visits), and so on; over several rows, sum the measures and call the macro on the sums. A visit
-- is rated when its signeeRating is an integer 1..5. Computed in int_kpi_measures.
--
-- columns:
--   visit_date: the day: the date of the visits counted.
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
    select * from intermediate.int_kpi_measures where grouping = 'day'
),

final as (
    select
        measures.visit_date,
        measures.visits,
        measures.closed_visits,
        measures.skipped_visits,
        measures.rated_visits,
        measures.promoters,
        measures.passives,
        measures.detractors,
        measures.nps,
        measures.close_rate,
        measures.skip_rate,
        measures.avg_rating,
        measures.csat,
        measures.rating_sum,
        measures.jobs,
        measures.jobs_per_visit,
        measures.window_checked_visits,
        measures.closed_within_window_visits,
        measures.closed_within_window_rate,
        measures.avg_hours_to_close,
        measures.timed_closed_visits,
        measures.hours_to_close_sum,
        measures.equipment_visits,
        measures.repeat_visits,
        measures.repeat_visit_rate
    from measures
)

select * from final
