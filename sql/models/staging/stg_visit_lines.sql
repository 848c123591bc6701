with

source as (
    select * from {{ source('lake', 'visit_lines') }}
),

columns as (
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
        extra_fields,
        run_id,
        fetched_at
    from source
),

final as (
    select * from columns
)

select * from final
