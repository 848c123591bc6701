{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=["visit_date in (select visit_date from build.changed_partitions)"],
        on_schema_change="fail"
    )
}}
-- depends_on: {{ source('build', 'changed_partitions') }}

with

changed_partitions as (
    select visit_date from {{ source('build', 'changed_partitions') }}
),

visits as (
    select visit_id, visit_date, run_id, fetched_at, modified_at
    from {{ ref('stg_visits') }}
    where visit_date in (select visit_date from changed_partitions)
),

final as (
    select * from visits
)

select * from final {{ in_date_order() }}
