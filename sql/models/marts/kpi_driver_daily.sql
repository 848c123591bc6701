{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=[
            "visit_date in (select visit_date from intermediate.int_affected_dates)",
            "driver_id in (select member from intermediate.int_affected_members where dimension = 'driver')",
        ],
        on_schema_change="fail"
    )
}}
-- depends_on: {{ ref('int_affected_dates') }}
-- depends_on: {{ ref('int_affected_members') }}

with

measures as (
    select * from {{ ref('int_kpi_measures') }} where grouping = 'driver'
    {% if is_incremental() %}
        -- a driver's name may have changed: its rows of every day show the new one
        and (
            visit_date in (select visit_date from {{ ref('int_affected_dates') }})
            or driver_id in (select member from {{ ref('int_affected_members') }} where dimension = 'driver')
        )
    {% endif %}
),

drivers as (
    select driver_id, driver_name from {{ ref('dim_drivers') }}
),

final as (
    -- the driver's name after its id, then every measure and KPI of int_kpi_measures, in its order
    select
        measures.visit_date,
        measures.driver_id,
        drivers.driver_name,
        measures.* exclude (grouping, visit_date, driver_id, territory)
    from measures
    left join drivers on measures.driver_id = drivers.driver_id
)

select * from final
