{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=["visit_id in (select visit_id from intermediate.int_touched_visits)"],
        on_schema_change="fail",
        keep_replaced={"into": "replaced_visits", "columns": ["visit_id", "visit_date", "driver_id", "site_id", "territory"]}
    )
}}
-- depends_on: {{ ref('int_touched_visits') }}
-- depends_on: {{ source('build', 'replaced_visits') }}

with

winners as (
    select visit_id, visit_date, run_id, version_count from {{ ref('int_visit_winners') }}
),

visits as (
    select stg.*, winners.version_count
    from {{ ref('stg_visits') }} as stg
    inner join winners
        on stg.visit_id = winners.visit_id
        and stg.visit_date = winners.visit_date
        and stg.run_id = winners.run_id
    -- read only the partitions that hold a chosen version
    where stg.visit_date in (select visit_date from winners)
),

lines as (
    -- fct_visit_lines already holds this build's lines of every touched visit
    select
        visit_id,
        count(*) as line_count,
        count(*) filter (where action_item) as job_count
    from {{ ref('fct_visit_lines') }}
    where visit_id in (select visit_id from winners)
        -- a visit's lines stand in its day: the date range lets the scan skip row groups
        and visit_date between (select min(visit_date) from winners) and (select max(visit_date) from winners)
    group by visit_id
),

closing as (
    select
        *,
        case when closed then close_date end as closed_at,
        date_diff('second', date_trunc('day', close_date), close_date) as close_second_of_day
    from visits
),

measured as (
    select
        closing.*,
        coalesce(lines.line_count, 0) as lines_in_fact,
        coalesce(lines.job_count, 0) as job_count,
        case
            when closed_at is null or coalesce(len(time_windows), 0) = 0 then null
            else len(list_filter(
                time_windows,
                lambda w: case
                    when w.earliest <= w.latest then close_second_of_day between w.earliest and w.latest
                    else close_second_of_day >= w.earliest or close_second_of_day <= w.latest
                end
            )) > 0
        end as closed_within_time_window,
        case
            when closed_at >= created_at then date_diff('second', created_at, closed_at) / 3600.0
        end as hours_to_close
    from closing
    left join lines on closing.visit_id = lines.visit_id
),

final as (
    select
        visit_id,
        erp_id,
        doc_no,
        doc_type,
        visit_date,
        marts.unknown_member(driver_id) as driver_id,
        driver_name,
        marts.unknown_member(site_id) as site_id,
        customer,
        site,
        address,
        post_code,
        city,
        country,
        lat,
        lng,
        contact_person,
        contact_phone,
        marts.unknown_member(territory) as territory,
        company_id,
        sub_contractor_ids[1] as sub_contractor,
        priority,
        service_order,
        duration,
        required_skills,
        time_windows,
        created_at,
        modified_at,
        close_date,
        coalesce(closed, false) as closed,
        coalesce(skipped, false) as skipped,
        in_progress,
        confirm_close,
        skipped_reason_id,
        signee_rating,
        signee_rating is not null as is_rated,
        marts.nps_category(signee_rating) as nps_category,
        has_signature,
        total_jobs,
        lines_in_fact as line_count,
        job_count,
        closed_within_time_window,
        hours_to_close,
        obs,
        version_count,
        run_id,
        fetched_at
    from measured
)

select * from final {{ in_date_order() }}
