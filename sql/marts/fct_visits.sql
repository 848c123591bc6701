-- fct_visits: the visits, one row each, in their latest version, with the flags and measures the KPIs count.
--
-- grain: one row per visit
-- key: visit_id
-- materialized: incremental
-- replace_where: visit_id in (select visit_id from intermediate.int_touched_visits)
--
-- A visit whose date changed between runs can sit in two lake partitions; this table shows only
-- its latest version (greatest modified_at, then fetched_at: see int_visit_winners). The app's
-- display settings (show/hide flags) stay in the lake.
--
-- Measure definitions:
-- - rated: signeeRating is an integer 1..5; 0, empty, null, missing or out of range is unrated (the
--   lake stores NULL for all of them and records an out-of-range value as a data issue).
-- - nps_category: promoter = 5, passive = 4, detractor = 1..3.
-- - job_count: the visit's action-item lines (jobs per visit).
-- - closed_within_time_window: the time of day of close_date falls inside one of the customer's
--   time_windows (seconds from midnight, bounds included; a window whose latest is before its
--   earliest runs past midnight). Null when the visit is not closed, has no close_date or no window.
-- - hours_to_close: hours from created_at to close_date for a closed visit; null when either is
--   missing or the close is before the creation.
--
-- columns:
--   visit_id:
--   erp_id:
--   doc_no:
--   doc_type:
--   visit_date: the visit's date (the partition of its latest version).
--   driver_id: the driver assigned to the visit; '(unknown)' when none (as in dim_drivers).
--   driver_name:
--   site_id: the site (customer address) visited; '(unknown)' when none (as in dim_customers).
--   customer:
--   site:
--   address:
--   post_code:
--   city:
--   country:
--   lat:
--   lng:
--   contact_person:
--   contact_phone:
--   territory: the visit's territory; '(unknown)' when none (as in dim_territories).
--   company_id:
--   sub_contractor: the sub-contractor doing the visit (the first of sub_contractor_ids), null if none.
--   priority:
--   service_order:
--   duration:
--   required_skills:
--   time_windows:
--   created_at:
--   modified_at:
--   close_date:
--   closed: the visit is closed (API `closed` as the lake read it; false when it could not be read).
--   skipped: the visit was skipped (API `skipped` as the lake read it; false when it could not be read). A visit
--     sent both closed and skipped keeps both (a data issue).
--   in_progress:
--   confirm_close:
--   skipped_reason_id:
--   signee_rating: the customer's rating 1..5, else null (unrated; the lake nulls a rating out of range).
--   is_rated: signee_rating is an integer 1..5.
--   nps_category: promoter (5), passive (4), detractor (1..3); null when unrated.
--   has_signature:
--   total_jobs:
--   line_count: number of lines of the visit in fct_visit_lines.
--   job_count: number of job (action-item) lines of the visit.
--   closed_within_time_window: the close time of day is inside one of the customer's time windows; null when not closed, no close_date or no windows.
--   hours_to_close: hours from created_at to close_date for a closed visit; null when unknown or negative.
--   obs:
--   version_count:
--   run_id:
--   fetched_at:

with

winners as (
    select visit_id, visit_date, run_id, version_count from intermediate.int_visit_winners
),

visits as (
    select stg.*, winners.version_count
    from staging.stg_visits as stg
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
    from marts.fct_visit_lines
    where visit_id in (select visit_id from winners)
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

select * from final
