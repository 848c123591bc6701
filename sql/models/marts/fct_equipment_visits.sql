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
-- stored rows) or is in now, from the touched visits' rows in the facts and the other visits' rows as
-- stored (a visit the build did not touch keeps its rows), and replaces the touched visits' rows and
-- the rows that came out different (the visit after a touched one gets another previous visit).
touched as (
    select visit_id from {{ ref('int_touched_visits') }}
),

touched_visits as (
    select visit_id, site_id, visit_date, created_at, driver_id, territory
    from {{ ref('fct_visits') }}
    where visit_id in (select visit_id from touched)
        and closed
        and site_id <> marts.unknown_member(null)
),

touched_lines as (
    select visit_id, serial_nr from {{ ref('fct_visit_lines') }}
    where visit_id in (select visit_id from touched_visits)
        -- a visit's lines stand in its day: the date range lets the scan skip row groups
        and visit_date between (select min(visit_date) from touched_visits)
            and (select max(visit_date) from touched_visits)
),

touched_rows as (
    select
        visits.visit_id, visits.site_id, visits.visit_date, visits.created_at, visits.driver_id,
        visits.territory, serviced.serial_nr
    from touched_visits as visits
    inner join (
        select distinct visit_id, trim(serial_nr) as serial_nr
        from touched_lines
        where nullif(trim(serial_nr), '') is not null
    ) as serviced on visits.visit_id = serviced.visit_id
),

touched_histories as (
    select site_id, serial_nr from {{ this }} where visit_id in (select visit_id from touched)
    union
    select site_id, serial_nr from touched_rows
),

stored_untouched as (
    select stored.* from {{ this }} as stored
    anti join touched on stored.visit_id = touched.visit_id
    where (stored.site_id, stored.serial_nr) in (select site_id, serial_nr from touched_histories)
),

kept_rows as (
    select
        stored_untouched.visit_id, stored_untouched.site_id, stored_untouched.visit_date, visits.created_at,
        stored_untouched.driver_id, stored_untouched.territory, stored_untouched.serial_nr
    from stored_untouched
    inner join {{ ref('fct_visits') }} as visits on stored_untouched.visit_id = visits.visit_id
),

histories as (
    select * from touched_rows
    union all
    select * from kept_rows
),
{% else %}
closed_visits as (
    select visit_id, site_id, visit_date, created_at, driver_id, territory
    from {{ ref('fct_visits') }}
    where closed and site_id <> marts.unknown_member(null)
),

serviced_equipment as (
    select distinct visit_id, trim(serial_nr) as serial_nr
    from {{ ref('fct_visit_lines') }}
    where nullif(trim(serial_nr), '') is not null
),

histories as (
    select closed_visits.*, serviced_equipment.serial_nr
    from closed_visits
    inner join serviced_equipment on closed_visits.visit_id = serviced_equipment.visit_id
),
{% endif %}

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
, replacing as (
    select final.* from final semi join touched on final.visit_id = touched.visit_id
    union all
    (
        select final.* from final anti join touched on final.visit_id = touched.visit_id
        except
        select * from stored_untouched
    )
)

select * from replacing
{% else %}
select * from final
{% endif %}
