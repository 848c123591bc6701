-- build_info: when and from what this warehouse was built, for freshness displays.
--
-- grain: one row: the build that produced this file
-- key: run_id
-- materialized: table
--
-- Written by the last model of every build, so a reader sees the row of the build whose tables it
-- reads.
--
-- columns:
--   built_at: when the build started (UTC).
--   run_id: the pipeline run that built the warehouse; 'manual' when built by hand.
--   build_mode: full (every partition read) or incremental (only the changed partitions read).
--   changed_partitions: number of visit_date partitions this build read (all of them on a full build).
--   validation_verdict: the validation gate's verdict for the published data, when the caller passed it.
--   validation_report: path of the validation report, when the caller passed it.
--   models_digest: digest of the SQL models that built the file; an incremental build needs the same.
--   builds_since_full: incremental builds since the last full build.
--   latest_visit_date: the latest visit_date in fct_visits.
--   latest_fetched_at: the latest fetched_at in fct_visits: how fresh the data is (UTC).
--   fct_visits_rows: rows in marts.fct_visits.
--   fct_visit_lines_rows: rows in marts.fct_visit_lines.
--   fct_line_extra_data_rows: rows in marts.fct_line_extra_data.
--   fct_equipment_visits_rows: rows in marts.fct_equipment_visits.
--   fct_visit_measures_rows: rows in marts.fct_visit_measures.
--   fct_data_issues_rows: rows in marts.fct_data_issues: the data issues of the published lake.
--   dim_drivers_rows: rows in marts.dim_drivers.
--   dim_customers_rows: rows in marts.dim_customers.
--   dim_territories_rows: rows in marts.dim_territories.
--   kpi_daily_rows: rows in marts.kpi_daily.
--   kpi_driver_daily_rows: rows in marts.kpi_driver_daily.
--   kpi_territory_daily_rows: rows in marts.kpi_territory_daily.
--   kpi_skip_reasons_daily_rows: rows in marts.kpi_skip_reasons_daily.
--   kpi_data_issues_daily_rows: rows in marts.kpi_data_issues_daily.

with

parameters as (
    select * from build.parameters
),

freshness as (
    select max(visit_date) as latest_visit_date, max(fetched_at) as latest_fetched_at
    from marts.fct_visits
),

final as (
    select
        parameters.built_at,
        parameters.run_id,
        parameters.build_mode,
        parameters.changed_partitions,
        parameters.validation_verdict,
        parameters.validation_report,
        parameters.models_digest,
        parameters.builds_since_full,
        freshness.latest_visit_date,
        freshness.latest_fetched_at,
        (select count(*) from marts.fct_visits) as fct_visits_rows,
        (select count(*) from marts.fct_visit_lines) as fct_visit_lines_rows,
        (select count(*) from marts.fct_line_extra_data) as fct_line_extra_data_rows,
        (select count(*) from marts.fct_equipment_visits) as fct_equipment_visits_rows,
        (select count(*) from marts.fct_visit_measures) as fct_visit_measures_rows,
        (select count(*) from marts.fct_data_issues) as fct_data_issues_rows,
        (select count(*) from marts.dim_drivers) as dim_drivers_rows,
        (select count(*) from marts.dim_customers) as dim_customers_rows,
        (select count(*) from marts.dim_territories) as dim_territories_rows,
        (select count(*) from marts.kpi_daily) as kpi_daily_rows,
        (select count(*) from marts.kpi_driver_daily) as kpi_driver_daily_rows,
        (select count(*) from marts.kpi_territory_daily) as kpi_territory_daily_rows,
        (select count(*) from marts.kpi_skip_reasons_daily) as kpi_skip_reasons_daily_rows,
        (select count(*) from marts.kpi_data_issues_daily) as kpi_data_issues_daily_rows
    from parameters
    cross join freshness
)

select * from final
