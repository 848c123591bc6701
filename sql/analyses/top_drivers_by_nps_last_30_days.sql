-- Which drivers have the best NPS over the last 30 days of data (at least 5 rated visits)?
-- NPS is recomputed from the summed counts with the warehouse's KPI macros, never averaged over days.
select
    driver_id,
    any_value(driver_name) as driver_name,
    sum(visits) as visits,
    sum(rated_visits) as rated_visits,
    round(marts.nps(sum(promoters), sum(detractors), sum(rated_visits)), 1) as nps,
    round(marts.close_rate(sum(closed_visits), sum(visits)), 3) as close_rate
from {{ ref('kpi_driver_daily') }}
where visit_date > (select max(visit_date) from {{ ref('kpi_driver_daily') }}) - interval 30 day
group by driver_id
having sum(rated_visits) >= 5
order by nps desc, rated_visits desc
limit 10;
