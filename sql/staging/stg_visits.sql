-- stg_visits: every visit version in the published lake, as the lake types it; nothing more.
--
-- grain: one row per visit version (a visit in one visit_date partition, written by one run)
-- key: visit_id, visit_date, run_id
-- materialized: view
--
-- Reads every visit_date partition of the lake table `visits`. A visit whose date changed between
-- runs can sit in two partitions; int_visit_winners picks its latest version. The lake's coercion
-- layer is the only parser: every column comes typed (schema.py) and is selected as it is, so a
-- value the lake could not read, or read out of range (a rating of 9), is already NULL here.
--
-- columns:
--   visit_id: LetsJobIt internal id of the visit (API `_id`).
--   erp_id: the customer's ERP id of the visit (API `id`), as text.
--   driver_id: id of the driver (engineer) assigned to the visit (API `driverId`).
--   driver_name: name of the driver for this visit (API `name`).
--   visit_date: the date the visit is planned for (API `date`); the lake's partition.
--   total_jobs: number of job (action-item) lines, as the API reports it; null when negative (API `totalJobs`).
--   doc_type: document type, e.g. CALL OUT; one the reference does not list is kept as sent (a data issue) (API `docType`).
--   doc_no: document number (API `docNo`).
--   service_order: position of the visit in the driver's route (API `serviceOrder`).
--   customer: customer name (API `customer`).
--   site_id: the ERP id of the customer address (API `siteId`), as text.
--   lat: latitude of the address; null when outside [-90, 90] (API `lat`).
--   lng: longitude of the address; null when outside [-180, 180] (API `lng`).
--   site: site (address) description (API `site`).
--   address: street address (API `address`).
--   post_code: postal code (API `postCode`).
--   city: city (API `city`).
--   obs: free-text observations for the visit (API `obs`).
--   contact_person: contact person at the customer (API `contactPerson`).
--   contact_phone: contact phone; a keyed hash when the lake pseudonymises contacts (API `contactPhone`).
--   email_mandatory: the signature screen requires an email (API `emailMandatory`).
--   priority: priority, 1 highest, 1..10; null when outside that range (API `priority`).
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
--   duration: planned duration of all jobs, in seconds; null when negative (API `duration`).
--   created_at: when the visit was created, API local time (API `createdAt`).
--   created_user: the user who created the visit (API `createdUser`).
--   has_changes_to_sync: the app holds changes not yet synchronised (API `hasChangesToSync`).
--   modified_at: when the visit was last modified, API local time (API `modifieddAt`).
--   modify_user: the user who last modified the visit (API `modifyUser`).
--   servicing: the visit is being serviced (API `servicing`).
--   signee_rating: the customer's rating 1..5 on close; null when unrated (0, empty, missing, or out of range and recorded as a data issue) (API `signeeRating`).
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

columns as (
    select
        visit_id,
        erp_id,
        driver_id,
        driver_name,
        visit_date,
        total_jobs,
        doc_type,
        doc_no,
        service_order,
        customer,
        site_id,
        lat,
        lng,
        site,
        address,
        post_code,
        city,
        obs,
        contact_person,
        contact_phone,
        email_mandatory,
        priority,
        show_items_on_order_section,
        hide_equipment_details,
        hide_delivery_items_section,
        signee_name,
        signee_email,
        sub_contractor_ids,
        territory,
        use_start_pause_stop_style_buttons_in_jobs,
        in_mobile_app,
        nps_mandatory,
        precedence_priority_visit,
        close_visit_on_last_job_close,
        country,
        company_id,
        time_windows,
        required_skills,
        allowed_vehicles,
        confirm_close,
        in_progress,
        closed,
        skipped,
        geocoding,
        show_discount_and_bonus_on_items_on_order,
        duration,
        created_at,
        created_user,
        has_changes_to_sync,
        modified_at,
        modify_user,
        servicing,
        signee_rating,
        app_client_version,
        close_date,
        skipped_reason_id,
        has_signature,
        line_count,
        extra_fields,
        run_id,
        fetched_at
    from source
),

final as (
    select * from columns
)

select * from final
