"""The LetsJobIt API v2 client: settings, errors, page checks, drift-safe paging, the key's placement and rate budget.

Airflow-free: the hook in ``letsjobit.airflow.hooks`` only builds a client from a connection.
"""
