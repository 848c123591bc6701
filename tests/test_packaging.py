"""The project is one installed package: every module imports from any directory, with no path tricks.

``make install`` installs the package editable (``pip install -e .``). Nothing may depend on the
project root being on sys.path: no .pth file of our own, no PYTHONPATH. The checks run a child Python
in isolated mode (``-I``: no PYTHONPATH, no current directory on sys.path) from a foreign directory.
"""

from __future__ import annotations

import json
import pkgutil
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import letsjobit
from letsjobit import config

PACKAGE_DIR = Path(letsjobit.__file__).parent
# Modules that run something when imported (entry points), or need a Streamlit script context.
NOT_IMPORTED = {"letsjobit.simulator.__main__", "letsjobit.dashboard.__main__"}
STREAMLIT_PAGES = re.compile(r"^letsjobit\.dashboard\.(app|views\.\w+)$")


def every_module() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="letsjobit.")]
    return sorted(name for name in names if name not in NOT_IMPORTED and not STREAMLIT_PAGES.match(name))


def isolated_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_every_module_of_the_package_imports_from_a_foreign_directory(tmp_path):
    modules = every_module()
    code = f"import importlib, json; [importlib.import_module(m) for m in {modules!r}]; print('ok')"

    result = isolated_python(code, tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    assert len(modules) > 60  # the walk found the subpackages, not only the top level


def test_the_hook_and_the_client_import_as_a_user_would_write_it(tmp_path):
    code = (
        "from letsjobit.airflow.hooks import LetsJobItHook\n"
        "from letsjobit.api.client import LetsJobItClient\n"
        "import json, letsjobit\n"
        "print(json.dumps([LetsJobItHook.conn_type, LetsJobItClient.__name__, letsjobit.__file__]))"
    )

    result = isolated_python(code, tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    conn_type, client, package_file = json.loads(result.stdout)
    assert (conn_type, client) == ("letsjobit", "LetsJobItClient")
    assert Path(package_file).parent == PACKAGE_DIR  # the working copy (editable), not a stale copy


def test_the_environment_has_no_path_file_of_ours_and_one_letsjobit_package():
    site = Path(sysconfig.get_paths()["purelib"])
    ours = [
        path.name
        for path in site.glob("*.pth")
        if str(config.PROJECT_ROOT) in path.read_text(errors="replace") and "__editable__" not in path.name
    ]

    assert ours == []
    assert not (config.PROJECT_ROOT / "plugins" / "letsjobit").exists()
    assert not (config.PROJECT_ROOT / "include" / "__init__.py").exists()  # `include` is no package


def test_the_provider_entry_point_names_a_module_of_the_package():
    from importlib.metadata import entry_points

    (point,) = [p for p in entry_points(group="apache_airflow_provider") if p.value.startswith("letsjobit.")]
    info = point.load()()

    assert info["connection-types"][0]["hook-class-name"] == "letsjobit.airflow.hooks.LetsJobItHook"


def test_the_readme_layout_lists_exactly_the_subpackages_and_folders_that_exist():
    from tests.test_docs_commands import README, _layout_tree

    entries = [line.split()[0] for line in _layout_tree(README) if line.strip()]
    nested = {
        entry.strip("/")
        for entry in entries
        if not entry.endswith(".py") and "/" in entry and entry.count("/") == 1
    }
    subpackages = {path.parent.name for path in PACKAGE_DIR.glob("*/__init__.py")}

    assert {name for name in nested if name in subpackages or (PACKAGE_DIR / name).is_dir()} == subpackages
    for entry in entries:
        if entry.endswith("/") and entry.strip("/") not in subpackages:
            assert (config.PROJECT_ROOT / entry).exists(), entry
