with

parameters as (
    select * from {{ source('build', 'parameters') }}
),

freshness as (
    select max(visit_date) as latest_visit_date, max(fetched_at) as latest_fetched_at
    from {{ ref('fct_visits') }}
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
        parameters.lake_location,
        parameters.lake_run_id,
        parameters.lake_visits_version,
        parameters.lake_visit_lines_version,
        parameters.lake_line_extra_data_version,
        parameters.lake_data_issues_version,
        freshness.latest_visit_date,
        freshness.latest_fetched_at,
        (select count(*) from {{ ref('fct_visits') }}) as fct_visits_rows,
        (select count(*) from {{ ref('fct_visit_lines') }}) as fct_visit_lines_rows,
        (select count(*) from {{ ref('fct_line_extra_data') }}) as fct_line_extra_data_rows,
        (select count(*) from {{ ref('fct_equipment_visits') }}) as fct_equipment_visits_rows,
        (select count(*) from {{ ref('fct_visit_measures') }}) as fct_visit_measures_rows,
        (select count(*) from {{ ref('fct_data_issues') }}) as fct_data_issues_rows,
        (select count(*) from {{ ref('dim_drivers') }}) as dim_drivers_rows,
        (select count(*) from {{ ref('dim_customers') }}) as dim_customers_rows,
        (select count(*) from {{ ref('dim_territories') }}) as dim_territories_rows,
        (select count(*) from {{ ref('kpi_daily') }}) as kpi_daily_rows,
        (select count(*) from {{ ref('kpi_driver_daily') }}) as kpi_driver_daily_rows,
        (select count(*) from {{ ref('kpi_territory_daily') }}) as kpi_territory_daily_rows,
        (select count(*) from {{ ref('kpi_skip_reasons_daily') }}) as kpi_skip_reasons_daily_rows,
        (select count(*) from {{ ref('kpi_data_issues_daily') }}) as kpi_data_issues_daily_rows
    from parameters
    cross join freshness
)

select * from final
