-- Whose fixes held? For each driver, the closed equipment visits they made and how many needed a
-- return visit to the same site and serial number within 30 days (first-time-fix rate).
with

fixes as (
    select visit_id, serial_nr, site_id, driver_id
    from {{ ref('fct_equipment_visits') }}
),

returns as (
    select previous_visit_id as visit_id, serial_nr
    from {{ ref('fct_equipment_visits') }}
    where is_repeat_visit
)

select
    fixes.driver_id,
    count(*) as equipment_visits,
    count(returns.visit_id) as needed_a_return,
    round(1 - count(returns.visit_id) / count(*), 3) as first_time_fix_rate
from fixes
left join returns on fixes.visit_id = returns.visit_id and fixes.serial_nr = returns.serial_nr
group by fixes.driver_id
order by first_time_fix_rate, equipment_visits desc;
