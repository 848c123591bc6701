with

touched as (
    select visit_id from {{ ref('int_touched_visits') }}
),

versions as (
    select versions.*
    from {{ ref('int_visit_versions') }} as versions
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
