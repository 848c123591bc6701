-- int_kpi_measures: the KPI definitions, computed once for the day, day x driver and day x territory grains.
--
-- grain: one row per grouping (day, driver or territory), visit_date and group key
-- key: grouping, visit_date, driver_id, territory
-- materialized: table
--
-- The one place the KPIs are defined; kpi_daily, kpi_driver_daily and kpi_territory_daily only pick
-- their grouping. Definitions (issue 6):
-- - a visit is rated when signeeRating is an integer 1..5; 0, empty, null, missing is unrated;
-- - promoters = rating 5, passives = rating 4, detractors = ratings 1..3;
-- - nps = 100 * (promoters - detractors) / rated_visits, null when no visit is rated;
-- - close_rate = closed_visits / visits; skip_rate = skipped_visits / visits;
-- - avg_rating = mean rating over rated visits (null when none);
-- - csat = share of rated visits rated 4 or 5 (null when none);
-- - jobs_per_visit = action-item lines / visits;
-- - closed_within_window_rate = closed visits closed inside a customer time window / closed visits
--   that have a close time and at least one window;
-- - avg_hours_to_close = mean hours from creation to close over closed visits where both are known;
-- - repeat_visit_rate = repeat visits / closed visits with a serviced serial number (fct_equipment_visits).
-- A missing driver or territory counts under '(unknown)' so that the groups add up to the day.
-- The counts and sums are additive: a ratio over several rows is recomputed from their sums.
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
--   nps: 100 * (promoters - detractors) / rated_visits; null when no visit is rated.
--   close_rate: closed_visits / visits.
--   skip_rate: skipped_visits / visits.
--   avg_rating: mean rating over rated visits; null when no visit is rated.
--   csat: (promoters + passives) / rated_visits, the share rated 4 or 5; null when no visit is rated.
--   rating_sum: sum of the ratings of rated visits, so that avg_rating over several rows is sum(rating_sum) / sum(rated_visits).
--   jobs: job (action-item) lines of the visits.
--   jobs_per_visit: jobs / visits.
--   window_checked_visits: closed visits with a close time and at least one customer time window.
--   closed_within_window_visits: of those, visits closed inside a time window.
--   closed_within_window_rate: closed_within_window_visits / window_checked_visits; null when none.
--   avg_hours_to_close: mean hours from creation to close over closed visits; null when none.
--   timed_closed_visits: closed visits whose hours from creation to close are known.
--   hours_to_close_sum: their hours from creation to close, summed (for averages over several rows).
--   equipment_visits: closed visits with a site and at least one serviced serial number.
--   repeat_visits: of those, visits that repeat a closed visit to the same site and serial number within 30 days.
--   repeat_visit_rate: repeat_visits / equipment_visits; null when none.

with

visits as (
    select
        visit_id,
        visit_date,
        unknown_member(driver_id) as driver_id,
        unknown_member(territory) as territory,
        closed,
        skipped,
        signee_rating,
        nps_category,
        job_count,
        closed_within_time_window,
        hours_to_close
    from marts.fct_visits
),

repeats as (
    select visit_id, bool_or(is_repeat_visit) as is_repeat_visit
    from marts.fct_equipment_visits
    group by visit_id
),

visit_facts as (
    select visits.*, repeats.is_repeat_visit
    from visits
    left join repeats on visits.visit_id = repeats.visit_id
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
        count(*) as visits,
        count(*) filter (where closed) as closed_visits,
        count(*) filter (where skipped) as skipped_visits,
        count(signee_rating) as rated_visits,
        count(*) filter (where nps_category = 'promoter') as promoters,
        count(*) filter (where nps_category = 'passive') as passives,
        count(*) filter (where nps_category = 'detractor') as detractors,
        avg(signee_rating) as avg_rating,
        coalesce(sum(signee_rating), 0) as rating_sum,
        coalesce(sum(job_count), 0) as jobs,
        count(closed_within_time_window) as window_checked_visits,
        count(*) filter (where closed_within_time_window) as closed_within_window_visits,
        avg(hours_to_close) as avg_hours_to_close,
        count(hours_to_close) as timed_closed_visits,
        coalesce(sum(hours_to_close), 0) as hours_to_close_sum,
        count(is_repeat_visit) as equipment_visits,
        count(*) filter (where is_repeat_visit) as repeat_visits
    from visit_facts
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
        100.0 * (promoters - detractors) / nullif(rated_visits, 0) as nps,
        closed_visits / visits as close_rate,
        skipped_visits / visits as skip_rate,
        avg_rating,
        (promoters + passives) / nullif(rated_visits, 0) as csat,
        rating_sum,
        jobs,
        jobs / visits as jobs_per_visit,
        window_checked_visits,
        closed_within_window_visits,
        closed_within_window_visits / nullif(window_checked_visits, 0) as closed_within_window_rate,
        avg_hours_to_close,
        timed_closed_visits,
        hours_to_close_sum,
        equipment_visits,
        repeat_visits,
        repeat_visits / nullif(equipment_visits, 0) as repeat_visit_rate
    from counted
)

select * from final
