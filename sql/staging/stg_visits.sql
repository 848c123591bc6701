-- stg_visits: every visit version in the published lake, renamed and cast; nothing more.
--
-- grain: one row per visit version (a visit in one visit_date partition, written by one run)
-- key: visit_id, visit_date, run_id
-- materialized: view
--
-- Reads every visit_date partition of the lake table `visits`. A visit whose date changed between
-- runs can sit in two partitions; int_visit_winners picks its latest version. Flags go through
-- parse_flag and the rating through parse_rating so that text columns mean the same as typed ones.
--
-- columns:
--   visit_id: LetsJobIt internal id of the visit (API `_id`).
--   erp_id: the customer's ERP id of the visit (API `id`), as text.
--   driver_id: id of the driver (engineer) assigned to the visit (API `driverId`).
--   driver_name: name of the driver for this visit (API `name`).
--   visit_date: the date the visit is planned for (API `date`); the lake's partition.
--   total_jobs: number of job (action-item) lines, as the API reports it (API `totalJobs`).
--   doc_type: document type, e.g. CALL OUT (API `docType`).
--   doc_no: document number (API `docNo`).
--   service_order: position of the visit in the driver's route (API `serviceOrder`).
--   customer: customer name (API `customer`).
--   site_id: the ERP id of the customer address (API `siteId`), as text.
--   lat: latitude of the address (API `lat`).
--   lng: longitude of the address (API `lng`).
--   site: site (address) description (API `site`).
--   address: street address (API `address`).
--   post_code: postal code (API `postCode`).
--   city: city (API `city`).
--   obs: free-text observations for the visit (API `obs`).
--   contact_person: contact person at the customer (API `contactPerson`).
--   contact_phone: contact phone; a keyed hash when the lake pseudonymises contacts (API `contactPhone`).
--   email_mandatory: the signature screen requires an email (API `emailMandatory`).
--   priority: priority, 1 highest (API `priority`).
--   show_items_on_order_section: the app shows the items-on-order section (API `showItemsOnOrderSection`).
--   hide_equipment_details: the app hides the equipment details (API `hideEquipmentDetails`).
--   hide_delivery_items_section: the app hides the delivery items section (API `hideDeliveryItemsSection`).
--   signee_name: name of the customer contact who signed on close (API `signeeName`).
--   signee_email: email of the signee; a keyed hash when the lake pseudonymises contacts (API `signeeEmail`).
--   sub_contractor_ids: sub-contractor names, the first one doing the visit (API `subContractorIds`).
--   territory: geographic territory of the visit (API `territory`).
--   use_start_pause_stop_style_buttons_in_jobs: jobs show start/pause/stop buttons (API `useStartPauseStopStyleButtonsInJobs`).
--   in_mobile_app: the visit is assigned to a driver's app (API `inMobileApp`).
--   nps_mandatory: the rating is mandatory on close (API `NPSMandatory`).
--   precedence_priority_visit: a priority visit (API `precedencePriorityVisit`).
--   close_visit_on_last_job_close: closing the last job closes the visit (API `closeVisitOnLastJobClose`).
--   country: two-letter country code (API `country`).
--   company_id: the company id at LetsJobIt (API `companyId`).
--   time_windows: the customer's opening windows, seconds from midnight: list of {earliest, latest} (API `time_windows`).
--   required_skills: skills the visit needs (API `required_skills`).
--   allowed_vehicles: vehicles allowed for the visit (API `allowed_vehicles`).
--   confirm_close: the ERP confirmed the close (API `confirmClose`).
--   in_progress: a job of the visit has started and the visit is not closed (API `inProgress`).
--   closed: the visit is closed (API `closed`).
--   skipped: the visit was skipped (postponed, could not be done) (API `skipped`).
--   geocoding: geocoding details as JSON text (API `geocoding`).
--   show_discount_and_bonus_on_items_on_order: the app shows discount and bonus fields (API `showDiscountAndBonusOnItemsOnOrder`).
--   duration: planned duration of all jobs, in seconds (API `duration`).
--   created_at: when the visit was created, API local time (API `createdAt`).
--   created_user: the user who created the visit (API `createdUser`).
--   has_changes_to_sync: the app holds changes not yet synchronised (API `hasChangesToSync`).
--   modified_at: when the visit was last modified, API local time (API `modifieddAt`).
--   modify_user: the user who last modified the visit (API `modifyUser`).
--   servicing: the visit is being serviced (API `servicing`).
--   signee_rating: the customer's rating 1..5 on close; null when unrated (0, empty, missing or out of range) (API `signeeRating`).
--   app_client_version: version of the app that closed the visit (API `appClientVersion`).
--   close_date: when the visit was closed, API local time (API `closeDate`).
--   skipped_reason_id: skip reason id when skipped (API `skippedReasonId`).
--   has_signature: the visit carries a signature image (the image itself is not kept).
--   line_count: number of lines the visit had in the API response.
--   extra_fields: JSON text of fields the API sent that the reference does not list.
--   run_id: the pipeline run that fetched this version.
--   fetched_at: when this version was fetched from the API (UTC).

