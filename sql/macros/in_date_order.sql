{#-
    `select * from final {{ in_date_order() }}`: a full build stores a fact in visit_date order, so a
    reader's date filter skips row groups and a later build's deletes touch few of them. An incremental
    build's new rows (a window of days, fewer rows than a row group at fleet scale) are appended
    together whatever their order, so it does not sort them (a tenth of fct_visits' time at 1M visits).
-#}
{% macro in_date_order() -%}
    {%- if not is_incremental() %}order by visit_date{% endif -%}
{%- endmacro %}
