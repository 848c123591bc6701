{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=["visit_id in (select visit_id from intermediate.int_touched_visits)"],
        on_schema_change="fail"
    )
}}
-- depends_on: {{ ref('int_touched_visits') }}

with

winners as (
    select visit_id, visit_date, run_id from {{ ref('int_visit_winners') }}
),

extra_data as (
    select *
    from {{ ref('stg_line_extra_data') }}
    -- read only the partitions that hold a chosen version
    where visit_date in (select visit_date from winners)
),

winning_extra_data as (
    select extra_data.*
    from extra_data
    semi join winners
        on extra_data.visit_id = winners.visit_id
        and extra_data.visit_date = winners.visit_date
        and extra_data.run_id = winners.run_id
),

final as (
    select
        visit_id,
        line_index,
        extra_index,
        visit_date,
        name,
        caption,
        type,
        description,
        value,
        value_number,
        required,
        readonly,
        options_values,
        options_default,
        max,
        min,
        pattern,
        step,
        run_id,
        fetched_at
    from winning_extra_data
)

select * from final {{ in_date_order() }}
