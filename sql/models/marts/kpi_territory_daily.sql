{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=[
            "visit_date in (select visit_date from intermediate.int_affected_dates)",
        ],
        on_schema_change="fail"
    )
}}
-- depends_on: {{ ref('int_affected_dates') }}

with

measures as (
    select * from {{ ref('int_kpi_measures') }} where grouping = 'territory'
    {% if is_incremental() %}
        and visit_date in (select visit_date from {{ ref('int_affected_dates') }})
    {% endif %}
),

final as (
    -- every measure and KPI of int_kpi_measures, in its order, without the other grains' keys
    select * exclude (grouping, driver_id) from measures
)

select * from final
