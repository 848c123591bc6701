with

incremental as (
    select build_mode = 'incremental' as is_incremental from {{ source('build', 'parameters') }}
),

touched as (
    select visit_id from {{ ref('int_touched_visits') }}
),

-- the equipment histories this build recomputed: those a touched visit was in (their old rows were
-- kept by the pre-hook of fct_equipment_visits) or is in now
histories as (
    select site_id, serial_nr from {{ source('build', 'replaced_equipment') }}
    union
    select site_id, serial_nr from {{ ref('fct_equipment_visits') }}
    where visit_id in (select visit_id from touched)
),

before as (
    select visit_id, bool_or(is_repeat_visit) as is_repeat_visit
    from {{ source('build', 'replaced_equipment') }}
    group by visit_id
),

after as (
    select equipment.visit_id, bool_or(equipment.is_repeat_visit) as is_repeat_visit
    from {{ ref('fct_equipment_visits') }} as equipment
    semi join histories
        on equipment.site_id = histories.site_id
        and equipment.serial_nr = histories.serial_nr
    group by equipment.visit_id
),

-- visits of those histories whose equipment measures moved (a repeat now, or no longer, or newly
-- or no longer an equipment visit); the others' measures are as they were
moved as (
    select coalesce(before.visit_id, after.visit_id) as visit_id
    from before
    full outer join after on before.visit_id = after.visit_id
    where before.is_repeat_visit is distinct from after.is_repeat_visit
),

final as (
    select visit_id from touched
    union
    select visit_id from moved
)

select * from final
where (select is_incremental from incremental)
