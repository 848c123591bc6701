{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        incremental_predicates=[
            "site_id in (select member from intermediate.int_affected_members where dimension = 'site')",
        ],
        on_schema_change="fail"
    )
}}
-- depends_on: {{ ref('int_affected_members') }}

with

visits as (
    select
        marts.unknown_member(site_id) as site_id,
        visit_date,
        modified_at,
        visit_id,
        struct_pack(
            customer, site, address, post_code, city, country, territory, lat, lng,
            contact_person, contact_phone
        ) as attributes
    from {{ ref('fct_visits') }}
    {% if is_incremental() %}
    where site_id in (select member from {{ ref('int_affected_members') }} where dimension = 'site')
    {% endif %}
),

sites as (
    select
        site_id,
        arg_max(attributes, struct_pack(visit_date, modified_at, visit_id)) as latest,
        min(visit_date) as first_visit_date,
        max(visit_date) as last_visit_date,
        count(*) as visits
    from visits
    group by site_id
),

final as (
    select
        site_id,
        latest.customer,
        latest.site,
        latest.address,
        latest.post_code,
        latest.city,
        latest.country,
        latest.territory,
        latest.lat,
        latest.lng,
        latest.contact_person,
        latest.contact_phone,
        first_visit_date,
        last_visit_date,
        visits
    from sites
)

select * from final