with

source as (
    select * from {{ source('visits') }}
),

renamed as (
    select
        cast(visit_id as varchar) as visit_id,
        cast(erp_id as varchar) as erp_id,
        cast(driver_id as varchar) as driver_id,
        cast(driver_name as varchar) as driver_name,
        cast(visit_date as date) as visit_date,
        try_cast(total_jobs as bigint) as total_jobs,
        cast(doc_type as varchar) as doc_type,
        cast(doc_no as varchar) as doc_no,
        try_cast(service_order as bigint) as service_order,
        cast(customer as varchar) as customer,
        cast(site_id as varchar) as site_id,
        try_cast(lat as double) as lat,
        try_cast(lng as double) as lng,
        cast(site as varchar) as site,
        cast(address as varchar) as address,
        cast(post_code as varchar) as post_code,
        cast(city as varchar) as city,
        cast(obs as varchar) as obs,
        cast(contact_person as varchar) as contact_person,
        cast(contact_phone as varchar) as contact_phone,
        parse_flag(email_mandatory) as email_mandatory,
        try_cast(priority as bigint) as priority,
        parse_flag(show_items_on_order_section) as show_items_on_order_section,
        parse_flag(hide_equipment_details) as hide_equipment_details,
        parse_flag(hide_delivery_items_section) as hide_delivery_items_section,
        cast(signee_name as varchar) as signee_name,
        cast(signee_email as varchar) as signee_email,
        sub_contractor_ids,
        cast(territory as varchar) as territory,
        parse_flag(use_start_pause_stop_style_buttons_in_jobs) as use_start_pause_stop_style_buttons_in_jobs,
        parse_flag(in_mobile_app) as in_mobile_app,
        parse_flag(nps_mandatory) as nps_mandatory,
        parse_flag(precedence_priority_visit) as precedence_priority_visit,
        parse_flag(close_visit_on_last_job_close) as close_visit_on_last_job_close,
        cast(country as varchar) as country,
        cast(company_id as varchar) as company_id,
        time_windows,
        required_skills,
        allowed_vehicles,
        parse_flag(confirm_close) as confirm_close,
        parse_flag(in_progress) as in_progress,
        parse_flag(closed) as closed,
        parse_flag(skipped) as skipped,
        cast(geocoding as varchar) as geocoding,
        parse_flag(show_discount_and_bonus_on_items_on_order) as show_discount_and_bonus_on_items_on_order,
        try_cast(duration as bigint) as duration,
        try_cast(created_at as timestamp) as created_at,
        cast(created_user as varchar) as created_user,
        parse_flag(has_changes_to_sync) as has_changes_to_sync,
        try_cast(modified_at as timestamp) as modified_at,
        cast(modify_user as varchar) as modify_user,
        parse_flag(servicing) as servicing,
        parse_rating(signee_rating) as signee_rating,
        cast(app_client_version as varchar) as app_client_version,
        try_cast(close_date as timestamp) as close_date,
        cast(skipped_reason_id as varchar) as skipped_reason_id,
        parse_flag(has_signature) as has_signature,
        try_cast(line_count as integer) as line_count,
        cast(extra_fields as varchar) as extra_fields,
        cast(run_id as varchar) as run_id,
        cast(fetched_at as timestamptz) as fetched_at
    from source
),

final as (
    select * from renamed
)

select * from final
