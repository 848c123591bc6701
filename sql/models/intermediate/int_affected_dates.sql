with

incremental as (
    select build_mode = 'incremental' as is_incremental from {{ source('build', 'parameters') }}
),

final as (
    -- the days the replaced rows stood in (a visit that moved or left changes its old day too)
    select visit_date from {{ source('build', 'replaced_visits') }}
    union
    -- the days the affected visits stand in now
    select visit_date from {{ ref('fct_visits') }}
    where visit_id in (select visit_id from {{ ref('int_affected_visits') }})
)

select * from final
where (select is_incremental from incremental) and visit_date is not null
