with

measures as (
    select * from {{ ref('int_kpi_measures') }} where grouping = 'territory'
),

final as (
    -- every measure and KPI of int_kpi_measures, in its order, without the other grains' keys
    select * exclude (grouping, driver_id) from measures
)

select * from final
