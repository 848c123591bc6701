-- the equipment rows replaced (source replaced_equipment) are kept while fct_equipment_visits builds: run after it
-- depends_on: {{ ref('fct_equipment_visits') }}

with

incremental as (
    select build_mode = 'incremental' as is_incremental from {{ source('build', 'parameters') }}
),

final as (
    select visit_id from {{ ref('int_touched_visits') }}
    union
    -- the visits whose equipment rows fct_equipment_visits replaced (the visit after a touched one
    -- may now be a repeat visit, or no longer one); their measures are recomputed
    select visit_id from {{ source('build', 'replaced_equipment') }}
)

select * from final
where (select is_incremental from incremental)
