"""Airflow-side pieces of the LetsJobIt pipeline (the hook); importable as ``letsjobit``."""
