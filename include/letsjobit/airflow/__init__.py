"""The Airflow side: the hook and provider info, and the task functions the DAGs in ``dags/`` call."""
