{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=[
            "visit_id in (select visit_id from intermediate.int_touched_visits)",
            "(visit_id, serial_nr) in (select visit_id, serial_nr from $new_rows)",
        ],
        on_schema_change="fail",
        keep_replaced={"into": "replaced_equipment", "columns": ["visit_id", "site_id", "serial_nr", "is_repeat_visit"]}
    )
}}
-- depends_on: {{ source('build', 'replaced_equipment') }}
-- depends_on: {{ ref('int_touched_visits') }}

with

settings as (
    select 30 as repeat_window_days
),

{% if is_incremental() %}
-- An incremental build recomputes each equipment history (site and serial number) a touched visit was
-- in (its stored rows) or is in now, from the touched visits' rows in the facts and the other visits'
-- rows as stored (a visit the build did not touch keeps its rows), and replaces the touched visits'
-- rows and the rows that came out different (the visit after a touched one gets another previous
-- visit). Only a history's rows from its first touched day on can change: the window reads those, and
-- the stored rows of the last day before it (the previous visit of the first of them).
touched as (
    select visit_id from {{ ref('int_touched_visits') }}
),

touched_visits as (
    select visit_id, site_id, visit_date, created_at, driver_id, territory
    from {{ ref('fct_visits') }}
    where visit_id in (select visit_id from touched)
        and closed
        and site_id <> marts.unknown_member(null)
),

touched_lines as (
    select visit_id, serial_nr from {{ ref('fct_visit_lines') }}
    where visit_id in (select visit_id from touched_visits)
        -- a visit's lines stand in its day: the date range lets the scan skip row groups
        and visit_date between (select min(visit_date) from touched_visits)
            and (select max(visit_date) from touched_visits)
),

touched_rows as (
    select
        visits.visit_id, visits.site_id, visits.visit_date, visits.created_at, visits.driver_id,
        visits.territory, serviced.serial_nr
    from touched_visits as visits
    inner join (
        select distinct visit_id, trim(serial_nr) as serial_nr
        from touched_lines
        where nullif(trim(serial_nr), '') is not null
    ) as serviced on visits.visit_id = serviced.visit_id
),

-- each touched history and its first touched day: where a touched visit stood or stands now
touched_histories as (
    select site_id, serial_nr, min(visit_date) as first_touched_date
    from (
        select site_id, serial_nr, visit_date from {{ this }} where visit_id in (select visit_id from touched)
        union all
        select site_id, serial_nr, visit_date from touched_rows
    )
    group by site_id, serial_nr
),

stored_untouched_histories as (
    select stored.*, histories.first_touched_date
    from {{ this }} as stored
    inner join touched_histories as histories
        on stored.site_id = histories.site_id and stored.serial_nr = histories.serial_nr
    anti join touched on stored.visit_id = touched.visit_id
),

-- the day the window starts: the last stored day before the first touched one (its rows give the
-- first recomputed row its previous visit), or the first touched day when the history starts there
window_starts as (
    select
        site_id,
        serial_nr,
        coalesce(
            max(visit_date) filter (where visit_date < first_touched_date), any_value(first_touched_date)
        ) as window_start
    from stored_untouched_histories
    group by site_id, serial_nr
),

stored_untouched as (
    select stored.* exclude (first_touched_date)
    from stored_untouched_histories as stored
    inner join window_starts as starts
        on stored.site_id = starts.site_id and stored.serial_nr = starts.serial_nr
    where stored.visit_date >= starts.window_start
),

kept_rows as (
    select
        stored_untouched.visit_id, stored_untouched.site_id, stored_untouched.visit_date, visits.created_at,
        stored_untouched.driver_id, stored_untouched.territory, stored_untouched.serial_nr
    from stored_untouched
    inner join {{ ref('fct_visits') }} as visits on stored_untouched.visit_id = visits.visit_id
),

histories as (
    select * from touched_rows
    union all
    select * from kept_rows
),
{% else %}
closed_visits as (
    select visit_id, site_id, visit_date, created_at, driver_id, territory
    from {{ ref('fct_visits') }}
    where closed and site_id <> marts.unknown_member(null)
),

serviced_equipment as (
    select distinct visit_id, trim(serial_nr) as serial_nr
    from {{ ref('fct_visit_lines') }}
    where nullif(trim(serial_nr), '') is not null
),

histories as (
    select closed_visits.*, serviced_equipment.serial_nr
    from closed_visits
    inner join serviced_equipment on closed_visits.visit_id = serviced_equipment.visit_id
),
{% endif %}

sequenced as (
    select
        *,
        lag(visit_id) over equipment_history as previous_visit_id,
        lag(visit_date) over equipment_history as previous_visit_date,
        lag(driver_id) over equipment_history as previous_driver_id
    from histories
    window equipment_history as (
        partition by site_id, serial_nr
        order by visit_date, created_at nulls first, visit_id
    )
),

final as (
    select
        visit_id,
        serial_nr,
        site_id,
        visit_date,
        driver_id,
        territory,
        previous_visit_id,
        previous_visit_date,
        previous_driver_id,
        date_diff('day', previous_visit_date, visit_date) as days_since_previous_visit,
        coalesce(
            date_diff('day', previous_visit_date, visit_date) <= (select repeat_window_days from settings),
            false
        ) as is_repeat_visit
    from sequenced
)

{% if is_incremental() %}
, replacing as (
    select final.* from final semi join touched on final.visit_id = touched.visit_id
    union all
    (
        -- the rows before a history's first touched day only gave the window their visits
        select final.* from final
        inner join touched_histories as histories
            on final.site_id = histories.site_id and final.serial_nr = histories.serial_nr
        anti join touched on final.visit_id = touched.visit_id
        where final.visit_date >= histories.first_touched_date
        except
        select * from stored_untouched
    )
)

select * from replacing
{% else %}
select * from final
{% endif %}
