{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=[
            "driver_id in (select member from intermediate.int_affected_members where dimension = 'driver')",
        ],
        on_schema_change="fail"
    )
}}
-- depends_on: {{ ref('int_affected_members') }}

with

visits as (
    select
        marts.unknown_member(driver_id) as driver_id,
        driver_name,
        visit_date,
        modified_at,
        visit_id,
        territory
    from {{ ref('fct_visits') }}
    {% if is_incremental() %}
    where driver_id in (select member from {{ ref('int_affected_members') }} where dimension = 'driver')
    {% endif %}
),

drivers as (
    select
        driver_id,
        arg_max(driver_name, struct_pack(visit_date, modified_at, visit_id))
            filter (where driver_name is not null) as driver_name,
        min(visit_date) as first_visit_date,
        max(visit_date) as last_visit_date,
        count(*) as visits,
        count(distinct territory) as territories
    from visits
    group by driver_id
),

final as (
    select * from drivers
)

select * from final
