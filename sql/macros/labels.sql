{#- Called by on-run-start (dbt_project.yml): DuckDB macros stored in the warehouse file, so a
    read-only reader calls them exactly as the models do. -#}
{% macro create_label_macros() %}
create schema if not exists marts;

-- Labelling rules the models share, created in schema marts so that readers use the same ones.

-- marts.nps_category(rating): promoter = 5, passive = 4, detractor = 1..3 (an NPS-style score on the
-- API's 5-point scale); null for an unrated visit.
create or replace macro marts.nps_category(rating) as (
    case
        when rating = 5 then 'promoter'
        when rating = 4 then 'passive'
        when rating between 1 and 3 then 'detractor'
    end
);

-- marts.unknown_member(value): the label a dimension key gets when the source left it empty, so that
-- every visit lands in a dimension row and per-driver or per-territory totals add up to the day.
create or replace macro marts.unknown_member(value) as (
    coalesce(nullif(trim(cast(value as varchar)), ''), '(unknown)')
);
{% endmacro %}
