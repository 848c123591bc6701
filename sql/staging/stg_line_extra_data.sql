-- stg_line_extra_data: every custom field (extraData) of every line in the published lake, as the lake types it.
--
-- grain: one row per custom field of a line of a visit version
-- key: visit_id, visit_date, run_id, line_index, extra_index
-- materialized: view
--
-- columns:
--   visit_id: the visit the field belongs to.
--   line_index: position of the line in the visit's `lines` array, from 0.
--   extra_index: position of the field in the line's `extraData` array, from 0.
--   visit_date: the visit's date; the lake's partition.
--   name: the field's name as saved (API `name`).
--   caption: the field's label in the app (API `caption`).
--   type: html5 input type: text, date, number, email, color, range or select; another type is kept as sent (a data issue) (API `type`).
--   description: help text shown above the field (API `description`).
--   value: the field's value, as text (API `value`).
--   required: the field is required in the app (API `required`: "required" or a flag).
--   readonly: the field is read-only in the app (API `readonly`: "readonly" or a flag).
--   options_values: the options of a select field, pipe separated (API `options_values`).
--   options_default: the default option of a select field (API `options_default`).
--   max: maximum of a numeric field (API `max`).
--   min: minimum of a numeric field (API `min`).
--   pattern: validation regular expression (API `pattern`).
--   step: html5 step of a numeric field (API `step`).
--   value_number: the value as a number when it is numeric, else null.
--   extra_fields: JSON text of field attributes the reference does not list.
--   run_id: the pipeline run that fetched this version.
--   fetched_at: when this version was fetched from the API (UTC).

with

source as (
    select * from {{ source('line_extra_data') }}
),

columns as (
    select
        visit_id,
        line_index,
        extra_index,
        visit_date,
        name,
        caption,
        type,
        description,
        value,
        required,
        readonly,
        options_values,
        options_default,
        max,
        min,
        pattern,
        step,
        value_number,
        extra_fields,
        run_id,
        fetched_at
    from source
),

final as (
    select * from columns
)

select * from final
