with

source as (
    select * from {{ source('lake', 'visits') }}
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
