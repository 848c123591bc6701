-- kpi_data_issues_daily: data issues per day, table, field, check, severity and action: how many, over how many records.
--
-- grain: one row per visit_date, table_name, field, check_name, severity and action that had issues
-- key: visit_date, table_name, field, check_name, severity, action
-- key_nullable: visit_date
-- materialized: table
--
-- The Data quality page of the dashboard charts this table over time. visit_date is null for the
-- issues of records without a usable date that came from a listing without a date filter (a full
-- refresh): they are counted here too, under a null date.
--
-- columns:
--   visit_date: the day of the records (null when they have no usable date).
--   table_name:
--   field:
--   check_name:
--   severity:
--   action:
--   issues: issue rows.
--   records: distinct records affected (visit_id, line_index, extra_index); each issue of a record without a usable `_id` counts as one record.

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
    from marts.fct_data_issues
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
