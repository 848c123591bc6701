-- int_visit_winners: the version of each touched visit that the marts show: its latest.
--
-- grain: one row per touched visit that still has a version in the lake
-- key: visit_id
-- materialized: table
--
-- Latest means the greatest modified_at (the API's modifieddAt), then the latest fetched_at, then
-- the later partition and run, so that the choice is deterministic. A touched visit with no version
-- left (deleted at the source) has no row and leaves the marts.
--
-- columns:
--   visit_id:
--   visit_date: the partition of the chosen version: the visit's current date.
--   run_id: the run that fetched the chosen version.
--   fetched_at:
--   modified_at:
--   version_count: how many versions of the visit the lake holds (more than 1 when its date changed between runs).

with

touched as (
    select visit_id from intermediate.int_touched_visits
),

versions as (
    select versions.*
    from intermediate.int_visit_versions as versions
    semi join touched on versions.visit_id = touched.visit_id
),

ranked as (
    select
        *,
        count(*) over (partition by visit_id) as version_count,
        row_number() over (
            partition by visit_id
            order by modified_at desc nulls last, fetched_at desc, visit_date desc, run_id desc
        ) as version_rank
    from versions
),

final as (
    select visit_id, visit_date, run_id, fetched_at, modified_at, version_count
    from ranked
    where version_rank = 1
)

select * from final
