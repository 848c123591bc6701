-- int_visit_versions: the key of every visit version in the lake, kept between builds.
--
-- grain: one row per visit version (a visit in one visit_date partition, written by one run)
-- key: visit_id, visit_date, run_id
-- materialized: incremental
-- replace_where: visit_date in (select visit_date from build.changed_partitions)
--
-- A narrow copy of the lake's visit keys. An incremental build replaces only the changed
-- partitions here, and can still pick each visit's latest version across all partitions without
-- reading the unchanged ones.
--
-- columns:
--   visit_id:
--   visit_date:
--   run_id:
--   fetched_at:
--   modified_at:

with

changed_partitions as (
    select visit_date from build.changed_partitions
),

visits as (
    select visit_id, visit_date, run_id, fetched_at, modified_at
    from staging.stg_visits
    where visit_date in (select visit_date from changed_partitions)
),

final as (
    select * from visits
)

select * from final
