"""What `make run`, `make run-window` and `make distributed` use.

``run`` (make run / run-window) drives real ``airflow dags test`` runs in a private Airflow home
(``airflow_runner``) and prints a ``summary``; ``distributed`` runs the DAG on CeleryExecutor with the
servers ``services`` starts; ``bootstrap`` stores the connection and pool in a metadata DB (compose's
airflow-init too); ``worker_identity`` tells workers on one host apart.
"""
