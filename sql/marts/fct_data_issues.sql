-- fct_data_issues: the data issues of the published lake: every value nulled or kept as sent, and every record quarantined, with its check.
--
-- grain: one row per issue (a value of a record, or a whole record, that a check found wrong)
-- key: issue_id
-- materialized: table
--
-- A bad value costs only itself: a field issue leaves its record in the marts (action nulled: its
-- column holds NULL; kept: the value is as sent), a record issue means the record and its children
-- are in the lake's quarantine, not in the marts (action quarantined). Rebuilt from the lake's issues
-- on every build, full or incremental: the table is small, and issues without a date (a record with
-- no usable date from a full listing) belong to no partition.
--
-- columns:
--   issue_id:
--   run_id:
--   table_name:
--   visit_id:
--   line_index:
--   extra_index:
--   visit_date:
--   field:
--   raw_value:
--   check_name:
--   severity:
--   action:
--   reason:
--   page_offset:
--   fetched_at:

with

issues as (
    select * from staging.stg_data_issues
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
