{{
    config(
        materialized='view',
    )
}}

with

settings as (
    select 30 as repeat_window_days
),

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

equipment_visits as (
    select closed_visits.*, serviced_equipment.serial_nr
    from closed_visits
    inner join serviced_equipment on closed_visits.visit_id = serviced_equipment.visit_id
),

sequenced as (
    select
        *,
        lag(visit_id) over equipment_history as previous_visit_id,
        lag(visit_date) over equipment_history as previous_visit_date,
        lag(driver_id) over equipment_history as previous_driver_id
    from equipment_visits
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

select * from final
