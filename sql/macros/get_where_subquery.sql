{#-
    What a data test reads of the model it tests (dbt's own macro, overridden). On an incremental build
    a model may declare `meta.incremental_test_scope`: the rows that build could have changed (e.g. the
    touched visits). Its tests then read only those rows, so their cost follows the change, not the
    table. That is sound for the tests used here: the rows outside the scope passed the same tests in
    the build that wrote them, and a duplicate or an orphan can only involve rows this build inserted,
    which the scope covers. A full build (--full-refresh) tests every row.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set found = namespace(where=config.get("where", "")) -%}
    {%- if execute and not flags.FULL_REFRESH -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == "model" and node.alias == relation.identifier and node.schema == relation.schema -%}
                {%- set scope = node.config.meta.get("incremental_test_scope") -%}
                {%- if scope -%}
                    {%- set found.where = "(" ~ scope ~ ")" ~ (" and (" ~ found.where ~ ")" if found.where else "") -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if found.where -%}
        {%- do return("(select * from " ~ relation ~ " where " ~ found.where ~ ") dbt_subquery") -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
