"""Rebuilds a warehouse again and again, alternating two data sets, until told to stop.

    python -m tests.dashboard.rebuild_loop <warehouse path> <stop file>

Prints one line per finished build ("built <run_id>"), so the test knows builds happened while it read.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.dashboard import fixture_warehouse

DATA_SETS = {"build-a": {"seed": 7}, "build-b": {"seed": 8, "scale": 3}}


def main(warehouse: Path, stop: Path) -> None:
    visits = {run_id: fixture_warehouse.sample_visits(**settings) for run_id, settings in DATA_SETS.items()}
    while not stop.exists():
        for run_id, rows in visits.items():
            fixture_warehouse.build(warehouse, rows, run_id=run_id)
            print(f"built {run_id}", flush=True)
            time.sleep(0.05)  # leave the readers some CPU on a small machine


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
