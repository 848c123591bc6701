"""The LetsJobIt API v2 client: settings, errors, page checks, drift-safe paging and the key's rate budget.

Airflow-free: the hook in ``letsjobit.airflow.hooks`` only builds a client from a connection.
"""
