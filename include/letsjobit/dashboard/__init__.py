"""The LetsJobIt KPI dashboard (Streamlit): `make dashboard`, entry point dashboard/app.py."""
