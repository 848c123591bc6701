"""`python -m dashboard`: serve the dashboard (see dashboard/server.py)."""

from dashboard.server import main

main()
