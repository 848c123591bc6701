-- dim_customers: the customer sites visited, by site_id, with their latest known attributes.
--
-- grain: one row per site_id
-- key: site_id
-- materialized: table
--
-- A customer here is a site (an address of the customer, the API's siteId). Attributes are those
-- of the site's latest visit (by visit_date, then modified_at); visits without a site_id count
-- under '(unknown)'.
--
-- columns:
--   site_id: the site's ERP id; '(unknown)' for visits without one.
--   customer: customer name on the latest visit.
--   site: site description on the latest visit.
--   address: street address on the latest visit.
--   post_code: postal code on the latest visit.
--   city: city on the latest visit.
--   country: country code on the latest visit.
--   territory: territory of the latest visit.
--   lat: latitude on the latest visit.
--   lng: longitude on the latest visit.
--   contact_person: contact person on the latest visit.
--   contact_phone: contact phone on the latest visit (a keyed hash when contacts are pseudonymised).
--   first_visit_date: date of the site's first visit.
--   last_visit_date: date of the site's latest visit.
--   visits: number of visits to the site.

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
    from marts.fct_visits
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
