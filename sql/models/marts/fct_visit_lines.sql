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

lines as (
    select *
    from {{ ref('stg_visit_lines') }}
    -- read only the partitions that hold a chosen version
    where visit_date in (select visit_date from winners)
),

winning_lines as (
    select lines.*
    from lines
    semi join winners
        on lines.visit_id = winners.visit_id
        and lines.visit_date = winners.visit_date
        and lines.run_id = winners.run_id
),

final as (
    select
        visit_id,
        line_index,
        visit_date,
        action_item,
        allow_rebrand,
        brand,
        brand_id,
        description,
        has_batch,
        has_return,
        line_erp_id,
        item_id,
        job_type,
        location,
        model,
        model_id,
        qty,
        serial_nr,
        serial_nr_id,
        extra_data_count,
        run_id,
        fetched_at
    from winning_lines
)

select * from final {{ in_date_order() }}
