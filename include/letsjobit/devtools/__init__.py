"""What `make run`, `make run-window` and `make distributed` use: private Airflow homes and run summaries."""
