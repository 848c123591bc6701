with

visits as (
    select marts.unknown_member(territory) as territory, visit_date, driver_id, site_id
    from {{ ref('fct_visits') }}
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
