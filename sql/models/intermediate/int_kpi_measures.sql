{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=[
            "visit_date in (select visit_date from intermediate.int_affected_dates)",
        ],
        on_schema_change="fail"
    )
}}
-- depends_on: {{ ref('int_affected_dates') }}

with

measures as (
    select * from {{ ref('fct_visit_measures') }}
    {% if is_incremental() %}
    where visit_date in (select visit_date from {{ ref('int_affected_dates') }})
    {% endif %}
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
