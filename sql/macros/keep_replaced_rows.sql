{#-
    A pre-hook of an incremental model: before its rows of the touched visits are replaced, copy the
    given columns of those rows into build.<into> (created empty by the build runner, dropped before
    publication). The tables derived from the model read them to know which dates and keys the old
    rows stood in: a visit that moved from one day to another changes both days' KPIs.
    Nothing to keep on a full build.
-#}
{% macro keep_replaced_rows(relation, into, columns) %}
    {%- if is_incremental() -%}
    insert into {{ source('build', into) }} ({{ columns | join(", ") }})
    select {{ columns | join(", ") }}
    from {{ relation }}
    where visit_id in (select visit_id from {{ ref('int_touched_visits') }})
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}
