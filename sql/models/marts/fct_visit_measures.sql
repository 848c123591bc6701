{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=[
            "visit_id in (select visit_id from intermediate.int_affected_visits)",
        ],
        on_schema_change="fail"
    )
}}
-- depends_on: {{ ref('int_affected_visits') }}

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
    from {{ ref('fct_visits') }}
    {% if is_incremental() %}
    where visit_id in (select visit_id from {{ ref('int_affected_visits') }})
    {% endif %}
),

repeats as (
    select visit_id, bool_or(is_repeat_visit) as is_repeat_visit
    from {{ ref('fct_equipment_visits') }}
    {% if is_incremental() %}
    where visit_id in (select visit_id from {{ ref('int_affected_visits') }})
    {% endif %}
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

select * from final {{ in_date_order() }}
