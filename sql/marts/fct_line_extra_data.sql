-- fct_line_extra_data: the custom fields (extraData) of each line, from the visit's latest version.
--
-- grain: one row per custom field of a line of a visit
-- key: visit_id, line_index, extra_index
-- materialized: incremental
-- replace_where: visit_id in (select visit_id from intermediate.int_touched_visits)
--
-- columns:
--   visit_id:
--   line_index:
--   extra_index:
--   visit_date:
--   name:
--   caption:
--   type:
--   description:
--   value:
--   value_number:
--   required:
--   readonly:
--   options_values:
--   options_default:
--   max:
--   min:
--   pattern:
--   step:
--   run_id:
--   fetched_at:

with

winners as (
    select visit_id, visit_date, run_id from intermediate.int_visit_winners
),

extra_data as (
    select *
    from staging.stg_line_extra_data
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

select * from final
