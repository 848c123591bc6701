-- dim_drivers: the drivers (engineers) who have visits.
--
-- grain: one row per driver_id
-- key: driver_id
-- materialized: table
--
-- Visits without a driver count under the driver '(unknown)'. The name is the one on the driver's
-- latest visit (by visit_date, then modified_at).
--
-- columns:
--   driver_id: the driver's id; '(unknown)' for visits without one.
--   driver_name: the driver's name on their latest visit.
--   first_visit_date: date of the driver's first visit.
--   last_visit_date: date of the driver's latest visit.
--   visits: number of visits of the driver.
--   territories: number of distinct territories the driver visited.

with

visits as (
    select
        marts.unknown_member(driver_id) as driver_id,
        driver_name,
        visit_date,
        modified_at,
        visit_id,
        territory
    from marts.fct_visits
),

drivers as (
    select
        driver_id,
        arg_max(driver_name, struct_pack(visit_date, modified_at, visit_id))
            filter (where driver_name is not null) as driver_name,
        min(visit_date) as first_visit_date,
        max(visit_date) as last_visit_date,
        count(*) as visits,
        count(distinct territory) as territories
    from visits
    group by driver_id
),

final as (
    select * from drivers
)

select * from final
