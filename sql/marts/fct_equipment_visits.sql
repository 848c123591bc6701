-- fct_equipment_visits: closed visits to a piece of equipment at a site, with the visit before it: the repeat-visit (first-time-fix) measure.
--
-- grain: one row per closed visit and serial number serviced on it
-- key: visit_id, serial_nr
-- materialized: view
--
-- Repeat visit: a closed visit to a site (site_id) for a serial number that already had a closed
-- visit at the same site within the 30 days before (same-day visits count, ordered by date, then
-- created_at, then visit_id). It is the usual first-time-fix proxy: the earlier visit did not fix
-- it. Only closed visits with a site_id and a non-empty serial number take part.
--
-- A view over fct_visits and fct_visit_lines (inside the warehouse file, so as safe for readers as
-- a table): a change on one day moves the measure of the following 30 days, so it would be rebuilt
-- in full on every build anyway, and writing millions of rows costs more than computing them when
-- asked. int_kpi_measures reads it once per build.
--
-- columns:
--   visit_id:
--   serial_nr: the equipment serial number serviced (trimmed).
--   site_id:
--   visit_date:
--   driver_id:
--   territory:
--   previous_visit_id: the closed visit before this one for the same site and serial number, if any.
--   previous_visit_date: its date.
--   previous_driver_id: its driver: the one whose fix did not hold when this is a repeat visit.
--   days_since_previous_visit: days from the previous visit to this one.
--   is_repeat_visit: the previous visit was at most 30 days before.

with

settings as (
    select 30 as repeat_window_days
),

closed_visits as (
    select visit_id, site_id, visit_date, created_at, driver_id, territory
    from marts.fct_visits
    where closed and site_id <> marts.unknown_member(null)
),

serviced_equipment as (
    select distinct visit_id, trim(serial_nr) as serial_nr
    from marts.fct_visit_lines
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
