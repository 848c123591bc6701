-- Why were visits skipped over the last 30 days of data, and how much does each reason weigh?
select
    skipped_reason_id,
    sum(skipped_visits) as skipped_visits,
    round(sum(skipped_visits) / sum(sum(skipped_visits)) over (), 3) as share_of_skipped
from {{ ref('kpi_skip_reasons_daily') }}
where visit_date > (select max(visit_date) from {{ ref('kpi_skip_reasons_daily') }}) - interval 30 day
group by skipped_reason_id
order by skipped_visits desc;
