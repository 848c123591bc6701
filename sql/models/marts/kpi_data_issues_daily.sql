with

issues as (
    select
        visit_date,
        table_name,
        field,
        check_name,
        severity,
        action,
        visit_id,
        line_index,
        extra_index
    from {{ ref('fct_data_issues') }}
),

counted as (
    select
        visit_date,
        table_name,
        field,
        check_name,
        severity,
        action,
        count(*) as issues,
        count(distinct struct_pack(visit_id, line_index, extra_index)) filter (where visit_id is not null)
            + count(*) filter (where visit_id is null) as records
    from issues
    group by visit_date, table_name, field, check_name, severity, action
),

final as (
    select * from counted
)

select * from final
