"""The lake's tables: one explicit schema per table, and the mapping from API field names to columns.

This is the one place that decides a column's name and type. The flattener coerces every API value
to the kind declared here, the validation suites check these columns, and the warehouse's staging
models read them. `DATA_ISSUES` is the table of the problems met on the way.

Conventions:
- identifiers that come from the customer's ERP (ERP ids, site, brand, model, item ids) are text: they are
  never summed, and text keeps leading zeros and non-numeric references;
- API timestamps carry no time zone, so they stay naive (``timestamp[us]``) exactly as the API gives them;
  lineage timestamps (``fetched_at``) are UTC;
- every table carries ``visit_date`` (the hive partition key of the lake) and the lineage columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa


class Kind(Enum):
    """How the coercion layer turns one raw API value into a column value."""

    TEXT = "text"  # str; numbers rendered as text; objects/lists are an issue
    INT = "int"  # int or integral float or numeric string
    FLOAT = "float"
    BOOL = "bool"  # true/false, 1/0, "1"/"0", "true"/"false" (case-insensitive), "yes"/"no"
    DATE = "date"  # "YYYY-MM-DD"
    TIMESTAMP = "timestamp"  # "YYYY-MM-DD HH:MM[:SS]" or ISO 8601
    TEXT_LIST = "text_list"  # list of str, or a comma-separated string, or null
    TIME_WINDOWS = "time_windows"  # list of {earliest, latest} seconds from midnight
    RATING = "rating"  # 1..5; 0, "", null or missing -> NULL (unrated)
    FLAG_WORD = "flag_word"  # "required"/"readonly" style: the word or a boolean -> BOOL
    JSON = "json"  # any JSON value kept as its JSON text


@dataclass(frozen=True)
class Field:
    """One API field and the column it lands in."""

    api_name: str
    column: str
    kind: Kind


TIME_WINDOW_TYPE = pa.struct([("earliest", pa.int32()), ("latest", pa.int32())])

ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.TEXT: pa.string(),
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.DATE: pa.date32(),
    Kind.TIMESTAMP: pa.timestamp("us"),
    Kind.TEXT_LIST: pa.list_(pa.string()),
    Kind.TIME_WINDOWS: pa.list_(TIME_WINDOW_TYPE),
    Kind.RATING: pa.int8(),
    Kind.FLAG_WORD: pa.bool_(),
    Kind.JSON: pa.string(),
}

# Every documented visit field (the GET table, the example and the POST table), in the order the
# reference lists them. `signature`, `lines` and `_id` are handled by the flattener itself.
VISIT_FIELDS: tuple[Field, ...] = (
    Field("id", "erp_id", Kind.TEXT),
    Field("driverId", "driver_id", Kind.TEXT),
    Field("name", "driver_name", Kind.TEXT),
    Field("date", "visit_date", Kind.DATE),
    Field("totalJobs", "total_jobs", Kind.INT),
    Field("docType", "doc_type", Kind.TEXT),
    Field("docNo", "doc_no", Kind.TEXT),
    Field("serviceOrder", "service_order", Kind.INT),
    Field("customer", "customer", Kind.TEXT),
    Field("siteId", "site_id", Kind.TEXT),
    Field("lat", "lat", Kind.FLOAT),
    Field("lng", "lng", Kind.FLOAT),
    Field("site", "site", Kind.TEXT),
    Field("address", "address", Kind.TEXT),
    Field("postCode", "post_code", Kind.TEXT),
    Field("city", "city", Kind.TEXT),
    Field("obs", "obs", Kind.TEXT),
    Field("contactPerson", "contact_person", Kind.TEXT),
    Field("contactPhone", "contact_phone", Kind.TEXT),
    Field("emailMandatory", "email_mandatory", Kind.BOOL),
    Field("priority", "priority", Kind.INT),
    Field("showItemsOnOrderSection", "show_items_on_order_section", Kind.BOOL),
    Field("hideEquipmentDetails", "hide_equipment_details", Kind.BOOL),
    Field("hideDeliveryItemsSection", "hide_delivery_items_section", Kind.BOOL),
    Field("signeeName", "signee_name", Kind.TEXT),
    Field("signeeEmail", "signee_email", Kind.TEXT),
    Field("subContractorIds", "sub_contractor_ids", Kind.TEXT_LIST),
    Field("territory", "territory", Kind.TEXT),
    Field("useStartPauseStopStyleButtonsInJobs", "use_start_pause_stop_style_buttons_in_jobs", Kind.BOOL),
    Field("inMobileApp", "in_mobile_app", Kind.BOOL),
    Field("NPSMandatory", "nps_mandatory", Kind.BOOL),
    Field("precedencePriorityVisit", "precedence_priority_visit", Kind.BOOL),
    Field("closeVisitOnLastJobClose", "close_visit_on_last_job_close", Kind.BOOL),
    Field("country", "country", Kind.TEXT),
    Field("companyId", "company_id", Kind.TEXT),
    Field("time_windows", "time_windows", Kind.TIME_WINDOWS),
    Field("required_skills", "required_skills", Kind.TEXT_LIST),
    Field("allowed_vehicles", "allowed_vehicles", Kind.TEXT_LIST),
    Field("confirmClose", "confirm_close", Kind.BOOL),
    Field("inProgress", "in_progress", Kind.BOOL),
    Field("closed", "closed", Kind.BOOL),
    Field("skipped", "skipped", Kind.BOOL),
    Field("geocoding", "geocoding", Kind.JSON),
    Field("showDiscountAndBonusOnItemsOnOrder", "show_discount_and_bonus_on_items_on_order", Kind.BOOL),
    Field("duration", "duration", Kind.INT),
    Field("createdAt", "created_at", Kind.TIMESTAMP),
    Field("createdUser", "created_user", Kind.TEXT),
    Field("hasChangesToSync", "has_changes_to_sync", Kind.BOOL),
    Field("modifieddAt", "modified_at", Kind.TIMESTAMP),
    Field("modifyUser", "modify_user", Kind.TEXT),
    Field("servicing", "servicing", Kind.BOOL),
    Field("signeeRating", "signee_rating", Kind.RATING),
    Field("appClientVersion", "app_client_version", Kind.TEXT),
    Field("closeDate", "close_date", Kind.TIMESTAMP),
    Field("skippedReasonId", "skipped_reason_id", Kind.TEXT),
)

LINE_FIELDS: tuple[Field, ...] = (
    Field("actionItem", "action_item", Kind.BOOL),
    Field("allowRebrand", "allow_rebrand", Kind.BOOL),
    Field("brand", "brand", Kind.TEXT),
    Field("brandId", "brand_id", Kind.TEXT),
    Field("description", "description", Kind.TEXT),
    Field("hasBatch", "has_batch", Kind.BOOL),
    Field("hasReturn", "has_return", Kind.BOOL),
    Field("id", "line_erp_id", Kind.TEXT),
    Field("itemId", "item_id", Kind.TEXT),
    Field("jobType", "job_type", Kind.TEXT),
    Field("location", "location", Kind.TEXT),
    Field("model", "model", Kind.TEXT),
    Field("modelId", "model_id", Kind.TEXT),
    Field("qty", "qty", Kind.FLOAT),
    Field("serialNr", "serial_nr", Kind.TEXT),
    Field("serialNrId", "serial_nr_id", Kind.TEXT),
)

EXTRA_DATA_FIELDS: tuple[Field, ...] = (
    Field("name", "name", Kind.TEXT),
    Field("caption", "caption", Kind.TEXT),
    Field("type", "type", Kind.TEXT),
    Field("description", "description", Kind.TEXT),
    Field("value", "value", Kind.TEXT),
    Field("required", "required", Kind.FLAG_WORD),
    Field("readonly", "readonly", Kind.FLAG_WORD),
    Field("options_values", "options_values", Kind.TEXT),
    Field("options_default", "options_default", Kind.TEXT),
    Field("max", "max", Kind.FLOAT),
    Field("min", "min", Kind.FLOAT),
    Field("pattern", "pattern", Kind.TEXT),
    Field("step", "step", Kind.FLOAT),
)

# The html5 input types the reference documents for extraData.type.
EXTRA_DATA_TYPES = ("text", "date", "number", "email", "color", "range", "select")

# The docTypes known to be in use: the reference's "CALL OUT" and what a field-service account commonly
# issues. It is the known set, not a contract: a visit of another docType is published with its value as
# sent and recorded as a `visits.doc_type_known` issue, so a new type shows up without costing a visit.
DOC_TYPES = (
    "CALL OUT",
    "SERVICE",
    "DELIVERY",
    "INSTALLATION",
    "MAINTENANCE",
    "INSPECTION",
    "REPAIR",
    "COLLECTION",
)

# Contact fields that can be pseudonymised with a keyed hash (LETSJOBIT_PSEUDONYMISE_KEY).
PSEUDONYMISED_COLUMNS = ("contact_phone", "signee_email")

LINEAGE = (
    pa.field("extra_fields", pa.string()),  # JSON text of fields the reference does not list
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("fetched_at", pa.timestamp("us", tz="UTC"), nullable=False),
)


def _columns(fields: tuple[Field, ...]) -> list[pa.Field]:
    return [pa.field(f.column, ARROW_TYPES[f.kind]) for f in fields]


VISITS = pa.schema(
    [pa.field("visit_id", pa.string(), nullable=False)]
    + _columns(VISIT_FIELDS)
    + [pa.field("has_signature", pa.bool_(), nullable=False), pa.field("line_count", pa.int32())]
    + list(LINEAGE)
)

VISIT_LINES = pa.schema(
    [
        pa.field("visit_id", pa.string(), nullable=False),
        pa.field("line_index", pa.int32(), nullable=False),
        pa.field("visit_date", pa.date32()),
    ]
    + _columns(LINE_FIELDS)
    + [pa.field("extra_data_count", pa.int32())]
    + list(LINEAGE)
)

LINE_EXTRA_DATA = pa.schema(
    [
        pa.field("visit_id", pa.string(), nullable=False),
        pa.field("line_index", pa.int32(), nullable=False),
        pa.field("extra_index", pa.int32(), nullable=False),
        pa.field("visit_date", pa.date32()),
    ]
    + _columns(EXTRA_DATA_FIELDS)
    + [pa.field("value_number", pa.float64())]
    + list(LINEAGE)
)

# One row per data-quality problem the lake met, at the flattener (a value it could not read, a
# structure it could not use) or at the validation gate (a value out of its domain, a contradiction, an
# orphan). Published as the lake table `data_issues`, partitioned by visit_date like the others. The
# check names, severities and actions are those of `suites.py`.
DATA_ISSUES = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("table_name", pa.string(), nullable=False),  # visits, visit_lines, line_extra_data
        pa.field("visit_id", pa.string()),  # NULL when the record has no usable _id
        pa.field("line_index", pa.int32()),
        pa.field("extra_index", pa.int32()),
        pa.field("visit_date", pa.date32()),  # the record's date, else its listing's date filter, else NULL
        pa.field("field", pa.string(), nullable=False),  # as the API names it: signeeRating, lat, lines, _id
        pa.field("raw_value", pa.string()),  # strings as sent, other values as JSON text; pseudonymised
        pa.field("check_name", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),  # record or field
        pa.field("action", pa.string(), nullable=False),  # nulled, kept or quarantined
        pa.field("reason", pa.string(), nullable=False),  # a short fixed phrase a query can group by
        pa.field("page_offset", pa.int64()),  # the listing offset of the page (flattener issues)
        pa.field("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)
DATA_ISSUES_TABLE = "data_issues"

TABLES: dict[str, pa.Schema] = {
    "visits": VISITS,
    "visit_lines": VISIT_LINES,
    "line_extra_data": LINE_EXTRA_DATA,
}

KEYS: dict[str, tuple[str, ...]] = {
    "visits": ("visit_id",),
    "visit_lines": ("visit_id", "line_index"),
    "line_extra_data": ("visit_id", "line_index", "extra_index"),
}

# Every table of the published lake: the three data tables and the issues that describe them.
LAKE_TABLES: dict[str, pa.Schema] = {**TABLES, DATA_ISSUES_TABLE: DATA_ISSUES}

PARTITION_COLUMN = "visit_date"
LAKE_COMPRESSION = "zstd"  # the codec of every parquet file of the lake
