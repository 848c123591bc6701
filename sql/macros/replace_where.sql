{#-
    The incremental strategy of the warehouse: delete the rows the predicates select, then insert the
    model's rows. Unlike delete+insert, it also removes rows whose key does not come back (a visit that
    moved to another date or left the lake), because the predicates name what the build touched rather
    than the keys it returns. A model sets

        incremental_strategy="replace_where",
        incremental_predicates=["visit_id in (select visit_id from intermediate.int_touched_visits)"]

    Several predicates are or-ed (any of them selects a row to replace). In a predicate, `$new_rows`
    stands for the rows being inserted (the model's result). Relations are schema-qualified: dbt fixes
    config values at parse time, before ref() can resolve, so the model also names what they read in a
    `-- depends_on: {{ ref(...) }}` line for the lineage.

    A model that sets `keep_replaced={"into": "<build table>", "columns": [...]}` has those columns of
    the rows about to be deleted copied into source build.<into> first (created empty by the build
    runner, dropped before publication): the tables derived from the model read them to know where the
    old rows stood (a visit that moved from Monday to Tuesday changes both days' KPIs).
-#}
{% macro get_incremental_replace_where_sql(arg_dict) %}
    {%- set predicates = arg_dict["incremental_predicates"] -%}
    {%- if not predicates -%}
        {{ exceptions.raise_compiler_error("replace_where needs incremental_predicates: the rows it replaces") }}
    {%- endif -%}
    {%- set new_rows = arg_dict["temp_relation"] | string -%}
    {%- set replaced -%}
        {% for predicate in predicates %}({{ predicate | replace("$new_rows", new_rows) }}){% if not loop.last %} or {% endif %}{% endfor %}
    {%- endset -%}
    {%- set keep = config.get("keep_replaced") -%}
    {%- if keep %}
    insert into {{ source("build", keep["into"]) }} ({{ keep["columns"] | join(", ") }})
    select {{ keep["columns"] | join(", ") }} from {{ arg_dict["target_relation"] }}
    where {{ replaced }};
    {%- endif %}
    delete from {{ arg_dict["target_relation"] }}
    where {{ replaced }};
    insert into {{ arg_dict["target_relation"] }} by name
    select * from {{ arg_dict["temp_relation"] }}
{% endmacro %}
