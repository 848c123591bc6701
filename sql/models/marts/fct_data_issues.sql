with

issues as (
    select * from {{ ref('stg_data_issues') }}
),

final as (
    select
        issue_id,
        run_id,
        table_name,
        visit_id,
        line_index,
        extra_index,
        visit_date,
        field,
        raw_value,
        check_name,
        severity,
        action,
        reason,
        page_offset,
        fetched_at
    from issues
)

select * from final
