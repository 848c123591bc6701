with

source as (
    select * from {{ source('lake', 'line_extra_data') }}
),

columns as (
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
        required,
        readonly,
        options_values,
        options_default,
        max,
        min,
        pattern,
        step,
        value_number,
        extra_fields,
        run_id,
        fetched_at
    from source
),

final as (
    select * from columns
)

select * from final
