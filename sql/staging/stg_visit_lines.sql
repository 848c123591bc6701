-- stg_visit_lines: every line of every visit version in the published lake, as the lake types it.
--
-- grain: one row per line of a visit version (visit_id, line_index in one partition and run)
-- key: visit_id, visit_date, run_id, line_index
-- materialized: view
--
-- A line is one element of the visit's API `lines` array; line_index is its position there.
--
-- columns:
--   visit_id: the visit the line belongs to (API `_id` of the visit).
--   line_index: position of the line in the visit's `lines` array, from 0.
--   visit_date: the visit's date; the lake's partition.
--   action_item: the line is a job (a service item), not a delivery or material line (API `actionItem`).
--   allow_rebrand: the driver may change the equipment brand (API `allowRebrand`).
--   brand: equipment brand (API `brand`).
--   brand_id: ERP id of the brand (API `brandId`), as text.
--   description: description of the item (API `description`).
--   has_batch: the item is batch-tracked (API `hasBatch`).
--   has_return: the line has returned items such as empty pallets (API `hasReturn`).
--   line_erp_id: the ERP id of the line (API `id`), as text.
--   item_id: the ERP item id (API `itemId`), as text.
--   job_type: job type, e.g. delivery, installation, repair (API `jobType`).
--   location: where on the customer's premises (API `location`).
--   model: equipment model (API `model`).
--   model_id: ERP id of the model (API `modelId`), as text.
--   qty: quantity (API `qty`).
--   serial_nr: equipment serial number (API `serialNr`).
--   serial_nr_id: ERP id of the serial number (API `serialNrId`), as text.
--   extra_data_count: number of custom fields (extraData) on the line.
--   extra_fields: JSON text of line fields the reference does not list.
--   run_id: the pipeline run that fetched this version.
--   fetched_at: when this version was fetched from the API (UTC).

with

source as (
    select * from {{ source('visit_lines') }}
),

columns as (
    select
        visit_id,
        line_index,
        visit_date,
        action_item,
        allow_rebrand,
        brand,
        brand_id,
        description,
        has_batch,
        has_return,
        line_erp_id,
        item_id,
        job_type,
        location,
        model,
        model_id,
        qty,
        serial_nr,
        serial_nr_id,
        extra_data_count,
        extra_fields,
        run_id,
        fetched_at
    from source
),

final as (
    select * from columns
)

select * from final
