-- kpi_skip_reasons_daily: why visits were skipped, per day and skip reason.
--
-- grain: one row per visit_date and skipped_reason_id, for days with skipped visits
-- key: visit_date, skipped_reason_id
-- materialized: table
--
-- The API gives a reason id only (the reason texts are in its undocumented static tables). A
-- skipped visit without a reason counts under '(unknown)'.
--
-- columns:
--   visit_date: the day: the date of the visits counted.
--   skipped_reason_id: the skip reason id; '(unknown)' when the skipped visit has none.
--   skipped_visits: skipped visits with this reason on the day.
--   share_of_skipped: skipped_visits / all skipped visits of the day.

with

skipped as (
    select visit_date, marts.unknown_member(skipped_reason_id) as skipped_reason_id
    from marts.fct_visits
    where skipped
),

counted as (
    select visit_date, skipped_reason_id, count(*) as skipped_visits
    from skipped
    group by visit_date, skipped_reason_id
),

final as (
    select
        visit_date,
        skipped_reason_id,
        skipped_visits,
        skipped_visits / sum(skipped_visits) over (partition by visit_date) as share_of_skipped
    from counted
)

select * from final
