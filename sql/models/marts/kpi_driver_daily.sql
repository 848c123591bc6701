with

measures as (
    select * from {{ ref('int_kpi_measures') }} where grouping = 'driver'
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
