-- int_touched_visits: the visits this build (re)loads into the fact tables.
--
-- grain: one row per visit
-- key: visit_id
-- materialized: table
--
-- A visit's latest version can only change when one of its versions sits in a changed partition:
-- either a version there now, or the version the previous build chose (which may since have left
-- the partition, moved to another date or been deleted). A full build touches every visit.
--
-- columns:
--   visit_id:

with

changed_partitions as (
    select visit_date from build.changed_partitions
),

versions_now as (
    select visit_id
    from intermediate.int_visit_versions
    where visit_date in (select visit_date from changed_partitions)
),

chosen_before as (
    select visit_id from build.previous_visits
),

final as (
    select visit_id from versions_now
    union
    select visit_id from chosen_before
)

select * from final
