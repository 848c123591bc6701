-- What is the close rate of each territory, week by week?
select
    date_trunc('week', visit_date) as week,
    territory,
    sum(visits) as visits,
    sum(closed_visits) as closed_visits,
    round(marts.close_rate(sum(closed_visits), sum(visits)), 3) as close_rate,
    round(marts.skip_rate(sum(skipped_visits), sum(visits)), 3) as skip_rate
from {{ ref('kpi_territory_daily') }}
group by week, territory
order by week, territory;
