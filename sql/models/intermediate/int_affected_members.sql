with

incremental as (
    select build_mode = 'incremental' as is_incremental from {{ source('build', 'parameters') }}
),

replaced as (
    select driver_id, site_id, territory from {{ source('build', 'replaced_visits') }}
),

current as (
    select driver_id, site_id, territory from {{ ref('fct_visits') }}
    where visit_id in (select visit_id from {{ ref('int_touched_visits') }})
),

touched as (
    select * from replaced
    union all
    select * from current
),

final as (
    select distinct 'driver' as dimension, driver_id as member from touched
    union
    select distinct 'site' as dimension, site_id as member from touched
    union
    select distinct 'territory' as dimension, territory as member from touched
)

select * from final
where (select is_incremental from incremental)
