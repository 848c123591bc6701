"""`python -m letsjobit.dashboard`: serve the dashboard (see dashboard/server.py)."""

from letsjobit.dashboard.server import main

main()
