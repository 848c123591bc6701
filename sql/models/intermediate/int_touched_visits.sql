with

changed_partitions as (
    select visit_date from {{ source('build', 'changed_partitions') }}
),

versions_now as (
    select visit_id
    from {{ ref('int_visit_versions') }}
    where visit_date in (select visit_date from changed_partitions)
),

versions_before as (
    select visit_id from {{ source('build', 'previous_visits') }}
),

final as (
    select visit_id from versions_now
    union
    select visit_id from versions_before
)

select * from final
