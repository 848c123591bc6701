-- dim_territories: the territories visits belong to.
--
-- grain: one row per territory
-- key: territory
-- materialized: table
--
-- columns:
--   territory: the territory name; '(unknown)' for visits without one.
--   first_visit_date: date of the territory's first visit.
--   last_visit_date: date of the territory's latest visit.
--   visits: number of visits in the territory.
--   drivers: number of distinct drivers who visited the territory.
--   sites: number of distinct sites visited in the territory.

with

visits as (
    select marts.unknown_member(territory) as territory, visit_date, driver_id, site_id
    from marts.fct_visits
),

territories as (
    select
        territory,
        min(visit_date) as first_visit_date,
        max(visit_date) as last_visit_date,
        count(*) as visits,
        count(distinct driver_id) as drivers,
        count(distinct site_id) as sites
    from visits
    group by territory
),

final as (
    select * from territories
)

select * from final
