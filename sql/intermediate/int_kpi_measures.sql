-- int_kpi_measures: the KPIs, computed once for the day, day x driver and day x territory grains.
--
-- grain: one row per grouping (day, driver or territory), visit_date and group key
-- key: grouping, visit_date, driver_id, territory
-- materialized: table
--
-- kpi_daily, kpi_driver_daily and kpi_territory_daily only pick their grouping. The measures are the
-- sums of marts.fct_visit_measures (where a visit is counted) and the ratios are the KPI macros of
-- sql/macros/kpis.sql (where each formula is defined), so any other grouping a reader sums from
-- fct_visit_measures gives the same numbers:
-- - a visit is rated when signeeRating is an integer 1..5; 0, empty, null, missing or out of range
--   is unrated; promoters = rating 5, passives = rating 4, detractors = ratings 1..3;
-- - nps = marts.nps(promoters, detractors, rated_visits) = 100 * (promoters - detractors) / rated_visits;
-- - close_rate = marts.close_rate(closed_visits, visits); skip_rate = marts.skip_rate(skipped_visits, visits);
-- - avg_rating = marts.avg_rating(rating_sum, rated_visits); csat = marts.csat(promoters, passives,
--   rated_visits), the share of rated visits rated 4 or 5;
-- - jobs_per_visit = marts.jobs_per_visit(jobs, visits);
-- - closed_within_window_rate = marts.closed_within_window_rate(closed_within_window_visits,
--   window_checked_visits); avg_hours_to_close = marts.avg_hours_to_close(hours_to_close_sum,
--   timed_closed_visits); repeat_visit_rate = marts.repeat_visit_rate(repeat_visits, equipment_visits).
-- A ratio is null when its denominator is zero. A missing driver or territory counts under
-- '(unknown)' so that the groups add up to the day. The counts and sums are additive: a ratio over
-- several rows is recomputed from their sums with the same macro.
--
-- columns:
--   grouping: which KPI table the row belongs to: day, driver or territory.
--   visit_date:
--   driver_id: the driver ('(unknown)' when the visit has none); '(all)' on day and territory rows.
--   territory: the territory ('(unknown)' when the visit has none); '(all)' on day and driver rows.
--   visits: number of visits.
--   closed_visits: visits that are closed.
--   skipped_visits: visits that were skipped.
--   rated_visits: visits with a rating 1..5.
--   promoters: rated visits with rating 5.
--   passives: rated visits with rating 4.
--   detractors: rated visits with rating 1, 2 or 3.
--   nps: marts.nps(promoters, detractors, rated_visits): 100 * (promoters - detractors) / rated_visits; null when no visit is rated.
--   close_rate: marts.close_rate(closed_visits, visits): closed_visits / visits.
--   skip_rate: marts.skip_rate(skipped_visits, visits): skipped_visits / visits.
--   avg_rating: marts.avg_rating(rating_sum, rated_visits): mean rating over rated visits; null when no visit is rated.
--   csat: marts.csat(promoters, passives, rated_visits): the share rated 4 or 5; null when no visit is rated.
--   rating_sum: sum of the ratings of rated visits, so that avg_rating over several rows is marts.avg_rating(sum(rating_sum), sum(rated_visits)).
--   jobs: job (action-item) lines of the visits.
--   jobs_per_visit: marts.jobs_per_visit(jobs, visits): jobs / visits.
--   window_checked_visits: closed visits with a close time and at least one customer time window.
--   closed_within_window_visits: of those, visits closed inside a time window.
--   closed_within_window_rate: marts.closed_within_window_rate(closed_within_window_visits, window_checked_visits); null when none.
--   avg_hours_to_close: marts.avg_hours_to_close(hours_to_close_sum, timed_closed_visits): mean hours from creation to close over closed visits; null when none.
--   timed_closed_visits: closed visits whose hours from creation to close are known.
--   hours_to_close_sum: their hours from creation to close, summed (for averages over several rows).
--   equipment_visits: closed visits with a site and at least one serviced serial number.
--   repeat_visits: of those, visits that repeat a closed visit to the same site and serial number within 30 days.
--   repeat_visit_rate: marts.repeat_visit_rate(repeat_visits, equipment_visits); null when none.

with

measures as (
    select * from marts.fct_visit_measures
),

counted as (
    select
        case grouping(driver_id, territory)
            when 3 then 'day'
            when 1 then 'driver'
            when 2 then 'territory'
        end as grouping,
        visit_date,
        coalesce(driver_id, '(all)') as driver_id,
        coalesce(territory, '(all)') as territory,
        cast(sum(visits) as bigint) as visits,
        cast(sum(closed_visits) as bigint) as closed_visits,
        cast(sum(skipped_visits) as bigint) as skipped_visits,
        cast(sum(rated_visits) as bigint) as rated_visits,
        cast(sum(promoters) as bigint) as promoters,
        cast(sum(passives) as bigint) as passives,
        cast(sum(detractors) as bigint) as detractors,
        cast(sum(rating_sum) as bigint) as rating_sum,
        cast(sum(jobs) as bigint) as jobs,
        cast(sum(window_checked_visits) as bigint) as window_checked_visits,
        cast(sum(closed_within_window_visits) as bigint) as closed_within_window_visits,
        cast(sum(timed_closed_visits) as bigint) as timed_closed_visits,
        sum(hours_to_close_sum) as hours_to_close_sum,
        cast(sum(equipment_visits) as bigint) as equipment_visits,
        cast(sum(repeat_visits) as bigint) as repeat_visits
    from measures
    group by grouping sets ((visit_date), (visit_date, driver_id), (visit_date, territory))
),

final as (
    select
        grouping,
        visit_date,
        driver_id,
        territory,
        visits,
        closed_visits,
        skipped_visits,
        rated_visits,
        promoters,
        passives,
        detractors,
        marts.nps(promoters, detractors, rated_visits) as nps,
        marts.close_rate(closed_visits, visits) as close_rate,
        marts.skip_rate(skipped_visits, visits) as skip_rate,
        marts.avg_rating(rating_sum, rated_visits) as avg_rating,
        marts.csat(promoters, passives, rated_visits) as csat,
        rating_sum,
        jobs,
        marts.jobs_per_visit(jobs, visits) as jobs_per_visit,
        window_checked_visits,
        closed_within_window_visits,
        marts.closed_within_window_rate(closed_within_window_visits, window_checked_visits)
            as closed_within_window_rate,
        marts.avg_hours_to_close(hours_to_close_sum, timed_closed_visits) as avg_hours_to_close,
        timed_closed_visits,
        hours_to_close_sum,
        equipment_visits,
        repeat_visits,
        marts.repeat_visit_rate(repeat_visits, equipment_visits) as repeat_visit_rate
    from counted
)

select * from final
