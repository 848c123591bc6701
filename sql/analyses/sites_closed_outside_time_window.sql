-- Which customer sites most often see visits closed outside their opening hours, and how long
-- do their visits take from creation to close?
select
    visits.site_id,
    customers.customer,
    customers.city,
    count(*) filter (where visits.closed_within_time_window is not null) as window_checked_visits,
    count(*) filter (where not visits.closed_within_time_window) as closed_outside_window,
    round(avg(visits.hours_to_close), 1) as avg_hours_to_close
from {{ ref('fct_visits') }} as visits
inner join {{ ref('dim_customers') }} as customers on customers.site_id = visits.site_id
group by visits.site_id, customers.customer, customers.city
having count(*) filter (where not visits.closed_within_time_window) > 0
order by closed_outside_window desc, window_checked_visits desc
limit 20;
