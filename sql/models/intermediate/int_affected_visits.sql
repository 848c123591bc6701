with

incremental as (
    select build_mode = 'incremental' as is_incremental from {{ source('build', 'parameters') }}
),

touched as (
    select visit_id from {{ ref('int_touched_visits') }}
),

-- a touched visit's equipment histories, as they were and as they are: every visit in them may now
-- repeat another visit, or no longer
histories as (
    select site_id, serial_nr from {{ source('build', 'replaced_equipment') }}
    union
    select site_id, serial_nr from {{ ref('fct_equipment_visits') }}
    where visit_id in (select visit_id from touched)
),

in_histories as (
    select equipment.visit_id
    from {{ ref('fct_equipment_visits') }} as equipment
    semi join histories
        on equipment.site_id = histories.site_id
        and equipment.serial_nr = histories.serial_nr
),

final as (
    select visit_id from touched
    union
    select visit_id from in_histories
)

select * from final
where (select is_incremental from incremental)
