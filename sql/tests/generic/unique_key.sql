{#-
    The model's key (several columns) identifies its rows: no two rows share it (nulls compare
    equal, as in a group by) and no key column is null except those listed in `nullable`. One test
    instead of a not_null per column and a uniqueness test: each test is a query over the table.
-#}
{% test unique_key(model, columns, nullable=[]) %}
select {{ columns | join(", ") }}, count(*) as copies
from {{ model }}
group by all
having count(*) > 1
{%- for column in columns if column not in nullable %}
    or bool_or({{ column }} is null)
{%- endfor %}
{% endtest %}
