{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=[
            "visit_id in (select visit_id from intermediate.int_touched_visits)",
            "(visit_id, serial_nr) in (select visit_id, serial_nr from $new_rows)",
        ],
        on_schema_change="fail",
        keep_replaced={"into": "replaced_equipment", "columns": ["visit_id", "site_id", "serial_nr", "is_repeat_visit"]}
    )
}}
-- depends_on: {{ source('build', 'replaced_equipment') }}
-- depends_on: {{ ref('int_touched_visits') }}

with

settings as (
    select 30 as repeat_window_days
),

{% if is_incremental() %}
-- An incremental build recomputes the histories (site and serial number) a touched visit was in (its
-- stored rows) or is in now, and replaces the touched visits' rows and the rows that changed (the
-- visit after a touched one gets another previous visit); the other rows of those histories stay.
touched as (
    select visit_id from {{ ref('int_touched_visits') }}
),

touched_equipment as (
    select visits.site_id, trim(lines.serial_nr) as serial_nr
    from {{ ref('fct_visits') }} as visits
    inner join {{ ref('fct_visit_lines') }} as lines on visits.visit_id = lines.visit_id
    where visits.visit_id in (select visit_id from touched)
        and lines.visit_id in (select visit_id from touched)
        and visits.closed
        and visits.site_id <> marts.unknown_member(null)
        and nullif(trim(lines.serial_nr), '') is not null
),

touched_histories as (
    select site_id, serial_nr from {{ this }} where visit_id in (select visit_id from touched)
    union
    select site_id, serial_nr from touched_equipment
),
{% endif %}

closed_visits as (
    select visit_id, site_id, visit_date, created_at, driver_id, territory
    from {{ ref('fct_visits') }}
    where closed and site_id <> marts.unknown_member(null)
    {% if is_incremental() %}
        and site_id in (select site_id from touched_histories)
    {% endif %}
),

serviced_equipment as (
    select distinct visit_id, trim(serial_nr) as serial_nr
    from {{ ref('fct_visit_lines') }}
    where nullif(trim(serial_nr), '') is not null
    {% if is_incremental() %}
        and visit_id in (select visit_id from closed_visits)
    {% endif %}
),

equipment_visits as (
    select closed_visits.*, serviced_equipment.serial_nr
    from closed_visits
    inner join serviced_equipment on closed_visits.visit_id = serviced_equipment.visit_id
),

histories as (
    select equipment_visits.*
    from equipment_visits
    {% if is_incremental() %}
    semi join touched_histories
        on equipment_visits.site_id = touched_histories.site_id
        and equipment_visits.serial_nr = touched_histories.serial_nr
    {% endif %}
),

sequenced as (
    select
        *,
        lag(visit_id) over equipment_history as previous_visit_id,
        lag(visit_date) over equipment_history as previous_visit_date,
        lag(driver_id) over equipment_history as previous_driver_id
    from histories
    window equipment_history as (
        partition by site_id, serial_nr
        order by visit_date, created_at nulls first, visit_id
    )
),

final as (
    select
        visit_id,
        serial_nr,
        site_id,
        visit_date,
        driver_id,
        territory,
        previous_visit_id,
        previous_visit_date,
        previous_driver_id,
        date_diff('day', previous_visit_date, visit_date) as days_since_previous_visit,
        coalesce(
            date_diff('day', previous_visit_date, visit_date) <= (select repeat_window_days from settings),
            false
        ) as is_repeat_visit
    from sequenced
)

{% if is_incremental() %}
, stored as (
    select * from {{ this }}
    where (site_id, serial_nr) in (select site_id, serial_nr from touched_histories)
),

untouched as (
    select final.* from final anti join touched on final.visit_id = touched.visit_id
),

replacing as (
    select final.* from final semi join touched on final.visit_id = touched.visit_id
    union all
    (select * from untouched except select * from stored)
)

select * from replacing
{% else %}
select * from final
{% endif %}
