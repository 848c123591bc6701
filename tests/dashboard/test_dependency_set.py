"""The dashboard set (requirements-dashboard.txt) is all the dashboard needs, as in its image.

A Python that sees only the standard library, the files of that set's distributions and the package's
source, and where importing Airflow fails, imports every dashboard module, renders every page over a real
warehouse and writes the static report. A dependency the set lacks fails here, not in the container.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from letsjobit.dashboard.report import REPORT_NAME

from tests.dashboard.conftest import APP
from tests.dashboard.test_app import PAGES, write_validation_summary
from tests.devtools.requirement_sets import DASHBOARD, PROJECT_ROOT

SCRIPT = r"""
import importlib, importlib.abc, json, pkgutil, sys

view, source, app_file, pages = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path[:0] = [view, source]


class NoAirflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "airflow":
            raise ImportError(f"the dashboard imported {name}, which its image does not have")
        return None


sys.meta_path.insert(0, NoAirflow())
import letsjobit.dashboard
from letsjobit import config

# Every module but the Streamlit scripts (app.py and the pages run below) and the launcher, which execs.
modules = [
    module.name
    for module in pkgutil.walk_packages(letsjobit.dashboard.__path__, "letsjobit.dashboard.")
    if module.name.rpartition(".")[2] not in ("app", "__main__") and ".views." not in module.name
]
for name in modules:
    importlib.import_module(name)

from letsjobit.dashboard import report
from streamlit.testing.v1 import AppTest

app = AppTest.from_file(app_file, default_timeout=60).run()
problems = {}
for page in pages:
    app.switch_page(page).run()
    problems[page] = [str(element.value) for element in [*app.exception, *app.error]]
report.write(config.layout())
print(json.dumps({
    "modules": modules,
    "problems": problems,
    "imported": sorted({name.partition(".")[0] for name in sys.modules}),
    "letsjobit": letsjobit.dashboard.__file__,
}))
"""


def dashboard_set_view(root: Path) -> Path:
    """A folder of links to the installed files of the dashboard set's distributions, and nothing else."""
    for name, version in DASHBOARD.locked().items():
        distribution = importlib.metadata.distribution(name)
        assert distribution.version == version, f"{name} {distribution.version} installed, {version} locked"
        for file in distribution.files or []:
            if file.parts[0] == "..":
                continue  # console scripts, outside site-packages
            link = root / file
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path(distribution.locate_file(file)).resolve())
    return root


def run_with_the_dashboard_set_only(tmp_path: Path) -> dict:
    view = dashboard_set_view(tmp_path / "site")
    result = subprocess.run(
        # -S: no site-packages (the venv's are the whole project's), -E: no PYTHONPATH, -B: no .pyc writes.
        [sys.executable, "-S", "-E", "-B", "-c", SCRIPT, str(view), str(PROJECT_ROOT / "include"), str(APP),
         json.dumps(PAGES)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_dashboard_runs_with_its_own_set_and_without_airflow(warehouse, tmp_path):
    write_validation_summary(warehouse, "build-a", "pass")  # the data quality page embeds its report

    outcome = run_with_the_dashboard_set_only(tmp_path)

    assert {"letsjobit.dashboard.queries", "letsjobit.dashboard.report"} <= set(outcome["modules"])
    assert outcome["problems"] == {page: [] for page in PAGES}
    assert (warehouse.root / REPORT_NAME).is_file()
    # What ran was this project's source over the set's files, not the development environment.
    assert Path(outcome["letsjobit"]).is_relative_to(PROJECT_ROOT / "include")
    assert {"streamlit", "duckdb", "pandas", "altair"} <= set(outcome["imported"])
    assert not {"airflow", "great_expectations", "pytest"} & set(outcome["imported"])
