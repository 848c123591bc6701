{#-
    The pre-hook of marts.fct_equipment_visits on an incremental build: copy into
    build.replaced_equipment every row of the equipment histories (site and serial number) that a
    touched visit was in before this build or is in now. The model recomputes exactly those histories,
    and int_affected_visits compares old and new repeat flags to find the visits whose measures moved.
-#}
{% macro keep_replaced_histories(relation) %}
    {%- if is_incremental() -%}
    insert into {{ source('build', 'replaced_equipment') }} (visit_id, site_id, serial_nr, is_repeat_visit)
    with touched as (
        select visit_id from {{ ref('int_touched_visits') }}
    ),
    histories as (
        select site_id, serial_nr from {{ relation }} where visit_id in (select visit_id from touched)
        union
        select visits.site_id, trim(lines.serial_nr)
        from {{ ref('fct_visits') }} as visits
        inner join {{ ref('fct_visit_lines') }} as lines on visits.visit_id = lines.visit_id
        where visits.visit_id in (select visit_id from touched)
            and lines.visit_id in (select visit_id from touched)
            and visits.closed
            and visits.site_id <> marts.unknown_member(null)
            and nullif(trim(lines.serial_nr), '') is not null
    )
    select equipment.visit_id, equipment.site_id, equipment.serial_nr, equipment.is_repeat_visit
    from {{ relation }} as equipment
    semi join histories on equipment.site_id = histories.site_id and equipment.serial_nr = histories.serial_nr
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}
