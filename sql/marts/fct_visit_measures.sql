-- fct_visit_measures: the additive KPI measures of each visit: the one place a visit is counted for the KPIs.
--
-- grain: one row per visit
-- key: visit_id
-- materialized: table
--
-- Every KPI is a ratio of sums of these columns, computed by the KPI macros (sql/macros/kpis.sql,
-- e.g. marts.nps(promoters, detractors, rated_visits)). int_kpi_measures sums them per day, driver
-- and territory for the kpi_* tables; a reader who needs another grouping (a customer, a week,
-- territory and driver together) sums them over its filter and calls the same macros, so its
-- numbers equal the marts'. Each count is 1 or 0 for the visit.
--
-- Values are counted as the lake holds them: a visit sent both closed and skipped counts in
-- closed_visits and in skipped_visits; a closed visit without close_date counts in closed_visits
-- but not in timed_closed_visits or window_checked_visits; a rating outside 1..5 arrives NULL from
-- the lake and counts as unrated. Rebuilt in full every build: a change on one day moves the repeat
-- measure of the following 30 days.
--
-- columns:
--   visit_id:
--   visit_date:
--   driver_id:
--   territory:
--   site_id:
--   visits: 1: the visit.
--   closed_visits: 1 when the visit is closed.
--   skipped_visits: 1 when the visit was skipped.
--   rated_visits: 1 when the visit has a rating 1..5.
--   promoters: 1 when the rating is 5.
--   passives: 1 when the rating is 4.
--   detractors: 1 when the rating is 1, 2 or 3.
--   rating_sum: the rating (0 when unrated).
--   jobs: the visit's job (action-item) lines.
--   window_checked_visits: 1 when the visit is closed, has a close time and at least one customer time window.
--   closed_within_window_visits: 1 when, in addition, it was closed inside a time window.
--   timed_closed_visits: 1 when the visit is closed and its hours from creation to close are known.
--   hours_to_close_sum: those hours (0 when unknown).
--   equipment_visits: 1 when the visit is closed, has a site and at least one serviced serial number.
--   repeat_visits: 1 when, in addition, it repeats a closed visit to the same site and serial number within 30 days.

with

visits as (
    select
        visit_id,
        visit_date,
        driver_id,
        territory,
        site_id,
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

final as (
    select
        visits.visit_id,
        visits.visit_date,
        visits.driver_id,
        visits.territory,
        visits.site_id,
        1 as visits,
        cast(visits.closed as integer) as closed_visits,
        cast(visits.skipped as integer) as skipped_visits,
        cast(visits.signee_rating is not null as integer) as rated_visits,
        cast(coalesce(visits.nps_category = 'promoter', false) as integer) as promoters,
        cast(coalesce(visits.nps_category = 'passive', false) as integer) as passives,
        cast(coalesce(visits.nps_category = 'detractor', false) as integer) as detractors,
        cast(coalesce(visits.signee_rating, 0) as integer) as rating_sum,
        visits.job_count as jobs,
        cast(visits.closed_within_time_window is not null as integer) as window_checked_visits,
        cast(coalesce(visits.closed_within_time_window, false) as integer) as closed_within_window_visits,
        cast(visits.hours_to_close is not null as integer) as timed_closed_visits,
        coalesce(visits.hours_to_close, 0) as hours_to_close_sum,
        cast(repeats.is_repeat_visit is not null as integer) as equipment_visits,
        cast(coalesce(repeats.is_repeat_visit, false) as integer) as repeat_visits
    from visits
    left join repeats on visits.visit_id = repeats.visit_id
)

select * from final
