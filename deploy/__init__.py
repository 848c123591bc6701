"""Deployment: bootstrap of an Airflow deployment and the distributed run used to prove it on one machine."""
