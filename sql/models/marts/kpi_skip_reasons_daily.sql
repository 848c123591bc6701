with

skipped as (
    select visit_date, marts.unknown_member(skipped_reason_id) as skipped_reason_id
    from {{ ref('fct_visits') }}
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
