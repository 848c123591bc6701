with

source as (
    select * from {{ source('lake', 'data_issues') }}
),

columns as (
    select
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
    from source
),

identified as (
    select
        md5(to_json(columns))[:16] as digest,
        *
    from columns
),

final as (
    select
        digest || '-' || row_number() over (partition by digest) as issue_id,
        * exclude (digest)
    from identified
)

select * from final
