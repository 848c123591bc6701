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

skipped as (
    select visit_date, marts.unknown_member(skipped_reason_id) as skipped_reason_id
    from {{ ref('fct_visits') }}
    where skipped
    {% if is_incremental() %}
        and visit_date in (select visit_date from {{ ref('int_affected_dates') }})
    {% endif %}
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
