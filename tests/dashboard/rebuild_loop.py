"""Republishes the lake and rebuilds the real warehouse again and again, alternating two data sets,
until told to stop: what `make run` does to a dashboard's warehouse, many times over.

    python -m tests.dashboard.rebuild_loop <data dir> <stop file>

Prints one line per finished build ("built <run_id>"), so the test knows builds happened while it read.
"""

from __future__ import annotations

import sys
from pathlib import Path

from letsjobit import config

from tests.dashboard import fixture_lake

DATA_SETS = fixture_lake.DATA_SETS


def main(data_dir: Path, stop: Path) -> None:
    layout = config.DataLayout(data_dir)
    while not stop.exists():
        for run_id, settings in DATA_SETS.items():
            fixture_lake.build(layout, run_id=run_id, **settings)
            print(f"built {run_id}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
