{#-
    The incremental strategy of the fact tables: delete the rows the predicates select, then insert
    the model's rows. Unlike delete+insert, it also removes rows whose key no longer comes back (a
    visit that moved to another date, or left the lake), because the predicates name what the build
    touched rather than the keys it returns. A model sets
        incremental_strategy="replace_where",
        incremental_predicates=["visit_id in (select visit_id from intermediate.int_touched_visits)"]
    (schema-qualified: dbt fixes config values at parse time, before ref() can resolve; the model
    names what it reads with a `-- depends_on: {{ ref(...) }}` comment for the lineage)
-#}
{% macro get_incremental_replace_where_sql(arg_dict) %}
    {%- set predicates = arg_dict["incremental_predicates"] -%}
    {%- if not predicates -%}
        {{ exceptions.raise_compiler_error("replace_where needs incremental_predicates: the rows it replaces") }}
    {%- endif -%}
    delete from {{ arg_dict["target_relation"] }}
    where {{ predicates | join(" and ") }};
    insert into {{ arg_dict["target_relation"] }} by name
    select * from {{ arg_dict["temp_relation"] }}
{% endmacro %}
