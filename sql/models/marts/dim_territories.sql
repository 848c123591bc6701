{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=[
            "territory in (select member from intermediate.int_affected_members where dimension = 'territory')",
        ],
        on_schema_change="fail"
    )
}}
-- depends_on: {{ ref('int_affected_members') }}

with

visits as (
    select marts.unknown_member(territory) as territory, visit_date, driver_id, site_id
    from {{ ref('fct_visits') }}
    {% if is_incremental() %}
    where territory in (select member from {{ ref('int_affected_members') }} where dimension = 'territory')
    {% endif %}
),

territories as (
    select
        territory,
        min(visit_date) as first_visit_date,
        max(visit_date) as last_visit_date,
        count(*) as visits,
        count(distinct driver_id) as drivers,
        count(distinct site_id) as sites
    from visits
    group by territory
),

final as (
    select * from territories
)

select * from final
