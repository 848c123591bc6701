"""The LetsJobIt visits pipeline: API -> raw zone -> lake -> quality gate -> warehouse -> dashboard.

Subpackages, each importing only from those before it:
``api`` (the API client and its rate budget), ``lake`` (schema, coercion, flatten, stage, publish),
``quality`` (the checks and the gate), ``warehouse`` (the DuckDB build), ``airflow`` (hook, provider,
the task functions the DAGs call), and beside them ``simulator``, ``dashboard`` and ``devtools``
(what `make run` and friends use). ``config`` is shared by all.
"""
