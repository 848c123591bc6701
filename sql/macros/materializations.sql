{#-
    The warehouse's own table and incremental materialisations (they take precedence over
    dbt-duckdb's). dbt-duckdb's are written for a shared database: build beside the old relation,
    rename, drop the backup, compare the temporary table's columns with the target's. A build here
    writes a private file that nobody reads until the runner publishes it (docs/warehouse.md), and a
    change to any model forces a full build, so an incremental build never meets a changed schema.
    These do only the statements a build needs, one round trip each: dbt's per-model cost is most of a
    small incremental build.

    table: drop the old relation (if any) and create the table; an enforced contract creates it with
    its declared columns and types, as dbt-duckdb does (create_table_as).

    incremental: a new relation, or --full-refresh, is built as a table. Otherwise the model's rows go
    to a temporary table and the incremental strategy replaces what it selects with them. Only
    strategies that need no column list are supported (replace_where, sql/macros/replace_where.sql),
    and on_schema_change is not read (dbt requires "fail" on a contracted incremental model; the
    schema cannot change between incremental builds).
-#}
{#- Drop the old relation, if any, and create the table (create_table_as applies an enforced contract). -#}
{% macro letsjobit_replace_table(existing_relation, target_relation, sql) -%}
    {% if existing_relation is not none -%}
        drop {{ existing_relation.type }} {{ existing_relation }};
    {%- endif %}
    {{ create_table_as(False, target_relation, sql) }}
{%- endmacro %}

{% materialization table, adapter="duckdb" %}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type="table") -%}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {% call statement("main") -%}
        {{ letsjobit_replace_table(existing_relation, target_relation, sql) }}
    {%- endcall %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({"relations": [target_relation]}) }}
{% endmaterialization %}

{% materialization incremental, adapter="duckdb" %}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type="table") -%}
    {%- set rebuild = existing_relation is none or existing_relation.is_view or should_full_refresh() -%}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {% if rebuild %}
        {% call statement("main") -%}
            {{ letsjobit_replace_table(existing_relation, target_relation, sql) }}
        {%- endcall %}
    {% else %}
        {%- set strategy = config.get("incremental_strategy") or "default" -%}
        {%- if strategy != "replace_where" -%}
            {{ exceptions.raise_compiler_error(
                "incremental_strategy " ~ strategy ~ " is not supported by the warehouse's incremental "
                ~ "materialisation (sql/macros/materializations.sql): use replace_where") }}
        {%- endif -%}
        {%- set new_rows = api.Relation.create(identifier=this.identifier ~ "__dbt_new_rows", type="table") -%}
        {%- set strategy_sql = adapter.get_incremental_strategy_macro(context, strategy)({
            "target_relation": target_relation,
            "temp_relation": new_rows,
            "unique_key": config.get("unique_key"),
            "dest_columns": none,
            "incremental_predicates": config.get("incremental_predicates"),
        }) -%}
        {% call statement("main") -%}
            create or replace temporary table {{ new_rows }} as (
                {{ sql }}
            );
            {{ strategy_sql }};
            drop table {{ new_rows }}
        {%- endcall %}
    {% endif %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({"relations": [target_relation]}) }}
{% endmaterialization %}
