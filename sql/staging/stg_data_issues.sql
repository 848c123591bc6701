-- stg_data_issues: every data issue of the published lake, as the lake types it, with a key.
--
-- grain: one row per row of the lake table data_issues
-- key: issue_id
-- materialized: view
--
-- The lake's issues table: one row per problem the gate found in a value or a record, published with
-- the data it describes (a full refresh replaces it, a window run replaces its dates), so it always
-- describes the published lake. A lake published before the table existed has none: this view is
-- then empty. The lake's rows have no key of their own (two records without a usable `_id` on one
-- page can give identical rows), hence issue_id.
--
-- columns:
--   issue_id: key of the issue: a digest of its columns, then '-' and its number among identical rows.
--   run_id: the pipeline run that found the issue.
--   table_name: the lake table of the record: visits, visit_lines or line_extra_data.
--   visit_id: the visit (API `_id`); null when the record has no usable `_id`.
--   line_index: position of the line in the visit's `lines` array; null for a visit's own issue.
--   extra_index: position of the entry in the line's `extraData` array; null unless the issue is an extraData entry's.
--   visit_date: the record's date; else the date filter of the listing it came from; else null.
--   field: the field as the API names it (`signeeRating`, `lat`, `lines`, `_id`, `date`, `data`).
--   raw_value: the value as sent (strings as they are, other values as JSON text); pseudonymised like its column.
--   check_name: the check that found it, e.g. visits.signee_rating_in_range (the policy table in the docs lists them).
--   severity: record (the record and its children were quarantined) or field (the record was published).
--   action: what was done: nulled (the column holds NULL), kept (the value is kept as sent) or quarantined.
--   reason: a short fixed phrase saying what is wrong.
--   page_offset: the pagination offset of the API page the record came from.
--   fetched_at: when that page was fetched (UTC).

with

source as (
    select * from {{ source('data_issues') }}
),

columns as (
    select
        run_id,
        table_name,
        visit_id,
        line_index,
        extra_index,
        visit_date,
        field,
        raw_value,
        check_name,
        severity,
        action,
        reason,
        page_offset,
        fetched_at
    from source
),

identified as (
    select
        md5(to_json(columns))[:16] as digest,
        *
    from columns
),

final as (
    select
        digest || '-' || row_number() over (partition by digest) as issue_id,
        * exclude (digest)
    from identified
)

select * from final
